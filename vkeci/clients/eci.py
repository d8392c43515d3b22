"""The ECI client: the one way vk-eci calls ECI, over the official SDK, returning plain dicts.

Every call goes through :meth:`EciClient._call`: it takes a token from the action's rate-limit
bucket, counts the call (``--stats-file``), and turns any SDK failure into the one
:class:`EciError`, which says whether retrying can help. The controllers and the kubelet API
(logs, exec, metrics) share one client, so one budget and one count. Nothing here decides what a
pod should look like (the core's job) or what to do about an error (the controllers' job).
Signing, wire format and credentials are the SDK's and ``alibabacloud-credentials``' job.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from vkeci.clients import urlescape
from vkeci.clients.ratelimit import EciLimiter, RateLimitTimeout
from vkeci.config import Config
from vkeci.log import fields, get_logger

if TYPE_CHECKING:
    from alibabacloud_credentials.client import Client as CredentialClient
    from alibabacloud_eci20180808.client import Client

log = get_logger("eci")
T = TypeVar("T")
Group = dict[str, Any]

# Codes that mean "try again later"; 5xx, throttling and no-answer are transient regardless.
_TRANSIENT_CODES = ("Throttling", "ServiceUnavailable", "InternalError", "OperationConflict", "UnknownError")
_NOT_FOUND_CODES = ("InvalidParameter.NotFound", "ContainerGroup.NotFound", "InvalidContainerGroup.NotFound")
_MAX_IDS = 20
# The actions that change container groups: only the node's leader sends them (the kubelet API's exec,
# logs and metrics are reads of a group and go to any replica).
WRITE_ACTIONS = frozenset(
    {
        "CreateContainerGroup",
        "DeleteContainerGroup",
        "UpdateContainerGroup",
        "RestartContainerGroup",
        "CreateImageCache",
    }
)


class EciError(Exception):
    """An ECI call failed. ``transient`` errors are worth retrying; others need the user."""

    def __init__(
        self,
        action: str,
        code: str,
        message: str,
        *,
        request_id: str = "",
        status: int = 0,
        transient: bool = False,
    ) -> None:
        self.action = action
        self.code = code
        self.message = message
        self.request_id = request_id
        self.status = status
        self.transient = transient
        rid = f" (RequestId {request_id})" if request_id else ""
        super().__init__(f"ECI {action} failed: {code}: {message}{rid}")

    @property
    def not_found(self) -> bool:
        return self.status == 404 or self.code in _NOT_FOUND_CODES or self.code.endswith(".NotFound")

    @property
    def no_stock(self) -> bool:
        return "NoStock" in self.code or "StockExhaust" in self.code


_NOT_JSON = "Failed to parse the value as json format"  # what the SDK says about a non-JSON answer


def classify(action: str, exc: Exception) -> EciError:
    """Map any SDK exception to an EciError (pure: used by tests with hand-made exceptions)."""
    if isinstance(exc, EciError):
        return exc
    code = str(getattr(exc, "code", "") or "")
    status = getattr(exc, "status_code", None) or getattr(exc, "statusCode", None) or 0
    data = getattr(exc, "data", None)
    if not status and isinstance(data, dict):
        status = data.get("statusCode") or 0
    status = int(status or 0)
    request_id = str(getattr(exc, "request_id", "") or (data.get("RequestId", "") if isinstance(data, dict) else ""))
    message = str(getattr(exc, "message", "") or "")
    if not code and not status and _NOT_JSON in message:
        # An answer, but not ECI's: a proxy, gateway or load balancer page. Its status code is lost in the
        # SDK, so it is retried (a 502 passes); the page itself is what the user needs to see.
        page = message.split("Value:", 1)[-1].strip(" \"'.)")[:200]
        return EciError(
            action,
            "BadResponse",
            f"the ECI endpoint answered with something other than ECI's JSON (a proxy or gateway in the way?): "
            f"{page!r}",
            transient=True,
        )
    if not code and not status:
        # No HTTP answer at all (refused, reset, timed out): the call may or may not have acted.
        inner = getattr(getattr(exc, "_context", None), "exception", None) or getattr(exc, "inner_exception", None)
        detail = type(inner).__name__ if inner is not None else type(exc).__name__
        return EciError(action, "NoResponse", f"no answer from the ECI endpoint ({detail})", transient=True)
    transient = status >= 500 or status == 429 or code.startswith(_TRANSIENT_CODES) or "Throttling" in code
    return EciError(
        action, code or f"HTTP{status}", message[:500], request_id=request_id, status=status, transient=transient
    )


TagList = list[dict[str, str]]


def chunks(items: list[str], size: int = _MAX_IDS) -> Iterable[list[str]]:
    """``items`` in lists of at most ``size`` (ECI takes ≤20 ids per call)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


