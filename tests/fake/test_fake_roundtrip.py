"""Property tests: whatever request the SDK can build round-trips through the fake's parser."""

from __future__ import annotations

import inspect
import itertools
import json
import typing
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from alibabacloud_eci20180808 import models as m
from alibabacloud_openapi_util.client import Client as OpenApiUtil
from conftest import AK, FAST, REGION, SK, sdk_client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from Tea.model import TeaModel

from fakes.eci.params import COMMON, parse_query, unflatten
from fakes.eci.server import FakeECI

any_text = st.text(max_size=40)
name = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
env_key = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)
safe_value = st.text(max_size=60).filter(
    lambda s: not s.startswith("acs:") and "http://" not in s and "https://" not in s
)
floats = st.sampled_from([0.25, 0.5, 1.0, 1.5, 2.0, 4.0])

env = st.builds(m.CreateContainerGroupRequestContainerEnvironmentVar, key=env_key, value=st.text(max_size=80))
port = st.builds(
    m.CreateContainerGroupRequestContainerPort, port=st.integers(1, 65535), protocol=st.sampled_from(["TCP", "UDP"])
)
mount = st.builds(
    m.CreateContainerGroupRequestContainerVolumeMount,
    name=name,
    mount_path=any_text.map(lambda s: "/" + s),
    read_only=st.booleans(),
)
a_container = st.builds(
    m.CreateContainerGroupRequestContainer,
    name=name,
    image=any_text.filter(bool),
    cpu=floats,
    memory=floats,
    command=st.lists(any_text, max_size=3),
    arg=st.lists(any_text, max_size=3),
    environment_var=st.lists(env, max_size=4),
    port=st.lists(port, max_size=2),
    volume_mount=st.lists(mount, max_size=2),
    working_dir=any_text,
    tty=st.booleans(),
)
tag = st.builds(m.CreateContainerGroupRequestTag, key=any_text.filter(bool), value=any_text)
config_file = st.builds(
    m.CreateContainerGroupRequestVolumeConfigFileVolumeConfigFileToPath,
    path=any_text.filter(bool),
    content=st.binary(max_size=30).map(lambda b: __import__("base64").b64encode(b).decode()),
    mode=st.integers(0, 511),
)
volume = st.builds(
    m.CreateContainerGroupRequestVolume,
    name=name,
    type=st.just("ConfigFileVolume"),
    config_file_volume=st.builds(
        m.CreateContainerGroupRequestVolumeConfigFileVolume,
        config_file_to_path=st.lists(config_file, min_size=1, max_size=3),
    ),
)
create_requests = st.builds(
    m.CreateContainerGroupRequest,
    region_id=any_text.filter(bool),
    container_group_name=any_text,
    container=st.lists(a_container, min_size=1, max_size=3),
    tag=st.lists(tag, max_size=3),
    volume=st.lists(volume, max_size=2),
    restart_policy=st.sampled_from(["Always", "Never", "OnFailure"]),
    spot_price_limit=st.none() | st.floats(0, 10, allow_nan=False),
    auto_create_eip=st.none() | st.booleans(),
    client_token=st.none() | any_text,
)
describe_requests = st.builds(
    m.DescribeContainerGroupsRequest,
    region_id=any_text,
    container_group_ids=st.lists(any_text, max_size=3).map(json.dumps),
    limit=st.integers(1, 20),
    next_token=any_text,
    tag=st.lists(st.builds(m.DescribeContainerGroupsRequestTag, key=any_text.filter(bool), value=any_text), max_size=3),
    with_event=st.booleans(),
)
exec_requests = st.builds(
    m.ExecContainerCommandRequest,
    region_id=any_text,
    container_group_id=any_text,
    container_name=any_text,
    command=st.lists(any_text, max_size=4).map(json.dumps),
    sync=st.booleans(),
    tty=st.booleans(),
)


def expected_tree(obj: Any) -> Any:
    """What the parser must rebuild from the SDK's flattening of `obj.to_map()`."""
    if isinstance(obj, dict):
        out = {k: expected_tree(v) for k, v in obj.items() if v is not None}
        return {k: v for k, v in out.items() if v not in ({}, [])}
    if isinstance(obj, list):
        return [expected_tree(v) for v in obj]
    return str(obj)


@given(st.one_of(create_requests, describe_requests, exec_requests))
def test_sdk_flattening_round_trips_through_the_parser(request: Any) -> None:
    wire = OpenApiUtil.query(request.to_map())
    query = urlencode(wire)  # what the sync SDK puts on the URL
    tree = unflatten(parse_query(query))
    assert tree == expected_tree(request.to_map())


