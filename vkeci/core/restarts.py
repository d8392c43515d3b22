"""What a kubelet does when a pod's containers vanish, applied to a container group deleted outside
vk-eci: restart it or fail the pod (``restartPolicy``), and the crash-loop back-off between restarts.

The back-off is the kubelet's, read from Kubernetes v1.35.4: ``pkg/kubelet/kubelet.go`` builds
``flowcontrol.NewBackOff(10s, 300s)`` (``backOffPeriod``, ``MaxContainerBackOff``) whose entry expires
when a container finishes more than 600 s after the last restart, and
``kuberuntime_manager.go doBackOff`` restarts at once when no back-off is in force, else waits until
``finishedAt + period`` and doubles the period. So the first restart is immediate, then 10 s, 20 s,
40 s ... capped at 5 min, and a group that ran 10 minutes starts again from the beginning.
Pure: the caller passes the times (monotonic seconds).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

BACKOFF_INITIAL = 10.0  # kubelet.go backOffPeriod
BACKOFF_MAX = 300.0  # kubeletconfig v1beta1 MaxContainerBackOff
BACKOFF_RESET = 600.0  # kubelet.go crashLoopBackOff.HasExpiredFunc: 600 s after the last restart


@dataclass(frozen=True)
class BackOff:
    """A pod's restart back-off: the wait in force (``period``) and when the last restart was (``updated``)."""

    period: float
    updated: float


def next_restart(previous: BackOff | None, lost_at: float) -> tuple[float, BackOff]:
    """The delay before recreating a group lost at ``lost_at``, and the back-off after that restart.

    As ``doBackOff``: no back-off in force (first loss, or the last restart was more than
    ``BACKOFF_RESET`` before this loss) restarts at once and sets the period to 10 s; otherwise the
    restart waits the period, which then doubles up to ``BACKOFF_MAX``."""
    if previous is None or lost_at - previous.updated > BACKOFF_RESET:
        return 0.0, BackOff(BACKOFF_INITIAL, lost_at)
    delay = previous.period
    return delay, BackOff(min(previous.period * 2, BACKOFF_MAX), lost_at + delay)


def restart_policy(pod: Mapping[str, Any]) -> str:
    """``spec.restartPolicy`` (``Always`` when unset, as the API server defaults it)."""
    return str((pod.get("spec") or {}).get("restartPolicy") or "Always")


def finished_successfully(pod: Mapping[str, Any]) -> bool:
    """Every app container of the pod's last status terminated with exit code 0."""
    statuses = [s for s in (pod.get("status") or {}).get("containerStatuses") or [] if isinstance(s, Mapping)]
    if not statuses:
        return False
    codes = [((s.get("state") or {}).get("terminated") or {}).get("exitCode") for s in statuses]
    return all(code == 0 for code in codes)


def restarts_after_loss(pod: Mapping[str, Any]) -> bool:
    """Whether a pod whose group vanished gets a new one: ``Always``, or ``OnFailure`` unless every
    container had already finished successfully; ``Never`` fails the pod, as a kubelet would."""
    policy = restart_policy(pod)
    if policy == "Always":
        return True
    return policy == "OnFailure" and not finished_successfully(pod)
