"""The virtual Node: how it is registered and kept fresh (what it looks like is ``vkeci.core.node``).

Status is written as a strategic-merge PATCH of ``nodes/<name>/status`` that touches only the
conditions this daemon owns (merged by type), so conditions written by others survive.

``Heartbeat`` owns two threads: **heartbeat** (the lease every ``lease_interval``, the node status
every ``node_status_interval`` and at once when the health changes) and **ping** (a cheap ECI call
every ``ping_interval`` that decides whether the node is honestly Ready).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from vkeci.clients.eci import EciError
from vkeci.clients.kube import MERGE, KubeClient, KubeError, pod_path
from vkeci.config import Config, NodeSettings
from vkeci.controllers.clock import utcnow
from vkeci.controllers.health import Liveness
from vkeci.controllers.lease import LeaseController
from vkeci.controllers.loops import Backoff, guarded, retry_until, run_periodic
from vkeci.controllers.pods import PodController
from vkeci.core.node import Health, labels, merged_taints, node_object, node_status, taint
from vkeci.core.times import rfc3339
from vkeci.core.translate import is_daemonset_pod
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


class Heartbeat:
    """Keeps the node's lease and status fresh and its Ready condition honest; see the module docstring."""

    def __init__(
        self,
        node: NodeController,
        lease: LeaseController,
        ping: Callable[[], None],
        endpoint: str,
        settings: NodeSettings,
    ) -> None:
        self.node = node
        self.lease = lease
        self._ping = ping
        self.endpoint = endpoint
        self.settings = settings
        self.health = Health(ready=True)
        self._health_changed = threading.Event()
        self._last_status = time.monotonic()

    def ping(self) -> None:
        """Update the node's health from one ECI ping."""
        try:
            self._ping()
            health = Health(ready=True)
        except EciError as err:
            health = Health(ready=False, message=f"ECI endpoint {self.endpoint} fails: {err}")
        except Exception as err:  # e.g. the credential chain failing: still an honest NotReady
            health = Health(ready=False, message=f"ECI cannot be called: {type(err).__name__}: {err}")
        if health != self.health:
            log.log(
                logging.INFO if health.ready else logging.WARNING,
                "ECI health changed",
                extra=fields(ready=health.ready, **({"why": health.message} if health.message else {})),
            )
            self.health = health
            self._health_changed.set()

    def register(self, stop: threading.Event) -> bool:
        """Register the node, retrying (0.5 s → 30 s) until it works; False if ``stop`` came first."""
        done, uid = retry_until(
            stop, lambda: self.node.register(self.health), "node registration", log, Backoff(0.5, 30.0), (KubeError,)
        )
        if done:
            log.info("node registered", extra=fields(node=self.node.config.node_name, uid=uid))
        return done

    def beat(self, stop: threading.Event) -> None:
        """Renew the lease; patch node status when ``node_status_interval`` passed or health changed."""
        try:
            self.lease.renew(self.node.uid)
        except KubeError as err:
            log.warning("lease renewal failed", extra=fields(error=str(err)))
        due = time.monotonic() - self._last_status >= self.settings.node_status_interval
        if not (due or self._health_changed.is_set()):
            return
        self._health_changed.clear()
        try:
            self.node.patch_status(self.health)
            self._last_status = time.monotonic()
        except KubeError as err:
            if err.not_found:
                log.warning("node object was deleted, registering it again")
                self.register(stop)
            else:
                log.warning("node status update failed", extra=fields(error=str(err)))

    def heartbeat_loop(self, stop: threading.Event) -> None:
        """Beat until ``stop``, whatever goes wrong in one beat; a health change beats at once."""
        while not stop.is_set():
            guarded(log, "heartbeat", lambda: self.beat(stop))
            self._health_changed.wait(self.settings.lease_interval)

    def threads(self, stop: threading.Event, liveness: Liveness | None = None) -> list[threading.Thread]:
        """The heartbeat and ping threads (not started); ``liveness`` watches both."""
        beat_stop, ping_stop = stop, stop
        if liveness is not None:
            beat_stop = liveness.stop_for("heartbeat", stop, self.settings.lease_interval)
            ping_stop = liveness.stop_for("ping", stop, self.settings.ping_interval)

        def ping_loop() -> None:
            run_periodic(ping_stop, self.settings.ping_interval, self.ping, "ECI ping", log)

        threads = [
            threading.Thread(target=self.heartbeat_loop, args=(beat_stop,), name="heartbeat", daemon=True),
            threading.Thread(target=ping_loop, name="ping", daemon=True),
        ]
        if liveness is not None:
            for thread in threads:
                liveness.track(thread)
        return threads


def decommission(
    kube: KubeClient, node: NodeController, pods: PodController, stop: threading.Event, timeout: float
) -> int:
    """Cordon, delete every pod on the node, wait until they (and their groups) are gone, delete the Node.
    The exit code of `vkeci run --decommission`: 1 when pods are left after ``timeout`` (the Node is kept)."""
    kube.patch(node.path, {"spec": {"unschedulable": True}}, content_type=MERGE)
    deadline = time.monotonic() + timeout

    def draining() -> list[dict[str, Any]]:
        # DaemonSet pods never ran on ECI and would only be re-created (kubectl drain --ignore-daemonsets).
        return [p for p in pods.list_pods() if not is_daemonset_pod(p)]

    while not stop.is_set() and time.monotonic() < deadline:
        left = draining()
        if not left:
            break
        for pod in left:
            meta = pod.get("metadata") or {}
            if meta.get("deletionTimestamp"):
                continue
            try:
                kube.delete(pod_path(meta.get("namespace") or "default", str(meta.get("name"))))
            except KubeError as err:
                if not err.not_found:
                    log.warning("drain: pod delete failed", extra=fields(pod=meta.get("name"), error=str(err)))
        stop.wait(2.0)
    left = draining()
    if left:
        log.error("drain timed out; the Node is kept", extra=fields(pods_left=len(left)))
        return 1
    pods.sweep()
    node.delete()
    log.info("node decommissioned", extra=fields(node=node.config.node_name))
    return 0
