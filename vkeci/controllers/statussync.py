"""ECI → Kubernetes: why a pod's status is what it is, and why it is late when it is.

``StatusSync`` owns one lock (the backlog, the writes in flight, and the listing marks of the
records) and two kinds of threads:

* **status**: one tick every ``status_interval`` (``transition_interval`` while any group is on
  its way somewhere, and soon after a create), fully every ``full_status_interval``. A tick lists
  the groups whose status changed (DescribeContainerGroupStatus) and those with new events
  (DescribeContainerGroupEvents), by this node's tags with SinceSecond; each group whose listing
  differs from what was last written joins the backlog. The backlog is described (≤20 ids per
  DescribeContainerGroups) oldest pod first, as many as the writers have room for.
* **status-write-N**: a pool that writes the described groups' statuses as strategic-merge
  patches with a UID precondition, only when they change, then hands the new events to the
  event recorder.

**Lost groups.** Every ``lost_check_interval`` (10 s) a tick lists every group of the node (the
status listing without SinceSecond) and looks for each tracked group. An ECI error is never read as
"the group is gone" (the tick raises and concludes nothing). A group is gone when two looks by two
APIs both miss it: the full listing by tags (DescribeContainerGroupStatus) and then a describe by
id (DescribeContainerGroups); and only a group that ECI has shown us once (listed or described), or
that is older than ``lost_grace``, may be missing at all: a group just created may not be listed yet
(eventual consistency), but a group ECI has shown does not vanish from both APIs except by deletion.
A lost group's pod is then restarted or failed as its restartPolicy says (``core.restarts``): the
pod's worker creates the next attempt (``PodSync``), or the pod fails with ContainerGroupDeleted.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime
from functools import partial
from typing import Any

from vkeci.clients.eci import EciError, chunks
from vkeci.clients.kube import KubeError, pod_path
from vkeci.controllers.clock import utcnow
from vkeci.controllers.groups import GroupRecord
from vkeci.controllers.listing import Listing
from vkeci.controllers.loops import Streak, guarded
from vkeci.controllers.podcache import PodCache
from vkeci.controllers.ports import KubeApi
from vkeci.controllers.recorder import Applied
from vkeci.controllers.shared import Part, Shared
from vkeci.core import identity
from vkeci.core.identity import tag_map, uid_of
from vkeci.core.restarts import restart_policy, restarts_after_loss
from vkeci.core.status import DELETED_REASON, TERMINAL, deleted_message
from vkeci.core.times import parse
from vkeci.core.writeback import group_summary, missing_annotations, status_changed, verdict, with_stale_ips_deleted
from vkeci.log import fields, get_logger
from vkeci.metrics import Metrics

log = get_logger("pods")
JSON = dict[str, Any]
Marks = tuple[str | None, str | None]  # the (status, events) listings' marks; None: that listing did not change


class StatusWriter:
    """PATCHes ``pods/<name>/status`` and keeps the answer in the cache (used by both sync directions)."""

    def __init__(self, kube: KubeApi, cache: PodCache, metrics: Metrics | None = None) -> None:
        self.kube = kube
        self.cache = cache
        self.metrics = metrics or Metrics()

    def write(self, pod: JSON, status: JSON, *, annotations: dict[str, str] | None = None) -> bool:
        """PATCH the pod's status if ``status`` changes anything; True if written.

        ``annotations`` ride along in the same write (pods/status keeps metadata changes other than
        owner references: one request per pod fewer than a separate annotation PATCH)."""
        current = pod.get("status") or {}
        if current.get("phase") in TERMINAL or not status_changed(current, status):
            return False
        meta = pod.get("metadata") or {}
        patch: JSON = {"metadata": {"uid": uid_of(pod)}, "status": with_stale_ips_deleted(current, status)}
        if annotations:
            patch["metadata"]["annotations"] = annotations
        try:
            path = pod_path(meta.get("namespace") or "default", str(meta.get("name")), "status")
            updated = self.kube.patch(path, patch)
        except KubeError as err:
            if err.not_found or err.conflict:  # gone, or re-created under the same name
                return False
            raise
        self.cache.replace(updated)
        if status.get("phase") == "Running" and current.get("phase") != "Running":
            started = _started_at(status)
            if started is not None:
                self.metrics.status_lag.observe(max(0.0, (utcnow() - started).total_seconds()))
        return True


class StatusSync(Part):
    """Polls ECI and writes pod statuses; see the module docstring."""

    def __init__(self, shared: Shared, writer: StatusWriter) -> None:
        super().__init__(shared)
        self.writer = writer
        self._lock = threading.Lock()
        # Groups whose listing changed and that wait to be described, and those being written.
        self.backlog: dict[str, Marks] = {}
        self._writing: dict[str, Marks] = {}
        self._write_futures: set[Future[None]] = set()
        self._pool: ThreadPoolExecutor | None = None
        self._last_poll = 0.0
        self._last_full = 0.0
        self._last_presence = 0.0
        self._wake = threading.Event()
        self._stop: threading.Event | None = None  # the status thread's, once it runs: a page retry ends with it

    def describe_again(self, group_id: str) -> None:
        """Someone else wrote over the status of this group's pod: describe it at the next tick (soon: a
        backlog makes the ticks quick), and write the status back."""
        with self._lock:
            self.backlog.setdefault(group_id, (None, None))
        self._wake.set()

    def wake(self) -> None:
        """A group was just created: the status loop ticks soon (batching the creates of a burst)."""
        self._wake.set()

    # ---- one tick ------------------------------------------------------------------------

    def poll(self, full: bool, *, wait_writes: bool = True, presence: bool = False) -> int:
        """One status tick; returns how many groups it described. Raises EciError if a listing or a
        describe fails (nothing is lost: what was not described stays in the backlog). A ``full``
        tick, or one with ``presence``, lists every group and looks for lost ones.

        A listing covers the time since the previous tick plus two seconds of slack. With
        ``wait_writes`` the tick returns when every write has ended; the status loop does not wait,
        so in a burst the next listing overlaps this tick's writes and no pod waits for a whole
        tick of other pods' writes."""
        now = self.clock()
        started = time.monotonic()
        window = math.ceil(now - self._last_poll) + 2 if self._last_poll else None
        # With a backlog that fills the writers' next round, listing again would only fetch the same
        # changes once more (windows overlap by the 2 s of slack); the next listing's window simply
        # reaches back to the last one.
        presence = full or presence
        if presence:
            self._last_presence = now  # when it was tried: a failing ECI is not asked again at once
        lists = presence or window is None or len(self.backlog) < self.settings.status_in_flight
        # Each page retried (``Listing``): at 5,000 pods a full status listing is 25 pages.
        pager = Listing.per_settings("status listing", log, self.settings, stop=self._stop)
        statuses = self.eci.changed_since(self.selector, None if presence else window, pager=pager) if lists else []
        # Events of groups adopted at start-up are not re-posted, so the first tick lists none.
        events = self.eci.events_since(self.selector, window, pager=pager) if lists and window is not None else []
        listed = time.monotonic()
        status_marks = _marks(statuses, lambda rec: rec)
        event_marks = _marks(events, lambda rec: rec.get("Events") or [])
        known = self.groups.by_group_id()
        with self._lock:
            for gid, mark in status_marks.items():
                self._queue_describe(known.get(gid), gid, mark, None)
            for gid, mark in event_marks.items():
                if gid in known:
                    self._queue_describe(known[gid], gid, None, mark)
            # New groups show up in the status listing once they change state; only a group the
            # listing keeps missing is described directly (full polls, after the grace period).
            if full:
                stale = now - self.settings.lost_grace
                for r in known.values():
                    if r.group is None and r.seen_at < stale:
                        self.backlog.setdefault(r.group_id, (None, None))
            take = self._next_to_describe(known)
        described: list[JSON] = []
        for part in chunks(take):
            groups = self.eci.describe(part)
            described.extend(groups)
            self._dispatch_writes(part, groups, known)
        if presence:
            self._detect_lost(known, set(status_marks) | {str(g.get("ContainerGroupId")) for g in described})
        if full:
            self._last_full = now
        if lists:
            self._last_poll = now
        if wait_writes:
            self.flush_writes()
        self.recorder.flush()
        log.debug(
            "status poll",
            extra=fields(
                full=full,
                window=window if lists else "skipped",
                listed=len(statuses) + len(events),
                described=len(take),
                backlog=len(self.backlog),
                writing=len(self._writing),
                list_s=round(listed - started, 3),
                total_s=round(time.monotonic() - started, 3),
            ),
        )
        return len(take)

    def _queue_describe(
        self, record: GroupRecord | None, gid: str, status_mark: str | None, events_mark: str | None
    ) -> None:
        """Put a group whose listing changed in the backlog (under the lock), keeping the newest marks."""
        if record is not None:
            status_mark = None if status_mark == record.status_mark else status_mark
            events_mark = None if events_mark == record.events_mark else events_mark
            if status_mark is None and events_mark is None:
                return
        writing = self._writing.get(gid)
        if writing is not None and status_mark in (None, writing[0]) and events_mark in (None, writing[1]):
            return  # those very listings are being written now
        old_status, old_events = self.backlog.get(gid, (None, None))
        self.backlog[gid] = (status_mark or old_status, events_mark or old_events)

    def _next_to_describe(self, known: dict[str, GroupRecord]) -> list[str]:
        """Backlog groups to describe now (under the lock): oldest pod first, none being written, no
        more than the writers have room for. In a burst the pods that have waited longest go first
        (group ids are random), and no status is written from a describe that waited in a queue."""
        room = self.settings.status_in_flight - len(self._writing)
        if room <= 0:
            return []
        ready = [gid for gid in self.backlog if gid not in self._writing]
        ready.sort(key=lambda gid: (known[gid].seen_at if gid in known else 0.0, gid))
        return ready[:room]

    def _dispatch_writes(self, part: list[str], groups: list[JSON], known: dict[str, GroupRecord]) -> None:
        """Described groups go to the status writers; a group the describe did not return (gone)
        counts as seen, for ``_detect_lost`` to judge."""
        returned = {str(g.get("ContainerGroupId")) for g in groups}
        with self._lock:
            for gid in part:
                marks = self.backlog.pop(gid, (None, None))
                if gid in returned:
                    self._writing[gid] = marks
                else:
                    _set_marks(known.get(gid), marks)
        if self._pool is None and self.settings.status_writers > 1:
            self._pool = ThreadPoolExecutor(self.settings.status_writers, thread_name_prefix="status-write")
        for group in groups:
            gid = str(group.get("ContainerGroupId"))
            if self._pool is None:
                self._write_one(gid, known.get(gid), group)
                continue
            future = self._pool.submit(self._write_one, gid, known.get(gid), group)
            with self._lock:
                self._write_futures.add(future)
            future.add_done_callback(self._forget_write)

    def _forget_write(self, future: Future[None]) -> None:
        with self._lock:
            self._write_futures.discard(future)

    def _write_one(self, gid: str, record: GroupRecord | None, group: JSON) -> None:
        """One status write (a status writer's task): then remember which listings it reflected and
        hand the group's new events to the recorder (they trail the statuses, about 4 per pod). A
        failed write goes back to the backlog, for the next tick to describe again."""
        try:
            applied = self._apply_status(group)
        except Exception as err:
            log.warning("pod status not written, the next poll retries", extra=fields(group=gid, error=str(err)))
            with self._lock:
                self.backlog.setdefault(gid, self._writing.pop(gid, (None, None)))
            return
        with self._lock:
            _set_marks(record, self._writing.pop(gid, (None, None)))
        if applied is not None:
            self.recorder.relay(applied)

    def flush_writes(self) -> None:
        """Wait until every status handed to the writers has been written (or has failed)."""
        with self._lock:
            futures = list(self._write_futures)
        wait(futures)

    # ---- one group -----------------------------------------------------------------------

    def apply_group(self, group: JSON) -> None:
        """Reflect one described group onto its pod now: status, write-back annotations, new events."""
        applied = self._apply_status(group)
        if applied is not None:
            self.recorder.post_new(applied)

    def _apply_status(self, group: JSON) -> Applied | None:
        """The status half of ``apply_group``; returns what the recorder needs, None if nothing to do."""
        uid = tag_map(group.get("Tags") or []).get(identity.TAG_UID, "")
        record = self.groups.get(uid)
        if record is None:
            return None
        record.group = group_summary(group)
        pod = self.cache.pod_of(uid)
        if pod is None or (pod.get("metadata") or {}).get("deletionTimestamp"):
            return None
        now = utcnow()
        annotations = {} if record.annotated else missing_annotations(pod, record.annotations())
        status = self.translator.pod_status(pod, group, now)
        record.verdict = verdict(status)
        written = self.writer.write(pod, status, annotations=annotations)
        if written or not annotations:
            record.annotated = True
        else:
            self.queue.add(record.key)  # the status did not change: the pod's worker writes the annotations
        if record.terminal:
            if not record.finished_at:
                record.finished_at = self.clock()
            self.queue.add(record.key)  # group cleanup once the API shows the terminal phase
        return record, pod, group, now

    def _detect_lost(self, known: dict[str, GroupRecord], present: set[str]) -> None:
        """Groups we track that a successful full listing did not return: confirm by a describe, then
        restart or fail their pods (see the module docstring)."""
        now = self.clock()
        suspects = [
            r.group_id
            for gid, r in known.items()
            if gid not in present
            and not r.terminal
            and (r.group is not None or r.status_mark or now - r.seen_at > self.settings.lost_grace)
        ]
        if not suspects:
            return
        still = {str(g.get("ContainerGroupId")) for g in self.eci.describe(suspects, with_event=False)}
        for gid in suspects:
            if gid not in still:
                self.lost(known[gid])

    def lost(self, record: GroupRecord, pod: JSON | None = None) -> None:
        """``record``'s group is gone: its pod's worker creates the next attempt, or the pod fails.
        ``pod``: the pod, when the record is not in the index (by default the cached pod of the record)."""
        gid = record.group_id
        current = self.groups.get(record.uid)
        if current is not None and current.group_id != gid:
            return  # the pod has another group since the tick began
        pod = pod if pod is not None else self.cache.pod_of(record.uid)
        if pod is None or (pod.get("metadata") or {}).get("deletionTimestamp"):
            self.groups.forget(record.uid)
            return
        if restarts_after_loss(pod):
            attempt = max(record.attempt, identity.attempt_of(pod)) + 1
            # The plan first: the worker that finds the record gone must find the plan.
            restart = self.groups.plan_restart(record.uid, gid, attempt, self.clock())
            self.groups.forget(record.uid)
            log.warning(
                "group deleted outside vk-eci, recreating it",
                extra=fields(pod=record.key, group=gid, attempt=attempt, back_off=restart.delay),
            )
            self.queue.add(record.key)
            return
        self.groups.forget(record.uid)
        self.groups.lost_uids.add(record.uid)
        log.warning("group deleted outside vk-eci, failing its pod", extra=fields(pod=record.key, group=gid))
        self.writer.write(pod, self.translator.missing_group_status(pod, utcnow(), gid))
        policy = restart_policy(pod)
        self.recorder.emit(
            pod, "Warning", DELETED_REASON, f"{deleted_message(gid)}; not recreated (restartPolicy {policy})"
        )

    # ---- the loop ------------------------------------------------------------------------

    def next_poll_in(self) -> float:
        """Seconds to the next status tick: short while any group is on its way somewhere."""
        with self._lock:
            busy = bool(self.backlog)
        records = self.groups.records()
        busy = busy or any(not r.settled for r in records)
        wait = self.settings.transition_interval if busy else self.settings.status_interval
        if records and self._last_presence:  # the next look for lost groups is due
            wait = min(wait, max(0.0, self._last_presence + self.settings.lost_check_interval - self.clock()))
        return wait

    def loop(self, stop: threading.Event) -> None:
        """The status thread: tick, then wait ``next_poll_in`` (or less, after a create)."""
        self._stop = stop
        streak = Streak()  # an outage: one warning, not one per tick
        while not stop.is_set():
            now = self.clock()
            full = now - self._last_full >= self.settings.full_status_interval
            presence = now - self._last_presence >= self.settings.lost_check_interval
            tick = partial(self.poll, full, wait_writes=False, presence=presence)
            guarded(log, "status poll", tick, (EciError, KubeError), streak)
            self._wake.wait(self.next_poll_in())
            if self._wake.is_set():
                self._wake.clear()
                stop.wait(min(0.5, self.settings.status_interval))  # batch the creates of a burst


def _started_at(status: JSON) -> datetime | None:
    """When ECI started the last of the pod's running containers (the group turned Running), or None."""
    times = [
        parse(((c.get("state") or {}).get("running") or {}).get("startedAt"))
        for c in status.get("containerStatuses") or []
    ]
    known = [t for t in times if t is not None]
    return max(known) if known else None


def _marks(records: list[JSON], part: Callable[[JSON], Any]) -> dict[str, str]:
    """Group id -> a comparable rendering of ``part`` of its listing record."""
    return {
        str(rec["ContainerGroupId"]): json.dumps(part(rec), sort_keys=True, default=str)
        for rec in records
        if rec.get("ContainerGroupId")
    }


def _set_marks(record: GroupRecord | None, marks: Marks) -> None:
    """Remember the listings a written status reflects: the same listing again costs no describe."""
    if record is not None:
        record.status_mark = marks[0] or record.status_mark
        record.events_mark = marks[1] or record.events_mark
