"""Leader election among the replicas of one node: the Lease ``<namespace>/vkeci-<node>``.

The semantics are client-go's ``tools/leaderelection`` (``LeaseLock``):

* the Lease's spec is the election record: ``holderIdentity``, ``leaseDurationSeconds``, ``acquireTime``,
  ``renewTime``, ``leaseTransitions``;
* a candidate never trusts the times written in the record (another machine's clock): it notes, on its own
  monotonic clock, when it last saw the record *change*, and takes the Lease only once
  ``leaseDurationSeconds`` passed since then without a change;
* every take-over and renewal is an update carrying the resourceVersion that was read, so of two
  candidates racing for an expired Lease exactly one update succeeds (the other gets 409 Conflict);
* taking over from another holder sets ``acquireTime`` and adds one to ``leaseTransitions``; a renewal
  keeps both; a clean stop releases the Lease (empty holder) so that a standby takes over at once.

What client-go leaves out (it is not a fence) this module adds: :meth:`LeaderElector.may_write` says
whether this replica may still write, from its own monotonic clock: until ``renew_deadline`` after the
*start* of its last successful renewal. A standby cannot take over before ``lease_duration`` after it
saw that renewal, which is later still; every write of the daemon's controllers is gated on it
(``clients.kube.KubeClient`` and ``clients.eci.EciClient`` take the gate), so a leader that was frozen,
partitioned or slowed stops writing before anyone else may start.

``LeaderElector`` owns one thread, **leader-election**: acquire (a standby reads the Lease every quarter
of ``retry_period``, so it sees each renewal within 0.5 s and takes an expired Lease within as much), then
renew every ``retry_period``. Past the deadline without a renewal the gate is closed; a later renewal of a
Lease that still names this replica reopens it (nobody else can have led meanwhile); once another holder
is seen it calls ``on_lost`` (the daemon exits, to come back as a standby).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from vkeci.clients.kube import KubeClient, KubeError
from vkeci.config import LeaderSettings
from vkeci.controllers.clock import utcnow
from vkeci.core.times import micro_time
from vkeci.log import fields, get_logger

log = get_logger("leader")
JSON = dict[str, Any]
RECORD = ("holderIdentity", "leaseDurationSeconds", "acquireTime", "renewTime", "leaseTransitions")


class LeaderElector:
    """One candidate in the election of a node's daemon; see the module docstring."""

    def __init__(
        self,
        kube: KubeClient,
        settings: LeaderSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], str] = lambda: micro_time(utcnow()),
    ) -> None:
        self.kube = kube  # a client without the write gate: the elector writes the Lease to become leader
        self.settings = settings
        self.clock = clock
        self.now = now
        self.collection = f"/apis/coordination.k8s.io/v1/namespaces/{quote(settings.namespace, safe='')}/leases"
        self.path = f"{self.collection}/{quote(settings.name, safe='')}"
        self._lock = threading.Lock()
        self._valid_until = float("-inf")  # monotonic: this replica may write until then
        self._observed: tuple[Any, ...] | None = None  # the record last seen
        self._observed_at = float("-inf")  # monotonic: when it was first seen
        self._lease: JSON | None = None
        self.leading = threading.Event()  # set once this replica became the leader (never cleared: it exits)
        self.lost = threading.Event()
        self.holder = ""  # the holder last seen (for logs and /readyz)
        self.counts = {"permitted": 0, "refused": 0}  # writes the gate let through / refused
        self.lost_at_wall = ""
        self.first_write_at = 0.0  # wall times of the first and the last write the gate let through
        self.last_write_at = 0.0

    @property
    def where(self) -> str:
        return f"{self.settings.namespace}/{self.settings.name}"

    # ---- the gate --------------------------------------------------------------------------------

    def may_write(self) -> bool:
        """True while this replica holds the Lease by its own clock (see the module docstring); counted."""
        allowed = self.clock() < self._valid_until
        with self._lock:
            self.counts["permitted" if allowed else "refused"] += 1
            if allowed:
                self.last_write_at = time.time()
                self.first_write_at = self.first_write_at or self.last_write_at
        return allowed

    def is_leader(self) -> bool:
        """Whether the Lease is ours and not past the renew deadline (not counted)."""
        return self.clock() < self._valid_until

    def step_down(self) -> None:
        """Close the gate at once (no write from here on)."""
        self._valid_until = float("-inf")

    # ---- one attempt -----------------------------------------------------------------------------

    def _record(self, holder: str, acquire: str, transitions: int, now: str) -> JSON:
        return {
            "holderIdentity": holder,
            "leaseDurationSeconds": max(1, round(self.settings.lease_duration)),
            "acquireTime": acquire,
            "renewTime": now,
            "leaseTransitions": transitions,
        }

    def _observe(self, lease: JSON) -> JSON:
        spec = dict(lease.get("spec") or {})
        record = tuple(spec.get(key) for key in RECORD)
        if record != self._observed:
            self._observed, self._observed_at = record, self.clock()
        self.holder = str(spec.get("holderIdentity") or "")
        self._lease = lease
        return spec

    def _won(self, lease: JSON, sent: float) -> None:
        self._observe(lease)
        # From the start of the attempt: the update took effect after ``sent``, so every standby saw it
        # later and waits lease_duration from then; we stop renew_deadline after ``sent``.
        self._valid_until = sent + self.settings.renew_deadline

    def expires_in(self) -> float:
        """Seconds until a Lease held by another is free for us, by our own observation."""
        duration = float((self._observed or (None, self.settings.lease_duration))[1] or self.settings.lease_duration)
        return self._observed_at + duration - self.clock()

    def try_acquire_or_renew(self) -> bool:
        """Take or renew the Lease once (client-go's ``tryAcquireOrRenew``); True when it is ours now.
        Raises KubeError when the API server does not answer as expected."""
        sent = self.clock()
        now = self.now()
        me = self.settings.identity
        try:
            lease = self.kube.get(self.path)
        except KubeError as err:
            if not err.not_found:
                raise
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.settings.name, "namespace": self.settings.namespace},
                "spec": self._record(me, now, 0, now),
            }
            try:
                created = self.kube.post(self.collection, body)
            except KubeError as again:
                if again.conflict:  # another candidate created it first
                    return False
                raise
            self._won(created, sent)
            return True
        spec = self._observe(lease)
        holder = str(spec.get("holderIdentity") or "")
        if holder and holder != me and self.expires_in() > 0:
            return False
        if holder == me:
            record = self._record(me, str(spec.get("acquireTime") or now), int(spec.get("leaseTransitions") or 0), now)
        else:
            record = self._record(me, now, int(spec.get("leaseTransitions") or 0) + 1, now)
        meta = lease.get("metadata") or {}
        body = {**lease, "metadata": {**meta, "resourceVersion": meta.get("resourceVersion")}, "spec": record}
        try:
            updated = self.kube.put(self.path, body)
        except KubeError as err:
            if err.conflict:  # changed since we read it: someone else renewed or took it
                return False
            raise
        if holder != me:
            log.info(
                "leader lease acquired",
                extra=fields(
                    lease=self.where, identity=me, previous=holder or None, transitions=record["leaseTransitions"]
                ),
            )
        self._won(updated, sent)
        return True

    def _attempt(self) -> bool:
        try:
            return self.try_acquire_or_renew()
        except KubeError as err:
            log.warning("leader lease attempt failed", extra=fields(lease=self.where, error=str(err)))
            return False
        except Exception:  # the election thread must outlive any surprise (the gate stays closed meanwhile)
            log.exception("leader lease attempt crashed, will retry", extra=fields(lease=self.where))
            return False

    # ---- the loop --------------------------------------------------------------------------------

    def run(self, stop: threading.Event, on_leading: Callable[[], None], on_lost: Callable[[], None]) -> None:
        """Acquire, call ``on_leading`` (in its own thread), renew until lost (then ``on_lost``) or ``stop``
        (the caller then calls :meth:`release`)."""
        s = self.settings
        log.info("waiting to lead", extra=fields(lease=self.where, identity=s.identity))
        while not stop.is_set():
            if self._attempt():
                break
            # Held by another: read it again soon (to see each renewal when it happens), and exactly when
            # it expires by our observation.
            stop.wait(max(0.05, min(s.retry_period / 4, self.expires_in())))
        if stop.is_set():
            return
        self.leading.set()
        log.info("leading", extra=fields(lease=self.where, identity=s.identity))
        threading.Thread(target=on_leading, name="leading", daemon=True).start()
        suspended = False
        while not stop.wait(s.retry_period):
            if self._attempt():
                continue
            # Not renewed: try again (client-go retries until renewDeadline). Past the deadline the gate is
            # closed, but while the Lease still names us nobody else can have led (a take-over is a PUT that
            # changes the holder, and ours carry the resourceVersion we read), so a later renewal resumes
            # writing: an API server outage longer than the deadline pauses the leader, it does not end it.
            # Another holder (or a released Lease) means someone else may have led: we are done.
            while True:
                if self.holder != s.identity:
                    self._lost(on_lost)
                    return
                if not self.is_leader() and not suspended:
                    suspended = True
                    log.warning(
                        "leader lease not renewed within the renew deadline: writes stopped until it is",
                        extra=fields(lease=self.where, identity=s.identity),
                    )
                if stop.wait(min(s.retry_period / 2, 0.5)) or self._attempt():
                    break
            if suspended and self.is_leader():
                suspended = False
                log.info("leader lease renewed again: writes resume", extra=fields(lease=self.where))

    def _lost(self, on_lost: Callable[[], None]) -> None:
        self.step_down()
        self.lost_at_wall = self.now()
        self.lost.set()
        log.error(
            "leader lease lost: another replica holds it; writes stopped, exiting to restart as a standby",
            extra=fields(lease=self.where, identity=self.settings.identity, holder=self.holder or None),
        )
        on_lost()

    def release(self) -> None:
        """Give the Lease up (a clean stop) so that a standby takes over without waiting for it to expire."""
        with self._lock:
            if not self.is_leader() or self._lease is None:
                return
            self.step_down()
            lease = self._lease
        spec = dict(lease.get("spec") or {})
        now = self.now()
        body = {**lease, "spec": {**spec, "holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": now}}
        try:
            self.kube.put(self.path, body)
            log.info("leader lease released", extra=fields(lease=self.where))
        except KubeError as err:
            log.warning("leader lease not released (a standby waits for it to expire)", extra=fields(error=str(err)))

    def view(self) -> dict[str, Any]:
        """For ``--stats-file``: who we are, whether we led, and what the gate did."""
        with self._lock:
            counts = dict(self.counts)
        return {
            "identity": self.settings.identity,
            "lease": self.where,
            "leading": self.leading.is_set() and not self.lost.is_set(),
            "lost": self.lost.is_set(),
            "lost_at": self.lost_at_wall or None,
            "writes_permitted": counts["permitted"],
            "writes_refused": counts["refused"],
            "first_write_at": self.first_write_at or None,
            "last_write_at": self.last_write_at or None,
        }
