"""``/exec`` and ``/attach``: the Kubernetes remote-command protocol bridged to ECI's
ExecContainerCommand WebSocket.

Toward the client: SPDY/3.1 with ``v4.channel.k8s.io`` down to ``channel.k8s.io`` (what the
1.35 API server speaks to kubelets, translating kubectl's WebSocket v5), or WebSocket with the
pre-v5 channel protocols (clients the API server proxies unchanged); see :mod:`.spdy` and
:mod:`.websocket`. The API server opens one stream per channel (error, stdin, stdout, stderr,
resize). ECI's exec WebSocket speaks the channel protocol in binary frames: the first byte
names the channel (0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize). The exit code travels
back as a metav1.Status on the error stream, as the kubelet writes it for v4.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vkeci.kubelet import websocket as ws_server
from vkeci.kubelet.backend import EciError
from vkeci.kubelet.duplex import TlsDuplex
from vkeci.kubelet.errors import BadRequest, HttpError
from vkeci.kubelet.spdy import SpdySession, SpdyStream
from vkeci.kubelet.websocket import WsSession

log = logging.getLogger(__name__)

V4, V3, V2, V1 = "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"
SUPPORTED = (V4, V3, V2, V1)
STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE = 255  # v5.channel.k8s.io: "no more data on this channel"
ECI_MAX_ARGS, ECI_MAX_ARG_LEN = 20, 256  # ExecContainerCommand limits (eci-openapi.md §5.4)

ATTACH_MESSAGE = (
    "attach is not supported on ECI: Elastic Container Instance can start a new process in a "
    "container (kubectl exec) but cannot connect to the main process's terminal. Use "
    "`kubectl logs -f` to watch its output or `kubectl exec -it <pod> -- sh` for a shell."
)


@dataclass(frozen=True)
class StreamOptions:
    """Which channels the client asked for, and the command."""

    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool
    command: tuple[str, ...]


def _flag(query: dict[str, list[str]], name: str) -> bool:
    values = query.get(name) or []
    return bool(values) and values[-1] == "1"


def parse_stream_options(query: dict[str, list[str]], need_command: bool = True) -> StreamOptions:
    """The exec/attach query: ``command`` (repeated, argv order kept), ``input``, ``output``,
    ``error``, ``tty``. As in the kubelet, a TTY merges stderr into stdout."""
    tty = _flag(query, "tty")
    options = StreamOptions(
        stdin=_flag(query, "input"),
        stdout=_flag(query, "output"),
        stderr=_flag(query, "error") and not tty,
        tty=tty,
        command=tuple(query.get("command") or ()),
    )
    if not (options.stdin or options.stdout or options.stderr):
        raise BadRequest("you must specify at least 1 of stdin, stdout, stderr")
    if need_command:
        if not options.command:
            raise BadRequest("missing command: pass the command as repeated command= parameters")
        if len(options.command) > ECI_MAX_ARGS:
            raise BadRequest(
                f"command has {len(options.command)} arguments; ECI runs at most {ECI_MAX_ARGS} "
                "(wrap it in sh -c '...')"
            )
        long = [arg for arg in options.command if len(arg) > ECI_MAX_ARG_LEN]
        if long:
            raise BadRequest(
                f"a command argument is {len(long[0])} characters long; ECI accepts at most {ECI_MAX_ARG_LEN} "
                "per argument (put the script in a file or a ConfigMap)"
            )
    return options


def negotiate(header_values: list[str], supported: tuple[str, ...] = SUPPORTED) -> str | None:
    """The first protocol the client offers (in its order) that we support."""
    for value in header_values:
        for offered in value.split(","):
            offered = offered.strip()
            if offered in supported:
                return offered
    return None


def success_status() -> dict[str, Any]:
    """The v4 status for a command that exited 0."""
    return {"metadata": {}, "status": "Success"}


def exit_status(code: int) -> dict[str, Any]:
    """The v4 status for a non-zero exit, which kubectl turns into its own exit code."""
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: exit status {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def internal_error(message: str) -> dict[str, Any]:
    """The v4 status for a failure that is not the command's own."""
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"Internal error occurred: {message}",
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    }