class EciClient:
    """ECI calls for one region, rate-limited and counted per action (``calls``).

    It is also the kubelet API's :class:`vkeci.kubelet.backend.EciApi`."""

    def __init__(
        self,
        client: Any,
        region: str,
        limiter: EciLimiter | None = None,
        write_gate: Callable[[], bool] | None = None,
    ) -> None:
        from alibabacloud_eci20180808 import models

        self._models = models
        self.client = client
        self.region = region
        self.limiter = limiter or EciLimiter(enabled=False)
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        # Asked right before every call that changes groups; False refuses it: only the node's leader writes.
        self.write_gate = write_gate

    @classmethod
    def from_config(
        cls,
        config: Config,
        limits: dict[str, int] | None = None,
        *,
        write_gate: Callable[[], bool] | None = None,
        user_agent: str = "vkeci",
    ) -> EciClient:
        """A client built from a Config: SDK client, credentials, rate limits (``limits``
        overrides the documented per-minute limit of some actions; the others are the documented ones
        times ``eci_rate_share``)."""
        limiter = EciLimiter(limits, enabled=config.rate_limits, share=config.eci_rate_share)
        return cls(new_client(config, user_agent=user_agent), config.region, limiter, write_gate)

    def _call(self, action: str, fn: Callable[[], T]) -> T:
        try:
            self.limiter.acquire(action)
        except RateLimitTimeout:
            raise EciError(
                action,
                "Throttling.Local",
                "the client-side rate limit for this action is exhausted, retry shortly",
                status=429,
                transient=True,
            ) from None
        if self.write_gate is not None and action in WRITE_ACTIONS and not self.write_gate():
            raise EciError(
                action,
                "NotLeader",
                "not sent: this replica is not (or no longer) the leader of its node",
                transient=True,
            )
        with self._lock:
            self.calls[action] += 1
        try:
            return fn()
        except Exception as exc:
            raise classify(action, exc) from None

    def ping(self) -> None:
        """A cheap authenticated call proving the endpoint and credentials work."""
        req = self._models.DescribeRegionsRequest(region_id=self.region)
        self._call("DescribeRegions", partial(self.client.describe_regions, req))

    def create(self, request: dict[str, Any]) -> tuple[str, str]:
        """CreateContainerGroup from the translator's request map; returns (group id, request id).

        With several vSwitches, a synchronous NoStock answer drops the first vSwitch and tries
        the rest in order, as ECI's own VSwitchOrdered strategy would.
        """
        request = {**request, "RegionId": request.get("RegionId") or self.region}
        while True:
            req = self._models.CreateContainerGroupRequest().from_map(request)
            try:
                resp = self._call("CreateContainerGroup", partial(self.client.create_container_group, req))
            except EciError as err:
                vswitches = [v for v in str(request.get("VSwitchId") or "").split(",") if v]
                if err.no_stock and len(vswitches) > 1:
                    log.warning(
                        "no stock in vSwitch, trying the next",
                        extra=fields(vswitch=vswitches[0], code=err.code, request_id=err.request_id),
                    )
                    request = {**request, "VSwitchId": ",".join(vswitches[1:])}
                    continue
                raise
            body = resp.body
            return str(body.container_group_id), str(body.request_id or "")

    def dry_run(self, request: dict[str, Any]) -> None:
        """CreateContainerGroup with DryRun: ECI validates the request (vSwitch, security group,
        sizes, quotas) and creates nothing. Raises EciError when the request would fail."""
        request = {**request, "RegionId": request.get("RegionId") or self.region, "DryRun": True}
        req = self._models.CreateContainerGroupRequest().from_map(request)
        try:
            self._call("CreateContainerGroup", partial(self.client.create_container_group, req))
        except EciError as err:
            if err.code == "DryRunOperation":
                return
            raise
        raise EciError("CreateContainerGroup", "DryRunIgnored", "the endpoint created a group despite DryRun=true")

    def delete(self, group_id: str) -> None:
        """DeleteContainerGroup; a group that is already gone counts as deleted."""
        req = self._models.DeleteContainerGroupRequest(region_id=self.region, container_group_id=group_id)
        try:
            self._call("DeleteContainerGroup", partial(self.client.delete_container_group, req))
        except EciError as err:
            if not err.not_found:
                raise

    def list_groups(self, tags: TagList, *, with_event: bool = False) -> list[Group]:
        """Every group carrying all of ``tags`` (paged, 20 per call)."""
        models = self._models

        def page(token: str | None) -> Any:
            return models.DescribeContainerGroupsRequest(
                region_id=self.region,
                limit=_MAX_IDS,
                next_token=token,
                tag=[models.DescribeContainerGroupsRequestTag(key=t["Key"], value=t["Value"]) for t in tags],
                with_event=with_event or None,
            )

        return self._pages("DescribeContainerGroups", self.client.describe_container_groups, page, "ContainerGroups")

    def describe(self, group_ids: list[str], *, with_event: bool = True) -> list[Group]:
        """Full details of the given groups, ≤20 ids per call. Missing groups are simply absent."""
        groups: list[Group] = []
        for part in chunks(sorted(set(group_ids))):
            req = self._models.DescribeContainerGroupsRequest(
                region_id=self.region, container_group_ids=json.dumps(part), limit=_MAX_IDS, with_event=with_event
            )
            body = self._call("DescribeContainerGroups", partial(self.client.describe_container_groups, req)).body
            groups.extend(body.to_map().get("ContainerGroups") or [])
        return groups

    def changed_since(self, tags: TagList, since_second: int | None) -> list[Group]:
        """DescribeContainerGroupStatus by tag: groups whose status changed in the last
        ``since_second`` seconds (all of them when None). Returns the status records."""
        return self._listing(
            "DescribeContainerGroupStatus",
            self.client.describe_container_group_status,
            self._models.DescribeContainerGroupStatusRequest,
            self._models.DescribeContainerGroupStatusRequestTag,
            tags,
            since_second,
        )

    def events_since(self, tags: TagList, since_second: int) -> list[Group]:
        """DescribeContainerGroupEvents by tag: groups with an event in the last ``since_second``
        seconds, each with its ``Events``. Catches what changes no status (probe failures, back-off)."""
        return self._listing(
            "DescribeContainerGroupEvents",
            self.client.describe_container_group_events,
            self._models.DescribeContainerGroupEventsRequest,
            self._models.DescribeContainerGroupEventsRequestTag,
            tags,
            since_second,
        )

    def _listing(
        self, action: str, call: Callable[[Any], Any], request: Any, tag: Any, tags: TagList, since: int | None
    ) -> list[Group]:
        """Every page (200 per call) of a tag-filtered batch listing with ``SinceSecond``."""

        def page(token: str | None) -> Any:
            tag_list = [tag(key=t["Key"], value=t["Value"]) for t in tags]
            return request(region_id=self.region, limit=200, next_token=token, since_second=since, tag=tag_list)

        return self._pages(action, call, page, "Data")

    def _pages(
        self, action: str, call: Callable[[Any], Any], page: Callable[[str | None], Any], key: str
    ) -> list[Group]:
        """Follow ``NextToken`` through every page of a listing; ``page(token)`` builds one request."""
        records: list[Group] = []
        token = ""
        for _ in range(100000):  # bounded: a broken NextToken must not spin forever
            data = self._call(action, partial(call, page(token or None))).body.to_map()
            records.extend(data.get(key) or [])
            token = data.get("NextToken") or ""
            if not token:
                break
        return records

    # ---- the kubelet API's calls (vkeci.kubelet.backend.EciApi) ---------------------------

    def _body(self, action: str, call: Callable[[Any], Any], request: Any) -> dict[str, Any]:
        response = self._call(action, partial(call, request))
        return dict(response.body.to_map()) if response.body is not None else {}

    def describe_container_log(self, params: dict[str, Any]) -> dict[str, Any]:
        """DescribeContainerLog; the body's ``Content`` holds the text."""
        request = self._models.DescribeContainerLogRequest(
            region_id=self.region,
            container_group_id=params["ContainerGroupId"],
            container_name=params["ContainerName"],
            tail=params.get("Tail"),
            since_seconds=params.get("SinceSeconds"),
            start_time=params.get("StartTime"),
            limit_bytes=params.get("LimitBytes"),
            timestamps=params.get("Timestamps"),
            last_time=params.get("LastTime"),
        )
        return self._body("DescribeContainerLog", self.client.describe_container_log, request)

    def exec_container_command(self, params: dict[str, Any]) -> dict[str, Any]:
        """ExecContainerCommand; ``Command`` is a list and sent as a JSON array."""
        request = self._models.ExecContainerCommandRequest(
            region_id=self.region,
            container_group_id=params["ContainerGroupId"],
            container_name=params["ContainerName"],
            command=json.dumps(list(params["Command"])),
            tty=params.get("TTY"),
            stdin=params.get("Stdin"),
            sync=params.get("Sync"),
        )
        return self._body("ExecContainerCommand", self.client.exec_container_command, request)

    def describe_multi_container_group_metric(self, group_ids: list[str]) -> dict[str, Any]:
        """DescribeMultiContainerGroupMetric (MetricType=summary) for up to 20 groups."""
        request = self._models.DescribeMultiContainerGroupMetricRequest(
            region_id=self.region, container_group_ids=json.dumps(group_ids), metric_type="summary"
        )
        return self._body(
            "DescribeMultiContainerGroupMetric", self.client.describe_multi_container_group_metric, request
        )


