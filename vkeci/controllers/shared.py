"""What the parts of one pod controller share: the clients, the cache, the index, the queue, the settings.

Built once by ``pods.PodController`` and handed to each part, so a part's constructor says only
what is its own. Each shared object guards itself (its docstring says how).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vkeci.config import PodSettings
from vkeci.controllers.groups import GroupIndex
from vkeci.controllers.podcache import PodCache
from vkeci.controllers.ports import EciGroups, KubeApi, PodTranslator
from vkeci.controllers.recorder import EventRecorder
from vkeci.controllers.workqueue import WorkQueue
from vkeci.metrics import Metrics


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
