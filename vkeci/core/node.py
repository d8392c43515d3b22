"""The virtual Node as Kubernetes sees it: labels, taints, conditions, status, and its Lease. Pure.

The node copies the conventions of Alibaba's virtual node (labels, taint) so existing
manifests with a toleration and nodeSelector work unchanged. Times are passed in as
metav1.Time strings (``vkeci.core.times``).

An unreachable ECI does not make the node NotReady: the node lifecycle controller would then taint it
``node.kubernetes.io/not-ready:NoExecute`` and evict every pod on it (deleting container groups that run
fine). ``Ready`` says whether vk-eci itself works (lease renewed, pod controller running); ECI's state has
a condition of its own, ``ECIReachable``, and while it is False the taint ``UNREACHABLE_TAINT``
(``virtual-kubelet.io/eci-unreachable:NoSchedule``) keeps new pods off the node. Both go on recovery.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vkeci import __version__

if TYPE_CHECKING:
    from vkeci.config import Config

KUBE_MINOR = "v1.35.0"
LEASE_NAMESPACE = "kube-node-lease"

# (type, reason when healthy, message when healthy); Ready is handled separately.
_HEALTHY = (
    ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ("NetworkUnavailable", "RouteCreated", "ECI container groups get VPC addresses from their vSwitch"),
)


# The condition that says whether ECI answers (the scheduler and the node lifecycle controller ignore
# conditions they do not know; the taint below is what keeps pods off).
ECI_CONDITION = "ECIReachable"
ECI_UNREACHABLE_REASON = "ECIUnreachable"
# NoSchedule only: running pods stay untouched (a NoExecute taint would evict them, the very thing avoided).
UNREACHABLE_TAINT = {"key": "virtual-kubelet.io/eci-unreachable", "effect": "NoSchedule"}


@dataclass(frozen=True)
class Health:
    """What the node reports: whether vk-eci serves pods (``ready``: the pod controller runs) and whether ECI
    answers (``eci_reachable``); ``message`` explains an unreachable ECI to whoever runs `kubectl describe node`."""

    ready: bool = True
    eci_reachable: bool = True
    message: str = ""


def labels(config: Config) -> dict[str, str]:
    """Node labels, as Alibaba's virtual node sets them (plus the standard os/arch/region)."""
    result = {
        "type": "virtual-kubelet",
        "kubernetes.io/role": "agent",
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/hostname": config.node_name,
        "node.kubernetes.io/exclude-from-external-load-balancers": "true",
        "alpha.service-controller.kubernetes.io/exclude-balancer": "true",
    }
    if config.region:
        result["topology.kubernetes.io/region"] = config.region
    if config.zone_id:  # one node per zone: the scheduler's topology spread and zone affinity see it
        result["topology.kubernetes.io/zone"] = config.zone_id
    return result


def taint(config: Config) -> dict[str, str]:
    """The taint that keeps ordinary pods off the node."""
    return {"key": config.taint_key, "value": config.taint_value, "effect": config.taint_effect}


def taints(config: Config, health: Health) -> list[dict[str, str]]:
    """The taints this daemon sets on a new node: ours, and the unreachable one while ECI is unreachable."""
    return [taint(config)] + ([] if health.eci_reachable else [dict(UNREACHABLE_TAINT)])


def wanted_taints(
    existing: list[Mapping[str, Any]], config: Config, health: Health, now: str
) -> list[dict[str, Any]] | None:
    """``existing`` with ours in place and the unreachable taint present exactly while ECI is unreachable,
    everybody else's kept; None when nothing needs to change. ``now`` stamps a newly added unreachable taint."""
    result = merged_taints(existing, taint(config))
    current = [dict(t) for t in existing] if result is None else result
    has = any(t.get("key") == UNREACHABLE_TAINT["key"] for t in current)
    if health.eci_reachable and has:
        return [t for t in current if t.get("key") != UNREACHABLE_TAINT["key"]]
    if not health.eci_reachable and not has:
        return [*current, {**UNREACHABLE_TAINT, "timeAdded": now}]
    return result


def conditions(health: Health, now: str, previous: list[Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The conditions this daemon owns; ``lastTransitionTime`` is kept while a status holds."""
    before = {c.get("type"): c for c in previous or []}

    def condition(kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
        old = before.get(kind) or {}
        since = old.get("lastTransitionTime") if old.get("status") == status else None
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": now,
            "lastTransitionTime": since or now,
        }

    if health.ready:
        ready = condition("Ready", "True", "KubeletReady", "kubelet is posting ready status")
    else:
        ready = condition(
            "Ready",
            "False",
            "KubeletNotReady",
            "vk-eci's pod controller is not running (starting up, or its threads stopped: see the daemon log)",
        )
    if health.eci_reachable:
        eci = condition(ECI_CONDITION, "True", "ECIReachable", "the ECI endpoint answers")
    else:
        text = health.message or "the ECI endpoint does not answer"
        eci = condition(
            ECI_CONDITION,
            "False",
            ECI_UNREACHABLE_REASON,
            f"{text}; running pods are kept, new pods wait (taint {UNREACHABLE_TAINT['key']}) until ECI answers",
        )
    return [ready, eci] + [condition(kind, "False", reason, message) for kind, reason, message in _HEALTHY]


def node_status(config: Config, health: Health, now: str, previous: list[Mapping[str, Any]] | None = None) -> dict:
    """The full ``status`` of the Node."""
    capacity = {
        "cpu": config.quota_cpu,
        "memory": config.quota_memory,
        "pods": str(config.quota_pods),
        "ephemeral-storage": "100Ti",
    }
    return {
        "capacity": dict(capacity),
        "allocatable": dict(capacity),
        "conditions": conditions(health, now, previous),
        "addresses": [{"type": "InternalIP", "address": config.internal_ip}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": config.kubelet_port}},
        "nodeInfo": {
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
            "kernelVersion": "",
            "osImage": "Alibaba Cloud Elastic Container Instance",
            "containerRuntimeVersion": "eci://2018-08-08",
            "kubeletVersion": f"{KUBE_MINOR}-vkeci-{__version__}",
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    }


def node_object(config: Config, health: Health, now: str) -> dict[str, Any]:
    """The Node to POST when it does not exist yet."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": config.node_name, "labels": labels(config)},
        "spec": {"taints": taints(config, health)},
        "status": node_status(config, health, now),
    }


def merged_taints(existing: list[Mapping[str, Any]], wanted: Mapping[str, str]) -> list[dict[str, Any]] | None:
    """Taints with ours in place, keeping everybody else's; None when nothing needs to change."""
    ours = [t for t in existing if t.get("key") == wanted["key"]]
    if len(ours) == 1 and all(ours[0].get(k, "") == v for k, v in wanted.items()):
        return None
    return [dict(t) for t in existing if t.get("key") != wanted["key"]] + [dict(wanted)]


def lease_object(node_name: str, node_uid: str, duration: int, now: str) -> dict[str, Any]:
    """A fresh Lease for the node."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": node_name,
            "namespace": LEASE_NAMESPACE,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node_name, "uid": node_uid}],
        },
        "spec": {"holderIdentity": node_name, "leaseDurationSeconds": duration, "renewTime": now},
    }
