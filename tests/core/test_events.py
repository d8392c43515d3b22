"""The one Event builder: the daemon's own Events and ECI's have the same shape."""

from datetime import datetime, timezone

from vkeci.core.events import daemon_event
from vkeci.core.status import kube_events

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
INVOLVED = {"apiVersion": "v1", "kind": "Pod", "name": "web", "namespace": "ns", "uid": "u-1"}
POD = {"metadata": {"name": "web", "namespace": "ns", "uid": "u-1"}, "spec": {"nodeName": "vk"}}


def test_own_and_eci_events_share_one_shape():
    own = daemon_event(POD, "Warning", "ProviderCreateFailed", "x" * 2000, "vk", NOW, "abc")
    group = {"Events": [{"Reason": "Started", "Message": "Started container", "Type": "Normal", "Count": 2}]}
    (eci,) = kube_events(POD, group, NOW)
    assert set(own) == set(eci)
    for event in (own, eci):
        assert event["involvedObject"] == {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": "web",
            "namespace": "ns",
            "uid": "u-1",
        }
        assert event["source"] == {"component": "kubelet", "host": "vk"} and event["reportingInstance"] == "vk"
    assert own["metadata"]["name"] == "web.abc" and len(own["message"]) == 1000
    assert own["firstTimestamp"] == own["lastTimestamp"] == "2026-01-01T00:00:00Z" and own["count"] == 1
    assert eci["count"] == 2 and eci["type"] == "Normal"
