"""The virtual Node as Kubernetes sees it: labels, taint, conditions, status, and its Lease. Pure.

The node copies the conventions of Alibaba's virtual node (labels, taint) so existing
manifests with a toleration and nodeSelector work unchanged. Times are passed in as
metav1.Time strings (``vkeci.core.times``).
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


@dataclass(frozen=True)
class Health:
    """Whether ECI answers; ``message`` explains a failure to whoever runs `kubectl describe node`."""

    ready: bool
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
        ready = condition("Ready", "False", "ECIUnreachable", health.message or "the ECI endpoint does not answer")
    return [ready] + [condition(kind, "False", reason, message) for kind, reason, message in _HEALTHY]


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
        "spec": {"taints": [taint(config)]},
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
