"""The leader's write gate, checked at the last moment before a request leaves.

The clients used to check the gate (``controllers.leader.LeaderElector.may_write``) when a write started. That
left a window: a replica frozen (SIGSTOP, a paused VM, a long GC stall) after that check but before the request was on
the wire sent it when it resumed, after another replica had taken over. ``tests/e2e/test_ha.py`` caught one: an
ECI create sent 0.07 s after the resume, its gate passed before the freeze; between that check and the
send lay the building, signing and preparing of the request, most of the 2.5 ms of client CPU a create costs
(BENCHMARKS.md, issue 18), on each of 16 workers. Nothing in a client is atomic
with the socket write, so the window cannot be closed, but it can be made as short as Python allows: the
gate is asked in the HTTP adapter, right before urllib3 writes the request (once per write, so the gate's counts
stay one per write), for the Kubernetes client and for the ECI SDK's own ``requests`` session alike.

The gate of the call in progress is thread-local (``gated``): the SDK's session is shared by every client of
the process, and each call runs in its caller's thread. A send the gate refuses raises :class:`GateClosed`,
which the clients turn into their own NotLeader errors.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_local = threading.local()


NOT_LEADER = "not sent: this replica is not (or no longer) the leader of its node"


class GateClosed(Exception):
    """The write gate closed between the start of a call and its send: nothing was sent."""


@contextmanager
def gated(check: Callable[[], bool] | None) -> Iterator[None]:
    """Within this block, this thread's sends check ``check`` first (None: no check)."""
    previous = getattr(_local, "check", None)
    _local.check = check
    _local.refused = False
    try:
        yield
    finally:
        _local.check = previous


def refused() -> bool:
    """Whether the last gated block's send was refused (the SDK wraps our exception in its own)."""
    return bool(getattr(_local, "refused", False))


def check_before_send() -> None:
    """Raise :class:`GateClosed` if this thread's gate is closed now (called by the adapters' ``send``)."""
    check = getattr(_local, "check", None)
    if check is not None and not check():
        _local.refused = True
        raise GateClosed(NOT_LEADER)


def guard_adapter(adapter: Any) -> Any:
    """Make ``adapter.send`` check this thread's gate first (once per adapter); returns the adapter."""
    if getattr(adapter, "_vkeci_gated", False):
        return adapter

    def gated_send(*args: Any, **kwargs: Any) -> Any:
        check_before_send()
        return type(adapter).send(adapter, *args, **kwargs)  # looked up per call: test doubles patch the class

    adapter.send = gated_send
    adapter._vkeci_gated = True
    return adapter


def guard_sdk_sessions() -> None:
    """Have every ``requests`` session the ECI SDK makes (``darabonba.core.DaraCore._get_session``, one per
    endpoint) send through gated adapters. Idempotent. ``tests/controllers/test_leader.py`` fails if an SDK upgrade
    moves the session elsewhere, so that this cannot silently stop working."""
    from darabonba.core import DaraCore

    original = DaraCore.__dict__["_get_session"]
    if getattr(original, "_vkeci_gated", False):
        return
    factory = original.__func__ if isinstance(original, staticmethod) else original

    def get_session(*args: Any, **kwargs: Any) -> Any:
        session = factory(*args, **kwargs)
        for adapter in session.adapters.values():
            guard_adapter(adapter)
        return session

    get_session._vkeci_gated = True  # type: ignore[attr-defined]
    DaraCore._get_session = staticmethod(get_session)
