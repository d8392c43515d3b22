"""The container groups this daemon tracks: one record per pod, indexed by pod UID and by pod key.

``GroupIndex`` owns one lock; it guards the index (which records exist), the UID sets and the
pending restarts, never a record's fields: those belong to whoever writes them (pod sync:
``annotated``; status sync: ``group``, ``verdict``, ``finished_at`` and the listing marks; the
event recorder: ``events``).

A pod whose group was deleted outside vk-eci and is to get a new one has a ``Restart`` here from
the moment the status poller confirms the loss until the pod's worker has created the new group;
its back-off (``core.restarts``) is kept per pod in memory, as a kubelet keeps its own.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from vkeci.core.restarts import BACKOFF_RESET, BackOff, next_restart
from vkeci.core.status import group_settled, group_terminal
from vkeci.core.writeback import Verdict, write_back_annotations

JSON = dict[str, Any]


@dataclass
class GroupRecord:
    """What this daemon knows about one pod's container group."""

    uid: str
    key: str
    group_id: str
    seen_at: float
    request_id: str = ""
    attempt: int = 0  # which of the pod's groups this is (core.identity: attempt N, its ClientToken)
    token: str = ""  # the ClientToken it was created with ("" when adopted: the pod UID's of attempt 0)
    group: JSON | None = None  # a summary of the last describe (core.writeback.group_summary)
    # The phase and Ready of the pod status the last describe gave (written, or already on the pod).
    # Someone else may write over it (the node lifecycle controller marks every pod Ready=False while the
    # node is NotReady, for example during a leader take-over); the pod's next sync then has the group
    # described again, and the status written back.
    verdict: Verdict | None = None
    annotated: bool = False
    finished_at: float = 0.0  # when ECI reported the group finished (clock of the controller)
    events: set[str] = field(default_factory=set)
    # What the last applied status/event listings said about the group: a listing that says the same
    # again (the windows of successive polls overlap) costs no DescribeContainerGroups.
    status_mark: str = ""
    events_mark: str = ""

    @property
    def status(self) -> str:
        """The group's last described ECI status ("" before the first describe)."""
        return str((self.group or {}).get("Status") or "")

    @property
    def terminal(self) -> bool:
        """The group finished (any state the status table maps to Succeeded or Failed)."""
        return group_terminal(self.status)

    @property
    def settled(self) -> bool:
        """Running or finished: nothing is expected to change soon."""
        return group_settled(self.status)

    def annotations(self) -> dict[str, str]:
        """The write-back annotations this group's pod should carry."""
        group = self.group or {}
        token = self.token or self.uid
        return write_back_annotations(group, group_id=self.group_id, request_id=self.request_id, token=token)


@dataclass(frozen=True)
class Restart:
    """A pod's group ``group_id`` was deleted outside vk-eci: create ``attempt`` at ``not_before``."""

    group_id: str
    attempt: int
    delay: float  # the back-off in force (seconds after the loss was confirmed)
    not_before: float  # clock of the controller


class GroupIndex:
    """Records by pod UID and by pod key, plus what happened to pods whose record is gone."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, GroupRecord] = {}  # pod uid -> record
        self._by_key: dict[str, set[str]] = {}  # pod key -> uids with a record
        self.lost_uids: set[str] = set()  # uids whose group vanished: never re-created
        self.removed_uids: set[str] = set()  # uids whose pod object we removed
        self.create_tried: set[str] = set()  # uids whose create was sent but not confirmed
        self._restarts: dict[str, Restart] = {}  # uid -> the new group its worker is to create
        self._backoffs: dict[str, BackOff] = {}  # uid -> its restart back-off

    def remember(self, record: GroupRecord) -> None:
        with self._lock:
            self._records[record.uid] = record
            self._by_key.setdefault(record.key, set()).add(record.uid)

    def forget(self, uid: str) -> None:
        with self._lock:
            record = self._records.pop(uid, None)
            if record is not None:
                uids = self._by_key.get(record.key, set())
                uids.discard(uid)
                if not uids:
                    self._by_key.pop(record.key, None)

    def get(self, uid: str) -> GroupRecord | None:
        with self._lock:
            return self._records.get(uid)

    def __contains__(self, uid: object) -> bool:
        with self._lock:
            return uid in self._records

    def uids_for(self, key: str) -> set[str]:
        """The UIDs with a record under pod key ``key`` (several after a re-create under the same name)."""
        with self._lock:
            return set(self._by_key.get(key, ()))

    def records(self) -> list[GroupRecord]:
        with self._lock:
            return list(self._records.values())

    def by_group_id(self) -> dict[str, GroupRecord]:
        with self._lock:
            return {r.group_id: r for r in self._records.values()}

    def plan_restart(self, uid: str, group_id: str, attempt: int, lost_at: float) -> Restart:
        """Record that ``uid`` gets group ``attempt`` after the kubelet's back-off; the plan made."""
        with self._lock:
            if len(self._backoffs) > 10000:  # pods force-deleted during a back-off leave theirs behind
                expired = [u for u, b in self._backoffs.items() if lost_at - b.updated > BACKOFF_RESET]
                for old in expired:
                    self._backoffs.pop(old, None)
                    self._restarts.pop(old, None)
            delay, self._backoffs[uid] = next_restart(self._backoffs.get(uid), lost_at)
            restart = Restart(group_id=group_id, attempt=attempt, delay=delay, not_before=lost_at + delay)
            self._restarts[uid] = restart
            return restart

    def pending_restart(self, uid: str) -> Restart | None:
        with self._lock:
            return self._restarts.get(uid)

    def restarted(self, uid: str) -> None:
        """The new group of ``uid`` was created (its back-off stays, for the next loss)."""
        with self._lock:
            self._restarts.pop(uid, None)

    def drop_restarts(self, uid: str) -> None:
        """The pod ``uid`` is gone: forget its pending restart and its back-off."""
        with self._lock:
            self._restarts.pop(uid, None)
            self._backoffs.pop(uid, None)

    def mark_removed(self, uid: str) -> None:
        """The pod object of ``uid`` was deleted by us (bounded: the watch soon catches up)."""
        with self._lock:
            if len(self.removed_uids) > 10000:
                self.removed_uids.clear()
            self.removed_uids.add(uid)
