"""The provider's batch listings (status and events by tag, SinceSecond) through the real SDK and the fake."""

from __future__ import annotations

from alibabacloud_eci20180808 import models as m
from conftest import REGION, create_request, sdk_client, wait_for

from fakes.eci.server import FakeECI
from vkeci.clients.eci import EciClient

MINE = [{"Key": "NodeName", "Value": "vk-1"}]


def test_status_and_event_listings_filter_by_tag_and_window(fake: FakeECI) -> None:
    client = sdk_client(fake)
    provider = EciClient(client, REGION)
    tags = [m.CreateContainerGroupRequestTag(key="NodeName", value="vk-1")]
    mine = client.create_container_group(create_request(name="mine", tag=tags)).body.container_group_id
    client.create_container_group(create_request(name="other"))

    statuses = wait_for(lambda: [r for r in provider.changed_since(MINE, 60) if r.get("Status") == "Running"])
    assert [r["ContainerGroupId"] for r in statuses] == [mine]
    assert statuses[0]["PodStatus"]["Phase"] == "Running"
    assert [r["ContainerGroupId"] for r in provider.changed_since(MINE, None)] == [mine]

    events = provider.events_since(MINE, 60)
    assert [r["ContainerGroupId"] for r in events] == [mine]
    assert {e["Reason"] for e in events[0]["Events"]} >= {"Pulling", "Started"}
    assert provider.events_since([{"Key": "NodeName", "Value": "vk-2"}], 60) == []
    assert provider.calls["DescribeContainerGroupEvents"] == 2
