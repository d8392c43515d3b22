"""A thin Kubernetes REST client on `requests`.

Credentials come from the `kubernetes` package's loader (kubeconfig with exec plugins and
token refresh, or the in-cluster service account); every request goes through a
`requests.Session` and a client-side token bucket. Nothing here knows about pods or nodes
beyond paths: controllers build bodies, this module only moves JSON.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import requests
from requests.adapters import HTTPAdapter
from requests.hooks import default_hooks
from requests.models import PreparedRequest
from requests.structures import CaseInsensitiveDict

from vkeci import metrics
from vkeci.clients import sendgate
from vkeci.clients.ratelimit import RateLimitTimeout, TokenBucket

JSON = dict[str, Any]
STRATEGIC = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"


class KubeError(Exception):
    """An API server error (or no answer). ``status`` is the HTTP status, 0 when unreachable."""

    def __init__(self, status: int, reason: str, message: str, method: str = "", path: str = "") -> None:
        self.status = status
        self.reason = reason
        self.message = message
        self.method = method
        self.path = path
        where = f"{method} {path}: " if method else ""
        text = f"{where}{status} {reason}: {message}" if status else f"{where}{message}"
        if status == 403:
            # The API server names the user, verb and resource; what the admin needs next is where to fix it.
            text += (
                ' (RBAC does not allow this identity to do it: the Roles are in deploy/, see README "Install in a'
                ' cluster", RBAC; for the daemon, `vkeci check` lists every permission it lacks)'
            )
        super().__init__(text)

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def gone(self) -> bool:
        return self.status == 410

    @property
    def forbidden(self) -> bool:
        return self.status == 403


@dataclass(frozen=True)
class Credentials:
    """Where the API server is and how to authenticate to it."""

    host: str
    verify: bool | str = True
    cert: tuple[str, str] | None = None
    # Returns the Authorization header value (refreshing exec-plugin/SA tokens), or None.
    token: Callable[[], str | None] | None = None


def load_credentials(kubeconfig: str = "", context: str | None = None) -> Credentials:
    """Credentials from ``kubeconfig`` (or $KUBECONFIG, ~/.kube/config), else in-cluster.

    Uses the `kubernetes` package's loaders so exec plugins, embedded certificates and token
    refresh work as in kubectl.
    """
    from kubernetes import config as kconfig
    from kubernetes.client import Configuration

    cfg = Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG", "") or os.path.expanduser("~/.kube/config")
    if kubeconfig or os.path.exists(path):
        try:
            kconfig.load_kube_config(config_file=path, context=context, client_configuration=cfg)
        except Exception as exc:  # the loader raises several unrelated types
            raise KubeError(0, "BadKubeconfig", f"kubeconfig {path} cannot be used: {exc}") from None
    else:
        try:
            kconfig.load_incluster_config(client_configuration=cfg)
        except Exception as exc:
            raise KubeError(
                0, "NoCredentials", f"no kubeconfig at {path} and not running in a pod ({exc}); set --kubeconfig"
            ) from None

    def token() -> str | None:
        auth = cfg.auth_settings().get("BearerToken")
        return str(auth["value"]) if auth and auth.get("value") else None

    verify: bool | str = cfg.ssl_ca_cert or bool(cfg.verify_ssl)
    cert = (cfg.cert_file, cfg.key_file) if cfg.cert_file and cfg.key_file else None
    return Credentials(host=cfg.host.rstrip("/"), verify=verify, cert=cert, token=token)


def pod_path(namespace: str, name: str = "", sub: str = "") -> str:
    """``/api/v1/namespaces/<ns>/pods[/<name>[/<sub>]]`` with names escaped."""
    path = f"/api/v1/namespaces/{quote(namespace, safe='')}/pods"
    if name:
        path += "/" + quote(name, safe="")
    if sub:
        path += "/" + sub
    return path


class KubeClient:
    """JSON over HTTP to one API server. Thread-safe; make one per priority class of traffic."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        limiter: TokenBucket | None = None,
        priority: bool = False,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        user_agent: str = "vkeci",
        meter: metrics.Metrics | None = None,
        write_gate: Callable[[], bool] | None = None,
    ) -> None:
        """``meter`` counts the requests (shared by the clients ``with_priority`` makes)."""
        self.credentials = credentials
        # Asked right before every request that is not a GET; False refuses it (KubeError "NotLeader"):
        # only the leader of the node writes (controllers/leader.py).
        self.write_gate = write_gate
        self.limiter = limiter
        self.priority = priority
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.session = requests.Session()
        # Proxies, netrc and CA bundle from the environment are read once, here: with trust_env requests
        # re-reads all of os.environ on every request (about 0.3 ms each, measured; see BENCHMARKS.md).
        self.session.trust_env = False
        self.session.proxies.update(requests.utils.get_environ_proxies(credentials.host))
        # The default pool keeps 10 connections; more threads than that (workers + status writers) would
        # open and TLS-handshake a new connection for every request beyond it.
        adapter = sendgate.guard_adapter(_OnePoolAdapter(pool_connections=1, pool_maxsize=64))
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.verify = credentials.verify
        if credentials.cert:
            self.session.cert = credentials.cert
        self.session.headers["User-Agent"] = user_agent
        self.session.headers["Accept"] = "application/json"
        self.metrics = meter or metrics.Metrics()

    def with_priority(self, priority: bool = True) -> KubeClient:
        """A client with its own connection pool and the given priority in the shared limiter."""
        return KubeClient(
            self.credentials,
            limiter=self.limiter,
            priority=priority,
            timeout=self.timeout,
            connect_timeout=self.connect_timeout,
            user_agent=str(self.session.headers["User-Agent"]),
            meter=self.metrics,
            write_gate=self.write_gate,
        )

    @property
    def counts(self) -> Counter[str]:
        """Requests sent so far as ``"VERB resource[/subresource]"``, by this client and every client
        sharing its ``metrics`` (read from the metrics: the one count; ``--stats-file``)."""
        return self.metrics.kube_requests_by_call()

    @property
    def request_count(self) -> int:
        """How many requests were sent (tests and benchmarks)."""
        return sum(self.counts.values())

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {}
        if content_type:
            headers["Content-Type"] = content_type
        token = self.credentials.token() if self.credentials.token else None
        if token:
            headers["Authorization"] = token
        return headers

    def _prepare(
        self, method: str, path: str, params: dict[str, Any] | None, data: bytes | None, content_type: str | None
    ) -> PreparedRequest:
        """The request as ``Session.request`` would prepare it, without its per-request merging.

        ``Session.request`` merges the session's cookies, hooks, headers and environment into every
        request and re-parses and re-quotes the URL: 12 % of the daemon's GIL time in a 1,000-pod burst
        (py-spy ``--gil``, BENCHMARKS.md #13). Paths here are built by ``pod_path`` and friends, already
        quoted; no cookies, hooks or redirects are used. Sending still goes through ``Session.send`` and
        the adapter, so timeouts, TLS, proxies and the tests' ``responses`` mocks behave as before."""
        url = self.credentials.host + path
        if params:
            query = urlencode([(k, v) for k, v in params.items() if v is not None], doseq=True)
            if query:
                url += ("&" if "?" in path else "?") + query
        headers: CaseInsensitiveDict[str | bytes] = CaseInsensitiveDict(self.session.headers)
        headers.update(self._headers(content_type))
        if data is not None:
            headers["Content-Length"] = str(len(data))
        elif method not in ("GET", "HEAD"):
            headers["Content-Length"] = "0"
        prepared = PreparedRequest()
        prepared.method = method
        prepared.url = url
        prepared.headers = headers  # type: ignore[assignment]  # what Session.request puts there too
        prepared.body = data
        prepared.hooks = default_hooks()
        return prepared

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
        timeout: float | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """Send one request; raise KubeError on a non-2xx answer or no answer."""
        resource = resource_of(path)
        started = time.perf_counter()
        if self.limiter is not None:
            try:
                self.limiter.acquire(priority=self.priority, timeout=max(self.timeout, 60.0))
            except RateLimitTimeout:
                waited = time.perf_counter() - started
                self.metrics.kube_request(method, resource, metrics.DROPPED, waited, None, priority=self.priority)
                message = "client-side rate limit exhausted (raise VKECI_KUBE_QPS / VKECI_KUBE_BURST)"
                raise KubeError(429, "TooManyRequests", message, method, path) from None
        # The leader's gate is checked at the last moment, right before the request is sent (``clients.sendgate``).
        gate = self.write_gate if method != "GET" else None
        data = None if body is None else json.dumps(body).encode()
        if data is not None and content_type is None:
            content_type = "application/json"
        sent = time.perf_counter()
        try:
            with sendgate.gated(gate):
                resp = self.session.send(
                    self._prepare(method, path, params, data, content_type),
                    timeout=(self.connect_timeout, timeout or self.timeout),
                    stream=stream,
                    # Explicit, because requests lets $REQUESTS_CA_BUNDLE override a session's CA.
                    verify=self.credentials.verify,
                    cert=self.session.cert,
                    proxies=self.session.proxies,
                    allow_redirects=False,  # the API server answers our paths itself
                )
        except sendgate.GateClosed as closed:
            raise KubeError(0, "NotLeader", str(closed), method, path) from None
        except requests.RequestException as exc:
            took = time.perf_counter() - sent
            self.metrics.kube_request(method, resource, metrics.NO_ANSWER, sent - started, took, priority=self.priority)
            message = f"API server {self.credentials.host} did not answer: {type(exc).__name__}: {root_cause(exc)}"
            raise KubeError(0, "Unreachable", message, method, path) from None
        took = time.perf_counter() - sent
        self.metrics.kube_request(method, resource, str(resp.status_code), sent - started, took, priority=self.priority)
        if resp.status_code >= 400:
            raise _error(resp, method, path)
        return resp

    def get(self, path: str, params: dict[str, Any] | None = None) -> JSON:
        """GET a JSON object."""
        return dict(self.request("GET", path, params=params).json())

    def post(self, path: str, body: JSON) -> JSON:
        """Create an object."""
        return dict(self.request("POST", path, body=body).json())

    def put(self, path: str, body: JSON) -> JSON:
        """Replace an object (optimistic concurrency through metadata.resourceVersion)."""
        return dict(self.request("PUT", path, body=body).json())

    def patch(self, path: str, body: JSON, content_type: str = STRATEGIC) -> JSON:
        """Patch an object, strategic merge by default."""
        return dict(self.request("PATCH", path, body=body, content_type=content_type).json())

    def delete(self, path: str, body: JSON | None = None) -> JSON:
        """Delete an object; ``body`` carries DeleteOptions (gracePeriodSeconds, preconditions)."""
        return dict(self.request("DELETE", path, body=body).json())

    def watch(self, path: str, params: dict[str, Any], read_timeout: float) -> Iterator[JSON]:
        """Yield watch events (``{"type", "object"}``) until the server closes the stream.

        ``read_timeout`` bounds the silence between two lines, so a half-dead connection
        raises KubeError instead of hanging forever.
        """
        params = {**params, "watch": "true"}
        resp = self.request("GET", path, params=params, timeout=read_timeout, stream=True)
        try:
            for line in resp.iter_lines():
                if line:
                    yield json.loads(line)
        except (requests.RequestException, ValueError) as exc:
            raise KubeError(0, "WatchBroken", f"watch stream broke: {type(exc).__name__}", "GET", path) from None
        finally:
            resp.close()


