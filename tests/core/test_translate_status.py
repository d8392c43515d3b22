"""ECI group -> Pod status: total over every ECI state x container state x restartPolicy, never
Ready when terminated, kubelet vocabulary, conditions owned by others left alone; events."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vkeci.core import status
from vkeci.core.problems import Missing, MissingRef, Problem, Rejected

NOW = datetime(2026, 11, 22, 5, 0, 0, tzinfo=timezone.utc)
PHASES = {"Pending", "Running", "Succeeded", "Failed"}
SCHEDULED = {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-11-22T04:00:00Z"}
GATE = {"type": "example.com/lb-ready", "status": "True", "lastTransitionTime": "2026-11-22T04:00:00Z"}


def make_pod(
    restart: str = "Always", init: bool = False, phase: str | None = None, gates: bool = False
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "nodeName": "vk",
        "restartPolicy": restart,
        "containers": [
            {"name": "app", "image": "nginx", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
            {"name": "side", "image": "busybox"},
        ],
    }
    if init:
        spec["initContainers"] = [{"name": "setup", "image": "busybox"}]
    if gates:
        spec["readinessGates"] = [{"conditionType": GATE["type"]}]
    pod: dict[str, Any] = {"metadata": {"name": "p", "namespace": "ns", "uid": "u-1"}, "spec": spec}
    conditions = [SCHEDULED, GATE] if gates else [SCHEDULED]
    pod["status"] = {"conditions": conditions, **({"phase": phase} if phase else {})}
    return pod


def eci_container(
    name: str, state: str | None, exit_code: int, ready: bool | None, restarts: int = 0
) -> dict[str, Any]:
    item: dict[str, Any] = {"Name": name, "RestartCount": restarts}
    if state is not None:
        current: dict[str, Any] = {"State": state, "StartTime": "2026-11-22T04:10:00Z"}
        if state == "Terminated":
            current.update(ExitCode=exit_code, FinishTime="2026-11-22T04:20:00Z")
            if exit_code == 137:
                current["Reason"] = "OOMKilled"
        if state == "Waiting":
            current.update(Reason="", DetailStatus="")
        item["CurrentState"] = current
    if ready is not None:
        item["Ready"] = ready
    if restarts:
        item["PreviousState"] = {"State": "Terminated", "ExitCode": 1, "StartTime": "2026-11-22T04:00:00Z"}
    return item


def group(eci_state: str, containers: list[dict[str, Any]], init: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "ContainerGroupId": "eci-123",
        "Status": eci_state,
        "IntranetIp": "192.168.0.7",
        "CreationTime": "2026-11-22T04:05:00Z",
        "Containers": containers,
        "InitContainers": init or [],
        "Events": [],
    }


def conditions(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    types = [c["type"] for c in result["conditions"]]
    assert len(types) == len(set(types)), types
    return {c["type"]: c for c in result["conditions"]}


def check_invariants(pod: dict[str, Any], result: dict[str, Any]) -> None:
    assert result["phase"] in PHASES
    conds = conditions(result)
    assert conds["PodScheduled"] == SCHEDULED, "PodScheduled belongs to the scheduler"
    for owned in status.OWNED_CONDITIONS:
        assert conds[owned]["status"] in ("True", "False")
    statuses = result["containerStatuses"] + result.get("initContainerStatuses", [])
    for item in result.get("initContainerStatuses", []):
        assert item["ready"] == ((item["state"].get("terminated") or {}).get("exitCode", 1) == 0)
    for item in result["containerStatuses"]:
        if item["ready"]:
            assert "running" in item["state"]
    for item in statuses:
        assert len(item["state"]) == 1 and next(iter(item["state"])) in ("waiting", "running", "terminated")
        if "waiting" in item["state"]:
            assert item["state"]["waiting"]["reason"] in status.WAITING_REASONS
        if "terminated" in item["state"]:
            assert item["state"]["terminated"]["reason"] in (*status.TERMINATED_REASONS, status.DELETED_REASON)
        if "containerID" in item:
            assert item["containerID"].startswith("eci://")
    if result["phase"] in ("Succeeded", "Failed"):
        assert conds["Ready"]["status"] == "False"
        assert conds["ContainersReady"]["status"] == "False"
        assert not any(item["ready"] for item in result["containerStatuses"])
        assert not any("running" in item["state"] for item in result["containerStatuses"])
    all_ready = all(item["ready"] for item in result["containerStatuses"])
    assert (conds["Ready"]["status"] == "True") == (result["phase"] == "Running" and all_ready)
    previous = (pod.get("status") or {}).get("phase")
    if previous == "Running":
        assert result["phase"] != "Pending", "a pod never moves backwards"
    if previous in ("Succeeded", "Failed"):
        assert result["phase"] == previous


def test_status_mapping_is_total_and_consistent() -> None:
    """Every ECI state x container state x exit code x readiness x restartPolicy x history."""
    count = 0
    for eci_state, state, exit_code, ready, restart, previous, init_state in itertools.product(
        [*status.ECI_STATES, "SomethingNew"],
        ["Waiting", "Running", "Terminated", None],
        [0, 1, 137],
        [True, False, None],
        ["Always", "OnFailure", "Never"],
        [None, "Pending", "Running", "Succeeded"],
        [None, "Running", "Terminated"],
    ):
        pod = make_pod(restart, init=init_state is not None, phase=previous)
        init = [eci_container("setup", init_state, 0, None)] if init_state else None
        app = [eci_container("app", state, exit_code, ready), eci_container("side", state, 0, ready)]
        result = status.pod_status(pod, group(eci_state, app, init), NOW)
        check_invariants(pod, result)
        count += 1
    assert count == 13 * 4 * 3 * 3 * 3 * 4 * 3


@pytest.mark.parametrize(
    ("eci_state", "phase"),
    [
        ("Scheduling", "Pending"),
        ("Pending", "Pending"),
        ("Running", "Running"),
        ("Restarting", "Pending"),
        ("Updating", "Pending"),
        ("Terminating", "Running"),
        ("Succeeded", "Succeeded"),
        ("Failed", "Failed"),
        ("Expired", "Failed"),
        ("ScheduleFailed", "Failed"),
    ],
)
def test_documented_phase_table(eci_state: str, phase: str) -> None:
    app = [eci_container("app", "Running", 0, True), eci_container("side", "Running", 0, True)]
    if phase == "Pending":
        app = [eci_container("app", "Waiting", 0, None), eci_container("side", "Waiting", 0, None)]
    assert status.pod_status(make_pod(), group(eci_state, app), NOW)["phase"] == phase


@pytest.mark.parametrize(
    ("restart", "codes", "phase"),
    [
        ("Never", (0, 0), "Succeeded"),
        ("Never", (1, 0), "Failed"),
        ("OnFailure", (0, 0), "Succeeded"),
        ("OnFailure", (1, 0), "Running"),
        ("Always", (0, 0), "Running"),
    ],
)
def test_restart_policy_decides_when_all_containers_exited(restart: str, codes: tuple[int, int], phase: str) -> None:
    app = [eci_container("app", "Terminated", codes[0], False), eci_container("side", "Terminated", codes[1], False)]
    result = status.pod_status(make_pod(restart), group("Running", app), NOW)
    assert result["phase"] == phase


def test_running_pod_is_ready_with_ip_and_kubelet_fields() -> None:
    app = [eci_container("app", "Running", 0, True), eci_container("side", "Running", 0, True)]
    result = status.pod_status(make_pod(), group("Running", app), NOW)
    conds = conditions(result)
    assert result["phase"] == "Running"
    assert conds["Ready"]["status"] == "True" and conds["ContainersReady"]["status"] == "True"
    assert result["podIP"] == result["hostIP"] == "192.168.0.7"
    assert result["podIPs"] == [{"ip": "192.168.0.7"}]
    assert result["startTime"] == "2026-11-22T04:05:00Z"
    assert result["qosClass"] == "Burstable"
    assert result["containerStatuses"][0]["state"] == {"running": {"startedAt": "2026-11-22T04:10:00Z"}}
    assert result["containerStatuses"][0]["containerID"].startswith("eci://")


def test_readiness_gate_must_be_true_for_ready() -> None:
    app = [eci_container("app", "Running", 0, True), eci_container("side", "Running", 0, True)]
    pod = make_pod(gates=True)
    pod["status"]["conditions"] = [SCHEDULED, {**GATE, "status": "False"}]
    result = status.pod_status(pod, group("Running", app), NOW)
    conds = conditions(result)
    assert conds["ContainersReady"]["status"] == "True"
    assert conds["Ready"]["status"] == "False" and conds["Ready"]["reason"] == "ReadinessGatesNotReady"
    assert conds[GATE["type"]]["status"] == "False", "gate conditions belong to their controller"


def test_terminated_container_is_not_shown_waiting_and_keeps_exit_code() -> None:
    app = [eci_container("app", "Terminated", 137, False), eci_container("side", "Terminated", 0, False)]
    result = status.pod_status(make_pod("Never"), group("Failed", app), NOW)
    app_state = result["containerStatuses"][0]["state"]["terminated"]
    assert app_state["exitCode"] == 137 and app_state["reason"] == "OOMKilled"
    assert result["containerStatuses"][1]["state"]["terminated"]["reason"] == "Completed"
    assert result["phase"] == "Failed"


def test_restarted_container_has_last_state_and_crashloop_reason() -> None:
    app = [eci_container("app", "Waiting", 0, False, restarts=3), eci_container("side", "Running", 0, True)]
    result = status.pod_status(make_pod(), group("Running", app), NOW)
    first = result["containerStatuses"][0]
    assert first["restartCount"] == 3
    assert first["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert first["lastState"]["terminated"]["exitCode"] == 1


def test_no_group_yet_is_container_creating_and_init_shows_pod_initializing() -> None:
    result = status.pod_status(make_pod(init=True), None, NOW)
    assert result["phase"] == "Pending"
    assert result["initContainerStatuses"][0]["state"]["waiting"]["reason"] == "PodInitializing"
    assert result["containerStatuses"][0]["state"]["waiting"]["reason"] == "PodInitializing"
    assert conditions(result)["Initialized"]["status"] == "False"
    plain = status.pod_status(make_pod(), None, NOW)
    assert plain["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"


def test_image_pull_failure_is_err_image_pull() -> None:
    app = [eci_container("app", "Waiting", 0, False), eci_container("side", "Running", 0, True)]
    app[0]["CurrentState"].update(Reason="ImagePullFailed", Message='Failed to pull image "nginx:nope"')
    result = status.pod_status(make_pod(), group("Pending", app), NOW)
    assert result["containerStatuses"][0]["state"]["waiting"]["reason"] == "ErrImagePull"


def test_schedule_failed_takes_reason_and_message_from_events() -> None:
    g = group("ScheduleFailed", [])
    g["Events"] = [
        {
            "Type": "Warning",
            "Reason": "NoStock",
            "Message": "Create ECI failed because the specified instance is out of stock.",
            "FirstTimestamp": "2026-11-22T04:06:00Z",
            "LastTimestamp": "2026-11-22T04:06:00Z",
            "Count": 1,
        },
    ]
    result = status.pod_status(make_pod(), g, NOW)
    assert result["phase"] == "Failed"
    assert result["reason"] == "NoStock" and "out of stock" in result["message"]


def test_expired_spot_instance_is_failed_with_reason() -> None:
    result = status.pod_status(make_pod(), group("Expired", []), NOW)
    assert result["phase"] == "Failed" and result["reason"] == "Expired"


def test_transition_times_are_kept_while_status_is_unchanged() -> None:
    app = [eci_container("app", "Running", 0, True), eci_container("side", "Running", 0, True)]
    first = status.pod_status(make_pod(), group("Running", app), NOW)
    pod = make_pod()
    pod["status"] = first
    later = status.pod_status(pod, group("Running", app), datetime(2026, 11, 22, 6, 0, tzinfo=timezone.utc))
    assert conditions(later)["Ready"]["lastTransitionTime"] == conditions(first)["Ready"]["lastTransitionTime"]


def test_missing_group_fails_the_pod_saying_the_group_was_deleted_outside_vk_eci() -> None:
    pod = make_pod()
    pod["status"]["phase"] = "Running"
    pod["status"]["containerStatuses"] = [
        {
            "name": "app",
            "state": {"running": {"startedAt": "2026-11-22T04:10:00Z"}},
            "containerID": "eci://x",
            "ready": True,
        },
    ]
    result = status.missing_group_status(pod, NOW, "eci-123")
    assert result["phase"] == "Failed" and result["reason"] == "ContainerGroupDeleted"
    assert "eci-123 was deleted outside vk-eci" in result["message"] and "Delete the pod" in result["message"]
    app = result["containerStatuses"][0]["state"]["terminated"]
    assert app["exitCode"] == -137 and app["startedAt"] == "2026-11-22T04:10:00Z"
    assert app["reason"] == "ContainerGroupDeleted" and "eci-123" in app["message"]
    assert len(result["containerStatuses"]) == 2
    check_invariants({"status": {}}, {**result, "conditions": result["conditions"]})


def test_rejected_status_follows_restart_policy() -> None:
    problem = Problem("spec.volumes[0].hostPath", "not supported", "use emptyDir")
    failed = status.rejected_status(make_pod("Never"), [problem], NOW)
    assert failed["phase"] == "Failed" and failed["reason"] == "ProviderFailed"
    assert "spec.volumes[0].hostPath" in failed["message"]
    pending = status.rejected_status(make_pod("Always"), Rejected([problem]), NOW)
    assert pending["phase"] == "Pending"


def test_waiting_status_for_missing_env_and_volume_refs() -> None:
    env_ref = Missing([MissingRef("Secret", "db", "spec.containers[0].env[1].valueFrom.secretKeyRef", "password")])
    result = status.waiting_status(make_pod(), env_ref, NOW)
    waiting = result["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "CreateContainerConfigError" and "password" in waiting["message"]
    assert waiting["message"] == "couldn't find key password in Secret ns/db"
    whole = Missing([MissingRef("ConfigMap", "cfg", "spec.containers[0].envFrom[0].configMapRef")])
    assert status.env_error(make_pod(), whole) == 'configmap "cfg" not found'
    vol_ref = Missing([MissingRef("ConfigMap", "cfg", "spec.volumes[0].configMap")])
    assert status.env_error(make_pod(), vol_ref) == ""
    result = status.waiting_status(make_pod(), vol_ref, NOW)
    assert result["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"
    failed = status.waiting_status(make_pod(), RuntimeError("InvalidVSwitchId.NotFound RequestId=abc"), NOW)
    assert failed["phase"] == "Pending" and failed["reason"] == "ProviderFailed" and "RequestId" in failed["message"]


def test_string_times_are_accepted() -> None:
    result = status.pod_status(make_pod(), None, "2026-11-22T05:00:00Z")
    assert result["startTime"] == "2026-11-22T05:00:00Z"


def test_qos_classes() -> None:
    guaranteed = {"spec": {"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}}
    best = {"spec": {"containers": [{"name": "a"}]}}
    burst = {"spec": {"containers": [{"resources": {"requests": {"cpu": "1"}}}]}}
    assert status.qos_class(guaranteed) == "Guaranteed"
    assert status.qos_class(best) == "BestEffort"
    assert status.qos_class(burst) == "Burstable"


def test_kube_events_are_deterministic_and_name_the_container() -> None:
    g = group("Running", [])
    g["Events"] = [
        {
            "Type": "Normal",
            "Reason": "Pulling",
            "Message": 'Pulling image "nginx"',
            "Count": 1,
            "FirstTimestamp": "2026-11-22T04:06:00Z",
            "LastTimestamp": "2026-11-22T04:06:00Z",
            "Name": "eci-123",
        },
        {
            "Type": "Warning",
            "Reason": "BackOff",
            "Message": "Back-off restarting failed container side in pod p",
            "Count": 4,
            "FirstTimestamp": "2026-11-22T04:07:00Z",
            "LastTimestamp": "2026-11-22T04:09:00Z",
            "Name": "eci-123",
        },
    ]
    events = status.kube_events(make_pod(), g, NOW)
    assert [e["involvedObject"].get("fieldPath") for e in events] == ["spec.containers{app}", "spec.containers{side}"]
    assert events[1]["type"] == "Warning" and events[1]["count"] == 4
    assert events[0]["source"] == {"component": "kubelet", "host": "vk"}
    g["Events"][1]["Count"] = 5
    g["Events"][1]["LastTimestamp"] = "2026-11-22T04:10:00Z"
    again = status.kube_events(make_pod(), g, NOW)
    assert [e["metadata"]["name"] for e in again] == [e["metadata"]["name"] for e in events]
    assert len({e["metadata"]["name"] for e in events}) == 2


ANY = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=12), c, max_size=4),
    max_leaves=15,
)
STATE = st.fixed_dictionaries(
    {},
    optional={
        "State": st.sampled_from(["Waiting", "Running", "Terminated", "Odd", ""]) | ANY,
        "ExitCode": st.integers(-300, 300) | ANY,
        "Reason": st.sampled_from(["", "OOMKilled", "Error", "ErrImagePull", "Completed"]) | ANY,
        "StartTime": st.sampled_from(["2026-11-22T04:10:00Z", "bad", ""]) | ANY,
        "FinishTime": st.sampled_from(["2026-11-22T04:20:00Z", None]),
        "Signal": st.integers(0, 64) | ANY,
    },
)
CONTAINER = st.fixed_dictionaries(
    {"Name": st.sampled_from(["app", "side", "setup", "ghost"])},
    optional={"CurrentState": STATE, "PreviousState": STATE, "RestartCount": st.integers(-1, 9) | ANY, "Ready": ANY},
)
GROUPS = st.fixed_dictionaries(
    {"Status": st.sampled_from([*status.ECI_STATES, "Odd"])},
    optional={
        "ContainerGroupId": st.text(max_size=10),
        "Containers": st.lists(CONTAINER, max_size=3),
        "InitContainers": st.lists(CONTAINER, max_size=2),
        "IntranetIp": st.sampled_from(["10.0.0.1", ""]),
        "Events": st.lists(ANY, max_size=3),
        "CreationTime": ANY,
    },
)


@given(GROUPS, st.sampled_from(["Always", "OnFailure", "Never"]), st.booleans(), st.sampled_from([None, "Running"]))
def test_any_group_maps_without_error(g: dict[str, Any], restart: str, init: bool, previous: str | None) -> None:
    pod = make_pod(restart, init=init, phase=previous)
    check_invariants(pod, status.pod_status(pod, g, NOW))
    for event in status.kube_events(pod, g, NOW):
        assert event["metadata"]["name"].startswith("p.")


def test_container_still_running_in_a_finished_group_is_terminated() -> None:
    app = [eci_container("app", "Running", 0, True), eci_container("side", "Running", 0, True)]
    g = group("Failed", app)
    g["FailedTime"] = "2026-11-22T04:30:00Z"
    result = status.pod_status(make_pod(), g, NOW)
    killed = result["containerStatuses"][0]["state"]["terminated"]
    assert killed == {
        "exitCode": 137,
        "reason": "Error",
        "startedAt": "2026-11-22T04:10:00Z",
        "finishedAt": "2026-11-22T04:30:00Z",
        "containerID": result["containerStatuses"][0]["containerID"],
    }
    done = status.pod_status(make_pod(), group("Succeeded", app), NOW)
    assert done["containerStatuses"][1]["state"]["terminated"]["reason"] == "Completed"


@st.composite
def pod_and_group(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """A realistic generated pod and a group ECI could report for it (same container names)."""
    from tests.core.pod_strategies import scenarios

    scenario = draw(scenarios())
    pod = scenario.pod
    pod["status"] = {"conditions": [SCHEDULED]}
    spec = pod["spec"]

    def eci(name: str) -> dict[str, Any]:
        state = draw(st.sampled_from(["Waiting", "Running", "Terminated", None]))
        return eci_container(
            name,
            state,
            draw(st.sampled_from([0, 1, 137])),
            draw(st.sampled_from([True, False, None])),
            draw(st.integers(0, 3)),
        )

    g = group(
        draw(st.sampled_from(status.ECI_STATES)),
        [eci(c["name"]) for c in spec["containers"]],
        [eci(c["name"]) for c in spec.get("initContainers", [])],
    )
    return pod, g


@settings(max_examples=min(settings.default.max_examples, 150), suppress_health_check=[HealthCheck.too_slow])
@given(pod_and_group())
def test_realistic_pods_and_groups_map_consistently(case: tuple[dict[str, Any], dict[str, Any]]) -> None:
    pod, g = case
    result = status.pod_status(pod, g, NOW)
    check_invariants(pod, result)
    assert [s["name"] for s in result["containerStatuses"]] == [c["name"] for c in pod["spec"]["containers"]]
    assert result["qosClass"] in ("Guaranteed", "Burstable", "BestEffort")


def strategic_merge_conditions(stored: list[dict[str, Any]], sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the API server keeps of ``status.conditions`` after a strategic-merge PATCH: lists merge
    by ``type``, the fields of a condition merge one by one, and an explicit null deletes a field."""
    merged = {c["type"]: dict(c) for c in stored}
    for cond in sent:
        target = merged.setdefault(cond["type"], {})
        for key, value in cond.items():
            if value is None:
                target.pop(key, None)
            else:
                target[key] = value
    return list(merged.values())


