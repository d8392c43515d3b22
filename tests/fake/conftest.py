"""Fixtures for the fake ECI tests: a running fake, SDK clients for both signatures, the admin API."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from alibabacloud_eci20180808 import models as m
from alibabacloud_eci20180808.client import Client
from alibabacloud_tea_openapi import models as open_api_models

from fakes.eci.server import FakeECI

AK, SK = "LTAI5tFAKETESTKEY", "fake-test-secret"
REGION = "cn-hangzhou"
FAST = {"scheduling_delay_s": 0.0, "pending_delay_s": 0.0, "restart_delay_s": 0.05, "tick_s": 0.02}


def sdk_client(
    fake: FakeECI, algorithm: str | None = None, ak: str = AK, sk: str = SK, token: str | None = None
) -> Client:
    """The official SDK client pointed at the fake."""
    cfg = open_api_models.Config(
        access_key_id=ak,
        access_key_secret=sk,
        security_token=token,
        endpoint=fake.endpoint,
        protocol="http",
        read_timeout=10000,
        connect_timeout=5000,
    )
    if algorithm:
        cfg.signature_algorithm = algorithm
    return Client(cfg)


@pytest.fixture
def fake() -> Iterator[FakeECI]:
    """A fake with instant lifecycle delays."""
    with FakeECI.start(access_key_id=AK, access_key_secret=SK, config=dict(FAST)) as f:
        yield f


@pytest.fixture
def make_fake() -> Iterator[Callable[..., FakeECI]]:
    """Start fakes with custom settings; all are stopped at the end."""
    started: list[FakeECI] = []

    def make(config: dict[str, Any] | None = None, **kw: Any) -> FakeECI:
        f = FakeECI.start(access_key_id=AK, access_key_secret=SK, config={**FAST, **(config or {})}, **kw)
        started.append(f)
        return f

    yield make
    for f in started:
        f.stop()


@pytest.fixture(params=["v3", "v2"])
def client(request: pytest.FixtureRequest, fake: FakeECI) -> Client:
    """An SDK client with the default V3 signature, then with signature_algorithm='v2'."""
    return sdk_client(fake, None if request.param == "v3" else "v2")


class Admin:
    """The admin API of one fake."""

    def __init__(self, fake: FakeECI) -> None:
        self.base = fake.admin_url

    def get(self, path: str) -> Any:
        r = requests.get(self.base + path, timeout=10)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, body: Any = None) -> Any:
        r = requests.post(self.base + path, json=body or {}, timeout=10)
        r.raise_for_status()
        return r.json()

    def put(self, path: str, body: Any) -> Any:
        r = requests.put(self.base + path, json=body, timeout=10)
        r.raise_for_status()
        return r.json()

    def delete(self, path: str) -> Any:
        r = requests.delete(self.base + path, timeout=10)
        r.raise_for_status()
        return r.json()


@pytest.fixture
def admin(fake: FakeECI) -> Admin:
    """Admin API of the `fake` fixture."""
    return Admin(fake)


def container(name: str = "main", image: str = "nginx", **kw: Any) -> m.CreateContainerGroupRequestContainer:
    """A container model."""
    return m.CreateContainerGroupRequestContainer(name=name, image=image, **kw)


def create_request(
    name: str = "web-1", containers: list[Any] | None = None, **kw: Any
) -> m.CreateContainerGroupRequest:
    """A valid CreateContainerGroup request against the default fake VPC."""
    base: dict[str, Any] = {
        "region_id": REGION,
        "container_group_name": name,
        "security_group_id": "sg-fake",
        "v_switch_id": "vsw-fake-a",
        "container": containers or [container()],
    }
    base.update(kw)
    return m.CreateContainerGroupRequest(**base)


def describe(client: Client, gid: str) -> m.DescribeContainerGroupsResponseBodyContainerGroups:
    """The one group with this id (asserts it exists)."""
    body = client.describe_container_groups(
        m.DescribeContainerGroupsRequest(region_id=REGION, container_group_ids=f'["{gid}"]')
    ).body
    assert len(body.container_groups) == 1, body.to_map()
    return body.container_groups[0]


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll until `predicate()` is truthy (bounded); returns its value or fails with the last one."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")


def wait_status(client: Client, gid: str, status: str, timeout: float = 10.0) -> Any:
    """Wait until the group reaches `status`; returns the described group."""

    def check() -> Any:
        g = describe(client, gid)
        return g if g.status == status else None

    try:
        return wait_for(check, timeout)
    except AssertionError:
        raise AssertionError(f"{gid} never reached {status}: {describe(client, gid).to_map()}") from None
