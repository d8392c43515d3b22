"""Events about pods, as the kubelet of this node posts them: the daemon's own, and ECI's.

``EventRecorder`` owns one lock (which ECI events of a group were already claimed for posting)
and the **events-N** threads: ECI's events (about 4 per pod) trail the statuses they describe and
never hold up the next status poll. Without the threads (tests, ``event_writers=0``) the events a
status poll found are held and posted at the end of that poll, after its statuses.

An ECI event keeps a deterministic name (``core.events.event_name``): posting it again answers
409, and then its ``count``/``lastTimestamp`` are patched instead.
"""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from vkeci.clients.kube import KubeError
from vkeci.controllers.clock import utcnow
from vkeci.controllers.groups import GroupRecord
from vkeci.controllers.ports import KubeApi, PodTranslator
from vkeci.core.events import daemon_event
from vkeci.core.identity import queue_key
from vkeci.log import fields, get_logger
from vkeci.metrics import Metrics

log = get_logger("pods")
JSON = dict[str, Any]
# What a status write leaves for the recorder: the record, the pod, the described group, and when.
Applied = tuple[GroupRecord, JSON, JSON, datetime]


class EventRecorder:
    """Posts Events; see the module docstring."""

    def __init__(
        self, kube: KubeApi, node: str, translator: PodTranslator, writers: int, *, metrics: Metrics | None = None
    ) -> None:
        self.kube = kube
        self.metrics = metrics or Metrics()
        self.node = node
        self.translator = translator
        self.writers = writers
        self._lock = threading.Lock()
        self.queue: queue.Queue[tuple[JSON, JSON]] | None = None  # set while the event threads run
        self._held: list[Applied] = []  # without event threads: posted by flush()

    def emit(self, pod: JSON, kind: str, reason: str, message: str) -> None:
        """Post one of the daemon's own Events about the pod now; a failure is logged, never fatal."""
        namespace = (pod.get("metadata") or {}).get("namespace") or "default"
        body = daemon_event(pod, kind, reason, message, self.node, utcnow(), uuid.uuid4().hex[:16])
        try:
            self.kube.post(f"/api/v1/namespaces/{namespace}/events", body)
        except KubeError as err:
            self.metrics.events.labels("daemon", "dropped").inc()
            log.warning("event not recorded", extra=fields(pod=queue_key(pod), reason=reason, error=str(err)))
            return
        self.metrics.events.labels("daemon", "posted").inc()

    def seen(self, record: GroupRecord, pod: JSON, group: JSON, now: datetime) -> None:
        """Count the group's current events as posted (an adopted group's were posted before the restart:
        re-posting thousands of them would cost two writes each, POST, 409, PATCH, for nothing)."""
        with self._lock:
            for event in self.translator.events(pod, group, now):
                record.events.add(_event_id(event))

    def _claim(self, record: GroupRecord, pod: JSON, group: JSON, now: datetime) -> list[JSON]:
        """The group's events not posted yet, marked as posted under the lock (no thread posts one twice)."""
        fresh = []
        with self._lock:
            for event in self.translator.events(pod, group, now):
                eid = _event_id(event)
                if eid not in record.events:
                    record.events.add(eid)
                    fresh.append(event)
        return fresh

    def relay(self, applied: Applied) -> None:
        """After a status write: hand the group's new events to the event threads (or hold them)."""
        events = self.queue
        if events is None:
            with self._lock:
                self._held.append(applied)
            return
        for event in self._claim(*applied):
            events.put((applied[1], event))

    def post_new(self, applied: Applied) -> None:
        """Post the group's events not posted yet, now, on this thread."""
        for event in self._claim(*applied):
            self.post(applied[1], event)

    def flush(self) -> None:
        """Post what ``relay`` held because no event thread runs."""
        with self._lock:
            held, self._held = self._held, []
        for applied in held:
            self.post_new(applied)

    def post(self, pod: Mapping[str, Any], event: JSON) -> None:
        """Create the translated ECI event; if it exists (same deterministic name), bump its count."""
        namespace = (pod.get("metadata") or {}).get("namespace") or "default"
        collection = f"/api/v1/namespaces/{namespace}/events"
        try:
            try:
                self.kube.post(collection, event)
            except KubeError as err:
                if err.status != 409:
                    raise
                name = (event.get("metadata") or {}).get("name")
                bump = {"count": event.get("count"), "lastTimestamp": event.get("lastTimestamp")}
                self.kube.patch(f"{collection}/{name}", bump, content_type="application/merge-patch+json")
        except KubeError as err:
            self.metrics.events.labels("eci", "dropped").inc()
            log.warning("event not recorded", extra=fields(pod=queue_key(pod), error=str(err)))
            return
        self.metrics.events.labels("eci", "posted").inc()

    def loop(self, stop: threading.Event) -> None:
        """Post queued events until ``stop`` (a failure is logged by ``post``, never fatal)."""
        events = self.queue
        assert events is not None
        while not stop.is_set():
            try:
                pod, event = events.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self.post(pod, event)
            except Exception:
                log.exception("event post crashed")

    def threads(self, stop: threading.Event) -> list[threading.Thread]:
        """The events-N threads (not started); none with ``writers=0``."""
        if self.writers <= 0:
            return []
        self.queue = queue.Queue()
        return [
            threading.Thread(target=self.loop, args=(stop,), name=f"events-{i}", daemon=True)
            for i in range(self.writers)
        ]


def _event_id(event: Mapping[str, Any]) -> str:
    """Identity of a translated event occurrence: its deterministic name plus its count."""
    name = (event.get("metadata") or {}).get("name") or f"{event.get('reason')}|{event.get('message')}"
    return f"{name}|{event.get('count')}"
