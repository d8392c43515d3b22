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
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container
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


def install() -> bool:
    """Put the fast path in front of urllib3's encoder, once per process. Returns False (and
    changes nothing) if this urllib3 has no such function: only speed depends on it."""
    original = getattr(_url, "_encode_invalid_chars", None)
    if original is None or hasattr(original, "__wrapped__"):
        return original is not None
    setattr(_url, "_encode_invalid_chars", fast_encoder(original))  # noqa: B010 (urllib3 types it as overloads)
    return True
