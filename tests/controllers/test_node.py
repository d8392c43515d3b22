"""The Node object and its registration (PATCH status first, create on 404)."""

import json

import responses

from vkeci.clients.kube import Credentials, KubeClient
from vkeci.config import Config
from vkeci.controllers.node import NodeController
from vkeci.core.node import Health, conditions, labels, merged_taints, node_object

HOST = "http://api.test"
CONFIG = Config(region="cn-hangzhou", node_name="vk", internal_ip="127.0.0.1", kubelet_port=10250)


def test_node_object_looks_like_alibabas_virtual_node():
    node = node_object(CONFIG, Health(True), "2026-01-01T00:00:00Z")
    meta, spec, status = node["metadata"], node["spec"], node["status"]
    assert meta["labels"]["type"] == "virtual-kubelet"
    assert meta["labels"]["kubernetes.io/hostname"] == "vk"
    assert meta["labels"]["topology.kubernetes.io/region"] == "cn-hangzhou"
    assert spec["taints"] == [{"key": "virtual-kubelet.io/provider", "value": "alibabacloud", "effect": "NoSchedule"}]
    assert status["capacity"] == status["allocatable"]
    assert status["capacity"]["pods"] == "1000"
    assert status["addresses"] == [{"type": "InternalIP", "address": "127.0.0.1"}]
    assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 10250
    assert status["nodeInfo"]["kubeletVersion"].startswith("v1.35.")
    assert "-vkeci-" in status["nodeInfo"]["kubeletVersion"]


def test_conditions_keep_transition_time_and_report_eci_failure():
    first = conditions(Health(True), "t1")
    ready = next(c for c in first if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "KubeletReady")
    second = conditions(Health(True), "t2", first)
    ready2 = next(c for c in second if c["type"] == "Ready")
    assert ready2["lastTransitionTime"] == "t1" and ready2["lastHeartbeatTime"] == "t2"
    down = conditions(Health(False, "ECI says no"), "t3", second)
    ready3 = next(c for c in down if c["type"] == "Ready")
    assert ready3["status"] == "False" and ready3["message"] == "ECI says no" and ready3["lastTransitionTime"] == "t3"
    assert {c["type"] for c in down} >= {"MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable"}


def test_merged_taints_keeps_others():
    ours = {"key": "virtual-kubelet.io/provider", "value": "alibabacloud", "effect": "NoSchedule"}
    other = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}
    assert merged_taints([ours, other], ours) is None
    assert merged_taints([other], ours) == [other, ours]


@responses.activate
def test_register_creates_on_404_then_patches_status():
    responses.patch(HOST + "/api/v1/nodes/vk/status", status=404, json={"reason": "NotFound"})
    created = node_object(CONFIG, Health(True), "t")
    created["metadata"]["uid"] = "u-1"
    responses.post(HOST + "/api/v1/nodes", json=created)
    controller = NodeController(KubeClient(Credentials(host=HOST)), CONFIG)
    assert controller.register(Health(True)) == "u-1"
    body = json.loads(responses.calls[1].request.body)
    assert body["metadata"]["labels"] == labels(CONFIG)


@responses.activate
def test_register_existing_node_fixes_its_taint():
    existing = node_object(CONFIG, Health(True), "t")
    existing["metadata"]["uid"] = "u-2"
    existing["spec"]["taints"] = []
    responses.patch(HOST + "/api/v1/nodes/vk/status", json=existing)
    responses.patch(HOST + "/api/v1/nodes/vk", json=existing)
    controller = NodeController(KubeClient(Credentials(host=HOST)), CONFIG)
    assert controller.register(Health(True)) == "u-2"
    fix = json.loads(responses.calls[1].request.body)
    assert fix["spec"]["taints"][0]["key"] == "virtual-kubelet.io/provider"


def test_the_heartbeat_turns_an_eci_failure_into_an_honest_not_ready():
    import threading

    from vkeci.clients.eci import EciError
    from vkeci.config import NodeSettings
    from vkeci.controllers.node import Heartbeat

    answers: list[Exception | None] = [EciError("DescribeRegions", "InvalidAccessKeyId", "bad key"), None]

    def ping() -> None:
        error = answers.pop(0)
        if error is not None:
            raise error

    class Node:
        uid = "node-uid"
        config = CONFIG
        registered: list = []

        def register(self, health):
            self.registered.append(health)
            return self.uid

    beat = Heartbeat(Node(), None, ping, "eci.test:443", NodeSettings())  # type: ignore[arg-type]
    beat.ping()
    assert (
        not beat.health.ready and "eci.test:443" in beat.health.message and "InvalidAccessKeyId" in beat.health.message
    )
    assert beat.register(threading.Event()) and Node.registered == [beat.health]
    beat.ping()
    assert beat.health.ready


def test_a_configured_zone_becomes_the_nodes_topology_zone_label():
    # One node per zone (issue 16): the scheduler's zone spreading and affinity see which zone it is.
    assert "topology.kubernetes.io/zone" not in labels(CONFIG)
    zoned = Config(region="cn-hangzhou", node_name="vk-h", zone_id="cn-hangzhou-h")
    assert labels(zoned)["topology.kubernetes.io/zone"] == "cn-hangzhou-h"