def status_from_remote(payload: bytes) -> dict[str, Any]:
    """Normalise the status ECI sent on channel 3 into the kubelet's v4 shape."""
    try:
        remote = json.loads(payload.decode() or "{}")
    except (UnicodeDecodeError, ValueError):
        return internal_error(f"ECI sent an unreadable exec status: {payload[:200]!r}")
    if remote.get("status") == "Success":
        return success_status()
    for cause in (remote.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            try:
                return exit_status(int(cause.get("message")))
            except (TypeError, ValueError):
                break
    return internal_error(str(remote.get("message") or "the command failed in ECI"))


def status_bytes(status: dict[str, Any], protocol: str) -> bytes:
    """What to write on the error stream: JSON for v4, the message alone (failures only) before."""
    if protocol.startswith("v4."):
        return json.dumps(status).encode()
    return b"" if status.get("status") == "Success" else str(status.get("message", "")).encode()


def expected_streams(options: StreamOptions, protocol: str, over_websocket: bool = False) -> set[str]:
    """The streams of a session: the ones a SPDY client opens for these options and protocol,
    or the channels of a WebSocket session (resize is always readable there)."""
    wanted = {"error"}
    if options.stdin:
        wanted.add("stdin")
    if options.stdout:
        wanted.add("stdout")
    if options.stderr:
        wanted.add("stderr")
    if over_websocket or (options.tty and protocol in (V4, V3)):
        wanted.add("resize")
    return wanted


ECI_SUBPROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "channel.k8s.io")


def _open_websocket(uri: str, timeout: float) -> Any:
    import websocket

    # The fake ECI (and, by our reading, ECI) speaks the channel protocol; offer v5 first so a
    # server that knows it can be told when stdin ends. The offer goes in a plain header:
    # websocket-client would refuse a server that answers without choosing one, and ECI's exact
    # handshake is not documented.
    remote = websocket.create_connection(
        uri, timeout=timeout, header=[f"Sec-WebSocket-Protocol: {', '.join(ECI_SUBPROTOCOLS)}"]
    )
    remote.settimeout(None)  # the timeout was for connecting; a command may stay quiet for hours
    return remote


def remote_protocol(remote: Any) -> str:
    """The subprotocol ECI's exec endpoint chose ("" when it chose none)."""
    headers = remote.getheaders() or {}
    return str(headers.get("sec-websocket-protocol") or "").strip()


class StatusError(HttpError):
    """An error answered before the upgrade as a metav1.Status JSON body, which the API server's
    SPDY client turns into a readable error for kubectl (plain text would surface as
    "unknown error")."""

    def body(self) -> dict[str, Any]:
        """The Status object."""
        reasons = {400: "BadRequest", 403: "Forbidden", 404: "NotFound", 429: "TooManyRequests", 501: "NotImplemented"}
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": reasons.get(self.status, "InternalError"),
            "code": self.status,
        }


def _negotiate_upgrade(handler: Any) -> str:
    upgrade = (handler.headers.get("Upgrade") or "").lower()
    if upgrade == "websocket":
        if not handler.headers.get("Sec-WebSocket-Key"):
            raise StatusError("unable to upgrade: Sec-WebSocket-Key is missing", 400)
        chosen = ws_server.choose_protocol(handler.headers.get("Sec-WebSocket-Protocol"))
        if chosen is None:
            raise StatusError(
                f"requested protocol(s) are not supported: {handler.headers.get('Sec-WebSocket-Protocol')}; "
                f"supports {list(ws_server.PROTOCOLS)}",
                400,
            )
        return chosen
    if "spdy/3.1" not in upgrade:
        raise StatusError("exec needs a connection upgrade to SPDY/3.1 (Upgrade: SPDY/3.1)", 400)
    offered = handler.headers.get_all("X-Stream-Protocol-Version") or []
    if not offered:
        raise StatusError("unable to upgrade: header X-Stream-Protocol-Version does not exist in request", 400)
    protocol = negotiate(offered)
    if protocol is None:
        raise StatusError(
            f"unable to upgrade: unable to negotiate protocol: client supports {offered}, server accepts "
            f"{list(SUPPORTED)}",
            403,
        )
    return protocol


def _open_exec(handler: Any, group_id: str, container: str, options: StreamOptions) -> Any:
    params = {
        "ContainerGroupId": group_id,
        "ContainerName": container,
        "Command": list(options.command),
        "TTY": options.tty,
        "Stdin": options.stdin,
    }
    try:
        answer = handler.app.eci.exec_container_command(params)
    except EciError as exc:
        raise StatusError(f"error executing command in container: {exc}", 429 if exc.status == 429 else 500) from None
    uri = str(answer.get("WebSocketUri") or "")
    if not uri:
        raise StatusError("error executing command in container: ECI returned no WebSocketUri", 500)
    try:
        return _open_websocket(uri, timeout=handler.app.settings.stream_creation_timeout)
    except Exception as exc:
        raise StatusError(
            f"error executing command in container: cannot reach ECI's exec session ({exc})", 500
        ) from None


