"""The seams of the controllers, as Protocols: what they need from Kubernetes, ECI and translation.

The real implementations are ``vkeci.clients.kube.KubeClient``, ``vkeci.clients.eci.EciClient``
and ``vkeci.controllers.translation.Translation``; the controller tests implement them with small
in-memory stand-ins. mypy checks both against these.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, Protocol

from vkeci.clients.eci import Pager
from vkeci.core.problems import Missing, Rejected

JSON = dict[str, Any]
TagList = list[dict[str, str]]


class KubeApi(Protocol):
    """The Kubernetes calls of the controllers (``KubeClient``): JSON in, JSON out, ``KubeError`` out."""

    def get(self, path: str, params: dict[str, Any] | None = None) -> JSON: ...

    def post(self, path: str, body: JSON) -> JSON: ...

    def patch(self, path: str, body: JSON, content_type: str = ...) -> JSON: ...

    def delete(self, path: str, body: JSON | None = None) -> JSON: ...

    def watch(self, path: str, params: dict[str, Any], read_timeout: float) -> Iterator[JSON]: ...


class EciGroups(Protocol):
    """The container-group calls of the controllers (``EciClient``); failures raise ``EciError``."""

    def create(self, request: dict[str, Any]) -> tuple[str, str]:
        """CreateContainerGroup; (group id, request id)."""
        ...

    def delete(self, group_id: str) -> None:
        """DeleteContainerGroup; a group already gone counts as deleted."""
        ...

    def describe(self, group_ids: list[str], *, with_event: bool = True) -> list[JSON]:
        """The groups among ``group_ids`` that exist, fully described."""
        ...

    def list_groups(self, tags: TagList, *, with_event: bool = False, pager: Pager = ...) -> list[JSON]:
        """Every group carrying all of ``tags``; ``pager`` follows the pages (default: no retry)."""
        ...

    def changed_since(self, tags: TagList, since_second: int | None, *, pager: Pager = ...) -> list[JSON]:
        """Status records of the groups whose status changed in the window (all when None)."""
        ...

    def events_since(self, tags: TagList, since_second: int, *, pager: Pager = ...) -> list[JSON]:
        """Groups with an event in the window, each with its ``Events``."""
        ...


class PodTranslator(Protocol):
    """Pod -> ECI request and ECI group -> pod status/events (``Translation``: the core plus the
    objects a pod references). ``request`` raises ``Rejected`` or ``Missing``."""

    def request(self, pod: JSON) -> tuple[JSON, list[Any]]:
        """The CreateContainerGroup request map and the translation's warnings."""
        ...

    def pod_status(self, pod: JSON, group: JSON, now: datetime) -> JSON:
        """The pod status a described group means."""
        ...

    def missing_group_status(self, pod: JSON, now: datetime, group_id: str) -> JSON:
        """Failed: the pod's group ``group_id`` was deleted outside vk-eci and is not recreated."""
        ...

    def restart_status(self, pod: JSON, group_id: str, attempt: int, delay: float, now: datetime) -> JSON:
        """The pod's group ``group_id`` was deleted; group ``attempt`` is created after ``delay`` s."""
        ...

    def rejected_status(self, pod: JSON, err: Rejected, now: datetime) -> JSON:
        """Failed: the pod can never run on ECI as written."""
        ...

    def waiting_status(self, pod: JSON, err: Missing, now: datetime) -> JSON:
        """Pending: objects the pod references are not there yet."""
        ...

    def problem_status(self, pod: JSON, reason: str, message: str, now: datetime, *, fail: bool = False) -> JSON:
        """Pending (or Failed) with every container waiting and a pod-level reason/message."""
        ...

    def events(self, pod: JSON, group: JSON, now: datetime) -> list[JSON]:
        """The Kubernetes Events for the group's ECI events."""
        ...


class PodsRunning(Protocol):
    """Whether the pod controller serves pods (``PodController.running``): the node is Ready only then."""

    def running(self) -> bool: ...
