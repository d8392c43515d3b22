"""What the kubelet API needs from the rest of the daemon, as small Protocols.

The daemon owns the pod cache and the ECI client; this package only reads through these
two narrow interfaces, so it can be tested with plain in-memory stand-ins.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

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


class EciError(Exception):
    """An ECI call failed. ``code`` is ECI's error code, ``status`` the HTTP status when known."""

    def __init__(self, message: str, code: str = "", status: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class SdkEci:
    """:class:`EciApi` over the official SDK client (``vkeci.clients.eci.new_client``)."""

    def __init__(self, client: Any, region: str, limiter: Any = None) -> None:
        self._client = client
        self._region = region
        # Shared with the rest of the daemon (vkeci.clients.ratelimit.EciLimiter): one budget per account.
        self._limiter = limiter

    @classmethod
    def from_provider(cls, provider: Any) -> SdkEci:
        """Reuse the daemon's :class:`vkeci.clients.eci.Provider`: its SDK client, region and limiter."""
        return cls(provider.client, provider.region, provider.limiter)

    def _call(self, action: str, method: str, request: Any) -> dict[str, Any]:
        from vkeci.clients.eci import classify

        try:
            if self._limiter is not None:
                self._limiter.acquire(action)
            response = getattr(self._client, method)(request)
        except TimeoutError:
            raise EciError(f"{action}: local ECI rate limit reached, retry shortly", "Throttling.Local", 429) from None
        except Exception as exc:  # the SDK raises TeaException subclasses
            error = classify(action, exc)
            raise EciError(str(error), code=error.code, status=error.status) from None
        body = response.body.to_map() if response.body is not None else {}
        return dict(body)

    def describe_container_log(self, params: dict[str, Any]) -> dict[str, Any]:
        """DescribeContainerLog through the SDK."""
        from alibabacloud_eci20180808 import models

        request = models.DescribeContainerLogRequest(
            region_id=self._region,
            container_group_id=params["ContainerGroupId"],
            container_name=params["ContainerName"],
            tail=params.get("Tail"),
            since_seconds=params.get("SinceSeconds"),
            start_time=params.get("StartTime"),
            limit_bytes=params.get("LimitBytes"),
            timestamps=params.get("Timestamps"),
            last_time=params.get("LastTime"),
        )
        return self._call("DescribeContainerLog", "describe_container_log", request)

    def exec_container_command(self, params: dict[str, Any]) -> dict[str, Any]:
        """ExecContainerCommand through the SDK; ``Command`` is a list and sent as a JSON array."""
        from alibabacloud_eci20180808 import models

        request = models.ExecContainerCommandRequest(
            region_id=self._region,
            container_group_id=params["ContainerGroupId"],
            container_name=params["ContainerName"],
            command=json.dumps(list(params["Command"])),
            tty=params.get("TTY"),
            stdin=params.get("Stdin"),
            sync=params.get("Sync"),
        )
        return self._call("ExecContainerCommand", "exec_container_command", request)

    def describe_multi_container_group_metric(self, group_ids: list[str]) -> dict[str, Any]:
        """DescribeMultiContainerGroupMetric (MetricType=summary) through the SDK."""
        from alibabacloud_eci20180808 import models

        request = models.DescribeMultiContainerGroupMetricRequest(
            region_id=self._region,
            container_group_ids=json.dumps(group_ids),
            metric_type="summary",
        )
        return self._call("DescribeMultiContainerGroupMetric", "describe_multi_container_group_metric", request)