def _upgrade_websocket(handler: Any, protocol: str, kinds: list[str]) -> WsSession:
    handler.send_response(101)
    handler.send_header("Upgrade", "websocket")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Sec-WebSocket-Accept", ws_server.accept_key(handler.headers["Sec-WebSocket-Key"]))
    if protocol:
        handler.send_header("Sec-WebSocket-Protocol", protocol)
    handler.end_headers()
    handler.close_connection = True
    duplex = TlsDuplex.take_over(handler)
    session = ws_server.WsSession(duplex, duplex.write, protocol, kinds)
    session.start()
    # As the kubelet does: an empty message on the first writable channel says "connected".
    first = next((k for k in ("stdout", "stderr", "error") if k in kinds), "error")
    session.channels[first].write(b"")
    return session


def _upgrade(handler: Any, protocol: str) -> SpdySession:
    handler.send_response(101)
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Upgrade", "SPDY/3.1")
    handler.send_header("X-Stream-Protocol-Version", protocol)
    handler.end_headers()
    handler.wfile.flush()
    handler.close_connection = True
    duplex = TlsDuplex.take_over(handler)  # sessions may idle: no timeouts, reads and writes serialised
    session = SpdySession(duplex, duplex.write)
    session.start()
    return session


def serve(handler: Any, kind: str, pod: dict[str, Any], group_id: str, container: str, query: dict) -> None:
    """Run one exec or attach on an HTTP request that asks for a SPDY upgrade."""
    try:
        options = parse_stream_options(query, need_command=(kind == "exec"))
    except HttpError as exc:
        raise StatusError(exc.message, exc.status) from None
    protocol = _negotiate_upgrade(handler)
    remote = _open_exec(handler, group_id, container, options) if kind == "exec" else None
    session: Any
    if (handler.headers.get("Upgrade") or "").lower() == "websocket":
        session = _upgrade_websocket(
            handler, protocol, sorted(expected_streams(options, protocol, over_websocket=True))
        )
    else:
        session = _upgrade(handler, protocol)
    timeout = handler.app.settings.stream_creation_timeout
    try:
        if remote is not None:
            Bridge(session, remote, options, protocol, timeout).run()
        else:
            Attach(session, options, protocol, timeout, handler, pod, group_id, container).run()
    finally:
        if remote is not None:
            try:
                remote.close()
            except Exception:
                pass
        session.goaway()
        session.wait_closed(5.0)
        handler.connection.setblocking(True)


