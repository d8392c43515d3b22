"""The virtual Node: how it is registered and kept fresh (what it looks like is ``vkeci.core.node``).

Status is written as a strategic-merge PATCH of ``nodes/<name>/status`` that touches only the
conditions this daemon owns (merged by type), so conditions written by others survive.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from vkeci.clients.kube import MERGE, KubeClient, KubeError
from vkeci.config import Config
from vkeci.controllers.clock import utcnow
from vkeci.core.node import Health, labels, merged_taints, node_object, node_status, taint
from vkeci.core.times import rfc3339
from vkeci.log import fields, get_logger

log = get_logger("node")


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
                node = self.kube.post("/api/v1/nodes", node_object(self.config, health, rfc3339(utcnow())))
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
        status = node_status(self.config, health, rfc3339(utcnow()), self._conditions)
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
