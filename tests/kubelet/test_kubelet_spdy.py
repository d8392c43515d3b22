"""SPDY/3.1 framing: the header dictionary, header blocks, and a session driven frame by frame."""

from __future__ import annotations

import hashlib
import io
import os
import queue
import struct
import threading
import zlib

from hypothesis import given
from hypothesis import strategies as st

from vkeci.kubelet import spdy


def test_dictionary_is_the_spdy3_one() -> None:
    # Length and digest of the dictionary in SPDY/3 draft section 2.6.10.1 (as used by moby/spdystream).
    assert len(spdy.DICTIONARY) == 1423
    assert hashlib.sha256(spdy.DICTIONARY).hexdigest() == (
        "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02"
    )


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=20)
values = st.text(alphabet=st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=40)


@given(st.lists(st.dictionaries(names, values, max_size=4), min_size=1, max_size=3))
def test_header_blocks_round_trip_through_a_shared_compression_context(blocks: list[dict[str, str]]) -> None:
    compress = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zdict=spdy.DICTIONARY)
    decompress = zlib.decompressobj(zdict=spdy.DICTIONARY)
    for headers in blocks:
        wire = compress.compress(spdy.encode_headers(headers)) + compress.flush(zlib.Z_SYNC_FLUSH)
        decoded = spdy.decode_headers(decompress.decompress(wire))
        assert decoded == {k: [v] for k, v in headers.items()}


class Pipe:
    """The client's side of a session: frames in through a pipe, frames out collected."""

    def __init__(self) -> None:
        read_fd, self.write_fd = os.pipe()
        self.reader = os.fdopen(read_fd, "rb")
        self.out = io.BytesIO()
        self.lock = threading.Lock()
        self.session = spdy.SpdySession(self.reader, self._collect)
        self.session.start()
        self.compress = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zdict=spdy.DICTIONARY)

    def _collect(self, data: bytes) -> None:
        with self.lock:
            self.out.write(data)

    def send(self, data: bytes) -> None:
        os.write(self.write_fd, data)

    def syn(self, stream_id: int, kind: str, fin: bool = False) -> None:
        block = self.compress.compress(spdy.encode_headers({"streamtype": kind})) + self.compress.flush(
            zlib.Z_SYNC_FLUSH
        )
        payload = struct.pack(">IIBB", stream_id, 0, 0, 0) + block
        self.send(spdy.control_frame(spdy.SYN_STREAM, spdy.FLAG_FIN if fin else 0, payload))

    def frames(self) -> list[tuple[str, int, int, bytes]]:
        with self.lock:
            data = self.out.getvalue()
        out, offset = [], 0
        while offset < len(data):
            first, second = struct.unpack_from(">II", data, offset)
            length = second & 0xFFFFFF
            payload = data[offset + 8 : offset + 8 + length]
            if first & 0x80000000:
                out.append(("control", first & 0xFFFF, second >> 24, payload))
            else:
                out.append(("data", first, second >> 24, payload))
            offset += 8 + length
        return out

    def close(self) -> None:
        os.close(self.write_fd)
        self.session.wait_closed(5)
        self.reader.close()


def test_session_replies_routes_data_pings_and_resets() -> None:
    pipe = Pipe()
    try:
        pipe.syn(1, "stdin")
        stdin = pipe.session.accept(5)
        assert stdin is not None and stdin.type == "stdin"
        pipe.send(spdy.data_frame(1, b"hello "))
        pipe.send(spdy.data_frame(1, b"world", fin=True))
        assert stdin.read(5) + stdin.read(5) == b"hello world"
        assert stdin.read(5) == b""
        pipe.send(spdy.control_frame(spdy.PING, 0, struct.pack(">I", 7)))
        pipe.syn(3, "stdout")
        stdout = pipe.session.accept(5)
        assert stdout is not None
        stdout.write(b"out")
        stdout.close()
        pipe.syn(5, "resize")
        resize = pipe.session.accept(5)
        assert resize is not None
        pipe.send(spdy.control_frame(spdy.RST_STREAM, 0, struct.pack(">II", 5, spdy.RST_CANCEL)))
        assert resize.read(5) == b""
        pipe.syn(7, "error", fin=True)  # a stream the client opens already half-closed
        error = pipe.session.accept(5)
        assert error is not None and error.read(5) == b""
        pipe.session.goaway()
        kinds = [(kind, number) for kind, number, _, _ in pipe.frames()]
        assert kinds[:1] == [("control", spdy.SYN_REPLY)]
        assert ("control", spdy.PING) in kinds
        assert ("data", 3) in kinds
        assert kinds[-1] == ("control", spdy.GOAWAY)
        fin = [f for f in pipe.frames() if f[0] == "data" and f[1] == 3 and f[2] & spdy.FLAG_FIN]
        assert fin and fin[0][3] == b""
        ping = next(f for f in pipe.frames() if f[:2] == ("control", spdy.PING))
        assert struct.unpack(">I", ping[3])[0] == 7
    finally:
        pipe.close()


def test_session_ends_on_eof_and_wakes_readers() -> None:
    pipe = Pipe()
    pipe.syn(1, "stdin")
    stdin = pipe.session.accept(5)
    assert stdin is not None
    os.close(pipe.write_fd)
    assert pipe.session.wait_closed(5)
    assert stdin.read(5) == b""
    assert pipe.session.accept(1) is None
    try:
        pipe.session.accept(0.01)
    except queue.Empty:
        pass
    pipe.reader.close()
