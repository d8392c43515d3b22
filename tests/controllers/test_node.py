"""The Node object and its registration (PATCH status first, create on 404)."""

import json

import responses

from vkeci.clients.kube import Credentials, KubeClient
from vkeci.config import Config
from vkeci.controllers.node import NodeController
from vkeci.core.node import (
    ECI_CONDITION,
    UNREACHABLE_TAINT,
    Health,
    conditions,
    labels,
    merged_taints,
    node_object,
    taint,
    wanted_taints,
)

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


def test_conditions_keep_transition_time_and_an_unreachable_eci_keeps_the_node_ready():
    first = conditions(Health(), "t1")
    ready = next(c for c in first if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "KubeletReady")
    second = conditions(Health(), "t2", first)
    ready2 = next(c for c in second if c["type"] == "Ready")
    assert ready2["lastTransitionTime"] == "t1" and ready2["lastHeartbeatTime"] == "t2"
    # Ready=False would have the node lifecycle controller taint the node NoExecute and evict every pod.
    down = conditions(Health(eci_reachable=False, message="ECI says no"), "t3", second)
    by_type = {c["type"]: c for c in down}
    assert by_type["Ready"]["status"] == "True" and by_type["Ready"]["lastTransitionTime"] == "t1"
    eci = by_type[ECI_CONDITION]
    assert (eci["status"], eci["reason"], eci["lastTransitionTime"]) == ("False", "ECIUnreachable", "t3")
    assert eci["message"].startswith("ECI says no") and "virtual-kubelet.io/eci-unreachable" in eci["message"]
    back = {c["type"]: c for c in conditions(Health(), "t4", down)}[ECI_CONDITION]
    assert (back["status"], back["reason"], back["lastTransitionTime"]) == ("True", "ECIReachable", "t4")
    assert {c["type"] for c in down} >= {"MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable"}


def test_the_node_is_not_ready_while_the_pod_controller_does_not_run():
    ready = next(c for c in conditions(Health(ready=False), "t") if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "KubeletNotReady")
    assert "pod controller is not running" in ready["message"]


def test_the_unreachable_taint_is_noschedule_set_while_unreachable_and_cleared_after():
    ours = taint(CONFIG)
    other = {"key": "example.com/other", "effect": "NoSchedule"}
    down = wanted_taints([ours, other], CONFIG, Health(eci_reachable=False), "t1")
    assert down == [ours, other, {**UNREACHABLE_TAINT, "timeAdded": "t1"}]
    assert UNREACHABLE_TAINT["effect"] == "NoSchedule"  # never NoExecute: running pods stay
    assert wanted_taints(down, CONFIG, Health(eci_reachable=False), "t2") is None
    assert wanted_taints(down, CONFIG, Health(), "t3") == [ours, other]
    assert wanted_taints([ours, other], CONFIG, Health(), "t3") is None
    assert (
        node_object(CONFIG, Health(eci_reachable=False), "t")["spec"]["taints"][-1]["key"] == UNREACHABLE_TAINT["key"]
    )


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


class FakeNode:
    """The NodeController as the heartbeat uses it, recording its calls."""

    uid = "node-uid"
    config = CONFIG

    def __init__(self) -> None:
        self.calls: list[tuple[str, Health]] = []
        self.missing = False

    def register(self, health):
        self.calls.append(("register", health))
        self.missing = False
        return self.uid

    def patch_status(self, health):
        if self.missing:
            from vkeci.clients.kube import KubeError

            raise KubeError(404, "NotFound", "nodes vk not found")
        self.calls.append(("status", health))
        return {}

    def update_taints(self, health):
        self.calls.append(("taints", health))


class FakeLease:
    def renew(self, uid):
        return {}


class Pods:
    def __init__(self, running: bool) -> None:
        self.is_running = running

    def running(self) -> bool:
        return self.is_running


def heartbeat(ping, pods=None, clock=None, on_change=None):
    from vkeci.config import NodeSettings
    from vkeci.controllers.node import Heartbeat

    return Heartbeat(
        FakeNode(),  # type: ignore[arg-type]
        FakeLease(),  # type: ignore[arg-type]
        ping,
        "eci.test:443",
        NodeSettings(),
        pods=pods,
        on_eci_change=on_change,
        clock=clock or (lambda: 0.0),
    )


def test_the_heartbeat_says_eci_is_unreachable_without_making_the_node_not_ready():
    import threading

    from vkeci.clients.eci import EciError

    bad_key = EciError("DescribeRegions", "InvalidAccessKeyId", "bad key")
    answers: list[Exception | None] = [bad_key, bad_key, None]

    def ping() -> None:
        error = answers.pop(0)
        if error is not None:
            raise error

    changes: list[tuple[bool, str]] = []
    beat = heartbeat(ping, on_change=lambda reachable, message: changes.append((reachable, message)))
    beat.ping()
    assert beat.health.eci_reachable  # one failed first ping may be a flake
    beat.ping()  # before any success: the second failure in a row
    health = beat.health
    assert health.ready and not health.eci_reachable
    assert "eci.test:443" in health.message and "InvalidAccessKeyId" in health.message
    assert beat.register(threading.Event()) and beat.node.calls == [("register", health)]
    beat.ping()
    assert beat.health.eci_reachable and beat.health.ready
    assert [reachable for reachable, _ in changes] == [False, True]


