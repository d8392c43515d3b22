"""What a client sends on one stream or channel, queued until the exec bridge reads it.

SPDY streams and WebSocket channels both hand the bridge the same reader, so the bridge never
knows which protocol the API server chose.
"""

from __future__ import annotations

import queue


class Inbox:
    """Chunks fed by a session's reader thread; ``None`` fed means the client finished."""

    def __init__(self) -> None:
        self._chunks: queue.Queue[bytes | None] = queue.Queue()
        self._eof = False

    def _feed(self, data: bytes | None) -> None:
        self._chunks.put(data)

    def read(self, timeout: float | None = None) -> bytes:
        """The next chunk the client sent; b"" once it finished or the session ended.
        Raises queue.Empty on timeout."""
        if self._eof:
            return b""
        chunk = self._chunks.get(timeout=timeout)
        if chunk is None:
            self._eof = True
            return b""
        return chunk
