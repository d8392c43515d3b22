"""Exec sessions behind ExecContainerCommand's `WebSocketUri`.

INFERRED CONTRACT: Alibaba does not document the framing of ECI's exec WebSocket. The team's contract is the
Kubernetes channel protocol `v4.channel.k8s.io` over binary frames - the first byte of each frame is the
channel:
  0 stdin (client -> fake), 1 stdout, 2 stderr (fake -> client),
  3 error/status (fake -> client, once, at the end): a metav1.Status JSON,
    `{"metadata":{},"status":"Success"}` or
    `{"metadata":{},"status":"Failure","reason":"NonZeroExitCode","message":"command terminated with non-zero
      exit code: 3","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}`,
  4 resize (client -> fake): `{"Width":W,"Height":H}`, applied with TIOCSWINSZ when TTY=true.
Stdin EOF: an empty frame on channel 0 (just the channel byte), or the v5 close signal (channel 255 with
payload [0]). After the status frame the fake sends a WebSocket close frame. If the client closes first,
the command is killed. Text frames are accepted like binary ones.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import struct
import subprocess
import termios
import threading
from typing import TYPE_CHECKING, Any, BinaryIO

from fakes.eci.websocket import OP_BINARY, OP_CLOSE, Connection, ProtocolError, accept_key

if TYPE_CHECKING:
    from fakes.eci.server import FakeECI, _Handler

SUBPROTOCOLS = ("v4.channel.k8s.io", "v5.channel.k8s.io", "channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255


def status_json(code: int) -> bytes:
    """The channel-3 metav1.Status for an exit code."""
    if code == 0:
        return json.dumps({"metadata": {}, "status": "Success"}).encode()
    return json.dumps(
        {
            "metadata": {},
            "status": "Failure",
            "message": f"command terminated with non-zero exit code: {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
        }
    ).encode()


def _handshake(h: _Handler) -> str | None:
    key = h.headers.get("Sec-WebSocket-Key")
    if h.headers.get("Upgrade", "").lower() != "websocket" or not key:
        h._reply(400, b'{"error":"this URI expects a WebSocket upgrade"}')
        return None
    offered = [p.strip() for p in (h.headers.get("Sec-WebSocket-Protocol") or "").split(",") if p.strip()]
    chosen = next((p for p in SUBPROTOCOLS if p in offered), None)
    h.send_response(101, "Switching Protocols")
    h.send_header("Upgrade", "websocket")
    h.send_header("Connection", "Upgrade")
    h.send_header("Sec-WebSocket-Accept", accept_key(key))
    if chosen:
        h.send_header("Sec-WebSocket-Protocol", chosen)
    h.end_headers()
    h.wfile.flush()
    return chosen or ""


def _pump(src: BinaryIO | int, channel: int, ws: Connection) -> None:
    """Copy process output to a channel until EOF."""
    while True:
        try:
            data = os.read(src, 65536) if isinstance(src, int) else src.read1(65536)  # type: ignore[attr-defined]
        except OSError:  # a pty master reports EIO once the slave side is gone
            return
        if not data:
            return
        try:
            ws.send(OP_BINARY, bytes([channel]) + data)
        except OSError:
            return


def serve(h: _Handler, fake: FakeECI, rec: dict[str, Any]) -> None:
    """Run one exec session on the upgraded connection."""
    h.close_connection = True
    if _handshake(h) is None:
        return
    ws = Connection(h.rfile, h.wfile)  # type: ignore[arg-type]
    with fake.cloud.lock:
        g = fake.cloud.groups.get(rec["group"])
    if g is None:
        ws.send(
            OP_BINARY, bytes([ERROR]) + json.dumps({"status": "Failure", "message": "container group is gone"}).encode()
        )
        ws.close()
        return
    master = slave = None
    try:
        if rec["tty"]:
            master, slave = os.openpty()
            proc = fake.runner.popen_interactive(g, rec["container"], rec["argv"], slave)
            os.close(slave)
            slave = None
            pumps = [threading.Thread(target=_pump, args=(master, STDOUT, ws), daemon=True)]
        else:
            proc = fake.runner.popen_interactive(g, rec["container"], rec["argv"], None)
            assert proc.stdout is not None and proc.stderr is not None
            pumps = [
                threading.Thread(target=_pump, args=(proc.stdout, STDOUT, ws), daemon=True),
                threading.Thread(target=_pump, args=(proc.stderr, STDERR, ws), daemon=True),
            ]
            if not rec["stdin"] and proc.stdin is not None:
                proc.stdin.close()
    except OSError as e:
        ws.send(OP_BINARY, bytes([ERROR]) + json.dumps({"status": "Failure", "message": f"exec failed: {e}"}).encode())
        ws.close()
        return
    for t in pumps:
        t.start()
    finisher = threading.Thread(target=_finish, args=(proc, pumps, ws, h, master), daemon=True)
    finisher.start()
    try:
        _read_client(ws, proc, master, rec)
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, 9)
        finisher.join(timeout=10)
        if master is not None:
            with contextlib.suppress(OSError):
                os.close(master)


def _read_client(ws: Connection, proc: subprocess.Popen[bytes], master: int | None, rec: dict[str, Any]) -> None:
    stdin_open = rec["stdin"]
    while True:
        try:
            op, data = ws.recv()
        except (EOFError, OSError, ProtocolError):
            return
        if op == OP_CLOSE:
            return
        if not data:
            continue
        channel, payload = data[0], data[1:]
        if channel == STDIN and stdin_open:
            if not payload:
                stdin_open = _close_stdin(proc, master)
                continue
            with contextlib.suppress(OSError):
                if master is not None:
                    os.write(master, payload)
                elif proc.stdin is not None:
                    proc.stdin.write(payload)
                    proc.stdin.flush()
        elif channel == CLOSE and payload[:1] == bytes([STDIN]) and stdin_open:
            stdin_open = _close_stdin(proc, master)
        elif channel == RESIZE and master is not None:
            with contextlib.suppress(ValueError, KeyError, TypeError, OSError):
                size = json.loads(payload)
                fcntl.ioctl(
                    master, termios.TIOCSWINSZ, struct.pack("HHHH", int(size["Height"]), int(size["Width"]), 0, 0)
                )


def _close_stdin(proc: subprocess.Popen[bytes], master: int | None) -> bool:
    if master is not None:
        with contextlib.suppress(OSError):
            os.write(master, b"\x04")  # EOF to the line discipline of the pty
    elif proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    return False


def _finish(
    proc: subprocess.Popen[bytes], pumps: list[threading.Thread], ws: Connection, h: _Handler, master: int | None
) -> None:
    code = proc.wait()
    for t in pumps:
        t.join(timeout=2 if master is not None else 10)
    code = code if code >= 0 else 128 - code
    with contextlib.suppress(OSError):
        ws.send(OP_BINARY, bytes([ERROR]) + status_json(code))
        ws.close()
    # Unblock the reader if the client does not answer the close frame.
    with contextlib.suppress(OSError):
        import socket

        h.connection.shutdown(socket.SHUT_RDWR)