def test_a_throttled_or_unsent_ping_never_makes_eci_unreachable():
    from vkeci.clients.eci import EciError

    answers = [
        EciError("DescribeRegions", "Throttling.User", "Request was denied due to user flow control.", status=400),
        EciError("DescribeRegions", "Throttling.Local", "no token within the wait"),
    ] * 20
    changes: list[bool] = []

    def ping() -> None:
        raise answers.pop(0)

    now = [0.0]
    beat = heartbeat(ping, on_change=lambda reachable, message: changes.append(reachable), clock=lambda: now[0])
    for _ in range(40):  # 80 s of nothing but throttled and never-sent pings
        now[0] += 2.0
        beat.ping()
    assert beat.health.eci_reachable and changes == []


def test_an_unreachable_eci_is_written_as_condition_and_taint_once_not_per_failed_ping():
    import threading

    from vkeci.clients.eci import EciError

    now = [0.0]
    failing = [False]

    def ping() -> None:
        if failing[0]:
            raise EciError("DescribeRegions", "NoResponse", f"no answer at {now[0]}", transient=True, refused=True)

    beat = heartbeat(ping, clock=lambda: now[0])
    beat.ping()
    beat.register(threading.Event())
    failing[0] = True
    for _ in range(5):
        now[0] += 2.0
        beat.ping()
        beat.beat(threading.Event())
    kinds = [kind for kind, _ in beat.node.calls]
    assert kinds == ["register", "status", "taints"]  # one status write and one taint write for the outage
    assert (
        not beat.node.calls[1][1].eci_reachable and "no answer at 4.0" in beat.node.calls[1][1].message
    )  # the second refused ping
    failing[0] = False
    beat.ping()
    beat.beat(threading.Event())
    assert [kind for kind, _ in beat.node.calls][3:] == ["status", "taints"]
    assert beat.node.calls[-1][1].eci_reachable


def test_the_node_is_ready_only_once_the_pod_controller_runs():
    import threading

    pods = Pods(running=False)
    beat = heartbeat(lambda: None, pods=pods)
    beat.ping()
    beat.register(threading.Event())
    assert beat.node.calls[0][1].ready is False
    pods.is_running = True
    beat.refresh()
    beat.beat(threading.Event())
    assert beat.node.calls[-1] == ("status", Health(ready=True))
    pods.is_running = False  # its threads stopped: the next beat says so
    beat.beat(threading.Event())
    assert beat.node.calls[-1] == ("status", Health(ready=False))


def test_a_deleted_node_is_registered_again_at_once_by_the_watch():
    import threading

    beat = heartbeat(lambda: None)
    beat.register(threading.Event())
    reflector = beat.watch(None)  # type: ignore[arg-type]
    assert reflector.params == {"fieldSelector": "metadata.name=vk"}
    reflector.on_list([{"metadata": {"name": "vk"}}])
    reflector.on_event("MODIFIED", {"metadata": {"name": "vk"}})
    beat.beat(threading.Event())
    assert [kind for kind, _ in beat.node.calls] == ["register"]
    beat.node.missing = True
    reflector.on_event("DELETED", {"metadata": {"name": "vk"}})
    assert beat._health_changed.is_set()  # the heartbeat loop wakes now, not at the next status interval
    beat.beat(threading.Event())
    assert [kind for kind, _ in beat.node.calls][:2] == ["register", "register"]
    beat.node.missing = True
    reflector.on_list([])  # a relist that no longer finds it
    beat.beat(threading.Event())
    assert [kind for kind, _ in beat.node.calls].count("register") == 3


def test_the_reachability_change_log_says_why(caplog):
    # R16: "ECI health changed ready=false" alone sent the admin to the Node's conditions for the reason.
    import logging

    from vkeci.clients.eci import EciError

    def ping() -> None:
        raise EciError("DescribeRegions", "InvalidAccessKeyId.NotFound", "Specified access key is not found.")

    beat = heartbeat(ping)
    logger = logging.getLogger("vkeci")
    logger.propagate = True  # caplog listens at the root
    try:
        with caplog.at_level(logging.INFO, logger="vkeci"):
            beat.ping()
            beat.ping()  # before any success: unreachable at the second failure in a row
    finally:
        logger.propagate = False
    changes = [r for r in caplog.records if r.getMessage() == "ECI reachability changed"]
    assert changes  # (caplog may see a record twice when another test left a handler behind)
    why = changes[-1].vkeci_fields["why"]
    assert "eci.test:443" in why and "InvalidAccessKeyId.NotFound" in why


def test_a_configured_zone_becomes_the_nodes_topology_zone_label():
    # One node per zone (issue 16): the scheduler's zone spreading and affinity see which zone it is.
    assert "topology.kubernetes.io/zone" not in labels(CONFIG)
    zoned = Config(region="cn-hangzhou", node_name="vk-h", zone_id="cn-hangzhou-h")
    assert labels(zoned)["topology.kubernetes.io/zone"] == "cn-hangzhou-h"