def credential_client(config: Config) -> CredentialClient:
    """Credentials from the configuration if given, else the standard Alibaba Cloud chain
    (ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET, STS token, ALIBABA_CLOUD_ROLE_ARN, ECS RAM role...)."""
    from alibabacloud_credentials.client import Client as CredentialClient
    from alibabacloud_credentials.models import Config as CredentialConfig

    if config.access_key_id and config.access_key_secret:
        if config.security_token:
            return CredentialClient(
                CredentialConfig(
                    type="sts",
                    access_key_id=config.access_key_id.reveal(),
                    access_key_secret=config.access_key_secret.reveal(),
                    security_token=config.security_token.reveal(),
                )
            )
        return CredentialClient(
            CredentialConfig(
                type="access_key",
                access_key_id=config.access_key_id.reveal(),
                access_key_secret=config.access_key_secret.reveal(),
            )
        )
    return CredentialClient()


def new_client(
    config: Config,
    *,
    signature_algorithm: str | None = None,
    connect_timeout_ms: int = 5000,
    read_timeout_ms: int = 10000,
    user_agent: str = "vkeci",
) -> Client:
    """An SDK client for the configured endpoint. The SDK itself never retries; callers do."""
    from alibabacloud_eci20180808.client import Client
    from alibabacloud_tea_openapi import models as open_api_models

    urlescape.install()  # the SDK's long, already-escaped URLs skip urllib3's byte-by-byte re-check
    sdk_config = open_api_models.Config(
        credential=credential_client(config),
        region_id=config.region or None,
        endpoint=config.endpoint(),
        protocol=config.eci_protocol,
        connect_timeout=connect_timeout_ms,
        read_timeout=read_timeout_ms,
        user_agent=user_agent,
    )
    if signature_algorithm:
        sdk_config.signature_algorithm = signature_algorithm
    return Client(sdk_config)
