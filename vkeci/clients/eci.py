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
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from vkeci import metrics
from vkeci.clients import sendgate, urlescape
from vkeci.clients.ratelimit import EciLimiter, RateLimitTimeout
from vkeci.config import Config
from vkeci.log import adopt_sdk_loggers, fields, get_logger

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
_LOCAL_THROTTLING = "Throttling.Local"  # the client-side rate limit gave no token: the call was never sent
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
        refused: bool = False,
    ) -> None:
        self.action = action
        # No connection could be made at all (refused, or the name does not resolve): a hard outage, noticed
        # at once by the node's reachability (``core.reachability``); the call did not act.
        self.refused = refused
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

    @property
    def outcome(self) -> str:
        """The error's class, as ``vkeci_eci_calls_total{outcome}`` shows it (a handful of values, never a code)."""
        if self.code == _LOCAL_THROTTLING:
            return metrics.DROPPED
        if self.status == 429 or "Throttling" in self.code:
            return "throttled"
        if self.code in ("NoResponse", "BadResponse"):
            return "no_response"
        if self.not_found:
            return "not_found"
        if self.no_stock:
            return "no_stock"
        return "server_error" if self.status >= 500 or self.transient else "client_error"


_NOT_JSON = "Failed to parse the value as json format"  # what the SDK says about a non-JSON answer


def _causes(exc: BaseException) -> Iterable[BaseException]:
    """``exc`` and what it wraps: the SDK's retry context, ``inner_exception``, ``__cause__``/``__context__``."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        inner = getattr(getattr(current, "_context", None), "exception", None)
        for nested in (inner, getattr(current, "inner_exception", None), current.__cause__, current.__context__):
            if isinstance(nested, BaseException):
                todo.append(nested)


def no_credentials_message() -> str:
    """One line for an admin whose daemon found no Alibaba Cloud credentials: what the chain tried, in its
    order, and how to set each (``alibabacloud_credentials.provider.default``)."""
    metadata_off = os.environ.get("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "").lower() == "true"
    ecs = (
        "the ECS RAM role (skipped: ALIBABA_CLOUD_ECS_METADATA_DISABLED=true)"
        if metadata_off
        else "the ECS RAM role of the instance (attach a RAM role to the ECS instance; ALIBABA_CLOUD_ECS_METADATA "
        "names it)"
    )
    return (
        "no Alibaba Cloud credentials found; tried: the environment (set ECI_ACCESS_KEY and ECI_SECRET_KEY, or "
        "ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET, plus ALIBABA_CLOUD_SECURITY_TOKEN for STS), "
        "OIDC/RRSA (set ALIBABA_CLOUD_ROLE_ARN, ALIBABA_CLOUD_OIDC_PROVIDER_ARN and ALIBABA_CLOUD_OIDC_TOKEN_FILE; "
        "ACK's RRSA sets them), the CLI profile (~/.aliyun/config.json, ALIBABA_CLOUD_PROFILE), the credentials "
        f"file (~/.alibabacloud/credentials.ini or ALIBABA_CLOUD_CREDENTIALS_FILE), {ecs}"
    )


def classify(action: str, exc: Exception) -> EciError:
    """Map any SDK exception to an EciError (pure: used by tests with hand-made exceptions)."""
    if isinstance(exc, EciError):
        return exc
    if any(type(cause).__name__ == "CredentialException" for cause in _causes(exc)):
        # The credential chain failed before anything was sent: not the endpoint's fault. Retried, since an
        # RRSA token file or a RAM role can appear after the daemon started.
        return EciError(action, "NoCredentials", no_credentials_message(), transient=True)
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
        text = f"{exc!s} {inner!s}"
        # urllib3's words for a connection never made (refused, unresolvable host), inside the SDK's wrapper.
        if "Failed to establish a new connection" in text or "Failed to resolve" in text:
            why = "connection refused" if "refused" in text.lower() else "cannot connect"
            return EciError(
                action, "NoResponse", f"no answer from the ECI endpoint ({why})", transient=True, refused=True
            )
        return EciError(action, "NoResponse", f"no answer from the ECI endpoint ({detail})", transient=True)
    transient = status >= 500 or status == 429 or code.startswith(_TRANSIENT_CODES) or "Throttling" in code
    return EciError(
        action, code or f"HTTP{status}", message[:500], request_id=request_id, status=status, transient=transient
    )


TagList = list[dict[str, str]]
Page = tuple[list[Group], str]  # one page of a listing: its records and the NextToken ("" on the last page)
PageFetch = Callable[[str | None], Page]  # fetch the page after a NextToken (None: the first page)
# Follows a listing's pages: given the fetch of one page, returns every record. The clients never retry, so
# the default (``follow_pages``) gives up on the first failed page; the controllers hand in a pager that
# retries each page and resumes from its NextToken (``vkeci.controllers.listing.Listing``).
Pager = Callable[[PageFetch], list[Group]]
MAX_PAGES = 100000  # bounded: a broken NextToken must not spin forever


def follow_pages(fetch: PageFetch) -> list[Group]:
    """Every page of a listing in turn, no retry: the first failed page raises its EciError."""
    records: list[Group] = []
    token = ""
    for _ in range(MAX_PAGES):
        page, token = fetch(token or None)
        records.extend(page)
        if not token:
            break
    return records


def _tags(tags: TagList) -> TagList:
    """The ``Tag`` parameter of a listing: each tag's Key and Value, as the SDK's tag models send them."""
    return [{"Key": t["Key"], "Value": t["Value"]} for t in tags]


def chunks(items: list[str], size: int = _MAX_IDS) -> Iterable[list[str]]:
    """``items`` in lists of at most ``size`` (ECI takes ≤20 ids per call)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


