"""ECI container group -> Pod status, and ECI events -> Kubernetes Events: pure functions.

Phase follows Alibaba's documented table (Restarting/Updating -> Pending, Terminating -> Running,
Expired/ScheduleFailed -> Failed, ...), refined by the containers the way a kubelet computes it
(``restartPolicy`` decides what "all containers exited" means) and never moved backwards
(Running -> Pending) or out of Succeeded/Failed. Container states use the kubelet's vocabulary.
A terminated pod is never Ready. ``PodScheduled`` and conditions owned by others (readiness
gates, DisruptionTarget) are carried over untouched.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from vkeci.core.events import event_name, pod_event
from vkeci.core.identity import ATTEMPT_ANNOTATION
from vkeci.core.problems import Missing, Problem, Rejected
from vkeci.core.times import Now, parse_time, timestamp

# THE table of ECI container-group states: each state and the pod phase it shows as. Whether a group
# is finished (``TERMINAL_STATES``) or settled (``SETTLED_STATES``) is derived from it, so the status
# mapper and the controllers cannot disagree about a state.
PHASES = {
    "Scheduling": "Pending",
    "Pending": "Pending",
    "Running": "Running",
    "Restarting": "Pending",
    "Updating": "Pending",
    "Terminating": "Running",
    "Succeeded": "Succeeded",
    "Failed": "Failed",
    "Expired": "Failed",
    "ScheduleFailed": "Failed",
    # Older lifecycle doc: Pending for 4 h (compute released) / ScheduleFailed for 1 h.
    "StartingFailed": "Failed",
    "WatingForDel": "Failed",
}
ECI_STATES = tuple(PHASES)
TERMINAL = ("Succeeded", "Failed")  # the pod phases nothing moves out of
TERMINAL_STATES = frozenset(state for state, phase in PHASES.items() if phase in TERMINAL)
# Nothing is expected to change soon: running, or finished. The status poller slows down when every
# group is settled.
SETTLED_STATES = TERMINAL_STATES | {"Running"}


def group_terminal(state: str) -> bool:
    """Whether a group in ECI state ``state`` has finished (its pod is Succeeded or Failed)."""
    return state in TERMINAL_STATES


def group_settled(state: str) -> bool:
    """Whether a group in ECI state ``state`` is running or finished: nothing expected to change soon."""
    return state in SETTLED_STATES


OWNED_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready")
# Pod-level failures ECI reports as events; shown as the pod's reason (kubectl STATUS column).
INSTANCE_REASONS = (
    "NoStock",
    "StockExhaust",
    "StockClose",
    "InsufficientBalance",
    "FailedScheduling",
    "UnknownError",
    "DiskCapacityQuotaFull",
    "SpotToBeReleased",
    "SpotReclaimed",
    "Expired",
    "DeadlineExceeded",
    "ScheduleFailed",
)
WAITING_REASONS = (
    "ContainerCreating",
    "PodInitializing",
    "ErrImagePull",
    "ImagePullBackOff",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "InvalidImageName",
    "RunContainerError",
)
TERMINATED_REASONS = ("Completed", "Error", "OOMKilled", "ContainerCannotRun", "DeadlineExceeded", "StartError")
# A pod's group was deleted outside vk-eci (issue 12): the pod's and the lost containers' reason.
DELETED_REASON = "ContainerGroupDeleted"
# Restarts before the pod's current group (JSON: container name -> count), written with the group
# attempt: ECI counts the restarts inside one group only, and a pod's restartCount never goes down.
RESTARTS_ANNOTATION = "vk-eci.io/restart-counts"


def _spec(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = pod.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _status(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    status = pod.get("status")
    return status if isinstance(status, Mapping) else {}


def _containers(pod: Mapping[str, Any], section: str) -> list[Mapping[str, Any]]:
    return [c for c in _spec(pod).get(section) or [] if isinstance(c, Mapping)]


def qos_class(pod: Mapping[str, Any]) -> str:
    """Guaranteed, Burstable or BestEffort, computed from the spec as Kubernetes does."""
    requests_seen = False
    guaranteed = True
    for container in [*_containers(pod, "initContainers"), *_containers(pod, "containers")]:
        resources = container.get("resources") or {}
        requests = {k: v for k, v in (resources.get("requests") or {}).items() if k in ("cpu", "memory")}
        limits = {k: v for k, v in (resources.get("limits") or {}).items() if k in ("cpu", "memory")}
        if requests or limits:
            requests_seen = True
        effective = {**limits, **requests} if not requests else requests
        if set(limits) != {"cpu", "memory"}:
            guaranteed = False
        elif any(str(effective.get(k)) != str(limits.get(k)) for k in ("cpu", "memory")):
            guaranteed = False
    if not requests_seen:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _container_id(group_id: str, name: str, restart_count: int) -> str:
    digest = hashlib.sha256(f"{group_id}/{name}/{restart_count}".encode()).hexdigest()
    return f"eci://{digest}"


def _state_of(eci_state: Mapping[str, Any] | None) -> str:
    if not isinstance(eci_state, Mapping):
        return ""
    return str(eci_state.get("State") or "")


def _terminated(eci_state: Mapping[str, Any], container_id: str | None) -> dict[str, Any]:
    code = eci_state.get("ExitCode")
    exit_code = int(code) if isinstance(code, int) and not isinstance(code, bool) else 0
    reason = str(eci_state.get("Reason") or "")
    detail = str(eci_state.get("DetailStatus") or "")
    if reason not in TERMINATED_REASONS:
        reason = "OOMKilled" if "OOM" in (reason + detail) else ("Completed" if exit_code == 0 else "Error")
    result: dict[str, Any] = {"exitCode": exit_code, "reason": reason}
    signal = eci_state.get("Signal")
    if isinstance(signal, int) and not isinstance(signal, bool) and signal:
        result["signal"] = signal
    if eci_state.get("Message"):
        result["message"] = str(eci_state["Message"])
    started, finished = parse_time(eci_state.get("StartTime")), parse_time(eci_state.get("FinishTime"))
    if started:
        result["startedAt"] = started
    if finished:
        result["finishedAt"] = finished
    if container_id:
        result["containerID"] = container_id
    return result


def _waiting_reason(eci_state: Mapping[str, Any] | None, restart_count: int, default: str) -> tuple[str, str]:
    state = eci_state if isinstance(eci_state, Mapping) else {}
    reason = str(state.get("Reason") or "")
    detail = str(state.get("DetailStatus") or "")
    message = str(state.get("Message") or "")
    if reason in WAITING_REASONS:
        return reason, message
    text = f"{reason} {detail} {message}".lower()
    if "backoff" in text and "image" in text:
        return "ImagePullBackOff", message or detail
    if "pull" in text and ("fail" in text or "err" in text):
        return "ErrImagePull", message or detail
    if restart_count > 0:
        return "CrashLoopBackOff", message or detail
    return default, message


def restart_bases(pod: Mapping[str, Any]) -> dict[str, int]:
    """The pod's ``RESTARTS_ANNOTATION``: restarts per container before its current group ({} if none)."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    try:
        value = json.loads(annotations.get(RESTARTS_ANNOTATION) or "{}")
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, int) and not isinstance(v, bool) and v >= 0}


