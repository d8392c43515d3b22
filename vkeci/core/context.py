"""What a translation reads besides the pod (``Objects``) and where it gathers its findings (``Context``).

``Objects`` holds the ConfigMaps, Secrets, service-account tokens and Services the daemon fetched
for one pod, as plain dicts. ``Context`` looks them up and records problems (the pod can never run
as written), missing references (retry later) and warnings (it runs, with a caveat), so that one
translation reports everything at once instead of stopping at the first error.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vkeci.core.problems import MissingRef, Problem

TokenKey = tuple[str, str, int]
DEFAULT_TOKEN_EXPIRATION = 3600


def token_key(service_account: str, audience: str | None, expiration_seconds: int | None) -> TokenKey:
    """How tokens are keyed in ``Objects.tokens``: (serviceAccountName, audience or "", expiration)."""
    return (service_account, audience or "", int(expiration_seconds or DEFAULT_TOKEN_EXPIRATION))


@dataclass(frozen=True)
class Objects:
    """Objects the pod references, fetched by the daemon (see ``translate.needs``).

    ``configmaps`` and ``secrets`` map a name (in the pod's namespace) to the object as the API
    returns it (Secret ``data`` base64-encoded; ``stringData`` is honoured too, for manifests).
    ``tokens`` maps ``token_key(...)`` to a token string. ``services`` lists the Services whose
    environment variables a kubelet injects: the pod's namespace's (when service links are on)
    plus ``default/kubernetes``.
    """

    configmaps: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    secrets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    tokens: Mapping[TokenKey, str] = field(default_factory=dict)
    services: Sequence[Mapping[str, Any]] = ()


@dataclass
class Context:
    """Lookups plus the problems, missing references and warnings found so far."""

    objects: Objects
    problems: list[Problem] = field(default_factory=list)
    missing: list[MissingRef] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    # Worth knowing but no cause for a Warning event (`vkeci translate` prints them as notes).
    notes: list[str] = field(default_factory=list)

    def problem(self, path: str, message: str, fix: str = "", waiting_reason: str = "") -> None:
        """Record why the pod cannot run on ECI (``waiting_reason``: what its containers show)."""
        self.problems.append(Problem(path, message, fix, waiting_reason))

    def warn(self, path: str, message: str, fix: str = "") -> None:
        """Record something the user should know (it becomes a Warning event)."""
        self.warnings.append(Problem(path, message, fix))

    def lack(self, kind: str, name: str, path: str, key: str | None = None) -> None:
        """Record a referenced object (or key) that is not there yet."""
        ref = MissingRef(kind, name, path, key)
        if ref not in self.missing:
            self.missing.append(ref)

    def configmap(self, name: str) -> Mapping[str, Any] | None:
        """The ConfigMap called ``name``, or None."""
        found = self.objects.configmaps.get(name)
        return found if isinstance(found, Mapping) else None

    def secret(self, name: str) -> Mapping[str, Any] | None:
        """The Secret called ``name``, or None."""
        found = self.objects.secrets.get(name)
        return found if isinstance(found, Mapping) else None

    def configmap_items(self, name: str, path: str, binary: bool = True) -> dict[str, bytes] | None:
        """Every key of a ConfigMap as bytes (``data`` as UTF-8, ``binaryData`` decoded unless
        ``binary`` is false: environment variables come from ``data`` only, as on a kubelet)."""
        obj = self.configmap(name)
        if obj is None:
            return None
        items: dict[str, bytes] = {}
        for key, value in _mapping(obj.get("data")).items():
            items[str(key)] = _utf8(value)
        for key, value in _mapping(obj.get("binaryData") if binary else None).items():
            decoded = self._b64(value, f"ConfigMap {name!r} binaryData[{key!r}]", path)
            if decoded is not None:
                items[str(key)] = decoded
        return items

    def secret_items(self, name: str, path: str) -> dict[str, bytes] | None:
        """Every key of a Secret as bytes (``data`` decoded from base64, ``stringData`` as UTF-8)."""
        obj = self.secret(name)
        if obj is None:
            return None
        items: dict[str, bytes] = {}
        for key, value in _mapping(obj.get("data")).items():
            decoded = self._b64(value, f"Secret {name!r} data[{key!r}]", path)
            if decoded is not None:
                items[str(key)] = decoded
        for key, value in _mapping(obj.get("stringData")).items():
            items[str(key)] = _utf8(value)
        return items

    def _b64(self, value: Any, what: str, path: str) -> bytes | None:
        if value is None:
            return b""
        try:
            return base64.b64decode(str(value).encode("ascii"), validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            # Never echo the value: it may be a secret.
            self.problem(path, f"{what} is not valid base64", "fix the object's data (values are base64-encoded)")
            return None


def _mapping(value: Any) -> Mapping[Any, Any]:
    return value if isinstance(value, Mapping) else {}


def _utf8(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "surrogatepass")
