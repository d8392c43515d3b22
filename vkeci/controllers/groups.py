"""The container groups this daemon tracks: one record per pod, indexed by pod UID and by pod key.

``GroupIndex`` owns one lock; it guards the index (which records exist) and the UID sets, never
a record's fields: those belong to whoever writes them (pod sync: ``annotated``; status sync:
``group``, ``finished_at`` and the listing marks; the event recorder: ``events``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from vkeci.core.status import group_settled, group_terminal
from vkeci.core.writeback import write_back_annotations

JSON = dict[str, Any]


@dataclass
class GroupRecord:
    """What this daemon knows about one pod's container group."""

    uid: str
    key: str
    group_id: str
    seen_at: float
    request_id: str = ""
    group: JSON | None = None  # a summary of the last describe (core.writeback.group_summary)
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
        return write_back_annotations(group, group_id=self.group_id, request_id=self.request_id, uid=self.uid)


class GroupIndex:
    """Records by pod UID and by pod key, plus what happened to pods whose record is gone."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, GroupRecord] = {}  # pod uid -> record
        self._by_key: dict[str, set[str]] = {}  # pod key -> uids with a record
        self.lost_uids: set[str] = set()  # uids whose group vanished: never re-created
        self.removed_uids: set[str] = set()  # uids whose pod object we removed
        self.create_tried: set[str] = set()  # uids whose create was sent but not confirmed

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

    def mark_removed(self, uid: str) -> None:
        """The pod object of ``uid`` was deleted by us (bounded: the watch soon catches up)."""
        with self._lock:
            if len(self.removed_uids) > 10000:
                self.removed_uids.clear()
            self.removed_uids.add(uid)
