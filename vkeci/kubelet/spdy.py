"""A SPDY/3.1 server session: just what the Kubernetes API server's SPDY client needs to
run ``exec``/``attach`` streams against a kubelet.

The API server (1.35) turns kubectl's WebSocket ``v5.channel.k8s.io`` into SPDY/3.1 toward
the kubelet (``k8s.io/apiserver/pkg/util/proxy/streamtranslator.go``). The client opens one
stream per channel (SYN_STREAM with a ``streamtype`` header); the server answers each with
SYN_REPLY, then both sides send DATA frames and finish with FIN. Header blocks are zlib
compressed with the SPDY/3 dictionary, one compression context per direction for the whole
connection. Flow control (WINDOW_UPDATE) is ignored, as by the Go client (moby/spdystream).
"""

from __future__ import annotations

import logging
import queue
import struct
import threading
import zlib
from collections.abc import Callable
from typing import Protocol

from vkeci.kubelet.inbox import Inbox

log = logging.getLogger(__name__)

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
RST_PROTOCOL_ERROR, RST_CANCEL = 1, 5
MAX_FRAME = 1 << 24  # lengths are 24-bit

# The SPDY/3 header compression dictionary (SPDY Protocol draft 3, section 2.6.10.1): the
# length-prefixed words below, followed by a fixed run of common values.
_DICT_WORDS = [
    *(
        "options head post put delete trace accept accept-charset accept-encoding accept-language accept-ranges age "
        "allow authorization cache-control connection content-base content-encoding content-language content-length "
        "content-location content-md5 content-range content-type date etag expect expires from host if-match "
        "if-modified-since if-none-match if-range if-unmodified-since last-modified location max-forwards pragma "
        "proxy-authenticate proxy-authorization range referer retry-after server te trailer transfer-encoding upgrade "
        "user-agent vary via warning www-authenticate method get status"
    ).split(),
    *("200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin"),
]
_DICT_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
    "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _DICT_WORDS) + _DICT_TAIL.encode()


class ByteReader(Protocol):
    """Where frames come from: a buffered file or :class:`vkeci.kubelet.duplex.TlsDuplex`."""

    def read(self, size: int, /) -> bytes | None:
        """Up to ``size`` bytes, fewer only at end of stream."""
        ...


class SpdyError(Exception):
    """The peer broke the SPDY framing; the session cannot continue."""


def encode_headers(headers: dict[str, str]) -> bytes:
    """A SPDY/3 name/value header block (before compression); names are lower-cased."""
    out = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        raw_name, raw_value = name.lower().encode(), value.encode()
        out += [struct.pack(">I", len(raw_name)), raw_name, struct.pack(">I", len(raw_value)), raw_value]
    return b"".join(out)


def decode_headers(block: bytes) -> dict[str, list[str]]:
    """Parse a decompressed header block; multiple values of one name are NUL-separated."""
    try:
        (count,) = struct.unpack_from(">I", block, 0)
        offset, headers = 4, {}
        for _ in range(count):
            (size,) = struct.unpack_from(">I", block, offset)
            name = block[offset + 4 : offset + 4 + size].decode()
            offset += 4 + size
            (size,) = struct.unpack_from(">I", block, offset)
            value = block[offset + 4 : offset + 4 + size].decode()
            offset += 4 + size
            headers[name.lower()] = value.split("\x00")
    except (struct.error, UnicodeDecodeError) as exc:
        raise SpdyError(f"malformed header block: {exc}") from None
    return headers


def control_frame(kind: int, flags: int, payload: bytes) -> bytes:
    """A control frame: version, type, flags and 24-bit length, then the payload."""
    return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload


def data_frame(stream_id: int, data: bytes, fin: bool = False) -> bytes:
    """A DATA frame for one stream."""
    return struct.pack(">II", stream_id & 0x7FFFFFFF, ((FLAG_FIN if fin else 0) << 24) | len(data)) + data


class SpdyStream(Inbox):
    """One client-opened stream: readable until the client's FIN, writable until ours."""

    def __init__(self, session: SpdySession, stream_id: int, headers: dict[str, list[str]]) -> None:
        super().__init__()
        self.session = session
        self.id = stream_id
        self.headers = headers
        self._buffer = b""
        self._closed = False
        self.reset = False

    @property
    def type(self) -> str:
        """The ``streamtype`` header: error, stdin, stdout, stderr, resize (or data for port-forward)."""
        return (self.headers.get("streamtype") or [""])[0]

    def write(self, data: bytes) -> None:
        """Send data to the client (split to the frame size limit)."""
        if self._closed or self.reset:
            raise BrokenPipeError(f"SPDY stream {self.id} is closed")
        for start in range(0, len(data), MAX_FRAME - 1):
            self.session.send(data_frame(self.id, data[start : start + MAX_FRAME - 1]))

    def close(self) -> None:
        """Finish our side of the stream (an empty DATA frame with FIN)."""
        if not self._closed and not self.reset:
            self._closed = True
            try:
                self.session.send(data_frame(self.id, b"", fin=True))
            except OSError:
                pass