def test_a_true_condition_keeps_no_reason_from_when_it_was_false() -> None:
    """Issue 12 (stale condition reasons): written once while Pending, then Running and ready, the
    stored Ready/ContainersReady must lose ``ContainersNotReady`` and its message, and the write must
    not be skipped as "unchanged"."""
    from vkeci.core.writeback import status_changed

    pod = make_pod()
    pending = status.pod_status(pod, group("Pending", [eci_container("app", "Waiting", 0, False)]), NOW)
    assert conditions(pending)["Ready"]["reason"] == "ContainersNotReady"
    pod["status"] = pending
    running = [eci_container("app", "Running", 0, True), eci_container("side", "Running", 0, True)]
    ready = status.pod_status(pod, group("Running", running), NOW)
    assert status_changed(pending, ready)
    stored = {**ready, "conditions": strategic_merge_conditions(pending["conditions"], ready["conditions"])}
    for kind in ("Ready", "ContainersReady", "Initialized", "PodReadyToStartContainers"):
        cond = conditions(stored)[kind]
        assert cond["status"] == "True"
        assert "reason" not in cond and "message" not in cond, cond
    # Once stored, the same status again is no change (no write per tick).
    pod["status"] = stored
    assert not status_changed(stored, status.pod_status(pod, group("Running", running), NOW))
    # A pod a daemon without this fix left with a stale reason is written again.
    stale = {**stored, "conditions": [{**c, "reason": "ContainersNotReady"} for c in stored["conditions"]]}
    pod["status"] = stale
    assert status_changed(stale, status.pod_status(pod, group("Running", running), NOW))