def _container_status(
    spec: Mapping[str, Any],
    eci: Mapping[str, Any] | None,
    group_id: str,
    waiting_default: str,
    base: int = 0,
    before: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One container's status; ``base``: its restarts in earlier groups of the pod, whose last
    state (in ``before``, the status written so far) is kept until ECI reports one of its own."""
    name = str(spec.get("name") or "")
    eci = eci if isinstance(eci, Mapping) else {}
    raw_restarts = eci.get("RestartCount")
    restarts = raw_restarts if isinstance(raw_restarts, int) and not isinstance(raw_restarts, bool) else 0
    restarts = max(restarts, 0) + base
    current = eci.get("CurrentState") if isinstance(eci.get("CurrentState"), Mapping) else None
    state_name = _state_of(current)
    created = bool(eci) and state_name in ("Running", "Terminated")
    container_id = _container_id(group_id, name, restarts) if created and group_id else None
    status: dict[str, Any] = {
        "name": name,
        "image": str(spec.get("image") or ""),
        "imageID": "",
        "restartCount": restarts,
        "ready": False,
        "started": False,
    }
    if state_name == "Running":  # in a finished pod, _finish turns it into terminated
        assert current is not None
        running: dict[str, Any] = {}
        started = parse_time(current.get("StartTime"))
        if started:
            running["startedAt"] = started
        status["state"] = {"running": running}
        ready = eci.get("Ready")
        status["ready"] = bool(ready) if isinstance(ready, bool) else True
        status["started"] = True
    elif state_name == "Terminated":
        assert current is not None
        status["state"] = {"terminated": _terminated(current, container_id)}
    else:
        reason, message = _waiting_reason(current, restarts, waiting_default)
        waiting: dict[str, Any] = {"reason": reason}
        if message:
            waiting["message"] = message
        status["state"] = {"waiting": waiting}
    if container_id:
        status["containerID"] = container_id
    previous = eci.get("PreviousState") if isinstance(eci.get("PreviousState"), Mapping) else None
    if previous is not None and _state_of(previous) == "Terminated":
        previous_id = _container_id(group_id, name, max(restarts - 1, 0)) if group_id else None
        status["lastState"] = {"terminated": _terminated(previous, previous_id)}
    elif base and isinstance(before, Mapping) and isinstance(before.get("lastState"), Mapping):
        status["lastState"] = dict(before["lastState"])
    else:
        status["lastState"] = {}
    return status


def _by_name(items: Any) -> dict[str, Mapping[str, Any]]:
    result: dict[str, Mapping[str, Any]] = {}
    for item in items or []:
        if isinstance(item, Mapping) and item.get("Name") is not None:
            result[str(item["Name"])] = item
    return result


def _by_name_lower(items: Any) -> dict[str, Mapping[str, Any]]:
    """Kubernetes container statuses (``name``) by name."""
    return {str(s.get("name")): s for s in items or [] if isinstance(s, Mapping) and s.get("name") is not None}


def _phase_from_containers(eci_phase: str, statuses: Sequence[Mapping[str, Any]], restart_policy: str) -> str:
    """The kubelet's view once every app container has exited (``getPhase``)."""
    if eci_phase in TERMINAL or not statuses:
        return eci_phase
    terminated = [s["state"]["terminated"] for s in statuses if "terminated" in s.get("state", {})]
    if len(terminated) != len(statuses):
        return eci_phase
    failed = any(t.get("exitCode", 0) != 0 for t in terminated)
    if restart_policy == "Never":
        return "Failed" if failed else "Succeeded"
    if restart_policy == "OnFailure" and not failed:
        return "Succeeded"
    return "Running" if eci_phase == "Running" else eci_phase


def _condition(
    previous: Mapping[str, Mapping[str, Any]], kind: str, ok: bool, now: str, reason: str = "", message: str = ""
) -> dict[str, Any]:
    status = "True" if ok else "False"
    before = previous.get(kind) or {}
    transition = before.get("lastTransitionTime") if before.get("status") == status else None
    # The whole condition, with explicit nulls: the status PATCH is a strategic merge that merges
    # conditions by type field by field, so an omitted reason would keep the one written while the
    # pod was Pending (a Ready=True condition saying ContainersNotReady, issue 12); a null deletes it.
    return {
        "type": kind,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": transition or now,
        "reason": reason or None,
        "message": message or None,
    }


def _conditions(
    pod: Mapping[str, Any],
    phase: str,
    sandbox: bool,
    init_statuses: Sequence[Mapping[str, Any]],
    app_statuses: Sequence[Mapping[str, Any]],
    now: str,
) -> list[dict[str, Any]]:
    existing = [c for c in _status(pod).get("conditions") or [] if isinstance(c, Mapping)]
    previous = {str(c.get("type")): c for c in existing}
    terminal = phase in TERMINAL
    result = [dict(c) for c in existing if c.get("type") not in OWNED_CONDITIONS]
    result.append(_condition(previous, "PodReadyToStartContainers", sandbox and not terminal, now))

    pending_init = [
        str(s["name"])
        for s in init_statuses
        if (s.get("state", {}).get("terminated") or {}).get("exitCode", 1) != 0 or "terminated" not in s["state"]
    ]
    if terminal and phase == "Succeeded":
        pending_init = []
    if pending_init:
        initialized = _condition(
            previous,
            "Initialized",
            False,
            now,
            "ContainersNotInitialized",
            f"containers with incomplete status: [{' '.join(pending_init)}]",
        )
    else:
        initialized = _condition(previous, "Initialized", True, now, "PodCompleted" if terminal else "")
    result.append(initialized)

    unready = [str(s["name"]) for s in app_statuses if not s.get("ready")]
    if terminal:
        ready = False
        reason, message = "PodCompleted", ""
    elif unready:
        ready = False
        reason, message = "ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]"
    else:
        ready, reason, message = True, "", ""
    result.append(_condition(previous, "ContainersReady", ready, now, reason, message))

    gate_problems = []
    for gate in _spec(pod).get("readinessGates") or []:
        kind = str((gate or {}).get("conditionType") or "")
        if not kind:
            continue
        found = previous.get(kind)
        if found is None:
            gate_problems.append(f'corresponding condition of pod readiness gate "{kind}" does not exist.')
        elif found.get("status") != "True":
            gate_problems.append(f'the status of pod readiness gate "{kind}" is not "True", but {found.get("status")}')
    if ready and gate_problems:
        result.append(_condition(previous, "Ready", False, now, "ReadinessGatesNotReady", ", ".join(gate_problems)))
    else:
        result.append(_condition(previous, "Ready", ready, now, reason, message))
    return result


def _event_reason(group: Mapping[str, Any]) -> tuple[str, str]:
    """The most recent instance-level Warning among the group's events: (reason, message)."""
    events = [e for e in group.get("Events") or [] if isinstance(e, Mapping)]
    events.sort(key=lambda e: str(e.get("LastTimestamp") or e.get("FirstTimestamp") or ""))
    for event in reversed(events):
        if str(event.get("Reason") or "") in INSTANCE_REASONS:
            return str(event["Reason"]), str(event.get("Message") or "")
    return "", ""


def _ips(group: Mapping[str, Any]) -> list[str]:
    ips = [str(group[k]) for k in ("IntranetIp", "Ipv6Address") if group.get(k)]
    return ips


def pod_status(pod: Mapping[str, Any], group: Mapping[str, Any] | None, now: Now) -> dict[str, Any]:
    """The full ``status`` of ``pod`` given its ECI group (one DescribeContainerGroups item in
    ``to_map()`` form), or ``None`` while the group does not exist yet (Pending, ContainerCreating)."""
    stamp = timestamp(now)
    previous = _status(pod)
    group = group if isinstance(group, Mapping) else None
    eci_state = str(group.get("Status") or "") if group else ""
    phase = PHASES.get(eci_state, "Pending")
    restart_policy = str(_spec(pod).get("restartPolicy") or "Always")
    group_id = str(group.get("ContainerGroupId") or "") if group else ""
    eci_init = _by_name(group.get("InitContainers")) if group else {}
    eci_app = _by_name(group.get("Containers")) if group else {}
    terminal = phase in TERMINAL

    init_specs = _containers(pod, "initContainers")
    init_statuses = []
    init_done = True
    bases = restart_bases(pod)
    before = _by_name_lower(previous.get("containerStatuses"))
    for spec in init_specs:
        status = _container_status(spec, eci_init.get(str(spec.get("name"))), group_id, "PodInitializing")
        if not init_done and "waiting" in status["state"]:
            status["state"] = {"waiting": {"reason": "PodInitializing"}}
        init_done = init_done and (status["state"].get("terminated") or {}).get("exitCode", 1) == 0
        init_statuses.append(status)
    waiting_default = "ContainerCreating" if init_done else "PodInitializing"
    app_statuses = [
        _container_status(
            spec,
            eci_app.get(str(spec.get("name"))),
            group_id,
            waiting_default,
            bases.get(str(spec.get("name")), 0),
            before.get(str(spec.get("name"))),
        )
        for spec in _containers(pod, "containers")
    ]
    if not terminal:
        phase = _phase_from_containers(phase, app_statuses, restart_policy)
    if previous.get("phase") == "Running" and phase == "Pending":
        phase = "Running"  # a kubelet never moves a pod backwards
    if previous.get("phase") in TERMINAL:
        phase = str(previous["phase"])
    terminal = phase in TERMINAL
    if terminal:
        # Containers that ECI still shows as running cannot be once the pod has finished.
        finished = None
        if group:
            finished = next(
                (
                    parse_time(group.get(k))
                    for k in ("SucceededTime", "FailedTime", "ExpiredTime")
                    if parse_time(group.get(k))
                ),
                None,
            )
        app_statuses = [_finish(s, phase, finished) for s in app_statuses]
        init_statuses = [_finish(s, phase, finished) for s in init_statuses]
    if phase != "Running":
        # Ready only while Running: never for a finished pod, nor for one ECI is restarting or
        # updating (Pending in Alibaba's table), whatever the containers last reported.
        for status in app_statuses:
            status["ready"] = False
    for status in init_statuses:
        # As on a kubelet, an init container is "ready" once it has completed successfully.
        status["ready"] = (status["state"].get("terminated") or {}).get("exitCode", 1) == 0
    sandbox = bool(group) and eci_state not in ("Scheduling", "ScheduleFailed", "")
    result: dict[str, Any] = {
        "phase": phase,
        "conditions": _conditions(pod, phase, sandbox, init_statuses, app_statuses, stamp),
        "containerStatuses": app_statuses,
        "qosClass": qos_class(pod),
        "reason": None,
        "message": None,
    }
    if init_specs:
        result["initContainerStatuses"] = init_statuses
    ips = _ips(group) if group else []
    if ips:
        result["podIP"] = ips[0]
        result["podIPs"] = [{"ip": ip} for ip in ips]
        # ECI pods have no host of their own: the commercial virtual node reports hostIP = podIP.
        result["hostIP"] = ips[0]
        result["hostIPs"] = [{"ip": ips[0]}]
    start = previous.get("startTime") or (parse_time(group.get("CreationTime")) if group else None) or stamp
    result["startTime"] = start
    if group:
        reason, message = _event_reason(group)
        if eci_state == "Expired":
            detail = f": {message}" if message else ""
            reason, message = "Expired", f"The spot (preemptible) ECI instance was reclaimed{detail}"
        if eci_state in ("ScheduleFailed", "StartingFailed") and not reason:
            reason, message = "ScheduleFailed", "ECI could not create the container group"
        if reason and (phase != "Running" or reason == "SpotToBeReleased"):
            result["reason"], result["message"] = reason, message or None
    return result


def _finish(status: dict[str, Any], phase: str, finished: str | None) -> dict[str, Any]:
    """A container ECI still showed as running (or not at all) in a finished pod: terminated, with
    exit code 0 in a Succeeded pod, else 137 (killed), like a kubelet that stopped it."""
    state = status.get("state", {})
    if "running" not in state:
        return status
    started = (state.get("running") or {}).get("startedAt")
    ok = phase == "Succeeded"
    terminated: dict[str, Any] = {"exitCode": 0 if ok else 137, "reason": "Completed" if ok else "Error"}
    if started:
        terminated["startedAt"] = started
    if finished:
        terminated["finishedAt"] = finished
    if status.get("containerID"):
        terminated["containerID"] = status["containerID"]
    return {**status, "state": {"terminated": terminated}, "ready": False, "started": False}


def _all_waiting(pod: Mapping[str, Any], reason: str, message: str | None, now: Now, phase: str) -> dict[str, Any]:
    stamp = timestamp(now)
    statuses = {}
    for section in ("initContainers", "containers"):
        items = []
        for index, spec in enumerate(_containers(pod, section)):
            waiting: dict[str, Any] = {"reason": reason if section == "containers" or index == 0 else "PodInitializing"}
            if message and waiting["reason"] == reason:
                waiting["message"] = message
            items.append(
                {
                    "name": str(spec.get("name") or ""),
                    "image": str(spec.get("image") or ""),
                    "imageID": "",
                    "restartCount": 0,
                    "ready": False,
                    "started": False,
                    "state": {"waiting": waiting},
                    "lastState": {},
                }
            )
        statuses[section] = items
    result: dict[str, Any] = {
        "phase": phase,
        "conditions": _conditions(pod, phase, False, statuses["initContainers"], statuses["containers"], stamp),
        "containerStatuses": statuses["containers"],
        "qosClass": qos_class(pod),
        "startTime": _status(pod).get("startTime") or stamp,
        "reason": None,
        "message": None,
    }
    if statuses["initContainers"]:
        result["initContainerStatuses"] = statuses["initContainers"]
    return result


def pending_status(
    pod: Mapping[str, Any],
    now: Now,
    *,
    reason: str | None = None,
    message: str | None = None,
    waiting_reason: str = "ContainerCreating",
    waiting_message: str | None = None,
) -> dict[str, Any]:
    """Pending with every container waiting (``ContainerCreating`` by default): the status while the
    daemon retries (ECI create failed, a referenced object is missing). ``reason``/``message`` set
    the pod-level ones (e.g. ``ProviderFailed`` and the ECI error with its RequestId)."""
    result = _all_waiting(pod, waiting_reason, waiting_message, now, "Pending")
    result["reason"], result["message"] = reason, message
    return result


def missing_status(pod: Mapping[str, Any], missing: Missing, now: Now) -> dict[str, Any]:
    """Pending while referenced objects are missing, as a kubelet shows it: a missing env source is
    ``CreateContainerConfigError``; a missing volume source keeps ``ContainerCreating``."""
    what = env_error(pod, missing)
    if what:
        return pending_status(pod, now, waiting_reason="CreateContainerConfigError", waiting_message=what)
    text = "; ".join(str(ref) for ref in missing.refs)
    return pending_status(pod, now, waiting_message=f"waiting for {text}")


def env_error(pod: Mapping[str, Any], missing: Missing) -> str:
    """The kubelet's error for the first missing ``env``/``envFrom`` source ("" when only volume
    sources are missing), word for word as pkg/kubelet/kubelet_pods.go makeEnvironmentVariables
    words it: the API's NotFound (``configmap "name" not found``, Go quoting) for a missing object,
    ``couldn't find key K in ConfigMap ns/name`` for a missing key."""
    env_refs = [ref for ref in missing.refs if ".env" in ref.field]
    if not env_refs:
        return ""
    ref = env_refs[0]
    if ref.key is None:
        return f'{ref.kind.lower()} "{ref.name}" not found'
    namespace = str((pod.get("metadata") or {}).get("namespace") or "default")
    return f"couldn't find key {ref.key} in {ref.kind} {namespace}/{ref.name}"


def waiting_status(pod: Mapping[str, Any], error: BaseException, now: Now) -> dict[str, Any]:
    """Pending while the daemon retries: ``missing_status`` for a ``Missing`` reference, otherwise
    ``ProviderFailed`` with the error's message (ECI create failures: code, message, RequestId)."""
    if isinstance(error, Missing):
        return missing_status(pod, error, now)
    return pending_status(pod, now, reason="ProviderFailed", message=str(error)[:2000] or type(error).__name__)


def rejected_status(pod: Mapping[str, Any], problems: Iterable[Problem] | Rejected, now: Now) -> dict[str, Any]:
    """The status of a pod ECI can never run as written: ``ProviderFailed`` with every problem in the
    message. Failed when ``restartPolicy: Never`` (a Job sees the failure), else Pending, as the
    virtual-kubelet library does, so a Deployment does not churn replacement pods.

    ``problems`` is the ``Rejected`` exception or its ``problems``."""
    if isinstance(problems, Rejected):
        problems = problems.problems
    problems = list(problems)
    never = str(_spec(pod).get("restartPolicy") or "Always") == "Never"
    message = "cannot run on ECI: " + "; ".join(str(p) for p in problems)
    # A problem a kubelet shows with its own waiting reason (InvalidImageName) is shown so, with its message.
    shown = next((p for p in problems if p.waiting_reason), None)
    reason = shown.waiting_reason if shown else "CreateContainerConfigError"
    result = _all_waiting(pod, reason, shown.message if shown else None, now, "Failed" if never else "Pending")
    result["reason"], result["message"] = "ProviderFailed", message
    return result


def deleted_message(group_id: str) -> str:
    """What a lost container's ``terminated.message`` says."""
    return f"ECI container group {group_id or '(unknown)'} was deleted outside vk-eci"


def _lost_container(before: Mapping[str, Any], group_id: str, stamp: str) -> dict[str, Any]:
    """The terminated state of a container whose group vanished: exit code -137 (killed, as the
    virtual-kubelet library reports a container the provider lost)."""
    state = before.get("state") or {}
    terminated: dict[str, Any] = {
        "exitCode": -137,
        "reason": DELETED_REASON,
        "message": deleted_message(group_id),
        "startedAt": (state.get("running") or {}).get("startedAt") or stamp,
        "finishedAt": stamp,
    }
    if before.get("containerID"):
        terminated["containerID"] = before["containerID"]
    return terminated


def _base_status(spec: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any]:
    status: dict[str, Any] = {
        "name": str(spec.get("name") or ""),
        "image": str(spec.get("image") or ""),
        "imageID": str(before.get("imageID") or ""),
        "restartCount": int(before.get("restartCount") or 0),
        "ready": False,
        "started": False,
    }
    if before.get("containerID"):
        status["containerID"] = before["containerID"]
    return status


def _kept_fields(previous: Mapping[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    init = [dict(s) for s in previous.get("initContainerStatuses") or [] if isinstance(s, Mapping)]
    if init:
        result["initContainerStatuses"] = init
    for key in ("podIP", "podIPs", "hostIP", "hostIPs"):
        if previous.get(key):
            result[key] = previous[key]
    return result


def missing_group_status(pod: Mapping[str, Any], now: Now, group_id: str = "") -> dict[str, Any]:
    """The pod's ECI group ``group_id`` is confirmed gone (not merely an API error) and the pod is not
    restarted (``core.restarts.restarts_after_loss``): Failed, reason ``ContainerGroupDeleted``, and
    every container that had not finished terminated with exit code -137, as the virtual-kubelet
    library does, so that controllers replace the pod."""
    stamp = timestamp(now)
    previous = _status(pod)
    old = _by_name_lower(previous.get("containerStatuses"))
    statuses = []
    for spec in _containers(pod, "containers"):
        before = old.get(str(spec.get("name") or "")) or {}
        if "terminated" in (before.get("state") or {}):
            statuses.append({**before, "ready": False, "started": False})
            continue
        status = _base_status(spec, before)
        status["state"] = {"terminated": _lost_container(before, group_id, stamp)}
        status["lastState"] = before.get("lastState") or {}
        statuses.append(status)
    policy = str(_spec(pod).get("restartPolicy") or "Always")
    message = (
        f"{deleted_message(group_id)} (ECI console, API or another tool); with restartPolicy {policy} the "
        "pod is not restarted. Delete the pod to clean it up (its controller, if any, creates a new one)."
    )
    init = [s for s in previous.get("initContainerStatuses") or [] if isinstance(s, Mapping)]
    result: dict[str, Any] = {
        "phase": "Failed",
        "reason": DELETED_REASON,
        "message": message,
        "conditions": _conditions(pod, "Failed", False, init, statuses, stamp),
        "containerStatuses": statuses,
        "qosClass": qos_class(pod),
        "startTime": previous.get("startTime") or stamp,
    }
    return _kept_fields(previous, result)


def restart_status(pod: Mapping[str, Any], group_id: str, attempt: int, delay: float, now: Now) -> dict[str, Any]:
    """The pod's status once its group ``group_id`` is known deleted and a new one (``attempt``) is
    to be created after ``delay`` seconds, as a kubelet shows a restarting container: restartCount
    + 1, the lost container in ``lastState``, waiting ``CrashLoopBackOff`` during a back-off (else
    ``ContainerCreating``), not ready; the phase does not move backwards."""
    stamp = timestamp(now)
    previous = _status(pod)
    old = _by_name_lower(previous.get("containerStatuses"))
    statuses = []
    for spec in _containers(pod, "containers"):
        name = str(spec.get("name") or "")
        before = old.get(name) or {}
        status = _base_status(spec, before)
        status["restartCount"] += 1
        terminated = (before.get("state") or {}).get("terminated")
        status["lastState"] = {"terminated": dict(terminated or _lost_container(before, group_id, stamp))}
        if delay > 0:
            waiting = {
                "reason": "CrashLoopBackOff",
                "message": f"back-off {delay:g}s recreating the ECI container group (attempt {attempt}) "
                f"of container={name}: {deleted_message(group_id)}",
            }
        else:
            text = f"recreating the ECI container group (attempt {attempt})"
            waiting = {"reason": "ContainerCreating", "message": text}
        status["state"] = {"waiting": waiting}
        status.pop("containerID", None)
        statuses.append(status)
    phase = "Running" if previous.get("phase") == "Running" else "Pending"
    init = [s for s in previous.get("initContainerStatuses") or [] if isinstance(s, Mapping)]
    result: dict[str, Any] = {
        "phase": phase,
        "reason": None,
        "message": None,
        "conditions": _conditions(pod, phase, False, init, statuses, stamp),
        "containerStatuses": statuses,
        "qosClass": qos_class(pod),
        "startTime": previous.get("startTime") or stamp,
    }
    result = _kept_fields(previous, result)
    # The lost group's addresses are gone with it (null deletes them); the new group brings its own.
    return {**result, "podIP": None, "podIPs": None, "hostIP": None, "hostIPs": None}


def restart_annotations(pod: Mapping[str, Any], attempt: int) -> dict[str, str]:
    """The annotations that make ``attempt`` the pod's group attempt: its number (which the
    ClientToken is derived from) and each container's restarts so far (``restart_status``'s counts)."""
    old = _by_name_lower(_status(pod).get("containerStatuses"))
    counts = {
        str(spec.get("name") or ""): int((old.get(str(spec.get("name") or "")) or {}).get("restartCount") or 0) + 1
        for spec in _containers(pod, "containers")
    }
    return {ATTEMPT_ANNOTATION: str(attempt), RESTARTS_ANNOTATION: json.dumps(counts, sort_keys=True)}


_CONTAINER_IN_MESSAGE = re.compile(r"container:? \"?([a-z0-9]([-a-z0-9]*[a-z0-9])?)\"?", re.IGNORECASE)


def _field_path(pod: Mapping[str, Any], event: Mapping[str, Any]) -> str | None:
    names = {}
    for section in ("initContainers", "containers"):
        for spec in _containers(pod, section):
            names[str(spec.get("name") or "")] = (section, spec)
    message = str(event.get("Message") or "")
    event_name = str(event.get("Name") or "")
    candidates = []
    for name in names:
        if name and (event_name == name or event_name.endswith("." + name)):
            candidates.append(name)
    if not candidates:
        for match in _CONTAINER_IN_MESSAGE.finditer(message):
            if match.group(1) in names:
                candidates.append(match.group(1))
    if not candidates:
        by_image = [n for n, (_, spec) in names.items() if spec.get("image") and f'"{spec["image"]}"' in message]
        if len(by_image) == 1:
            candidates = by_image
    if not candidates:
        return None
    section, _ = names[candidates[0]]
    return f"spec.{section}{{{candidates[0]}}}"


def kube_events(pod: Mapping[str, Any], group: Mapping[str, Any] | None, now: Now) -> list[dict[str, Any]]:
    """core/v1 Events for the ECI events of ``group``, involving the pod (and the container when
    the event names one), reported as the kubelet of the pod's node."""
    if not isinstance(group, Mapping):
        return []
    node = str(_spec(pod).get("nodeName") or "")
    stamp = timestamp(now)
    result = []
    for event in group.get("Events") or []:
        if not isinstance(event, Mapping):
            continue
        first = parse_time(event.get("FirstTimestamp")) or stamp
        last = parse_time(event.get("LastTimestamp")) or first
        count = event.get("Count")
        result.append(
            pod_event(
                pod,
                name=event_name(pod, event),
                kind="Warning" if str(event.get("Type") or "") == "Warning" else "Normal",
                reason=str(event.get("Reason") or "Unknown"),
                message=str(event.get("Message") or ""),
                node=node,
                first=first,
                last=last,
                count=count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 1,
                field_path=_field_path(pod, event),
            )
        )
    return result
