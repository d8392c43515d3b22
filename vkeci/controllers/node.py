"""The virtual Node: how it is registered and kept fresh (what it looks like is ``vkeci.core.node``).

Status is written as a strategic-merge PATCH of ``nodes/<name>/status`` that touches only the
conditions this daemon owns (merged by type), so conditions written by others survive. Taints are a
list replaced as a whole, so they are written with the node's resourceVersion as a precondition and
re-read on a conflict (the node lifecycle controller writes taints too).

``Heartbeat`` owns three threads: **heartbeat** (the lease every ``lease_interval``, the node status
every ``node_status_interval`` and at once when the health changes), **ping** (a cheap ECI call every
``ping_interval``, every ``ping_retry_interval`` while failing, fed to ``core.reachability``) and
**watch-node** (the own Node object: a deleted Node is registered again within about a second).

``Ready`` is True while the pod controller runs; an unreachable ECI sets the ``ECIReachable`` condition
False and the NoSchedule taint ``virtual-kubelet.io/eci-unreachable`` instead (``core.node`` says why).
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
from vkeci.controllers.ports import JSON, PodsRunning
from vkeci.controllers.watch import Reflector
from vkeci.core.node import Health, labels, node_object, node_status, wanted_taints
from vkeci.core.reachability import Reachability, ReachabilitySettings
from vkeci.core.times import rfc3339
from vkeci.core.translate import is_daemonset_pod
from vkeci.log import fields, get_logger
from vkeci.metrics import DROPPED

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
        """Labels and our taints as configured and as the health says (a restart may have changed them)."""
        for _ in range(5):
            meta = node.get("metadata") or {}
            patch: dict[str, Any] = {}
            want_labels = labels(self.config)
            if any((meta.get("labels") or {}).get(k) != v for k, v in want_labels.items()):
                patch["metadata"] = {"labels": want_labels}
            existing = (node.get("spec") or {}).get("taints") or []
            taints = wanted_taints(existing, self.config, self.health, rfc3339(utcnow()))
            if taints is not None:
                # The list is replaced whole: only over the version it was computed from.
                patch["spec"] = {"taints": taints}
                patch.setdefault("metadata", {})["resourceVersion"] = meta.get("resourceVersion")
            if not patch:
                return
            try:
                self.kube.patch(self.path, patch, content_type=MERGE)
                return
            except KubeError as err:
                if not err.conflict:
                    raise
                node = self.kube.get(self.path)  # someone else changed the node meanwhile: recompute
        raise KubeError(409, "Conflict", "node taints kept changing during 5 updates", "PATCH", self.path)

    def update_taints(self, health: Health) -> None:
        """Set or clear the unreachable taint as ``health`` says (re-reading the node)."""
        self.health = health
        self._reconcile_spec(self.kube.get(self.path))

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
    """Keeps the node's lease and status fresh and its conditions honest; see the module docstring."""

    def __init__(
        self,
        node: NodeController,
        lease: LeaseController,
        ping: Callable[[], None],
        endpoint: str,
        settings: NodeSettings,
        *,
        pods: PodsRunning | None = None,
        on_eci_change: Callable[[bool, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``pods``: Ready only while it runs (None: always). ``on_eci_change(reachable, message)`` is called
        on every change of ECI's reachability (the pod controller holds creates while it is False)."""
        self.node = node
        self.lease = lease
        self._ping = ping
        self.endpoint = endpoint
        self.settings = settings
        self.pods = pods
        self.on_eci_change = on_eci_change
        self.clock = clock
        self.reachability = Reachability(
            ReachabilitySettings(
                ping_interval=settings.ping_interval,
                retry_interval=settings.ping_retry_interval,
                unreachable_after=settings.eci_unreachable_after,
                refused_failures=settings.eci_refused_failures,
            )
        )
        self._eci_message = ""  # why ECI is unreachable, as of the change (stable: no PATCH per failed ping)
        self.health = self.current()
        self._written: Health | None = None  # the health of the last status written
        self._health_changed = threading.Event()
        self._gone = False  # the node watch saw the Node deleted
        self._last_status = time.monotonic()

    def current(self) -> Health:
        """The health to report now."""
        ready = self.pods is None or self.pods.running()
        reachable = self.reachability.reachable
        return Health(ready=ready, eci_reachable=reachable, message="" if reachable else self._eci_message)

    def refresh(self) -> None:
        """Re-read the health (e.g. the pod controller started); a change is written at once."""
        health = self.current()
        if health != self.health:
            if health.ready != self.health.ready:
                level = logging.INFO if health.ready else logging.WARNING
                why = "the pod controller runs" if health.ready else "the pod controller is not running"
                log.log(level, "node Ready changed", extra=fields(ready=health.ready, why=why))
            self.health = health
            self._health_changed.set()

    def ping(self) -> None:
        """Feed one ECI ping to the reachability state machine; report a change."""
        error, refused = None, False
        try:
            self._ping()
        except EciError as err:
            if err.outcome == DROPPED:
                return  # our own rate limit kept the ping from being sent: it says nothing about ECI
            if err.outcome != "throttled":  # a throttled answer is an answer: ECI is reachable
                error, refused = f"ECI endpoint {self.endpoint} fails: {err}", err.refused
        except Exception as err:  # e.g. the credential chain failing: ECI cannot be used either
            error = f"ECI cannot be called: {type(err).__name__}: {err}"
        if not self.reachability.observe(self.clock(), error, refused=refused):
            return
        reachable = self.reachability.reachable
        self._eci_message = self.reachability.message
        log.log(
            logging.INFO if reachable else logging.WARNING,
            "ECI reachability changed",
            extra=fields(reachable=reachable, **({} if reachable else {"why": self._eci_message})),
        )
        if self.on_eci_change is not None:
            self.on_eci_change(reachable, self._eci_message)
        self.refresh()

    def register(self, stop: threading.Event) -> bool:
        """Register the node, retrying (0.5 s → 30 s) until it works; False if ``stop`` came first."""
        done, uid = retry_until(
            stop, lambda: self.node.register(self.health), "node registration", log, Backoff(0.5, 30.0), (KubeError,)
        )
        if done:
            self._written = self.health
            log.info("node registered", extra=fields(node=self.node.config.node_name, uid=uid))
        return done

    def node_deleted(self) -> None:
        """The Node object is gone (the node watch saw it): register it again at the next beat, now."""
        self._gone = True
        self._health_changed.set()

    def beat(self, stop: threading.Event) -> None:
        """Renew the lease; patch node status when ``node_status_interval`` passed or health changed."""
        if self._gone:
            self._gone = False
            log.warning("node object was deleted, registering it again")
            self._health_changed.clear()
            if self.register(stop):
                self._last_status = time.monotonic()
        try:
            self.lease.renew(self.node.uid)
        except KubeError as err:
            log.warning("lease renewal failed", extra=fields(error=str(err)))
        self.refresh()
        due = time.monotonic() - self._last_status >= self.settings.node_status_interval
        if not (due or self._health_changed.is_set()):
            return
        self._health_changed.clear()
        health = self.health
        try:
            self.node.patch_status(health)
            if self._written is None or health.eci_reachable != self._written.eci_reachable:
                self.node.update_taints(health)
            self._written = health
            self._last_status = time.monotonic()
        except KubeError as err:
            if err.not_found:
                log.warning("node object was deleted, registering it again")
                self.register(stop)
            else:
                self._health_changed.set()  # written at the next beat
                log.warning("node status update failed", extra=fields(error=str(err)))

    def heartbeat_loop(self, stop: threading.Event) -> None:
        """Beat until ``stop``, whatever goes wrong in one beat; a health change beats at once."""
        while not stop.is_set():
            guarded(log, "heartbeat", lambda: self.beat(stop))
            self._health_changed.wait(self.settings.lease_interval)

    def watch(self, kube: KubeClient) -> Reflector:
        """The watch of the own Node object (``node_deleted`` when it goes)."""
        name = self.node.config.node_name

        def on_list(items: list[JSON]) -> None:
            if not any((n.get("metadata") or {}).get("name") == name for n in items):
                self.node_deleted()

        def on_event(kind: str, obj: JSON) -> None:
            if kind == "DELETED":
                self.node_deleted()

        return Reflector(
            kube,
            "/api/v1/nodes",
            what="node",
            on_list=on_list,
            on_event=on_event,
            params={"fieldSelector": f"metadata.name={name}"},
        )

    def threads(
        self, stop: threading.Event, liveness: Liveness | None = None, kube: KubeClient | None = None
    ) -> list[threading.Thread]:
        """The heartbeat and ping threads, and with ``kube`` the node watch (not started); ``liveness``
        watches heartbeat and ping."""
        beat_stop, ping_stop = stop, stop
        if liveness is not None:
            beat_stop = liveness.stop_for("heartbeat", stop, self.settings.lease_interval)
            ping_stop = liveness.stop_for("ping", stop, self.settings.ping_interval)

        def ping_loop() -> None:
            run_periodic(ping_stop, self.reachability.next_ping_in, self.ping, "ECI ping", log)

        threads = [
            threading.Thread(target=self.heartbeat_loop, args=(beat_stop,), name="heartbeat", daemon=True),
            threading.Thread(target=ping_loop, name="ping", daemon=True),
        ]
        if liveness is not None:
            for thread in threads:
                liveness.track(thread)
        if kube is not None:
            reflector = self.watch(kube)
            threads.append(threading.Thread(target=reflector.run, args=(stop,), name="watch-node", daemon=True))
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
