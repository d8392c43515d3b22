"""The server side of the Kubernetes WebSocket channel protocol (``v4.channel.k8s.io``,
``v4.base64.channel.k8s.io``, ``channel.k8s.io``, ``base64.channel.k8s.io``) for exec/attach.

Clients that speak WebSocket with a pre-v5 protocol (the Python and JavaScript Kubernetes
clients, dashboards) are proxied by the API server to the kubelet unchanged, so the kubelet
must accept them. Each message carries one channel: the first byte (binary protocols) or
the ASCII digit (base64 protocols, payload base64) names it: 0 stdin, 1 stdout, 2 stderr,
3 error/status, 4 resize.

:class:`WsSession` offers the same ``accept``/``closed``/``goaway`` surface as
:class:`vkeci.kubelet.spdy.SpdySession`, with one pseudo-stream per channel, so the exec
bridge does not care which transport the client chose. RFC 6455 framing is small enough to
do here: no extension, masked frames from the client, fragmented messages reassembled,
pings answered.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import queue
import struct
import threading
from collections.abc import Callable

from vkeci.kubelet.inbox import Inbox
from vkeci.kubelet.spdy import ByteReader

log = logging.getLogger(__name__)

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_MESSAGE = 16 << 20
CHANNELS = {"stdin": 0, "stdout": 1, "stderr": 2, "error": 3, "resize": 4}
# Binary first: in the client's order of preference, but these are what we accept.
PROTOCOLS = ("v4.channel.k8s.io", "v4.base64.channel.k8s.io", "channel.k8s.io", "base64.channel.k8s.io")


class WebSocketError(Exception):
    """The client broke the WebSocket framing."""


def accept_key(key: str) -> str:
    """The Sec-WebSocket-Accept value for a client's Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def choose_protocol(offered_header: str | None) -> str | None:
    """The first protocol the client offers that we speak; "" when it offers none (the
    kubelet then uses the binary channel protocol); None when it offers only others."""
    offered = [p.strip() for p in (offered_header or "").split(",") if p.strip()]
    if not offered:
        return ""
    return next((p for p in offered if p in PROTOCOLS), None)


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One unmasked (server) frame with FIN set."""
    size = len(payload)
    if size < 126:
        header = struct.pack(">BB", 0x80 | opcode, size)
    elif size < 65536:
        header = struct.pack(">BBH", 0x80 | opcode, 126, size)
    else:
        header = struct.pack(">BBQ", 0x80 | opcode, 127, size)
    return header + payload


def read_frame(reader: ByteReader) -> tuple[bool, int, bytes]:
    """(fin, opcode, unmasked payload) of the next frame; EOFError at end of stream."""

    def exact(size: int) -> bytes:
        data = reader.read(size) if size else b""
        if data is None or len(data) < size:
            raise EOFError
        return data

    first, second = exact(2)
    size = second & 0x7F
    if size == 126:
        size = struct.unpack(">H", exact(2))[0]
    elif size == 127:
        size = struct.unpack(">Q", exact(8))[0]
    if size > MAX_MESSAGE:
        raise WebSocketError(f"frame of {size} bytes is too large")
    if not second & 0x80:
        raise WebSocketError("client frames must be masked")
    mask = exact(4)
    payload = exact(size)
    if payload:
        # XOR with the repeated 4-byte mask, done on integers for speed.
        repeated = (mask * (size // 4 + 1))[:size]
        payload = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(size, "big")
    return bool(first & 0x80), first & 0x0F, payload


class WsChannel(Inbox):
    """One channel, shaped like a SPDY stream for the exec bridge."""

    def __init__(self, session: WsSession, kind: str) -> None:
        super().__init__()
        self.session = session
        self.type = kind
        self.number = CHANNELS[kind]

    def write(self, data: bytes) -> None:
        """Send data on this channel."""
        self.session.send_channel(self.number, data)

    def close(self) -> None:
        """Channels cannot be half-closed in pre-v5 protocols; the session's end closes them."""


class WsSession:
    """One upgraded WebSocket connection carrying the channel protocol."""

    def __init__(self, reader: ByteReader, write: Callable[[bytes], object], protocol: str, kinds: list[str]) -> None:
        self._reader = reader
        self._write = write
        self._lock = threading.Lock()
        self.base64 = "base64" in protocol
        self.channels = {kind: WsChannel(self, kind) for kind in kinds}
        self._pending: queue.Queue[WsChannel | None] = queue.Queue()
        for channel in self.channels.values():
            self._pending.put(channel)
        self.closed = threading.Event()
        self._sent_close = False
        self._thread = threading.Thread(target=self._run, name="ws-reader", daemon=True)

    def start(self) -> None:
        """Start reading messages."""
        self._thread.start()

    def accept(self, timeout: float) -> WsChannel | None:
        """The channels, one per call (they all exist from the start)."""
        try:
            return self._pending.get_nowait()
        except queue.Empty:
            return None

    def _send(self, opcode: int, payload: bytes) -> None:
        with self._lock:
            self._write(encode_frame(opcode, payload))

    def send_channel(self, number: int, data: bytes) -> None:
        """One message on a channel, in the negotiated encoding."""
        if self.base64:
            self._send(OP_TEXT, bytes([ord("0") + number]) + base64.b64encode(data))
        else:
            self._send(OP_BINARY, bytes([number]) + data)

    def goaway(self) -> None:
        """Close the WebSocket (normal closure)."""
        if not self._sent_close:
            self._sent_close = True
            try:
                self._send(OP_CLOSE, struct.pack(">H", 1000))
            except OSError:
                pass

    def wait_closed(self, timeout: float) -> bool:
        """Wait for the client to close its side."""
        return self.closed.wait(timeout)

    def _run(self) -> None:
        message = b""
        try:
            while True:
                fin, opcode, payload = read_frame(self._reader)
                if opcode == OP_PING:
                    self._send(OP_PONG, payload)
                    continue
                if opcode == OP_CLOSE:
                    self.goaway()
                    return
                if opcode in (OP_TEXT, OP_BINARY, OP_CONT):
                    message += payload
                    if len(message) > MAX_MESSAGE:
                        raise WebSocketError("message too large")
                    if fin:
                        self._deliver(message)
                        message = b""
        except (EOFError, OSError, ValueError):
            pass
        except WebSocketError as exc:
            log.warning("closing exec WebSocket: %s", exc)
        finally:
            self.closed.set()
            for channel in self.channels.values():
                channel._feed(None)

    def _deliver(self, message: bytes) -> None:
        if not message:
            return
        number, data = message[0], message[1:]
        if self.base64:
            number -= ord("0")
            try:
                data = base64.b64decode(data)
            except ValueError:
                return
        for channel in self.channels.values():
            if channel.number == number and channel.type in ("stdin", "resize") and data:
                channel._feed(data)
