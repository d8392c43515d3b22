"""A minimal RFC 6455 WebSocket server side (handshake and framing) over an HTTP handler's connection.

Small on purpose: binary/text frames, fragmentation, ping/pong and close; no extensions. Clients' frames
must be masked (RFC 6455 §5.1); the server's are not.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import threading
from typing import BinaryIO

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_MESSAGE = 16 * 1024 * 1024


class ProtocolError(Exception):
    """The peer broke the protocol."""


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


class Connection:
    """One upgraded connection: `recv()` returns (opcode, payload) of whole messages; sends are thread-safe."""

    def __init__(self, rfile: BinaryIO, wfile: BinaryIO) -> None:
        self._r = rfile
        self._w = wfile
        self._send_lock = threading.Lock()
        self.closed = False

    def _read_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self._r.read(n - len(buf))
            if not chunk:
                raise EOFError("connection closed")
            buf += chunk
        return buf

    def _frame(self) -> tuple[bool, int, bytes]:
        b1, b2 = self._read_exact(2)
        fin, opcode = bool(b1 & 0x80), b1 & 0x0F
        masked, length = bool(b2 & 0x80), b2 & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._read_exact(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read_exact(8))
        if length > MAX_MESSAGE:
            raise ProtocolError("frame too large")
        if not masked:
            raise ProtocolError("client frames must be masked")
        mask = self._read_exact(4)
        data = bytearray(self._read_exact(length))
        for i in range(length):
            data[i] ^= mask[i % 4]
        return fin, opcode, bytes(data)

    def recv(self) -> tuple[int, bytes]:
        """Next data or close message; answers pings itself. Raises EOFError when the socket closes."""
        message = b""
        first_op: int | None = None
        while True:
            fin, op, data = self._frame()
            if op == OP_PING:
                self.send(OP_PONG, data)
                continue
            if op == OP_PONG:
                continue
            if op == OP_CLOSE:
                return OP_CLOSE, data
            if op != OP_CONT:
                first_op = op
                message = data
            else:
                message += data
            if len(message) > MAX_MESSAGE:
                raise ProtocolError("message too large")
            if fin:
                return (first_op if first_op is not None else OP_BINARY), message

    def send(self, opcode: int, payload: bytes) -> None:
        """Send one unmasked frame."""
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x80 | opcode, n)
        elif n < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 127, n)
        with self._send_lock:
            if self.closed:
                return
            self._w.write(header + payload)
            self._w.flush()
            if opcode == OP_CLOSE:
                self.closed = True

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame (once)."""
        try:
            self.send(OP_CLOSE, struct.pack("!H", code) + reason.encode()[:120])
        except OSError:
            self.closed = True
