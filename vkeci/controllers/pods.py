"""The pod controller: keeps the pods bound to this node and their ECI container groups in agreement.

A façade that wires the parts and starts their threads; each part owns its lock and its threads
and documents them:

* ``podcache.PodCache``: LIST + WATCH of the node's pods (thread **watch**);
* ``podsync.PodSync``: Kubernetes → ECI, create / delete / clean up (threads **worker-N**);
* ``statussync.StatusSync``: ECI → Kubernetes, status polls and writes (**status**, **status-write-N**);
* ``recorder.EventRecorder``: the Events (threads **events-N**);
* ``reconcile.Reconciler``: adopt at start-up, orphan sweep, resync (threads **sweep**, **resync**);
  the start-up reconcile runs on the sweep thread while every other part already runs (``running``),
  ``reconciled`` once it is complete;
* ``groups.GroupIndex``: the container groups tracked, by pod UID and key.

The tests drive it through ``sync()`` and ``poll_status()``, without threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from vkeci.config import Config, PodSettings
from vkeci.controllers.groups import GroupIndex
from vkeci.controllers.health import Liveness
from vkeci.controllers.podcache import PodCache
from vkeci.controllers.podsync import PodSync
from vkeci.controllers.ports import EciGroups, KubeApi, PodTranslator
from vkeci.controllers.reconcile import Reconciler
from vkeci.controllers.recorder import EventRecorder
from vkeci.controllers.shared import Shared
from vkeci.controllers.statussync import StatusSync, StatusWriter
from vkeci.controllers.workqueue import WorkQueue
from vkeci.core import identity
from vkeci.metrics import Metrics

JSON = dict[str, Any]


class PodController:
    """The pod cache, both sync directions, the events and the reconcile of one node; see the module docstring."""

    def __init__(
        self,
        kube: KubeApi,
        eci: EciGroups,
        config: Config,
        translator: PodTranslator,
        options: PodSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
    ) -> None:
        self.kube = kube
        self.eci = eci
        self.config = config
        self.translator = translator
        self.options = options or PodSettings()
        self.clock = clock  # replaceable (tests): every part reads it through _now
        self.metrics = metrics or Metrics()
        self.queue = WorkQueue(max_delay=self.options.max_backoff)
        self.groups = GroupIndex()
        self.cache = PodCache(kube, config.node_name, self.groups, self.queue, self.options.watch_timeout)
        self.recorder = EventRecorder(
            kube, config.node_name, translator, self.options.event_writers, metrics=self.metrics
        )
        shared = Shared(
            kube=kube,
            eci=eci,
            translator=translator,
            cache=self.cache,
            groups=self.groups,
            queue=self.queue,
            recorder=self.recorder,
            settings=self.options,
            selector=identity.selector_tags(config.cluster_name, config.node_name),
            clock=self._now,
            metrics=self.metrics,
        )
        writer = StatusWriter(kube, self.cache, self.metrics)
        self.status = StatusSync(shared, writer)
        self.podsync = PodSync(shared, writer, self.status)
        self.reconciler = Reconciler(shared, self.podsync)
        self._stop: threading.Event | None = None
        self._core: list[threading.Thread] = []  # watch, workers, status: what running() checks
        self.outage = shared.outage
        self._watch: threading.Thread | None = None

    def _now(self) -> float:
        return self.clock()

    # ---- what the daemon and the tests call ------------------------------------------------

    @property
    def pods(self) -> dict[str, JSON]:
        """The cached pods by ``namespace/name``."""
        return self.cache.pods

    @property
    def synced(self) -> threading.Event:
        """Set once the start-up reconcile is done (``reconciled``)."""
        return self.cache.synced

    def running(self) -> bool:
        """Whether the pod controller serves pods: ``start`` has started the watch, the workers and the status
        poller, they are alive and not stopped. True while the start-up reconcile still lists (pods are
        adopted as their groups are found; a new pod is looked up before it is created); the node must not
        be Ready while this is False."""
        stop = self._stop
        return bool(self._core) and stop is not None and not stop.is_set() and all(t.is_alive() for t in self._core)

    def reconciled(self) -> bool:
        """Whether the start-up reconcile has seen a complete listing (and so deleted the orphans it found)."""
        return self.cache.synced.is_set()

    def eci_changed(self, reachable: bool, message: str) -> None:
        """ECI became unreachable (creates are held, the pods say why) or reachable again (held pods now)."""
        for key in self.outage.change(reachable, message):
            self.queue.add(key)

    def sync(self, key: str) -> float | None:
        """Make ECI match the pod ``key`` (``PodSync.sync``)."""
        return self.podsync.sync(key)

    def poll_status(self, full: bool, *, wait_writes: bool = True, presence: bool = False) -> int:
        """One status tick (``StatusSync.poll``); how many groups it described."""
        return self.status.poll(full, wait_writes=wait_writes, presence=presence)

    def next_poll_in(self) -> float:
        return self.status.next_poll_in()

    def flush_status_writes(self) -> None:
        self.status.flush_writes()

    def sweep(self, *, adopt: bool = False) -> int:
        """Delete orphan groups (``Reconciler.sweep``); how many."""
        return self.reconciler.sweep(adopt=adopt)

    def watch_loop(self, stop: threading.Event) -> None:
        self.cache.watch_loop(stop)

    def worker_loop(self, stop: threading.Event) -> None:
        self.podsync.worker_loop(stop)

    def event_loop(self, stop: threading.Event) -> None:
        self.recorder.loop(stop)

    def list_pods(self) -> list[JSON]:
        """Every pod bound to this node."""
        return self.cache.list()

    def _loop(
        self, stop: threading.Event, liveness: Liveness | None, target: Callable[[threading.Event], None], name: str
    ) -> threading.Thread:
        options = self.options
        # How often each loop checks ``stop`` when well: the watch only between two watch requests (each
        # at most 1.2 x the server timeout, plus the client's 15 s read slack and the 30 s backoff cap).
        periods = {"watch": 1.2 * options.watch_timeout + 45.0, "worker": 0.5, "status": options.status_interval}
        own = stop if liveness is None else liveness.stop_for(name, stop, periods[name.split("-")[0]])
        thread = threading.Thread(target=target, args=(own,), name=name, daemon=True)
        return thread if liveness is None else liveness.track(thread)

    def start_cache(self, stop: threading.Event, liveness: Liveness | None = None) -> threading.Thread:
        """LIST the node's pods, then start the **watch** thread: all a standby runs (no writes), so that
        a take-over starts from a warm cache. ``start`` calls it unless it ran."""
        self.cache.relist()
        self._watch = self._loop(stop, liveness, self.cache.watch_loop, "watch")
        self._watch.start()
        return self._watch

    def start(self, stop: threading.Event, liveness: Liveness | None = None) -> list[threading.Thread]:
        """List the pods and start the watch (unless ``start_cache`` did: a standby's take-over starts warm),
        then start every part's threads; the start-up reconcile (adopt, then delete orphans) runs on the sweep
        thread meanwhile. ``liveness`` watches the watch, the workers and the status poller. Raises KubeError
        if the first LIST of the pods fails."""
        threads = [] if self._watch is not None else [self.start_cache(stop, liveness)]
        assert self._watch is not None
        workers = [
            self._loop(stop, liveness, self.podsync.worker_loop, f"worker-{i}") for i in range(self.options.workers)
        ]
        status = self._loop(stop, liveness, self.status.loop, "status")
        others = [*self.recorder.threads(stop), *self.reconciler.threads(stop)]
        for thread in [*workers, status, *others]:
            thread.start()
        self._stop, self._core = stop, [self._watch, *workers, status]
        return [*threads, *workers, status, *others]
        return threads