class SpdySession:
    """The server side of one SPDY/3.1 connection over an upgraded HTTP connection.

    A reader thread parses frames: it answers every SYN_STREAM with an empty SYN_REPLY and
    queues the stream for :meth:`accept`, routes DATA to streams, echoes PINGs and ends on
    GOAWAY or EOF. Writes from any thread go through one lock.
    """

    def __init__(self, reader: ByteReader, write: Callable[[bytes], object]) -> None:
        self._reader = reader
        self._write = write
        self._write_lock = threading.Lock()
        self._compress = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zdict=DICTIONARY)
        self._decompress = zlib.decompressobj(zdict=DICTIONARY)
        self._streams: dict[int, SpdyStream] = {}
        self._new: queue.Queue[SpdyStream | None] = queue.Queue()
        self._last_stream = 0
        self.closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spdy-reader", daemon=True)

    def start(self) -> None:
        """Start reading frames."""
        self._thread.start()

    def send(self, frame: bytes) -> None:
        """Write one whole frame (thread-safe)."""
        with self._write_lock:
            self._write(frame)

    def _send_control(self, kind: int, flags: int, payload: bytes) -> None:
        self.send(control_frame(kind, flags, payload))

    def accept(self, timeout: float) -> SpdyStream | None:
        """The next stream the client opened, or None if the session ended; raises queue.Empty
        on timeout."""
        return self._new.get(timeout=timeout)

    def goaway(self) -> None:
        """Tell the client we are done (GOAWAY, status OK)."""
        try:
            self._send_control(GOAWAY, 0, struct.pack(">II", self._last_stream, 0))
        except OSError:
            pass

    def wait_closed(self, timeout: float) -> bool:
        """Wait for the client to close the connection."""
        return self.closed.wait(timeout)

    def _read_exact(self, size: int) -> bytes:
        data = self._reader.read(size)
        if data is None or len(data) < size:
            raise EOFError
        return data

    def _run(self) -> None:
        try:
            while True:
                head = self._read_exact(8)
                first, second = struct.unpack(">II", head)
                flags, length = second >> 24, second & 0xFFFFFF
                payload = self._read_exact(length) if length else b""
                if first & 0x80000000:
                    version, kind = (first >> 16) & 0x7FFF, first & 0xFFFF
                    if version != VERSION:
                        raise SpdyError(f"unsupported SPDY version {version}")
                    if self._control(kind, flags, payload):
                        return
                else:
                    self._data(first & 0x7FFFFFFF, flags, payload)
        except (EOFError, OSError, ValueError):
            pass
        except (SpdyError, zlib.error) as exc:
            log.warning("closing SPDY session: %s", exc)
        finally:
            self.closed.set()
            for stream in list(self._streams.values()):
                stream._feed(None)
            self._new.put(None)

    def _control(self, kind: int, flags: int, payload: bytes) -> bool:
        """Handle one control frame; True when the session is over."""
        if kind == SYN_STREAM:
            stream_id = struct.unpack_from(">I", payload, 0)[0] & 0x7FFFFFFF
            block = self._decompress.decompress(payload[10:])
            stream = SpdyStream(self, stream_id, decode_headers(block))
            self._streams[stream_id] = stream
            self._last_stream = max(self._last_stream, stream_id)
            # The reply must precede any data: the Go client drops DATA on unreplied streams.
            block = self._compress.compress(encode_headers({})) + self._compress.flush(zlib.Z_SYNC_FLUSH)
            self._send_control(SYN_REPLY, 0, struct.pack(">I", stream_id) + block)
            if flags & FLAG_FIN:
                stream._feed(None)
            self._new.put(stream)
        elif kind == RST_STREAM:
            stream_id = struct.unpack_from(">I", payload, 0)[0] & 0x7FFFFFFF
            found = self._streams.get(stream_id)
            if found is not None:
                found.reset = True
                found._feed(None)
        elif kind == PING:
            self._send_control(PING, 0, payload[:4])
        elif kind == GOAWAY:
            return True
        elif kind == HEADERS:
            # Keep the shared decompression context in step even though the headers are unused.
            self._decompress.decompress(payload[4:])
            if flags & FLAG_FIN:
                stream_id = struct.unpack_from(">I", payload, 0)[0] & 0x7FFFFFFF
                if stream_id in self._streams:
                    self._streams[stream_id]._feed(None)
        # SETTINGS and WINDOW_UPDATE need no answer.
        return False

    def _data(self, stream_id: int, flags: int, payload: bytes) -> None:
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        if payload:
            stream._feed(payload)
        if flags & FLAG_FIN:
            stream._feed(None)
