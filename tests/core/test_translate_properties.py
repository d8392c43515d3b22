"""Property tests of Pod -> CreateContainerGroup: realistic pods translate, unrunnable ones are
rejected naming the field, junk never raises anything but the documented errors, and the
request keeps every byte, keeps command and args apart and carries a valid identity."""

from __future__ import annotations

import base64
import copy
import re
from typing import Any

import pytest
from alibabacloud_eci20180808.models import CreateContainerGroupRequest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from tests.core.pod_strategies import Scenario, breakage, scenarios
from vkeci.core import identity
from vkeci.core.translate import Missing, Objects, Rejected, TranslationError, needs, pod_to_request, translate

# Whole-pod scenarios are costly to generate: at most 150 per test even in the CI profile (300),
# which keeps this module well under a minute on the shared 2-core machine.
SLOW = settings(
    max_examples=min(settings.default.max_examples, 150),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def strip_empty(value: Any) -> Any:
    """The SDK's to_map() adds empty lists for absent list fields; compare without them."""
    if isinstance(value, dict):
        return {k: strip_empty(v) for k, v in value.items() if v != []}
    if isinstance(value, list):
        return [strip_empty(v) for v in value]
    return value


def sdk_roundtrip(request: dict[str, Any]) -> dict[str, Any]:
    model = CreateContainerGroupRequest().from_map(copy.deepcopy(request))
    model.validate()
    return strip_empty(model.to_map())


@SLOW
@given(scenarios())
def test_realistic_pods_translate_correctly(scenario: Scenario) -> None:
    """One generated pod, every request-level property (cheaper than drawing a pod per property)."""
    result = translate(scenario.pod, scenario.objects, scenario.defaults)
    request = result.request
    note(repr(request)[:2000])
    check_sdk_validation(request)
    check_bytes_survive(scenario, request)
    check_command_and_args_apart(scenario, request)
    check_identity(scenario, request)


def check_sdk_validation(request: dict[str, Any]) -> None:
    assert sdk_roundtrip(request) == request, "the SDK model must keep every key we send"


def check_bytes_survive(scenario: Scenario, request: dict[str, Any]) -> None:
    sent: dict[tuple[str, str], bytes] = {}
    for volume in request.get("Volume", []):
        for item in (volume.get("ConfigFileVolume") or {}).get("ConfigFileToPath", []):
            sent[(volume["Name"], item["Path"])] = base64.b64decode(item["Content"], validate=True)
    for key, expected in scenario.files.items():
        assert key in sent, key
        assert sent[key] == expected, key


def check_command_and_args_apart(scenario: Scenario, request: dict[str, Any]) -> None:
    spec = scenario.pod["spec"]
    assert len(request["Container"]) == len(spec["containers"])
    pairs = list(zip(spec["containers"], request["Container"], strict=True)) + list(
        zip(spec.get("initContainers", []), request.get("InitContainer", []), strict=True)
    )
    for source, sent in pairs:
        assert len(sent.get("Command", [])) == len(source.get("command", []))
        assert len(sent.get("Arg", [])) == len(source.get("args", []))
        if "$" not in "".join(source.get("command", []) + source.get("args", [])):
            assert sent.get("Command", []) == source.get("command", [])
            assert sent.get("Arg", []) == source.get("args", [])


def check_identity(scenario: Scenario, request: dict[str, Any]) -> None:
    again = pod_to_request(copy.deepcopy(scenario.pod), scenario.objects, scenario.defaults)
    assert request == again, "translation must be deterministic"
    assert identity.GROUP_NAME_PATTERN.match(request["ContainerGroupName"])
    assert request["ClientToken"].isascii() and len(request["ClientToken"]) <= 64
    tags = request["Tag"]
    assert len(tags) <= identity.MAX_TAGS
    assert len({t["Key"] for t in tags}) == len(tags)
    assert all(len(t["Key"]) <= 64 and len(t["Value"]) <= 128 for t in tags)
    key = identity.pod_key_from_tags(tags)
    meta = scenario.pod["metadata"]
    assert key == identity.PodKey(meta["namespace"], meta["name"], meta["uid"])


@given(st.tuples(st.text(max_size=70), st.text(max_size=300), st.text(max_size=40)))
def test_group_names_are_valid_for_any_identity(ids: tuple[str, str, str]) -> None:
    pod = {"metadata": {"namespace": ids[0], "name": ids[1], "uid": ids[2]}}
    name = identity.group_name(pod)
    assert identity.GROUP_NAME_PATTERN.match(name), name
    assert name == identity.group_name(copy.deepcopy(pod))
    token = identity.client_token(pod)
    assert token.isascii() and 0 < len(token) <= 64


@given(st.lists(st.tuples(st.text(max_size=20), st.text(max_size=300), st.text(max_size=40)), min_size=2, max_size=2))
def test_distinct_pods_get_distinct_group_names(ids: list[tuple[str, str, str]]) -> None:
    a, b = ({"metadata": {"namespace": n or "default", "name": p, "uid": u}} for n, p, u in ids)
    if identity.pod_key(a) != identity.pod_key(b):
        assert identity.group_name(a) != identity.group_name(b)


@SLOW
@given(scenarios(), breakage())
def test_unrunnable_pods_are_rejected_naming_the_field(scenario: Scenario, broken: tuple[str, Any, str]) -> None:
    label, apply, field = broken
    pod = copy.deepcopy(scenario.pod)
    apply(pod)
    with pytest.raises(Rejected) as info:
        translate(pod, scenario.objects, scenario.defaults)
    fields = [p.field for p in info.value.problems]
    assert any(f == field or f.endswith(field) or field in f for f in fields), (label, fields)
    text = str(info.value)
    assert field.strip(".") in text
    for value in scenario.secret_values:
        assert value.decode("latin-1") not in text


@SLOW
@given(scenarios(), st.data())
def test_missing_references_are_reported_not_crashed(scenario: Scenario, data: st.DataObject) -> None:
    wanted = needs(scenario.pod)
    names = sorted(wanted.configmaps) + sorted(wanted.secrets)
    if not names:
        return
    drop = data.draw(st.sampled_from(names))
    objects = Objects(
        configmaps={k: v for k, v in scenario.objects.configmaps.items() if k != drop},
        secrets={k: v for k, v in scenario.objects.secrets.items() if k != drop},
        tokens=scenario.objects.tokens,
        services=scenario.objects.services,
    )
    try:
        translate(scenario.pod, objects, scenario.defaults)
    except Missing as exc:
        assert any(ref.name == drop for ref in exc.refs)
        for value in scenario.secret_values:
            assert value.decode("latin-1") not in str(exc)
    # Otherwise every reference to it was optional (or an image pull secret, a warning).


@SLOW
@given(scenarios())
def test_needs_lists_every_object_translation_reads(scenario: Scenario) -> None:
    wanted = needs(scenario.pod)
    objects = Objects(
        configmaps={k: v for k, v in scenario.objects.configmaps.items() if k in wanted.configmaps},
        secrets={k: v for k, v in scenario.objects.secrets.items() if k in wanted.secrets},
        tokens={k: v for k, v in scenario.objects.tokens.items() if k in wanted.tokens},
        services=scenario.objects.services,
    )
    assert (
        translate(scenario.pod, objects, scenario.defaults).request
        == translate(scenario.pod, scenario.objects, scenario.defaults).request
    )


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=12,
)
KEYS = [
    "metadata",
    "spec",
    "containers",
    "initContainers",
    "volumes",
    "name",
    "image",
    "env",
    "envFrom",
    "valueFrom",
    "resources",
    "limits",
    "requests",
    "cpu",
    "memory",
    "annotations",
    "configMap",
    "secret",
    "projected",
    "sources",
    "items",
    "ports",
    "command",
    "args",
    "volumeMounts",
    "securityContext",
    "livenessProbe",
    "httpGet",
    "port",
]