def _strategy(tp: Any) -> st.SearchStrategy[Any]:
    """A strategy for one field type of an SDK model (from its __init__ annotations)."""
    origin = typing.get_origin(tp)
    if origin in (list, typing.List):  # noqa: UP006
        return st.lists(_strategy(typing.get_args(tp)[0]), max_size=3)
    if origin in (dict, typing.Dict):  # noqa: UP006
        # Free-form map keys containing "." cannot survive the flattening (inherent to the wire format).
        # All-digit map keys flatten exactly like list indexes (Options.1), so the wire format cannot carry them.
        keys = st.from_regex(r"[A-Za-z0-9_-]{1,6}", fullmatch=True).filter(lambda k: not k.isdigit())
        return st.dictionaries(keys, st.text(max_size=5), max_size=2)
    if tp is str:
        return st.text(max_size=12)
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(-(10**6), 10**6)
    if tp is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    if inspect.isclass(tp) and issubclass(tp, TeaModel):
        return _model(tp)
    return st.none()


def _model(cls: type) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls.__init__)  # type: ignore[misc]
    return st.builds(cls, **{n: st.none() | _strategy(t) for n, t in hints.items() if n != "return"})


def _lossless(obj: Any) -> Any:
    """`to_map()` minus what the SDK never sends: None, empty objects and lists (also inside lists)."""
    if isinstance(obj, dict):
        out = {k: _lossless(v) for k, v in obj.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [])}
    if isinstance(obj, list):
        return [v for v in (_lossless(x) for x in obj) if v not in (None, {}, [])]
    return None if obj is None else str(obj)


SDK_REQUEST_MODELS = sorted(
    (c for n, c in vars(m).items() if n.endswith("Request") and inspect.isclass(c)), key=lambda c: c.__name__
)


def test_every_sdk_action_has_a_request_model() -> None:
    assert len(SDK_REQUEST_MODELS) == 36


@pytest.mark.parametrize("model_cls", SDK_REQUEST_MODELS, ids=lambda c: c.__name__)
def test_every_sdk_request_model_round_trips(model_cls: type) -> None:
    @settings(max_examples=40, suppress_health_check=list(HealthCheck))
    @given(_model(model_cls))
    def check(request: Any) -> None:
        tree = unflatten(parse_query(urlencode(OpenApiUtil.query(request.to_map()))))
        want = {k: v for k, v in _lossless(request.to_map()).items() if k not in COMMON}
        assert tree == want

    check()


_names: Iterator[int] = itertools.count()


@pytest.fixture(scope="module")
def shared_fake() -> Iterator[FakeECI]:
    with FakeECI.start(access_key_id=AK, access_key_secret=SK, config=dict(FAST)) as f:
        yield f


@settings(max_examples=60)
@given(
    envs=st.lists(st.tuples(env_key, st.text(max_size=80)), max_size=5, unique_by=lambda kv: kv[0]),
    tags=st.lists(
        st.tuples(st.text(min_size=1, max_size=20).filter(lambda k: not k.startswith(("acs:", "aliyun"))), safe_value),
        max_size=4,
        unique_by=lambda kv: kv[0],
    ),
    args=st.lists(st.text(max_size=30), max_size=4),
    algorithm=st.sampled_from([None, "v2"]),
)
def test_values_survive_the_wire_both_signatures(shared_fake: FakeECI, envs, tags, args, algorithm) -> None:
    tags = [(k, v) for k, v in tags if "http://" not in k and "https://" not in k]
    client = sdk_client(shared_fake, algorithm)
    req = m.CreateContainerGroupRequest(
        region_id=REGION,
        container_group_name=f"prop-{next(_names)}",
        security_group_id="sg-fake",
        v_switch_id="vsw-fake-a",
        container=[
            m.CreateContainerGroupRequestContainer(
                name="c",
                image="nginx",
                command=["not-a-binary-here"],
                arg=args,
                environment_var=[m.CreateContainerGroupRequestContainerEnvironmentVar(key=k, value=v) for k, v in envs],
            )
        ],
        tag=[m.CreateContainerGroupRequestTag(key=k, value=v) for k, v in tags],
    )
    gid = client.create_container_group(req).body.container_group_id
    g = client.describe_container_groups(
        m.DescribeContainerGroupsRequest(region_id=REGION, container_group_ids=json.dumps([gid]))
    ).body.container_groups[0]
    assert [(e.key, e.value) for e in g.containers[0].environment_vars] == envs
    assert [(t.key, t.value) for t in g.tags] == tags
    assert g.containers[0].args == args
    client.delete_container_group(m.DeleteContainerGroupRequest(region_id=REGION, container_group_id=gid))