class Bridge:
    """Copies between the client's SPDY streams and ECI's exec WebSocket until the command ends."""

    def __init__(self, session: SpdySession, remote: Any, options: StreamOptions, protocol: str, timeout: float):
        self.session = session
        self.remote = remote
        self.options = options
        self.protocol = protocol
        self.timeout = timeout
        self.streams: dict[str, SpdyStream] = {}
        self._send_lock = threading.Lock()

    def _accept_streams(self) -> bool:
        wanted = expected_streams(self.options, self.protocol, over_websocket=isinstance(self.session, WsSession))
        while not wanted <= set(self.streams):
            try:
                stream = self.session.accept(self.timeout)
            except queue.Empty:
                log.warning("exec: client did not open its streams within %.0fs", self.timeout)
                return False
            if stream is None:
                return False
            self.streams[stream.type] = stream
        return True

    def _send(self, channel: int, data: bytes) -> None:
        import websocket

        with self._send_lock:
            self.remote.send(bytes([channel]) + data, opcode=websocket.ABNF.OPCODE_BINARY)

    def _pump(self, stream: SpdyStream, on_data: Callable[[bytes], None], on_eof: Callable[[], None]) -> None:
        try:
            while True:
                chunk = stream.read()
                if not chunk:
                    break
                on_data(chunk)
            on_eof()
        except Exception as exc:  # the remote side went away; the main loop notices
            log.debug("exec: %s pump ended: %s", stream.type, exc)

    def _close_stdin(self) -> None:
        # v5 has a close signal; for v4 the team's ECI contract (fakes/eci/exec_ws.py) takes an
        # empty stdin frame as EOF, which a plain v4 server ignores harmlessly.
        if remote_protocol(self.remote).startswith("v5."):
            self._send(CLOSE, bytes([STDIN]))
        else:
            self._send(STDIN, b"")

    def _resize(self, buffer: list[bytes]) -> Callable[[bytes], None]:
        decoder = json.JSONDecoder()

        def feed(chunk: bytes) -> None:
            # A stream of JSON objects ({"Width":..,"Height":..}): newline-separated from Go's
            # encoder, back to back from WebSocket clients; like the kubelet, decode them in turn.
            buffer.append(chunk)
            text = b"".join(buffer).decode(errors="replace")
            position = 0
            while True:
                while position < len(text) and text[position].isspace():
                    position += 1
                try:
                    size, end = decoder.raw_decode(text, position)
                except ValueError:
                    if len(text) - position > 4096:  # not JSON at all: drop it rather than grow forever
                        position = len(text)
                    break  # incomplete: wait for more
                if isinstance(size, dict):
                    self._send(RESIZE, json.dumps(size, separators=(",", ":")).encode())
                position = end
            buffer[:] = [text[position:].encode()]

        return feed

    def run(self) -> None:
        """Bridge until ECI reports the end of the command or either side goes away."""
        if not self._accept_streams():
            return
        if "stdin" in self.streams:
            threading.Thread(
                target=self._pump,
                args=(self.streams["stdin"], lambda data: self._send(STDIN, data), self._close_stdin),
                name="exec-stdin",
                daemon=True,
            ).start()
        if "resize" in self.streams:
            threading.Thread(
                target=self._pump,
                args=(self.streams["resize"], self._resize([]), lambda: None),
                name="exec-resize",
                daemon=True,
            ).start()
        threading.Thread(target=self._watch_client, name="exec-client", daemon=True).start()
        self.finish(self._copy_output())

    def finish(self, status: dict[str, Any]) -> None:
        """Close the output streams and write the final status on the error stream."""
        for name in ("stdout", "stderr"):
            if name in self.streams:
                self.streams[name].close()
        try:
            payload = status_bytes(status, self.protocol)
            if payload:
                self.streams["error"].write(payload)
            self.streams["error"].close()
        except OSError:
            pass

    def _watch_client(self) -> None:
        # If the API server hangs up (user pressed Ctrl-C), end the ECI session too.
        self.session.closed.wait()
        try:
            self.remote.close()
        except Exception:
            pass

    def _copy_output(self) -> dict[str, Any]:
        import websocket

        stdout = self.streams.get("stdout")
        stderr = self.streams.get("stderr") or (stdout if self.options.tty else None)
        while True:
            try:
                opcode, data = self.remote.recv_data()
            except (websocket.WebSocketException, OSError) as exc:
                if self.session.closed.is_set():
                    return internal_error("the client closed the connection")
                return internal_error(f"ECI's exec session ended without an exit status ({exc})")
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return internal_error("ECI's exec session ended without an exit status")
            if opcode not in (websocket.ABNF.OPCODE_BINARY, websocket.ABNF.OPCODE_TEXT) or not data:
                continue
            channel, payload = data[0], data[1:]
            try:
                if channel == STDOUT and stdout is not None and payload:
                    stdout.write(payload)
                elif channel == STDERR and stderr is not None and payload:
                    stderr.write(payload)
                elif channel == ERROR:
                    return status_from_remote(payload)
            except OSError:
                return internal_error("the client closed the connection")


class Attach(Bridge):
    """``kubectl attach`` without stdin: the container's output from now on, followed through
    DescribeContainerLog (ECI cannot connect to the main process itself). With stdin or a
    TTY it ends at once with an error status that says what to use instead."""

    def __init__(
        self,
        session: SpdySession,
        options: StreamOptions,
        protocol: str,
        timeout: float,
        handler: Any,
        pod: dict[str, Any],
        group_id: str,
        container: str,
    ) -> None:
        super().__init__(session, None, options, protocol, timeout)
        self.handler = handler
        self.namespace = str((pod.get("metadata") or {}).get("namespace"))
        self.name = str((pod.get("metadata") or {}).get("name"))
        self.group_id = group_id
        self.container = container

    def run(self) -> None:
        """Stream output until the container ends or the client leaves."""
        import datetime as dt

        from vkeci.kubelet import logs

        if not self._accept_streams():
            return
        if self.options.stdin or self.options.tty:
            status = internal_error(ATTACH_MESSAGE)
        else:
            stdout = self.streams.get("stdout") or self.streams.get("stderr")
            app = self.handler.app

            def finished() -> bool:
                if self.session.closed.is_set():
                    return True
                current = app.pods.get(self.namespace, self.name)
                return logs.container_finished(current[0] if current else None, self.container)

            options = logs.LogOptions(follow=True, since_time=dt.datetime.now(dt.timezone.utc))
            try:
                logs.stream_logs(
                    app.eci,
                    options,
                    self.group_id,
                    self.container,
                    stdout.write if stdout is not None else (lambda data: None),
                    finished,
                    poll_interval=app.settings.log_poll_interval,
                )
                status = success_status()
            except EciError as exc:
                status = internal_error(f"reading the container's output from ECI failed: {exc}")
            except OSError:
                status = internal_error("the client closed the connection")
        self.finish(status)