class EciClient:
    """ECI calls for one region, rate-limited and counted (``metrics``: by action and outcome, with
    latency and rate-limit wait; ``calls``: by action, for ``--stats-file``).

    It is also the kubelet API's :class:`vkeci.kubelet.backend.EciApi`."""

    def __init__(
        self,
        client: Any,
        region: str,
        limiter: EciLimiter | None = None,
        meter: metrics.Metrics | None = None,
        write_gate: Callable[[], bool] | None = None,
    ) -> None:
        from alibabacloud_eci20180808 import models
        from alibabacloud_openapi_util.client import Client as OpenApiUtil
        from alibabacloud_tea_openapi import models as open_api_models
        from alibabacloud_tea_util.models import RuntimeOptions

        self._models = models
        self._open_api = open_api_models
        self._flatten = OpenApiUtil.query
        self._params: dict[str, Any] = {}
        self._runtime = RuntimeOptions()  # only read by the SDK: one for every call, as each method makes its own
        self.client = client
        self.region = region
        self.limiter = limiter or EciLimiter(enabled=False)
        self.metrics = meter or metrics.Metrics()
        # Asked right before every call that changes groups; False refuses it: only the node's leader writes.
        self.write_gate = write_gate

    @classmethod
    def from_config(
        cls,
        config: Config,
        limits: dict[str, int] | None = None,
        meter: metrics.Metrics | None = None,
        *,
        write_gate: Callable[[], bool] | None = None,
        user_agent: str = "vkeci",
    ) -> EciClient:
        """A client built from a Config: SDK client, credentials, rate limits (``limits``
        overrides the documented per-minute limit of some actions; the others are the documented ones
        times ``eci_rate_share``), counted in ``meter``."""
        limiter = EciLimiter(limits, enabled=config.rate_limits, share=config.eci_rate_share)
        return cls(new_client(config, user_agent=user_agent), config.region, limiter, meter, write_gate)

    @property
    def calls(self) -> Counter[str]:
        """ECI calls sent so far, by action (read from ``metrics``: the one count)."""
        return self.metrics.eci_calls_by_action()

    def _call(self, action: str, fn: Callable[[], T]) -> T:
        started = time.perf_counter()
        try:
            self.limiter.acquire(action)
        except RateLimitTimeout:
            self.metrics.eci_call(action, metrics.DROPPED, time.perf_counter() - started, None)
            raise EciError(
                action,
                _LOCAL_THROTTLING,
                "the client-side rate limit for this action is exhausted, retry shortly",
                status=429,
                transient=True,
            ) from None
        # The leader's gate is checked at the last moment, right before the request is sent (``clients.sendgate``).
        gate = self.write_gate if action in WRITE_ACTIONS else None
        sent = time.perf_counter()
        try:
            with sendgate.gated(gate):
                result = fn()
        except Exception as exc:
            if gate is not None and sendgate.refused():  # the SDK wraps the adapter's GateClosed in its own error
                raise EciError(action, "NotLeader", sendgate.NOT_LEADER, transient=True) from None
            err = classify(action, exc)
            self.metrics.eci_call(action, err.outcome, sent - started, time.perf_counter() - sent)
            raise err from None
        self.metrics.eci_call(action, metrics.OK, sent - started, time.perf_counter() - sent)
        return result

    def _rpc(self, action: str, query: dict[str, Any]) -> dict[str, Any]:
        """One call of ``action`` through the SDK client's ``call_api``; returns the answer's JSON body.

        Every generated SDK method (``create_container_group`` ...) builds a request model, copies its
        fields into a query dict, flattens it (``OpenApiUtilClient.query``), calls ``call_api`` with the
        action's ``Params``, then builds a response model that the callers turned back into a dict
        (``to_map``). The hot calls start here from the dict the model was built from, with the same
        flattening, Params, signing and transport, and keep the decoded body: the model round trips were
        60 % of a status listing's client CPU and a third of a describe's (BENCHMARKS.md, issue 18 cuts).
        The query is the one the model path sends (``tests/clients/test_eci.py`` checks it field by field
        for generated pods and every call below)."""
        params = self._params.get(action)
        if params is None:
            params = self._open_api.Params(
                action=action,
                version="2018-08-08",
                protocol="HTTPS",  # the client's configured protocol wins, as in the generated methods
                pathname="/",
                method="POST",
                auth_type="AK",
                style="RPC",
                req_body_type="formData",
                body_type="json",
            )
            self._params[action] = params
        request = self._open_api.OpenApiRequest(query=self._flatten(query))
        answer = self.client.call_api(params, request, self._runtime)
        body = answer.get("body") if isinstance(answer, dict) else None
        return body if isinstance(body, dict) else {}

    def ping(self) -> None:
        """A cheap authenticated call proving the endpoint and credentials work."""
        req = self._models.DescribeRegionsRequest(region_id=self.region)
        self._call("DescribeRegions", partial(self.client.describe_regions, req))

    def region_ids(self) -> list[str]:
        """The regions ECI answers DescribeRegions with (``vkeci check``: is the configured one among them?)."""
        req = self._models.DescribeRegionsRequest(region_id=self.region)
        body = self._body("DescribeRegions", self.client.describe_regions, req)
        return [str(r.get("RegionId")) for r in body.get("Regions") or [] if isinstance(r, dict)]

    def create(self, request: dict[str, Any]) -> tuple[str, str]:
        """CreateContainerGroup from the translator's request map; returns (group id, request id).

        With several vSwitches, a synchronous NoStock answer drops the first vSwitch and tries
        the rest in order, as ECI's own VSwitchOrdered strategy would.
        """
        request = {**request, "RegionId": request.get("RegionId") or self.region}
        while True:
            try:
                body = self._call("CreateContainerGroup", partial(self._rpc, "CreateContainerGroup", request))
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
            return str(body.get("ContainerGroupId")), str(body.get("RequestId") or "")

    def dry_run(self, request: dict[str, Any]) -> None:
        """CreateContainerGroup with DryRun: ECI validates the request (vSwitch, security group,
        sizes, quotas) and creates nothing. Raises EciError when the request would fail."""
        request = {**request, "RegionId": request.get("RegionId") or self.region, "DryRun": True}
        try:
            self._call("CreateContainerGroup", partial(self._rpc, "CreateContainerGroup", request))
        except EciError as err:
            if err.code == "DryRunOperation":
                return
            raise
        raise EciError("CreateContainerGroup", "DryRunIgnored", "the endpoint created a group despite DryRun=true")

    def delete(self, group_id: str) -> None:
        """DeleteContainerGroup; a group that is already gone counts as deleted."""
        query = {"RegionId": self.region, "ContainerGroupId": group_id}
        try:
            self._call("DeleteContainerGroup", partial(self._rpc, "DeleteContainerGroup", query))
        except EciError as err:
            if not err.not_found:
                raise

    def list_groups(self, tags: TagList, *, with_event: bool = False, pager: Pager = follow_pages) -> list[Group]:
        """Every group carrying all of ``tags`` (paged, 20 per call, followed by ``pager``)."""

        def page(token: str | None) -> dict[str, Any]:
            return {
                "RegionId": self.region,
                "Limit": _MAX_IDS,
                "NextToken": token,
                "Tag": _tags(tags),
                "WithEvent": with_event or None,
            }

        return pager(self._pages("DescribeContainerGroups", page, "ContainerGroups"))

    def describe(self, group_ids: list[str], *, with_event: bool = True) -> list[Group]:
        """Full details of the given groups, ≤20 ids per call. Missing groups are simply absent."""
        groups: list[Group] = []
        for part in chunks(sorted(set(group_ids))):
            query = {
                "RegionId": self.region,
                "ContainerGroupIds": json.dumps(part),
                "Limit": _MAX_IDS,
                "WithEvent": with_event,
            }
            body = self._call("DescribeContainerGroups", partial(self._rpc, "DescribeContainerGroups", query))
            groups.extend(body.get("ContainerGroups") or [])
        return groups

    def changed_since(self, tags: TagList, since_second: int | None, *, pager: Pager = follow_pages) -> list[Group]:
        """DescribeContainerGroupStatus by tag: groups whose status changed in the last
        ``since_second`` seconds (all of them when None). Returns the status records."""
        return self._listing(pager, "DescribeContainerGroupStatus", tags, since_second)

    def events_since(self, tags: TagList, since_second: int, *, pager: Pager = follow_pages) -> list[Group]:
        """DescribeContainerGroupEvents by tag: groups with an event in the last ``since_second``
        seconds, each with its ``Events``. Catches what changes no status (probe failures, back-off)."""
        return self._listing(pager, "DescribeContainerGroupEvents", tags, since_second)

    def _listing(self, pager: Pager, action: str, tags: TagList, since: int | None) -> list[Group]:
        """Every page (200 per call) of a tag-filtered batch listing with ``SinceSecond``."""

        def page(token: str | None) -> dict[str, Any]:
            return {"RegionId": self.region, "Limit": 200, "NextToken": token, "SinceSecond": since, "Tag": _tags(tags)}

        return pager(self._pages(action, page, "Data"))

    def _pages(self, action: str, page: Callable[[str | None], dict[str, Any]], key: str) -> PageFetch:
        """The fetch of one page of a listing (one counted call, for a pager); ``page(token)`` builds its query."""

        def fetch(token: str | None) -> Page:
            data = self._call(action, partial(self._rpc, action, page(token)))
            return list(data.get(key) or []), str(data.get("NextToken") or "")

        return fetch

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

    adopt_sdk_loggers()  # its modules, imported just now, each added their own stderr handler
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
    sendgate.guard_sdk_sessions()  # a write's leader gate is asked right before it is sent
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
