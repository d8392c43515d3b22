"""Full-duplex use of one TLS connection from several threads.

An exec session reads the client's frames in one thread while others write output. OpenSSL
objects must not be used by two threads at once, and CPython's ``ssl`` module does not
serialise ``recv`` against ``send`` (python/cpython#151508, miguelgrinberg/python-engineio#461
show the resulting corruption). :class:`TlsDuplex` therefore makes the socket non-blocking,
waits for readiness with ``select`` outside any lock, and performs every ``recv`` and ``send``
under one lock.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
from typing import Any

_RETRY = (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError, InterruptedError)


class TlsDuplex:
    """Reads and writes on an upgraded connection, safe from any number of threads."""

    def __init__(self, sock: socket.socket, initial: bytes = b"") -> None:
        self._sock = sock
        self._lock = threading.Lock()
        self._buffer = bytearray(initial)
        self._eof = False
        sock.setblocking(False)

    @classmethod
    def take_over(cls, handler: Any) -> TlsDuplex:
        """Take the connection from an HTTP handler after its 101 answer, keeping any bytes its
        buffered reader already holds."""
        sock = handler.connection
        initial = b""
        sock.setblocking(False)
        try:
            initial = handler.rfile.peek(1 << 16)
        except (OSError, ValueError):
            initial = b""
        if initial:
            initial = handler.rfile.read(len(initial))
        return cls(sock, initial)

    def release(self) -> None:
        """Give the socket back in blocking mode (for an orderly close)."""
        try:
            self._sock.setblocking(True)
        except OSError:
            pass

    def write(self, data: bytes) -> None:
        """Send all of ``data``; raises OSError if the connection is gone."""
        view = memoryview(data)
        while view:
            with self._lock:
                try:
                    sent = self._sock.send(view)
                except _RETRY:
                    sent = 0
            if sent:
                view = view[sent:]
            else:
                select.select([], [self._sock], [], 1.0)

    def _recv(self) -> bytes:
        while True:
            with self._lock:
                try:
                    return self._sock.recv(1 << 16)
                except _RETRY:
                    pending = isinstance(self._sock, ssl.SSLSocket) and self._sock.pending() > 0
                except OSError:
                    return b""
            if not pending:
                try:
                    select.select([self._sock], [], [], 1.0)
                except (OSError, ValueError):
                    return b""

    def read(self, size: int) -> bytes:
        """Exactly ``size`` bytes, or fewer once the peer has closed the connection."""
        while len(self._buffer) < size and not self._eof:
            chunk = self._recv()
            if not chunk:
                self._eof = True
                break
            self._buffer += chunk
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        return out