@st.composite
def junk_pods(draw: st.DrawFn) -> Any:
    """Structurally wild pods: real keys with values of any JSON type."""
    tree = draw(
        st.recursive(
            JSONISH,
            lambda children: (
                st.dictionaries(st.sampled_from(KEYS), children, max_size=4) | st.lists(children, max_size=3)
            ),
            max_leaves=25,
        )
    )
    if draw(st.booleans()):
        return {"metadata": {"name": "p"}, "spec": tree}
    return tree


@given(junk_pods())
def test_junk_raises_only_documented_errors(pod: Any) -> None:
    try:
        translate(pod, Objects(), scenarios_defaults())
    except TranslationError as exc:
        assert str(exc)


@SLOW
@given(scenarios(), st.data())
def test_mutated_realistic_pods_raise_only_documented_errors(scenario: Scenario, data: st.DataObject) -> None:
    pod = copy.deepcopy(scenario.pod)
    container = pod["spec"]["containers"][0]
    key = data.draw(st.sampled_from(sorted(set(container) | {"env", "ports", "resources", "volumeMounts"})))
    container[key] = data.draw(JSONISH)
    try:
        translate(pod, scenario.objects, scenario.defaults)
    except TranslationError as exc:
        assert re.search(r"\S", str(exc))


def scenarios_defaults() -> Any:
    from vkeci.core.translate import Defaults

    return Defaults(region="cn-hangzhou", security_group="sg-1", vswitches=("vsw-a",))