def test_restart_status_counts_the_restart_and_keeps_the_lost_container_in_last_state() -> None:
    """Issue 12: the group was deleted and is recreated: as a kubelet shows a restarting container."""
    pod = make_pod(phase="Running")
    pod["status"]["containerStatuses"] = [
        {"name": "app", "state": {"running": {"startedAt": "2026-11-22T04:10:00Z"}}, "restartCount": 2, "ready": True},
        {"name": "side", "state": {"running": {}}, "restartCount": 0, "ready": True, "containerID": "eci://s"},
    ]
    now = status.restart_status(pod, "eci-123", 1, 0.0, NOW)
    backing_off = status.restart_status(pod, "eci-123", 2, 10.0, NOW)
    assert now["phase"] == "Running", "a kubelet never moves a pod backwards"
    app, side = now["containerStatuses"]
    assert (app["restartCount"], side["restartCount"]) == (3, 1)
    assert app["state"]["waiting"]["reason"] == "ContainerCreating" and not app["ready"]
    lost = app["lastState"]["terminated"]
    assert lost["reason"] == "ContainerGroupDeleted" and lost["exitCode"] == -137
    assert lost["startedAt"] == "2026-11-22T04:10:00Z" and "eci-123" in lost["message"]
    assert side["lastState"]["terminated"]["containerID"] == "eci://s" and "containerID" not in side
    waiting = backing_off["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "CrashLoopBackOff" and waiting["message"].startswith("back-off 10s")
    ready = {c["type"]: c["status"] for c in now["conditions"]}
    assert ready["Ready"] == "False" and ready["ContainersReady"] == "False"
    assert now["podIPs"] is None and now["podIP"] is None, "the lost group's address is gone with it"
    annotations = status.restart_annotations(pod, 1)
    assert annotations == {"vk-eci.io/group-attempt": "1", status.RESTARTS_ANNOTATION: '{"app": 3, "side": 1}'}


def test_pod_status_of_a_recreated_group_adds_the_restarts_of_the_earlier_groups() -> None:
    """restartCount never goes down: ECI counts restarts inside one group, the annotation keeps the earlier ones."""
    pod = make_pod(phase="Running")
    pod["metadata"]["annotations"] = status.restart_annotations(pod, 1) | {status.RESTARTS_ANNOTATION: '{"app": 3}'}
    lost = {"terminated": {"exitCode": -137, "reason": "ContainerGroupDeleted"}}
    pod["status"]["containerStatuses"] = [{"name": "app", "restartCount": 3, "lastState": lost}]
    app = [eci_container("app", "Running", 0, True, restarts=1), eci_container("side", "Running", 0, True)]
    result = status.pod_status(pod, group("Running", app), NOW)
    counts = {c["name"]: c["restartCount"] for c in result["containerStatuses"]}
    assert counts == {"app": 4, "side": 0}
    fresh = status.pod_status(pod, group("Running", [eci_container("app", "Running", 0, True)]), NOW)
    assert fresh["containerStatuses"][0]["lastState"] == lost, "the lost container stays the last state"
    pod["metadata"]["annotations"][status.RESTARTS_ANNOTATION] = "not json"
    assert status.pod_status(pod, group("Running", app), NOW)["containerStatuses"][0]["restartCount"] == 1
