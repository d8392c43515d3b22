"""What the parts of one pod controller share: the clients, the cache, the index, the queue, the settings.

Built once by ``pods.PodController`` and handed to each part, so a part's constructor says only
what is its own. Each shared object guards itself (its docstring says how).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from vkeci.config import PodSettings
from vkeci.controllers.groups import GroupIndex
from vkeci.controllers.podcache import PodCache
from vkeci.controllers.ports import EciGroups, KubeApi, PodTranslator
from vkeci.controllers.recorder import EventRecorder
from vkeci.controllers.workqueue import WorkQueue
from vkeci.metrics import Metrics


class EciOutage:
    """Whether ECI is unreachable (as the node's ``core.reachability`` decided) and the pods whose create
    waits for it. Thread-safe (one lock): the ping thread sets it, the workers read it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._message: str | None = None
        self._waiting: set[str] = set()

    def message(self) -> str | None:
        """Why ECI is unreachable, or None while it answers."""
        with self._lock:
            return self._message

    def hold(self, key: str) -> bool:
        """The pod ``key`` waits for ECI to answer again; False when ECI answers again meanwhile."""
        with self._lock:
            if self._message is None:
                return False
            self._waiting.add(key)
            return True

    def change(self, reachable: bool, message: str) -> list[str]:
        """ECI became reachable (the keys that waited, to sync now) or unreachable (``message``: why)."""
        with self._lock:
            if not reachable:
                self._message = message or "the ECI endpoint does not answer"
                return []
            self._message = None
            waiting, self._waiting = sorted(self._waiting), set()
            return waiting


@dataclass(frozen=True)
class Shared:
    """The collaborators of the pod controller's parts."""

    kube: KubeApi
    eci: EciGroups
    translator: PodTranslator
    cache: PodCache
    groups: GroupIndex
    queue: WorkQueue
    recorder: EventRecorder
    settings: PodSettings
    selector: list[dict[str, str]]  # the tags of this node's groups (core.identity.selector_tags)
    clock: Callable[[], float]  # monotonic seconds
    metrics: Metrics  # the vkeci_* series the parts observe (create latency, retries)
    outage: EciOutage = field(default_factory=EciOutage)


class Part:
    """A part of the pod controller (pod sync, status sync, reconcile): the shared collaborators as attributes."""

    def __init__(self, shared: Shared) -> None:
        self.kube = shared.kube
        self.eci = shared.eci
        self.translator = shared.translator
        self.cache = shared.cache
        self.groups = shared.groups
        self.queue = shared.queue
        self.recorder = shared.recorder
        self.settings = shared.settings
        self.selector = shared.selector
        self.clock = shared.clock
        self.metrics = shared.metrics
        self.outage = shared.outage
