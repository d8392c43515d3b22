"""Translated requests through the real SDK client to the fake ECI (fakes/eci), which validates
them the way ECI documents: generated pods as DryRun creates, the example manifests as real
creates read back with DescribeContainerGroups and mapped to a pod status.

Without the fake this module fails at import: it must never be skipped.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_eci20180808 import models as eci_models
from alibabacloud_tea_openapi.exceptions import ClientException
from hypothesis import HealthCheck, given, settings

from fakes.eci.server import FakeECI
from tests.core.pod_strategies import Scenario, scenarios
from tests.core.test_translate_examples import load
from vkeci.clients.eci import new_client
from vkeci.config import Config, Secret
from vkeci.core import status
from vkeci.core.translate import Defaults, pod_to_request

FAKE_CONFIG = {
    "security_groups": ["sg-1", "sg-default"],
    "vswitches": [
        {"id": "vsw-a", "zone": "cn-hangzhou-h", "cidr": "10.1.0.0/16"},
        {"id": "vsw-b", "zone": "cn-hangzhou-i", "cidr": "10.2.0.0/16"},
        {"id": "vsw-zone-h", "zone": "cn-hangzhou-h", "cidr": "10.3.0.0/16"},
        {"id": "vsw-zone-i", "zone": "cn-hangzhou-i", "cidr": "10.4.0.0/16"},
    ],
    # Groups stay Scheduling: nothing is started, the test only checks what ECI accepts and stores.
    "scheduling_delay_s": 3600.0,
}
AK, SK = "LTAItranslate", "translate-secret"
DEFAULTS = Defaults(region="cn-hangzhou", security_group="sg-default", vswitches=("vsw-a",))


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeECI]:
    server = FakeECI.start(port=0, access_key_id=AK, access_key_secret=SK, config=FAKE_CONFIG)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def client(fake: FakeECI) -> Any:
    config = Config(
        region="cn-hangzhou",
        access_key_id=Secret(AK),
        access_key_secret=Secret(SK),
        eci_endpoint=fake.endpoint,
        eci_protocol="http",
    )
    return new_client(config)


def send(client: Any, request: dict[str, Any]) -> Any:
    return client.create_container_group(eci_models.CreateContainerGroupRequest().from_map(copy.deepcopy(request)))


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(scenarios())
def test_generated_requests_pass_the_fake_ecis_validation(client: Any, scenario: Scenario) -> None:
    request = pod_to_request(scenario.pod, scenario.objects, scenario.defaults)
    request["DryRun"] = True
    with pytest.raises(ClientException) as info:
        send(client, request)
    assert info.value.code == "DryRunOperation", f"{info.value.code}: {info.value.message}"


@pytest.mark.parametrize("name", ["nginx-deployment-pod.yaml", "job-with-config.yaml", "spot-eip.yaml", "gpu.yaml"])
def test_example_manifests_create_and_read_back(client: Any, name: str) -> None:
    pod, objects = load(name)
    request = pod_to_request(pod, objects, DEFAULTS)
    created = send(client, request)
    group_id = created.body.container_group_id
    assert group_id
    again = send(client, request)
    assert again.body.container_group_id == group_id, "ClientToken makes a retried create idempotent"
    described = client.describe_container_groups(
        eci_models.DescribeContainerGroupsRequest(region_id="cn-hangzhou", container_group_ids=f'["{group_id}"]')
    )
    (group,) = [g.to_map() for g in described.body.container_groups]
    assert group["ContainerGroupName"] == request["ContainerGroupName"]
    assert {t["Key"]: t["Value"] for t in group["Tags"]}["UID"] == request["ClientToken"]
    assert [c["Name"] for c in group["Containers"]] == [c["Name"] for c in request["Container"]]
    for sent, stored in zip(request["Container"], group["Containers"], strict=True):
        assert stored.get("Commands", []) == sent.get("Command", [])
        assert stored.get("Args", []) == sent.get("Arg", [])
    result = status.pod_status(pod, group, datetime.now(timezone.utc))
    assert result["phase"] == "Pending"
    assert all("waiting" in s["state"] for s in result["containerStatuses"])


def test_manifest_directory_is_complete() -> None:
    names = {p.name for p in (Path(__file__).resolve().parents[1] / "data" / "manifests").glob("*.yaml")}
    assert {"nginx-deployment-pod.yaml", "job-with-config.yaml", "spot-eip.yaml", "gpu.yaml"} <= names


def _admin(fake: FakeECI, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    import json
    import urllib.request

    request = urllib.request.Request(
        f"{fake.admin_url}/{path}",
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return dict(json.loads(answer.read()))


def _describe(client: Any, group_id: str) -> dict[str, Any]:
    described = client.describe_container_groups(
        eci_models.DescribeContainerGroupsRequest(region_id="cn-hangzhou", container_group_ids=f'["{group_id}"]')
    )
    (group,) = [g.to_map() for g in described.body.container_groups]
    return dict(group)


def test_spot_reclaim_reported_by_the_fake_maps_to_failed_expired(fake: FakeECI, client: Any) -> None:
    pod, objects = load("spot-eip.yaml")
    pod["metadata"]["uid"] = "reclaim-1"
    request = pod_to_request(pod, objects, DEFAULTS)
    group_id = send(client, request).body.container_group_id
    _admin(fake, "POST", f"groups/{group_id}/reclaim", {})
    group = _describe(client, group_id)
    assert group["Status"] == "Expired"
    result = status.pod_status(pod, group, datetime.now(timezone.utc))
    assert result["phase"] == "Failed" and result["reason"] == "Expired"
    assert "released" in result["message"]
    events = status.kube_events(pod, group, datetime.now(timezone.utc))
    assert any(e["reason"] == "SpotToBeReleased" and e["type"] == "Warning" for e in events)


@pytest.mark.parametrize("eci_state", ["Running", "Succeeded", "Failed", "ScheduleFailed"])
def test_states_rendered_by_the_fake_map_consistently(fake: FakeECI, client: Any, eci_state: str) -> None:
    created = _admin(fake, "POST", "groups", {"Status": eci_state, "Container": [{"Name": "main", "Image": "nginx"}]})
    group = _describe(client, created["ContainerGroupId"])
    pod = {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
        "spec": {"containers": [{"name": "main", "image": "nginx"}]},
    }
    result = status.pod_status(pod, group, datetime.now(timezone.utc))
    assert result["phase"] == status.PHASES[group["Status"]] or group["Status"] == "Running"
    ready = {c["type"]: c["status"] for c in result["conditions"]}["Ready"]
    if result["phase"] in ("Succeeded", "Failed"):
        assert ready == "False"
