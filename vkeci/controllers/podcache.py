"""The pods bound to this node, in memory: LIST then WATCH ``spec.nodeName=<node>``.

``PodCache`` owns one lock (the cache) and one thread, **watch**: bookmarks, a server timeout plus
a client read timeout, reconnect with backoff, and a full relist on 410 Gone or after an outage
(the cache may have missed deletions). Every change queues the pod's key for the pod sync. The
cache is also the kubelet API's :class:`vkeci.kubelet.backend.PodLookup`.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

from vkeci.clients.kube import KubeError
from vkeci.controllers.groups import GroupIndex
from vkeci.controllers.loops import Backoff
from vkeci.controllers.ports import KubeApi
from vkeci.controllers.workqueue import WorkQueue
from vkeci.core.identity import queue_key, uid_of
from vkeci.log import fields, get_logger

log = get_logger("pods")
JSON = dict[str, Any]


class PodCache:
    """The node's pods by key (``namespace/name``), kept by LIST + WATCH."""

    def __init__(self, kube: KubeApi, node: str, groups: GroupIndex, queue: WorkQueue, watch_timeout: int) -> None:
        self.kube = kube
        self.node = node
        self.groups = groups
        self.queue = queue
        self.watch_timeout = watch_timeout
        self._lock = threading.Lock()
        self.pods: dict[str, JSON] = {}
        self._seen_at: dict[str, float] = {}  # uid -> when first cached (perf_counter), until its group exists
        self.resource_version = ""
        self.synced = threading.Event()  # set once the start-up reconcile is done

    # ---- the cache -----------------------------------------------------------------------

    def upsert(self, pod: JSON) -> None:
        key = queue_key(pod)
        pod = slim(pod)
        uid = uid_of(pod)
        new = uid not in self.groups  # outside this cache's lock: the index has its own
        with self._lock:
            self.pods[key] = pod
            if new:
                self._seen_at.setdefault(uid, time.perf_counter())
        self.queue.add(key)

    def remove(self, pod: Mapping[str, Any]) -> None:
        key = queue_key(pod)
        with self._lock:
            current = self.pods.get(key)
            if current is not None and uid_of(current) == uid_of(pod):
                del self.pods[key]
            self._seen_at.pop(uid_of(pod), None)
        self.queue.add(key)

    def replace(self, updated: JSON) -> None:
        """Keep the API server's answer to a write, if the cache still holds that very pod."""
        key = queue_key(updated)
        with self._lock:
            if key in self.pods and uid_of(self.pods[key]) == uid_of(updated):
                self.pods[key] = slim(updated)

    def seen_for(self, uid: str) -> float | None:
        """Seconds since the pod was first cached (``vkeci_pod_create_latency_seconds``), once: it is forgotten."""
        with self._lock:
            seen = self._seen_at.pop(uid, None)
        return None if seen is None else time.perf_counter() - seen

    def pod(self, key: str) -> JSON | None:
        with self._lock:
            return self.pods.get(key)

    def pod_of(self, uid: str) -> JSON | None:
        """The cached pod whose group record is ``uid`` (None when the record or the pod is gone)."""
        record = self.groups.get(uid)
        if record is None:
            return None
        pod = self.pod(record.key)
        return pod if pod is not None and uid_of(pod) == uid else None

    def keys(self) -> list[str]:
        with self._lock:
            return list(self.pods)

    def live_uids(self) -> set[str]:
        with self._lock:
            return {uid_of(p) for p in self.pods.values()}

    def get(self, namespace: str, name: str) -> tuple[JSON, str | None] | None:
        """A pod bound to this node and its group id (None while it has none), for the kubelet API."""
        pod = self.pod(f"{namespace}/{name}")
        if pod is None:
            return None
        record = self.groups.get(uid_of(pod))
        return pod, (record.group_id if record else None)

    def list(self) -> list[JSON]:
        """Every pod bound to this node."""
        with self._lock:
            return list(self.pods.values())

    # ---- list / watch --------------------------------------------------------------------

    def _selector(self) -> dict[str, Any]:
        return {"fieldSelector": f"spec.nodeName={self.node}"}

    def relist(self) -> str:
        """LIST the node's pods, replace the cache (queueing every difference), return the list's rv."""
        pods: list[JSON] = []
        params: dict[str, Any] = {**self._selector(), "limit": 500}
        while True:
            page = self.kube.get("/api/v1/pods", params)
            pods.extend(page.get("items") or [])
            cont = (page.get("metadata") or {}).get("continue")
            rv = str((page.get("metadata") or {}).get("resourceVersion") or "")
            if not cont:
                break
            params["continue"] = cont
        seen = {queue_key(p) for p in pods}
        with self._lock:
            gone = [p for k, p in self.pods.items() if k not in seen]
        for pod in gone:
            self.remove(pod)
        for pod in pods:
            self.upsert(pod)
        self.resource_version = rv
        log.info("pods listed", extra=fields(count=len(pods), resource_version=rv))
        return rv

    def watch_once(self, stop: threading.Event) -> None:
        """One WATCH request from the current resourceVersion; raises KubeError (410 → .gone)."""
        timeout = int(self.watch_timeout * random.uniform(1.0, 1.2))
        params = {
            **self._selector(),
            "resourceVersion": self.resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": timeout,
        }
        for event in self.kube.watch("/api/v1/pods", params, read_timeout=timeout + 15):
            if stop.is_set():
                return
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                code = int(obj.get("code") or 0)
                raise KubeError(code, str(obj.get("reason") or "Error"), str(obj.get("message") or ""), "WATCH", "pods")
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if rv:
                self.resource_version = str(rv)
            if kind in ("ADDED", "MODIFIED"):
                self.upsert(obj)
            elif kind == "DELETED":
                self.remove(obj)

    def watch_loop(self, stop: threading.Event) -> None:
        """Watch until ``stop``; relist on 410 Gone, back off (0.5 s → 30 s) on other errors."""
        backoff = Backoff(base=0.5, cap=30.0)
        need_list = not self.resource_version
        while not stop.is_set():
            try:
                if need_list:
                    self.relist()
                    need_list = False
                self.watch_once(stop)
                backoff.reset()
            except KubeError as err:
                if err.gone:
                    log.info("watch expired (410), relisting")
                    need_list = True
                    continue
                delay = backoff.next()
                log.warning("pod watch failed, reconnecting", extra=fields(error=str(err), retry_in=round(delay, 1)))
                stop.wait(delay)
                # After an outage the cache may have missed deletions: relist to be sure.
                need_list = True


def slim(pod: JSON) -> JSON:
    """The pod as the cache keeps it: without managedFields (never read, a large share of a pod object)
    and with its keys and short strings shared with every other cached pod. Decoded JSON repeats
    "containers", "IfNotPresent", the namespace... once per pod: sharing them halves a cached pod
    (BENCHMARKS.md, #6: RSS at 5,000 pods)."""
    meta = pod.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    return _shared(pod)


def _shared(value: Any) -> Any:
    if isinstance(value, dict):
        return {sys.intern(k) if isinstance(k, str) else k: _shared(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shared(v) for v in value]
    if isinstance(value, str) and len(value) <= _SHARED_MAX:
        return sys.intern(value)
    return value


_SHARED_MAX = 64  # long strings (certificates, scripts) are rarely repeated
