"""Reconcile and garbage collection: what keeps the two sides in agreement when events were missed.

``Reconciler`` has no lock of its own and two threads:

* **sweep**: every ``sweep_interval``, delete the groups tagged with this cluster and node (ECI's tag
  filter, checked again here: never another node's group, nor one without the tags) whose pod no longer
  exists (at start-up, once, it also adopts the groups of the pods that do: a restart loses nothing);
* **resync**: every ``resync_interval``, queue every cached pod again (not a relist), so no pod
  waits for a watch event to be looked at.
"""

from __future__ import annotations

import threading
from typing import Any

from vkeci.clients.eci import EciError
from vkeci.clients.kube import KubeError
from vkeci.controllers.loops import Backoff, retry_until, run_periodic
from vkeci.controllers.podsync import PodSync
from vkeci.controllers.shared import Part, Shared
from vkeci.core import identity
from vkeci.log import fields, get_logger

log = get_logger("pods")
JSON = dict[str, Any]


class Reconciler(Part):
    """Adopts at start-up, sweeps orphans, resyncs the cache; see the module docstring."""

    def __init__(self, shared: Shared, podsync: PodSync) -> None:
        super().__init__(shared)
        self.podsync = podsync

    def sweep(self, *, adopt: bool = False) -> int:
        """Delete groups of this node whose pod is gone; with ``adopt``, take over the rest. Returns deletions."""
        groups = self.eci.list_groups(self.selector, with_event=adopt)
        live = self.cache.live_uids()
        deleted = 0
        by_uid: dict[str, list[JSON]] = {}
        mine = identity.tag_map(self.selector)
        for group in groups:
            tags = identity.tag_map(group.get("Tags") or [])
            # ECI filtered the listing by these tags; checked again because a deletion cannot be undone: a
            # group of another node or cluster (several daemons share an account), or one that lost its
            # tags, is never ours to delete or adopt.
            if any(tags.get(k) != v for k, v in mine.items()):
                continue
            key = identity.pod_key_from_tags(tags)
            if key is None:
                continue
            if key.uid in live:
                by_uid.setdefault(key.uid, []).append(group)
                continue
            if key.uid not in self.groups or adopt:
                log.info("orphan group deleted", extra=fields(group=group.get("ContainerGroupId"), pod=key.name))
                self.eci.delete(str(group["ContainerGroupId"]))
                self.groups.forget(key.uid)
                deleted += 1
        if adopt:
            for uid, owned in by_uid.items():
                if uid not in self.groups:
                    ref = identity.pod_key_from_tags(owned[0].get("Tags") or [])
                    assert ref is not None
                    self.podsync.adopt(uid, f"{ref.namespace}/{ref.name}", owned)
        return deleted

    def at_start(self, stop: threading.Event) -> bool:
        """Adopt what exists and sweep orphans, retrying (1 s → 30 s) until it works; False if stopped first."""
        done, _ = retry_until(
            stop, lambda: self.sweep(adopt=True), "startup reconcile", log, Backoff(1.0, 30.0), (EciError, KubeError)
        )
        return done

    def resync(self) -> None:
        """Queue every cached pod again."""
        for key in self.cache.keys():
            self.queue.add(key)

    def threads(self, stop: threading.Event) -> list[threading.Thread]:
        """The sweep and resync threads (not started)."""

        def sweep_loop() -> None:
            run_periodic(stop, self.settings.sweep_interval, self.sweep, "orphan sweep", log, (EciError, KubeError))

        def resync_loop() -> None:
            run_periodic(stop, self.settings.resync_interval, self.resync, "resync", log)

        return [
            threading.Thread(target=sweep_loop, name="sweep", daemon=True),
            threading.Thread(target=resync_loop, name="resync", daemon=True),
        ]
