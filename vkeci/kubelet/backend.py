"""What the kubelet API needs from the rest of the daemon, as small Protocols.

The daemon owns the pod cache and the ECI client (``vkeci.clients.eci.EciClient``, which is an
:class:`EciApi`); this package only reads through these two narrow interfaces, so it can be tested
with plain in-memory stand-ins.
"""

from __future__ import annotations

from typing import Any, Protocol

# The one ECI error class (the daemon's ECI client raises it); re-exported for the kubelet modules.
from vkeci.clients.eci import EciError

__all__ = ["EciApi", "EciError", "PodDict", "PodLookup"]

PodDict = dict[str, Any]


class PodLookup(Protocol):
    """The daemon's view of the pods bound to this node."""

    def get(self, namespace: str, name: str) -> tuple[PodDict, str | None] | None:
        """The pod (a v1.Pod as a dict) and its ECI container group id (None while it has none),
        or None when no such pod is bound to this node."""
        ...

    def list(self) -> list[PodDict]:
        """Every pod bound to this node, as v1.Pod dicts."""
        ...


class EciApi(Protocol):
    """The three ECI calls the kubelet API makes, with request and response as plain dicts
    using ECI's wire names (``Tail``, ``SinceSeconds``, ``Content``, ``WebSocketUri``...)."""

    def describe_container_log(self, params: dict[str, Any]) -> dict[str, Any]:
        """DescribeContainerLog; returns the response body (``Content`` holds the text)."""
        ...

    def exec_container_command(self, params: dict[str, Any]) -> dict[str, Any]:
        """ExecContainerCommand; returns the response body (``WebSocketUri``, ``SyncResponse``)."""
        ...

    def describe_multi_container_group_metric(self, group_ids: list[str]) -> dict[str, Any]:
        """DescribeMultiContainerGroupMetric for up to 20 groups; returns the body (``MonitorDatas``)."""
        ...
