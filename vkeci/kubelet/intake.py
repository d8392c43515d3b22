"""The kubelet API's front door: accepting connections, the TLS handshake and reading each
request's headers, for every connection at once in one thread, before any worker is involved.

Anyone who can reach the port can open a connection, so nothing here may cost a request worker:
a worker is taken only once a whole request head has arrived (and is then held only as long as
the request runs). Before this, 127 slow TLS clients (one header byte every 5 s) held 127 of
the 128 workers until they closed, and 160 half-open TCP connections delayed every exec by the
10 s handshake timeout (measured: tests/kubelet/measure_dos.py).

Waiting connections are bounded three ways: a deadline for the handshake and for the request
headers; a count per peer address and in total (:class:`PeerBudget`: a newcomer displaces the
oldest waiting connection of its own peer, or of the busiest peer, so a flood from one address
cannot displace the API server's connections); and the bytes of unfinished request heads held
in memory. Connections whose previous request was authenticated (keep-alives parked between
requests) do not count against the per-peer budget.

Error replies are the Go net/http server's (what a kubelet answers), byte for byte.
"""

from __future__ import annotations

import logging
import re
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# Go's net/http: the status texts it uses in the replies below (net/http/status.go).
STATUS_TEXT = {
    400: "Bad Request",
    413: "Request Entity Too Large",
    414: "Request URI Too Long",
    431: "Request Header Fields Too Large",
    501: "Not Implemented",
    505: "HTTP Version Not Supported",
}

# net/http's conn.serve: a TLS connection whose first record looks like plain HTTP gets this on
# the raw connection, then is closed.
PLAIN_HTTP_REPLY = b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
# net/http's tlsRecordHeaderLooksLikeHTTP: the five first bytes it answers instead of closing.
_HTTP_STARTS = (b"GET /", b"HEAD ", b"POST ", b"PUT /", b"OPTIO")
_TLS_HANDSHAKE_RECORD = 0x16

# net/http reads at most MaxHeaderBytes (the kubelet sets 1 << 20, Go's DefaultMaxHeaderBytes)
# plus 4096 bytes of "bufio slop" of a request head before answering 431.
MAX_HEADER_BYTES = 1 << 20
_HEADER_SLOP = 4096
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_SWEEP_EVERY = 0.25  # deadlines are checked this often (their resolution)
_LINGER_DRAIN = 1 << 20  # while lingering, read and drop at most this much before closing


def error_reply(code: int, body: str | None = None) -> bytes:
    """Go net/http's answer to a request it cannot read (conn.serve): status, text/plain,
    ``Connection: close``, and the status (or ``body``) as the text."""
    public = f"{code} {STATUS_TEXT[code]}"
    return (
        f"HTTP/1.1 {public}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n{body or public}"
    ).encode()


@dataclass(frozen=True)
class IntakeLimits:
    """Deadlines and budgets of connections that have not yet sent a whole request head."""

    handshake_timeout: float = 10.0
    header_timeout: float = 10.0  # from the end of the handshake, or from a keep-alive's first byte
    idle_timeout: float = 60.0  # a keep-alive connection between requests
    max_header_bytes: int = MAX_HEADER_BYTES
    max_pending: int = 1024  # waiting connections in all (each is one file descriptor)
    max_pending_per_peer: int = 128
    max_buffered: int = 64 << 20  # bytes of unfinished request heads held, all connections together
    linger: float = 0.5  # after an error reply: time for the client to read it before the close


class PeerBudget:
    """Counts waiting connections per peer and in total, and says which to drop for a newcomer:
    the oldest of its own peer when that peer is at its limit, else, when the total is reached,
    the oldest of the peer with the most."""

    def __init__(self, total: int, per_peer: int) -> None:
        self._total = total
        self._per_peer = per_peer
        self._by_peer: dict[str, dict[Any, None]] = {}  # insertion-ordered: oldest first
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def admit(self, key: Any, peer: str) -> list[Any]:
        """Count ``key`` for ``peer``; returns the keys to drop (already no longer counted)."""
        mine = self._by_peer.get(peer)
        victims: list[Any] = []
        if mine is not None and len(mine) >= self._per_peer:
            victims.append(next(iter(mine)))
        elif self._count >= self._total and self._by_peer:
            busiest = max(self._by_peer.values(), key=len)
            victims.append(next(iter(busiest)))
        for victim in victims:
            self.release(victim)
        self._by_peer.setdefault(peer, {})[key] = None
        self._count += 1
        return victims

    def release(self, key: Any) -> None:
        """Stop counting ``key`` (no-op if it is not counted)."""
        for peer, keys in self._by_peer.items():
            if key in keys:
                del keys[key]
                self._count -= 1
                if not keys:
                    del self._by_peer[peer]
                return


