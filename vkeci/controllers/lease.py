"""The node Lease in ``kube-node-lease``: the heartbeat the control plane watches.

Renewed by PUT with the last resourceVersion (no GET on the happy path); on 409 the lease is
re-read and the PUT retried; on 404 it is created. The Lease is owned by the Node, so it is
garbage-collected with it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from vkeci.clients.kube import KubeClient, KubeError
from vkeci.controllers.clock import monotonic, utcnow
from vkeci.core.node import LEASE_NAMESPACE, lease_object
from vkeci.core.times import micro_time
from vkeci.log import fields, get_logger

log = get_logger("lease")


class LeaseController:
    """Keeps ``kube-node-lease/<node>`` renewed."""

    def __init__(self, kube: KubeClient, node_name: str, duration: int = 40) -> None:
        self.kube = kube
        self.node_name = node_name
        self.duration = duration
        self.collection = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases"
        self.path = f"{self.collection}/{quote(node_name, safe='')}"
        self._latest: dict[str, Any] | None = None
        self.renewed_at: float | None = None  # monotonic time of the last successful renewal (metrics)

    def renew(self, node_uid: str) -> dict[str, Any]:
        """Renew (or create) the lease; raises KubeError when the API server cannot be reached."""
        for _ in range(5):
            lease = self._latest or self._get_or_create(node_uid)
            if lease.get("_created"):
                lease.pop("_created")
                self._latest = lease
                self.renewed_at = monotonic()
                return lease
            body = dict(lease)
            spec = dict(body.get("spec") or {})
            spec.update({"holderIdentity": self.node_name, "leaseDurationSeconds": self.duration})
            spec["renewTime"] = micro_time(utcnow())
            body["spec"] = spec
            meta = dict(body.get("metadata") or {})
            # A Node deleted and registered again has a new UID; an owner reference to the old one would
            # have the garbage collector delete the lease.
            if node_uid and [o.get("uid") for o in meta.get("ownerReferences") or []] != [node_uid]:
                meta["ownerReferences"] = lease_object(self.node_name, node_uid, 0, "")["metadata"]["ownerReferences"]
            body["metadata"] = meta
            try:
                self._latest = self.kube.put(self.path, body)
                self.renewed_at = monotonic()
                return self._latest
            except KubeError as err:
                self._latest = None
                if err.conflict or err.not_found:
                    log.debug("lease changed under us, re-reading", extra=fields(status=err.status))
                    continue
                raise
        raise KubeError(409, "Conflict", "lease kept changing during 5 renewals", "PUT", self.path)

    def _get_or_create(self, node_uid: str) -> dict[str, Any]:
        try:
            return self.kube.get(self.path)
        except KubeError as err:
            if not err.not_found:
                raise
        created = self.kube.post(
            self.collection, lease_object(self.node_name, node_uid, self.duration, micro_time(utcnow()))
        )
        log.info("lease created", extra=fields(lease=f"{LEASE_NAMESPACE}/{self.node_name}"))
        created["_created"] = True
        return created
