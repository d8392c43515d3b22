"""Reconcile and garbage collection: what keeps the two sides in agreement when events were missed.

``Reconciler`` has one lock, held for a whole sweep (the sweep thread and the last sweep of
``--decommission`` share the resumable listings), and two threads:

* **sweep**: first the start-up reconcile: list this node's groups and adopt those of the pods that
  exist (a restart loses nothing) and delete the rest; then, every ``sweep_interval``, delete the groups
  tagged with this cluster and node whose pod no longer exists. ECI's tag filter is checked again here:
  never another node's group, nor one without the tags (several daemons share an account);
* **resync**: every ``resync_interval``, queue every cached pod again (not a relist), so no pod
  waits for a watch event to be looked at.

Both listings are followed by a :class:`~vkeci.controllers.listing.Listing`: a failed page is retried,
and a listing that still stops halfway resumes at its NextToken on the next attempt (issue 12: with a
third of calls failing, an all-or-nothing start-up listing of 15 pages never finished). The start-up
listing adopts page by page while the watch, the workers and the status poller already run; only
deleting orphans waits for a complete listing, since a group missing from a partial one proves nothing.
``reconciled`` (the pod cache's ``synced``) is set once the start-up listing was complete.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from vkeci.clients.eci import EciError
from vkeci.clients.kube import KubeError
from vkeci.controllers.listing import Listing
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
        self.reconciled = self.cache.synced
        self.startup = Listing.per_settings("start-up listing", log, self.settings, on_page=self._adopt, resume=True)
        self.periodic = Listing.per_settings("orphan sweep listing", log, self.settings, resume=True)
        self._started = 0.0  # when the start-up reconcile began (monotonic), for its log line
        self._sweeping = threading.Lock()  # one sweep at a time: a Listing is followed by one thread

    def sweep(self, *, adopt: bool = False) -> int:
        """Delete groups of this node whose pod is gone; with ``adopt`` (the start-up reconcile), take over
        the rest and set ``reconciled``. Returns deletions. Raises EciError/KubeError when the listing stops
        halfway: the next call resumes it, and deletes nothing before it is complete."""
        with self._sweeping:
            return self._sweep(adopt)

    def _sweep(self, adopt: bool) -> int:
        listing = self.startup if adopt else self.periodic
        groups = self.eci.list_groups(self.selector, with_event=adopt, pager=listing)
        live = self.cache.live_uids()  # after the listing: a group listed for a pod deleted meanwhile is an orphan
        deleted = 0
        by_uid: dict[str, list[JSON]] = {}
        mine = identity.tag_map(self.selector)
        seen: set[str] = set()
        for group in groups:
            tags = identity.tag_map(group.get("Tags") or [])
            # ECI filtered the listing by these tags; checked again because a deletion cannot be undone: a
            # group of another node or cluster (several daemons share an account), or one that lost its
            # tags, is never ours to delete or adopt.
            if any(tags.get(k) != v for k, v in mine.items()):
                continue
            key = identity.pod_key_from_tags(tags)
            gid = str(group.get("ContainerGroupId") or "")
            if key is None or gid in seen:
                continue  # a group a resumed listing returned twice is not its own duplicate
            seen.add(gid)
            if key.uid in live:
                by_uid.setdefault(key.uid, []).append(group)
                continue
            if key.uid not in self.groups or adopt:
                log.info("orphan group deleted", extra=fields(group=gid, pod=key.name))
                self.eci.delete(gid)
                self.groups.forget(key.uid)
                deleted += 1
        if adopt:
            for uid, owned in by_uid.items():
                # Pages adopt one group each; a pod with several (duplicates, on different pages) keeps the oldest.
                if uid not in self.groups or len(owned) > 1:
                    self._take(uid, owned)
            if not self.reconciled.is_set():
                self.reconciled.set()
                self.resync()  # the pods that waited for the listing (podsync) are looked at now
                log.info(
                    "start-up reconcile complete",
                    extra=fields(
                        pods_with_groups=len(by_uid),
                        orphans_deleted=deleted,
                        pages=listing.pages,
                        failed_pages=listing.failures,
                        seconds=round(time.monotonic() - self._started, 1) if self._started else None,
                    ),
                )
        return deleted

    def _adopt(self, page: list[JSON]) -> None:
        """One page of the start-up listing: adopt the groups of live pods not tracked yet (orphans wait)."""
        live = self.cache.live_uids()
        for group in page:
            key = identity.pod_key_from_tags(group.get("Tags") or [])
            if key is not None and key.uid in live and key.uid not in self.groups:
                self._take(key.uid, [group])

    def _take(self, uid: str, owned: list[JSON]) -> None:
        ref = identity.pod_key_from_tags(owned[0].get("Tags") or [])
        assert ref is not None
        key = f"{ref.namespace}/{ref.name}"
        self.podsync.adopt(uid, key, owned)
        self.queue.add(key)  # a worker that found no group for the pod while the listing ran looks again

    def at_start(self, stop: threading.Event) -> bool:
        """The start-up reconcile: adopt what exists, then sweep orphans, retrying (1 s → 30 s between attempts
        whose page failed ``page_attempts`` times; each resumes where the last stopped). False if stopped first."""
        self._started = time.monotonic()
        self.startup.stop = stop
        done, _ = retry_until(
            stop, lambda: self.sweep(adopt=True), "start-up reconcile", log, Backoff(1.0, 30.0), (EciError, KubeError)
        )
        return done

    def resync(self) -> None:
        """Queue every cached pod again."""
        for key in self.cache.keys():
            self.queue.add(key)

    def threads(self, stop: threading.Event) -> list[threading.Thread]:
        """The sweep thread (the start-up reconcile, then the orphan sweeps) and the resync thread (not started)."""

        def sweep_loop() -> None:
            if not self.at_start(stop):
                return
            self.periodic.stop = stop
            run_periodic(stop, self.settings.sweep_interval, self.sweep, "orphan sweep", log, (EciError, KubeError))

        def resync_loop() -> None:
            run_periodic(stop, self.settings.resync_interval, self.resync, "resync", log)

        return [
            threading.Thread(target=sweep_loop, name="sweep", daemon=True),
            threading.Thread(target=resync_loop, name="resync", daemon=True),
        ]
