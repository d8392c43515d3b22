"""Server-side verification of the two signatures the ECI SDK can send (eci-openapi.md §3).

* V3 `ACS3-HMAC-SHA256` (SDK default): `Authorization` header, signed `x-acs-*` headers.
* V2 RPC `HMAC-SHA1` / `SignatureVersion=1.0` (`signature_algorithm='v2'`): everything in the query string.

The raw query is never hashed as received: it is decoded and re-encoded canonically, so both the sync SDK
(`+` for spaces) and the async one (yarl's looser escaping) verify. Failures raise `ApiError` with the codes
and statuses of the real service.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import quote

from fakes.eci.errors import AK_NOT_FOUND, INCOMPLETE_SIGNATURE, SIGNATURE_MISMATCH, ApiError

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_AUTH_RE = re.compile(r"^(ACS3-[A-Z0-9-]+) Credential=([^,]+),SignedHeaders=([^,]*),Signature=([0-9a-fA-F]+)$")
# The V3 doc: x-acs-date must be within 15 minutes; nonces must not repeat within that window.
MAX_CLOCK_SKEW_S = 15 * 60


@dataclass(frozen=True)
class Credential:
    """An AccessKey the fake accepts; with `security_token` set it is an STS credential."""

    access_key_id: str
    access_key_secret: str
    security_token: str | None = None


@dataclass(frozen=True)
class Verified:
    """Who signed the request and how."""

    access_key_id: str
    algorithm: str  # "ACS3-HMAC-SHA256" or "HMAC-SHA1"


def pct(s: str) -> str:
    """RFC 3986 percent-encoding: only A-Z a-z 0-9 - _ . ~ stay literal (space -> %20, * -> %2A)."""
    return quote(s, safe="~", encoding="utf-8")


def canonical_query(params: Sequence[tuple[str, str]]) -> str:
    """Sorted, canonically re-encoded `k=v&...` over decoded parameters."""
    return "&".join(f"{pct(k)}={pct(v)}" for k, v in sorted(params))


class NonceCache:
    """Remembers recent nonces to reject replays; bounded so a long benchmark cannot exhaust memory."""

    def __init__(self, ttl_s: float = MAX_CLOCK_SKEW_S, max_entries: int = 200_000) -> None:
        self._ttl = ttl_s
        self._max = max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def use(self, nonce: str) -> bool:
        """Record `nonce`; False if it was already used within the window."""
        now = time.monotonic()
        with self._lock:
            while self._seen:
                oldest_nonce, at = next(iter(self._seen.items()))
                if now - at <= self._ttl and len(self._seen) < self._max:
                    break
                del self._seen[oldest_nonce]
            if nonce in self._seen:
                return False
            self._seen[nonce] = now
            return True


def _check_time(value: str | None, name: str, now: float) -> None:
    if not value:
        raise ApiError("MissingParameter", f'The input parameter "{name}" that is mandatory is not supplied.')
    try:
        if len(value) != 20 or value[10] != "T" or value[19] != "Z":
            raise ValueError(value)
        # Hand-parsed: strptime is a visible share of the request path at 1,000+ requests/s.
        at = datetime(
            int(value[0:4]),
            int(value[5:7]),
            int(value[8:10]),
            int(value[11:13]),
            int(value[14:16]),
            int(value[17:19]),
            tzinfo=timezone.utc,
        ).timestamp()
    except ValueError:
        raise ApiError(
            "InvalidTimeStamp.Format",
            f'Specified time stamp "{value}" must be in ISO8601 UTC, e.g. 2026-01-01T00:00:00Z.',
        ) from None
    if abs(now - at) > MAX_CLOCK_SKEW_S:
        raise ApiError(
            "InvalidTimeStamp.Expired",
            f"Specified time stamp or date value is expired: {value} is more than 15 minutes from the server time.",
        )


def _check_token(cred: Credential, token: str | None) -> None:
    if cred.security_token is None:
        if token:
            raise ApiError(
                "InvalidSecurityToken.MismatchWithAccessKey", "The security token does not match the AccessKey."
            )
        return
    if not token:
        raise ApiError("MissingSecurityToken", "The AccessKey is an STS key; the security token is mandatory.")
    if not hmac.compare_digest(token, cred.security_token):
        raise ApiError("InvalidSecurityToken.MismatchWithAccessKey", "The security token does not match the AccessKey.")


class Verifier:
    """Verifies requests against a fixed set of credentials."""

    def __init__(
        self,
        credentials: Sequence[Credential],
        *,
        check_time: bool = True,
        check_nonce: bool = True,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._creds = {c.access_key_id: c for c in credentials}
        self._check_time = check_time
        self._nonces = NonceCache() if check_nonce else None
        self._clock = wall_clock

    def _credential(self, ak: str) -> Credential:
        cred = self._creds.get(ak)
        if cred is None:
            raise ApiError("InvalidAccessKeyId.NotFound", AK_NOT_FOUND, 404)
        return cred

    def _nonce(self, nonce: str | None, name: str) -> None:
        if not nonce:
            raise ApiError("MissingParameter", f'The input parameter "{name}" that is mandatory is not supplied.')
        if self._nonces is not None and not self._nonces.use(nonce):
            raise ApiError("SignatureNonceUsed", f'Specified signature nonce "{nonce}" was used already.')

    def verify(
        self, method: str, path: str, params: Sequence[tuple[str, str]], headers: Mapping[str, str], body: bytes
    ) -> Verified:
        """Verify one request. `params` are the decoded query parameters in order, `headers` lower-cased."""
        auth = headers.get("authorization", "")
        if auth.startswith("ACS3-"):
            return self._verify_v3(method, path, params, headers, body, auth)
        if auth:
            raise ApiError("IncompleteSignature", INCOMPLETE_SIGNATURE)
        return self._verify_v2(method, params)

    def _verify_v3(
        self,
        method: str,
        path: str,
        params: Sequence[tuple[str, str]],
        h: Mapping[str, str],
        body: bytes,
        auth: str,
    ) -> Verified:
        m = _AUTH_RE.match(auth)
        if not m:
            raise ApiError("IncompleteSignature", INCOMPLETE_SIGNATURE)
        algo, ak, signed_headers, sig = m.groups()
        if algo != "ACS3-HMAC-SHA256":
            raise ApiError("IncompleteSignature", f"{INCOMPLETE_SIGNATURE} Unsupported algorithm {algo}.")
        names = signed_headers.split(";") if signed_headers else []
        for required in ("host", "x-acs-action", "x-acs-content-sha256", "x-acs-date", "x-acs-signature-nonce"):
            if required not in names:
                raise ApiError("IncompleteSignature", f"{INCOMPLETE_SIGNATURE} Header {required} must be signed.")
        cred = self._credential(ak)
        payload_hash = hashlib.sha256(body or b"").hexdigest()
        if h.get("x-acs-content-sha256") != payload_hash:
            raise ApiError(
                "SignatureDoesNotMatch", f"{SIGNATURE_MISMATCH} x-acs-content-sha256 does not match the body."
            )
        canonical_headers = "".join(f"{n}:{h.get(n, '').strip()}\n" for n in names)
        canonical_request = "\n".join(
            [method.upper(), path or "/", canonical_query(params), canonical_headers, signed_headers, payload_hash]
        )
        string_to_sign = f"{algo}\n" + hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
        expect = hmac.new(cred.access_key_secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expect, sig.lower()):
            raise ApiError("SignatureDoesNotMatch", f"{SIGNATURE_MISMATCH} server StringToSign is [{string_to_sign}]")
        token = h.get("x-acs-security-token")
        if token is not None and "x-acs-security-token" not in names:
            raise ApiError("IncompleteSignature", f"{INCOMPLETE_SIGNATURE} Header x-acs-security-token must be signed.")
        _check_token(cred, token)
        if self._check_time:
            _check_time(h.get("x-acs-date"), "x-acs-date", self._clock())
        self._nonce(h.get("x-acs-signature-nonce"), "x-acs-signature-nonce")
        return Verified(ak, algo)

    def _verify_v2(self, method: str, params: Sequence[tuple[str, str]]) -> Verified:
        d = dict(params)
        sig, ak = d.get("Signature"), d.get("AccessKeyId")
        if not sig:
            raise ApiError("MissingSignature", 'The input parameter "Signature" that is mandatory is not supplied.')
        if not ak:
            raise ApiError("MissingAccessKeyId", 'The input parameter "AccessKeyId" that is mandatory is not supplied.')
        if d.get("SignatureMethod") != "HMAC-SHA1" or d.get("SignatureVersion") != "1.0":
            raise ApiError("IncompleteSignature", f"{INCOMPLETE_SIGNATURE} Use SignatureMethod=HMAC-SHA1, 1.0.")
        cred = self._credential(ak)
        rest = [(k, v) for k, v in params if k != "Signature"]
        string_to_sign = f"{method.upper()}&{pct('/')}&{pct(canonical_query(rest))}"
        digest = hmac.new((cred.access_key_secret + "&").encode(), string_to_sign.encode(), hashlib.sha1).digest()
        if not hmac.compare_digest(base64.b64encode(digest).decode(), sig):
            # Unlike V3's (a hash), the v2 string-to-sign holds every parameter value - env values, registry
            # passwords - so it stays out of the message: clients log these errors.
            raise ApiError("SignatureDoesNotMatch", SIGNATURE_MISMATCH)
        _check_token(cred, d.get("SecurityToken"))
        if self._check_time:
            _check_time(d.get("Timestamp"), "Timestamp", self._clock())
        self._nonce(d.get("SignatureNonce"), "SignatureNonce")
        return Verified(ak, "HMAC-SHA1")
