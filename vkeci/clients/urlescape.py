"""A fast path in urllib3 for URLs that are already percent-encoded, like every ECI SDK call.

The SDK puts all of a call's parameters in the query string, so a CreateContainerGroup URL carries
the pod's whole spec (about 4 KB for a bare pod with its service-account token and CA). `requests`
and urllib3 parse that URL twice per call, and urllib3's `_encode_invalid_chars` walks any
component holding a '%' byte by byte in Python: 0.5-0.9 ms per 3 KB (0.04-0.08 ms with this fast
path), four components and 7.8 KB per create (BENCHMARKS.md #10). urllib3 2.8 already returns a
component at once when it has no '%'; `install` adds the same shortcut for a component whose every
'%' starts an upper-case escape (`%2F`) and whose other characters are all allowed, which is
exactly what `urlencode` makes.
The original function runs for everything else, so what goes on the wire does not change.

The SDK also escapes every parameter itself, twice per call (the URL, and the string it signs),
with `urllib.parse.quote`, whose `quote_from_bytes` turns any value holding one unsafe byte into
a Python loop over all of its bytes. A bare pod's base64 config-file volumes (token, CA) are
kilobytes of text with a few unsafe bytes ('+', '/', '='): `fast_quote_from_bytes` escapes just
those with one regular-expression pass (1.5 KB of base64: 172 -> 34 us), and text with many unsafe
bytes through a lookup table (2.3x faster than the stock loop); the answer is the same for any input.
"""

from __future__ import annotations

import re
import urllib.parse as _parse
from collections.abc import Callable, Container, Iterable
from typing import Any

import urllib3.util.url as _url

# A bare '%' or a lower-case escape: urllib3 decides what these become, so they take its path.
_NOT_CANONICAL = re.compile(r"%(?![0-9A-F]{2})")


def escaped_unchanged(component: str, allowed_chars: Container[str]) -> bool:
    """True when urllib3 would return ``component`` as it is: ASCII, every '%' the start of an
    upper-case escape, every other character allowed in this part of the URL."""
    if not component.isascii() or _NOT_CANONICAL.search(component):
        return False
    return all(c in allowed_chars for c in set(component) if c != "%")


def fast_encoder(original: Callable[[Any, Container[str]], Any]) -> Callable[[Any, Container[str]], Any]:
    """``original`` (urllib3's `_encode_invalid_chars`), answered at once for already-escaped text."""

    def encode(component: Any, allowed_chars: Container[str]) -> Any:
        if type(component) is str and escaped_unchanged(component, allowed_chars):
            return component
        return original(component, allowed_chars)

    encode.__wrapped__ = original  # type: ignore[attr-defined]
    return encode


_ALWAYS_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


class _Quoter:
    """What `quote_from_bytes` makes of each byte, for one set of safe bytes."""

    def __init__(self, safe: bytes) -> None:
        keep = _ALWAYS_SAFE | set(safe)
        self.table = [chr(b) if b in keep else f"%{b:02X}" for b in range(256)]
        self.escaped = {bytes([b]): self.table[b].encode() for b in range(256) if b not in keep}
        self.safe = bytes(sorted(keep))
        self.unsafe = re.compile(b"[^" + re.escape(self.safe) + b"]")

    def quote(self, bs: bytes) -> str:
        unsafe = len(bs.translate(None, self.safe))  # how many bytes need an escape (counted in C)
        if unsafe * 8 < len(bs):  # a few: escape just those, in one regex pass
            escaped = self.escaped
            return self.unsafe.sub(lambda m: escaped[m.group()], bs).decode("ascii")
        return "".join(map(self.table.__getitem__, bs))


_QUOTERS: dict[bytes, _Quoter] = {}


def fast_quote_from_bytes(bs: bytes | bytearray, safe: str | Iterable[int] = "/") -> str:
    """`urllib.parse.quote_from_bytes`, with the same answer for any input, faster on long values."""
    if not isinstance(bs, (bytes, bytearray)):
        raise TypeError("quote_from_bytes() expected bytes")
    if not bs:
        return ""
    if isinstance(safe, str):
        safe_bytes = safe.encode("ascii", "ignore")
    else:
        safe_bytes = bytes([c for c in safe if c < 128])
    quoter = _QUOTERS.get(safe_bytes)
    if quoter is None:
        quoter = _Quoter(safe_bytes)
        if len(_QUOTERS) < 64:  # callers use a handful of safe sets; never grow without bound
            _QUOTERS[safe_bytes] = quoter
    if not bs.translate(None, quoter.safe):
        return bytes(bs).decode()
    return quoter.quote(bytes(bs))


def install() -> bool:
    """Put the fast paths in front of urllib3's encoder and `urllib.parse.quote_from_bytes`, once per
    process. Returns False if this urllib3 has no such function (the quote fast path is still put in):
    only speed depends on them."""
    if not hasattr(_parse.quote_from_bytes, "__wrapped__"):
        fast_quote_from_bytes.__wrapped__ = _parse.quote_from_bytes  # type: ignore[attr-defined]
        _parse.quote_from_bytes = fast_quote_from_bytes
    original = getattr(_url, "_encode_invalid_chars", None)
    if original is None or hasattr(original, "__wrapped__"):
        return original is not None
    setattr(_url, "_encode_invalid_chars", fast_encoder(original))  # noqa: B010 (urllib3 types it as overloads)
    return True
