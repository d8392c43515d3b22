"""The virtual Node: what it looks like (pure functions) and how it is registered and kept fresh.

The node copies the conventions of Alibaba's virtual node (labels, taint) so existing
manifests with a toleration and nodeSelector work unchanged. Status is written as a
strategic-merge PATCH of ``nodes/<name>/status`` that touches only the conditions this daemon
owns (merged by type), so conditions written by others survive.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from vkeci import __version__
from vkeci.clients.kube import MERGE, KubeClient, KubeError
from vkeci.config import Config
from vkeci.log import fields, get_logger

log = get_logger("node")
KUBE_MINOR = "v1.35.0"

# (type, reason when healthy, message when healthy); Ready is handled separately.
_HEALTHY = (
    ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ("NetworkUnavailable", "RouteCreated", "ECI container groups get VPC addresses from their vSwitch"),
)


def now_rfc3339() -> str:
    """The current UTC time the way Kubernetes writes metav1.Time."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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
        "addresses": [{"type": "InternalIP", "address": config.internal_ip or "127.0.0.1"}],
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


class NodeController:
    """Registers the Node and patches its status; uses the high-priority Kubernetes client."""

    def __init__(self, kube: KubeClient, config: Config) -> None:
        self.kube = kube
        self.config = config
        self.path = "/api/v1/nodes/" + quote(config.node_name, safe="")
        self.uid = ""
        self._conditions: list[Mapping[str, Any]] = []
        self.health = Health(ready=True)

    def register(self, health: Health) -> str:
        """PATCH the status of an existing Node (create it on 404); return the Node's UID."""
        self.health = health
        try:
            node = self.patch_status(health)
        except KubeError as err:
            if not err.not_found:
                raise
            try:
                node = self.kube.post("/api/v1/nodes", node_object(self.config, health, now_rfc3339()))
                log.info("node created", extra=fields(node=self.config.node_name))
            except KubeError as again:
                if again.status != 409:
                    raise
                node = self.patch_status(health)  # someone created it meanwhile
        self._reconcile_spec(node)
        self.uid = str(node["metadata"]["uid"])
        self._conditions = list((node.get("status") or {}).get("conditions") or [])
        return self.uid

    def _reconcile_spec(self, node: Mapping[str, Any]) -> None:
        """Labels and our taint as configured (a restart may have changed them)."""
        meta = node.get("metadata") or {}
        patch: dict[str, Any] = {}
        want_labels = labels(self.config)
        if any((meta.get("labels") or {}).get(k) != v for k, v in want_labels.items()):
            patch["metadata"] = {"labels": want_labels}
        taints = merged_taints((node.get("spec") or {}).get("taints") or [], taint(self.config))
        if taints is not None:
            patch["spec"] = {"taints": taints}
        if patch:
            self.kube.patch(self.path, patch, content_type=MERGE)

    def patch_status(self, health: Health) -> dict[str, Any]:
        """Write the node status (conditions merged by type, heartbeats bumped)."""
        self.health = health
        status = node_status(self.config, health, now_rfc3339(), self._conditions)
        node = self.kube.patch(self.path + "/status", {"status": status})
        self.uid = str(node["metadata"]["uid"])
        self._conditions = status["conditions"]
        return node

    def delete(self) -> None:
        """Remove the Node object (decommission only; a normal stop keeps it)."""
        try:
            self.kube.delete(self.path)
        except KubeError as err:
            if not err.not_found:
                raise
