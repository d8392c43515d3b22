"""Who may call the kubelet API: authentication (client certificate or bearer token) and
authorization (SubjectAccessReview on ``nodes/<node>``), as the real kubelet does it.

- A TLS client certificate already verified against the cluster CA by the TLS layer names
  the user (CN) and groups (O). That is how the API server calls in.
- A bearer token is checked with a TokenReview (cached 2 minutes).
- Each request is authorized with a SubjectAccessReview for ``verb`` on ``nodes/<node>``
  with the path's subresource (``stats``, ``metrics``, ``log``, else ``proxy``; ``pods``/
  ``healthz`` tried first as with KubeletFineGrainedAuthz). Allows are cached 5 minutes,
  denials 30 seconds.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)

TOKEN_TTL = 120.0
ALLOW_TTL = 300.0
DENY_TTL = 30.0
_VERBS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


class KubeApi(Protocol):
    """The one Kubernetes call auth needs: POST a review object and return the answer."""

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` to the API path and return the decoded response object."""
        ...


@dataclass(frozen=True)
class User:
    """An authenticated caller."""

    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: dict[str, list[str]] = field(default_factory=dict, hash=False, compare=False)


class Unauthorized(Exception):
    """No valid credentials (401)."""


class Forbidden(Exception):
    """Authenticated but not allowed (403)."""


def user_from_certificate(peer_cert: dict[str, Any] | None) -> User | None:
    """The user named by a verified peer certificate (``ssl.SSLSocket.getpeercert()``)."""
    if not peer_cert:
        return None
    name = ""
    groups: list[str] = []
    for rdn in peer_cert.get("subject") or ():
        for key, value in rdn:
            if key == "commonName":
                name = value
            elif key == "organizationName":
                groups.append(value)
    return User(name=name, groups=tuple(groups)) if name else None


def subresources(path: str) -> list[str]:
    """The ``nodes`` subresources to try for a request path, most specific first
    (mirrors the kubelet's ``GetRequestAttributes``)."""

    def under(prefix: str) -> bool:
        return path == prefix or path.startswith(prefix.rstrip("/") + "/")

    found = []
    if under("/pods") or under("/runningpods"):
        found.append("pods")
    elif under("/healthz"):
        found.append("healthz")
    elif under("/configz"):
        found.append("configz")
    if under("/stats"):
        found.append("stats")
    elif under("/metrics"):
        found.append("metrics")
    elif under("/logs"):
        found.append("log")
    else:
        found.append("proxy")
    return found


class _TtlCache:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._items: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            item = self._items.get(key)
            if item is None or item[0] < self._clock():
                self._items.pop(key, None)
                return None
            return item[1]

    def put(self, key: Any, value: Any, ttl: float) -> None:
        with self._lock:
            if len(self._items) > 10000:  # bounded: drop expired entries, then everything
                now = self._clock()
                self._items = {k: v for k, v in self._items.items() if v[0] >= now}
                if len(self._items) > 10000:
                    self._items.clear()
            self._items[key] = (self._clock() + ttl, value)


class Auth:
    """Authenticates and authorizes kubelet API requests for one node."""

    def __init__(self, kube: KubeApi, node_name: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._kube = kube
        self._node = node_name
        self._tokens = _TtlCache(clock)
        self._decisions = _TtlCache(clock)

    def authenticate(self, peer_cert: dict[str, Any] | None, authorization: str | None) -> User:
        """The caller, from a verified client certificate or a bearer token; raises Unauthorized."""
        user = user_from_certificate(peer_cert)
        if user is not None:
            return user
        if authorization and authorization.lower().startswith("bearer "):
            token = authorization[7:].strip()
            if token:
                return self._review_token(token)
        raise Unauthorized("Unauthorized")

    def _review_token(self, token: str) -> User:
        # The cache is keyed by a digest so the token itself is never kept or logged.
        key = hashlib.sha256(token.encode()).hexdigest()
        cached = self._tokens.get(key)
        if cached is not None:
            if isinstance(cached, User):
                return cached
            raise Unauthorized("Unauthorized")
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
        try:
            status = self._kube.post("/apis/authentication.k8s.io/v1/tokenreviews", body).get("status") or {}
        except Exception as exc:
            log.warning("TokenReview failed, refusing the request: %s", type(exc).__name__)
            raise Unauthorized("Unauthorized") from None
        if not status.get("authenticated"):
            self._tokens.put(key, False, TOKEN_TTL)
            raise Unauthorized("Unauthorized")
        info = status.get("user") or {}
        user = User(
            name=str(info.get("username") or ""),
            groups=tuple(info.get("groups") or ()),
            uid=str(info.get("uid") or ""),
            extra=dict(info.get("extra") or {}),
        )
        self._tokens.put(key, user, TOKEN_TTL)
        return user

    def authorize(self, user: User, method: str, path: str) -> None:
        """Raise Forbidden unless a SubjectAccessReview allows ``user`` on this node and path."""
        verb = _VERBS.get(method.upper(), method.lower())
        tried = subresources(path)
        for sub in tried:
            if self._allowed(user, verb, sub):
                return
        raise Forbidden(
            f"Forbidden (user={user.name}, verb={verb}, resource=nodes, subresource(s)=[{' '.join(tried)}])\n"
        )

    def _allowed(self, user: User, verb: str, subresource: str) -> bool:
        key = (user.name, user.groups, user.uid, verb, subresource)
        cached = self._decisions.get(key)
        if cached is not None:
            return bool(cached)
        spec: dict[str, Any] = {
            "user": user.name,
            "groups": list(user.groups),
            "resourceAttributes": {
                "verb": verb,
                "resource": "nodes",
                "subresource": subresource,
                "name": self._node,
                "group": "",
                "version": "v1",
            },
        }
        if user.uid:
            spec["uid"] = user.uid
        if user.extra:
            spec["extra"] = user.extra
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
        try:
            status = self._kube.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", body).get("status") or {}
        except Exception as exc:
            log.warning("SubjectAccessReview failed, denying: %s", exc)
            return False  # not cached: the next request asks again
        allowed = bool(status.get("allowed"))
        self._decisions.put(key, allowed, ALLOW_TTL if allowed else DENY_TTL)
        return allowed


class AllowAll:
    """No authentication or authorization at all: for development only, and says so loudly."""

    def __init__(self) -> None:
        log.warning(
            "kubelet API authentication is DISABLED: anyone who can reach the port can read logs and "
            "exec into every pod on this node. Never use this outside development."
        )

    def authenticate(self, peer_cert: dict[str, Any] | None, authorization: str | None) -> User:
        """Everyone is ``system:anonymous``."""
        return User(name="system:anonymous", groups=("system:unauthenticated",))

    def authorize(self, user: User, method: str, path: str) -> None:
        """Everything is allowed."""


class Authenticator(Protocol):
    """What the server calls: :class:`Auth` or, in development, :class:`AllowAll`."""

    def authenticate(self, peer_cert: dict[str, Any] | None, authorization: str | None) -> User:
        """The caller, or raise Unauthorized."""
        ...

    def authorize(self, user: User, method: str, path: str) -> None:
        """Return if allowed, raise Forbidden otherwise."""
        ...