def root_cause(exc: BaseException) -> str:
    """The innermost reason of a `requests` failure: ``Failed to establish a new connection: [Errno 111]
    Connection refused`` or ``[SSL: CERTIFICATE_VERIFY_FAILED] ...``, not the pool and retry wrappers
    around it (whose head is all a cut message used to keep)."""
    seen: set[int] = set()
    current: BaseException = exc
    while id(current) not in seen:
        seen.add(id(current))
        inner = getattr(current, "reason", None)  # urllib3's MaxRetryError, ProtocolError...
        if not isinstance(inner, BaseException) and current.args and isinstance(current.args[0], BaseException):
            inner = current.args[0]  # requests wraps urllib3's error as its first argument
        if not isinstance(inner, BaseException):
            break
        current = inner
    text = str(current) or type(current).__name__
    # urllib3 prefixes the connection object: "HTTPConnection(host='h', port=1): Failed to establish...".
    head, sep, rest = text.partition("): ")
    return rest if sep and head.startswith(("HTTPConnection", "HTTPSConnection", "<urllib3")) else text


class _OnePoolAdapter(HTTPAdapter):
    """An HTTPAdapter for one API server: the connection pool and its TLS settings are looked up once.

    The stock adapter rebuilds the pool key from the URL and re-checks the CA and client-certificate
    files on disk (``cert_verify``: stat calls) for every request; a KubeClient always talks to the
    same host with the same TLS settings, so the answer is kept per (host, verify, cert)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._pools: dict[tuple[str, Any, Any], Any] = {}
        self._pools_lock = threading.Lock()

    def get_connection_with_tls_context(
        self, request: PreparedRequest, verify: Any, proxies: Mapping[str, str] | None = None, cert: Any = None
    ) -> Any:
        url = request.url or ""
        if proxies:  # through a proxy: the stock lookup, every time
            proxied = super().get_connection_with_tls_context(request, verify, proxies=proxies, cert=cert)
            super().cert_verify(proxied, url, verify, cert)
            return proxied
        origin = url[: url.find("/", url.find("//") + 2)] if url.count("/") >= 3 else url
        key = (origin, verify, cert)
        pool: Any = self._pools.get(key)
        if pool is None or pool.pool is None:  # not looked up yet, or closed (evicted by the pool manager)
            pool = super().get_connection_with_tls_context(request, verify, proxies=proxies, cert=cert)
            super().cert_verify(pool, url, verify, cert)
            with self._pools_lock:
                self._pools[key] = pool
        return pool

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        """Done once per pool, in ``get_connection_with_tls_context``."""

    def close(self) -> None:
        with self._pools_lock:
            self._pools.clear()
        super().close()


def resource_of(path: str) -> str:
    """``pods/status`` for ``/api/v1/namespaces/ns/pods/name/status``: what a request is about."""
    parts = [p for p in path.split("?")[0].split("/") if p]
    if "namespaces" in parts:
        rest = parts[parts.index("namespaces") + 2 :]
    else:
        rest = parts[2:] if parts[:1] == ["api"] else parts[3:]
    if not rest:
        return "namespaces" if "namespaces" in parts else "/".join(parts) or "/"
    return rest[0] + ("/" + rest[2] if len(rest) > 2 else "")


def _error(resp: requests.Response, method: str, path: str) -> KubeError:
    try:
        status = resp.json()
        reason = str(status.get("reason") or resp.reason)
        message = str(status.get("message") or resp.text[:200])
    except ValueError:
        reason, message = str(resp.reason), resp.text[:200]
    return KubeError(resp.status_code, reason, message, method, path)