# Where a waiting connection is.
_SNIFF, _HANDSHAKE, _HEAD, _LINGER = "sniff", "handshake", "head", "linger"


@dataclass(eq=False)
class _Waiting:
    sock: socket.socket
    peer: Any
    state: str
    deadline: float
    trusted: bool = False
    started: bool = False  # a byte of the request head has arrived
    buffer: bytearray = field(default_factory=bytearray)
    events: int = selectors.EVENT_READ
    drained: int = 0
    scanned: int = 0  # bytes of buffer already searched for the end of the head

    @property
    def address(self) -> str:
        return str(self.peer[0]) if isinstance(self.peer, tuple) and self.peer else str(self.peer)


Ready = Callable[[ssl.SSLSocket, Any, bytes, bool], None]


class Intake:
    """Accepts on ``listener`` and runs every connection up to a complete request head, then
    calls ``ready(tls_socket, peer, head_and_any_following_bytes, trusted)`` (from the intake
    thread; it should only queue the work). Workers give connections back with :meth:`park`
    (keep-alive, for the next request) or :meth:`linger` (closing after an error reply)."""

    def __init__(
        self,
        listener: socket.socket,
        context: Callable[[], ssl.SSLContext],
        ready: Ready,
        limits: IntakeLimits | None = None,
    ) -> None:
        self.limits = limits or IntakeLimits()
        self._listener = listener
        self._context = context
        self._ready = ready
        self._selector = selectors.DefaultSelector()
        self._waiting: set[_Waiting] = set()
        self._budget = PeerBudget(self.limits.max_pending, self.limits.max_pending_per_peer)
        self._buffered = 0
        self._returned: list[tuple[socket.socket, Any, bytes, bool, bool]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        listener.setblocking(False)
        self._selector.register(listener, selectors.EVENT_READ, "listener")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")

    # --- called from other threads -----------------------------------------------------

    def park(self, sock: ssl.SSLSocket, peer: Any, leftover: bytes, trusted: bool) -> None:
        """Wait (idle timeout) for the next request on a keep-alive connection."""
        self._give_back(sock, peer, leftover, trusted, False)

    def linger(self, sock: socket.socket, peer: Any) -> None:
        """Close ``sock`` after a short wait that lets the client read the reply already sent:
        closing with unread request bytes would reset the connection and lose it."""
        self._give_back(sock, peer, b"", False, True)

    def stop(self) -> None:
        """End the loop; :meth:`serve_forever` closes every waiting connection on its way out."""
        self._stopping.set()
        self._wake()

    @property
    def waiting(self) -> int:
        """Connections waiting for a handshake or a request head (for tests and metrics)."""
        return len(self._waiting)

    def _give_back(self, sock: socket.socket, peer: Any, leftover: bytes, trusted: bool, closing: bool) -> None:
        with self._lock:
            taken = not self._stopping.is_set()  # else the loop has drained the list for the last time
            if taken:
                self._returned.append((sock, peer, leftover, trusted, closing))
        if taken:
            self._wake()
        else:
            _close_socket(sock)

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except (BlockingIOError, OSError):
            pass  # already woken, or stopped

    # --- the intake thread ---------------------------------------------------------------

    def serve_forever(self) -> None:
        """Run until :meth:`stop`."""
        next_sweep = time.monotonic() + _SWEEP_EVERY
        try:
            while not self._stopping.is_set():
                for key, _ in self._selector.select(_SWEEP_EVERY):
                    if key.data == "listener":
                        self._accept()
                    elif key.data == "wake":
                        self._adopt_returned()
                    else:
                        try:
                            self._step(key.data)
                        except Exception:  # a bug must cost this connection, not the kubelet API
                            log.exception("kubelet API: connection from %s failed", key.data.address)
                            self._close(key.data)
                now = time.monotonic()
                if now >= next_sweep:
                    next_sweep = now + _SWEEP_EVERY
                    self._expire(now)
        finally:
            for waiting in list(self._waiting):
                self._close(waiting)
            self._adopt_returned(closing_all=True)
            self._selector.close()
            self._wake_r.close()
            self._wake_w.close()

    def _accept(self) -> None:
        for _ in range(256):  # then let the others have a turn
            try:
                sock, peer = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. EMFILE: say so, the loop carries on
                log.warning("kubelet API: cannot accept a connection: %s", exc)
                return
            sock.setblocking(False)
            waiting = _Waiting(sock, peer, _SNIFF, time.monotonic() + self.limits.handshake_timeout)
            self._add(waiting)

    def _add(self, waiting: _Waiting) -> None:
        if not waiting.trusted:
            for victim in self._budget.admit(waiting, waiting.address):
                log.debug("kubelet API: dropping a waiting connection from %s (too many waiting)", victim.address)
                self._close(victim)
        self._waiting.add(waiting)
        self._buffered += len(waiting.buffer)
        self._selector.register(waiting.sock, waiting.events, waiting)

    def _adopt_returned(self, closing_all: bool = False) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass
        with self._lock:
            returned, self._returned = self._returned, []
        now = time.monotonic()
        for sock, peer, leftover, trusted, closing in returned:
            if closing_all or self._stopping.is_set():
                _close_socket(sock)
                continue
            try:
                sock.setblocking(False)
            except OSError:
                _close_socket(sock)
                continue
            if closing:
                try:
                    socket.socket.shutdown(sock, socket.SHUT_WR)  # the plain socket's: keep the SSL object
                except OSError:
                    _close_socket(sock)
                    continue
                self._add(_Waiting(sock, peer, _LINGER, now + self.limits.linger, trusted=True))
            else:
                waiting = _Waiting(
                    sock, peer, _HEAD, now + self.limits.idle_timeout, trusted=trusted, buffer=bytearray(leftover)
                )
                self._add(waiting)
                self._read_head(waiting)  # the leftover, or bytes OpenSSL already holds, may be a request

    def _step(self, waiting: _Waiting) -> None:
        if waiting.state == _SNIFF:
            self._sniff(waiting)
        elif waiting.state == _HANDSHAKE:
            self._handshake(waiting)
        elif waiting.state == _HEAD:
            self._read_head(waiting)
        else:
            self._drain(waiting)

    def _sniff(self, waiting: _Waiting) -> None:
        """TLS, or plain HTTP sent to the TLS port? A TLS record starts with 0x16; anything else is
        read (it is not TLS, nothing is lost) until the five bytes Go looks at have come."""
        try:
            first = waiting.sock.recv(1, socket.MSG_PEEK) if not waiting.buffer else b""
            if first and first[0] == _TLS_HANDSHAKE_RECORD:
                self._start_tls(waiting)
                return
            data = waiting.sock.recv(5 - len(waiting.buffer))
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._gone(waiting, "before the TLS handshake", exc)
            return
        if not data:
            self._gone(waiting, "before the TLS handshake")
            return
        waiting.buffer += data
        self._buffered += len(data)
        if len(waiting.buffer) < 5:
            return
        if bytes(waiting.buffer) in _HTTP_STARTS:
            log.debug("kubelet API: plain HTTP from %s on the TLS port", waiting.address)
            self._reply_and_linger(waiting, PLAIN_HTTP_REPLY)
        else:
            log.debug("kubelet API: %s sent something that is not TLS; closed", waiting.address)
            self._close(waiting)

    def _start_tls(self, waiting: _Waiting) -> None:
        self._selector.unregister(waiting.sock)
        try:
            # Wrapping moves the descriptor into a new socket object: register that one.
            waiting.sock = self._context().wrap_socket(waiting.sock, server_side=True, do_handshake_on_connect=False)
        except (OSError, ValueError) as exc:
            self._waiting.discard(waiting)
            self._budget.release(waiting)
            _close_socket(waiting.sock)
            log.debug("kubelet API: TLS with %s could not start: %s", waiting.address, exc)
            return
        waiting.state = _HANDSHAKE
        waiting.events = selectors.EVENT_READ
        self._selector.register(waiting.sock, waiting.events, waiting)
        self._handshake(waiting)

    def _handshake(self, waiting: _Waiting) -> None:
        sock = waiting.sock
        assert isinstance(sock, ssl.SSLSocket)
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self._want(waiting, selectors.EVENT_READ)
            return
        except ssl.SSLWantWriteError:
            self._want(waiting, selectors.EVENT_WRITE)
            return
        except (OSError, ValueError) as exc:  # ssl.SSLError included: a bad or foreign certificate
            self._gone(waiting, "during the TLS handshake", exc)
            return
        waiting.state = _HEAD
        waiting.deadline = time.monotonic() + self.limits.header_timeout
        waiting.started = True
        self._want(waiting, selectors.EVENT_READ)
        self._read_head(waiting)  # the request may have come with the handshake's last flight

    def _read_head(self, waiting: _Waiting) -> None:
        limit = self.limits.max_header_bytes + _HEADER_SLOP
        while True:
            if self._head_complete(waiting):
                return
            if len(waiting.buffer) > limit:
                log.debug("kubelet API: request head from %s over %d bytes: 431", waiting.address, limit)
                self._reply_and_linger(waiting, error_reply(431))
                return
            try:
                chunk = waiting.sock.recv(65536)
            except (ssl.SSLWantReadError, BlockingIOError, InterruptedError):
                return
            except ssl.SSLWantWriteError:
                self._want(waiting, selectors.EVENT_WRITE)
                return
            except (OSError, ValueError) as exc:
                self._gone(waiting, "before sending a whole request", exc)
                return
            if not chunk:
                if waiting.buffer or not waiting.trusted:
                    self._gone(waiting, "before sending a whole request")
                else:
                    self._close(waiting)  # a keep-alive connection closed between requests: normal
                return
            if not waiting.started:  # a keep-alive's next request: its head has a deadline too
                waiting.started = True
                waiting.deadline = time.monotonic() + self.limits.header_timeout
            waiting.buffer += chunk
            self._buffered += len(chunk)
            if self._buffered > self.limits.max_buffered:
                self._shed_memory()
                if waiting not in self._waiting:
                    return

    def _head_complete(self, waiting: _Waiting) -> bool:
        buffer = waiting.buffer
        if waiting.scanned == 0:  # blank lines before a request line are skipped, as Go's reader does
            blank = len(buffer) - len(buffer.lstrip(b"\r\n"))
            if blank:
                del buffer[:blank]
                self._buffered -= blank
        # Search only the new bytes (and 3 before them): a head trickled in byte by byte must not
        # cost a scan of everything so far per byte.
        if not _HEAD_END.search(buffer, max(0, waiting.scanned - 3)):
            waiting.scanned = len(buffer)
            return False
        self._forget(waiting)
        sock = waiting.sock
        assert isinstance(sock, ssl.SSLSocket)
        self._ready(sock, waiting.peer, bytes(buffer), waiting.trusted)
        return True

    def _shed_memory(self) -> None:
        """Too many bytes of unfinished request heads: drop the connection holding the most."""
        victim = max(self._waiting, key=lambda w: len(w.buffer))
        log.debug(
            "kubelet API: dropping %s's unfinished %d-byte request head (memory)", victim.address, len(victim.buffer)
        )
        self._reply_and_linger(victim, error_reply(431))

    def _drain(self, waiting: _Waiting) -> None:
        try:
            while True:
                chunk = waiting.sock.recv(65536)
                if not chunk:
                    self._close(waiting)
                    return
                waiting.drained += len(chunk)
                if waiting.drained > _LINGER_DRAIN:
                    self._close(waiting)
                    return
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError, InterruptedError):
            return
        except (OSError, ValueError):
            self._close(waiting)

    def _reply_and_linger(self, waiting: _Waiting, reply: bytes) -> None:
        try:
            waiting.sock.send(reply)  # small: fits the socket buffer; if not, the client is gone
            socket.socket.shutdown(waiting.sock, socket.SHUT_WR)
        except (OSError, ValueError):
            self._close(waiting)
            return
        self._buffered -= len(waiting.buffer)
        waiting.buffer = bytearray()
        waiting.state = _LINGER
        waiting.deadline = time.monotonic() + self.limits.linger
        self._budget.release(waiting)
        waiting.trusted = True  # no longer counts against its peer: it is on its way out
        self._want(waiting, selectors.EVENT_READ)

    def _want(self, waiting: _Waiting, events: int) -> None:
        if waiting.events != events:
            waiting.events = events
            self._selector.modify(waiting.sock, events, waiting)

    def _expire(self, now: float) -> None:
        for waiting in [w for w in self._waiting if w.deadline <= now]:
            if waiting.state == _LINGER:
                self._close(waiting)
            elif waiting.state == _HEAD and not waiting.started:
                self._close(waiting)  # an idle keep-alive: closed as Go's IdleTimeout does
            else:
                log.debug("kubelet API: %s took too long (%s); closed", waiting.address, waiting.state)
                self._close(waiting)

    def _gone(self, waiting: _Waiting, when: str, exc: BaseException | None = None) -> None:
        """A peer that went away or misbehaved: a debug line, never a traceback."""
        log.debug("kubelet API: %s went away %s%s", waiting.address, when, f": {exc}" if exc else "")
        self._close(waiting)

    def _forget(self, waiting: _Waiting) -> None:
        self._waiting.discard(waiting)
        self._budget.release(waiting)
        self._buffered -= len(waiting.buffer)
        try:
            self._selector.unregister(waiting.sock)
        except (KeyError, ValueError):
            pass

    def _close(self, waiting: _Waiting) -> None:
        self._forget(waiting)
        _close_socket(waiting.sock)


def _close_socket(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass
