"""The kubelet HTTPS server of the virtual node.

Routes (as the kubelet's, so the API server's node proxy, ``kubectl logs/exec`` and
metrics-server work unchanged):

- ``GET /containerLogs/{ns}/{pod}/{container}``: logs from ECI (see :mod:`.logs`)
- ``GET|POST /exec/{ns}/{pod}/{container}``, ``/attach/...``: SPDY/3.1 streams (see :mod:`.streams`)
- ``/portForward/{ns}/{pod}``: refused with an explanation (ECI cannot tunnel TCP)
- ``GET /pods``, ``/runningpods/``, ``/healthz``
- ``GET /stats/summary``, ``/metrics/resource`` (see :mod:`.stats`)

Connections are accepted, their TLS handshakes run and their request heads read by one intake
thread for all of them (see :mod:`.intake`); a worker is taken only for a complete request
head, and a keep-alive connection goes back to the intake between requests. A caller without a
verified client certificate (anonymous, bearer token) is authenticated in a small pre-auth pool
first, so only authenticated requests reach the request workers. A request is authenticated
before any of its body is read; the routes take no body, so at most 256 KiB
(Go's maxPostHandlerReadBytes) of one is read and dropped in 16 KiB pieces, and a larger one is
refused. Malformed requests get the Go net/http server's replies (400, 431, 414, 501).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from prometheus_client import generate_latest

from vkeci.core.times import rfc3339
from vkeci.kubelet import logs, stats, streams
from vkeci.kubelet.auth import Authenticator, Forbidden, Unauthorized
from vkeci.kubelet.backend import EciApi, EciError, PodLookup
from vkeci.kubelet.errors import BadRequest, HttpError, NotFound
from vkeci.kubelet.intake import STATUS_TEXT, Intake, IntakeLimits, error_reply
from vkeci.kubelet.tls import ServingTls

log = logging.getLogger(__name__)

T = TypeVar("T")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})

PORT_FORWARD_MESSAGE = (
    "port-forward is not supported on ECI: Elastic Container Instance has no API to open a TCP "
    "connection into a container group. Reach the port through a Service (kubectl expose pod/<name> "
    '--port=<port>), give the pod a public IP (annotation k8s.aliyun.com/eci-with-eip: "true"), '
    "or run a client inside the pod with kubectl exec."
)


@dataclass(frozen=True)
class ServerSettings:
    """Tunables of the kubelet API server."""

    host: str = "0.0.0.0"
    port: int = 10250
    workers: int = 128  # requests served at once; exec sessions and log follows each hold one while they run
    preauth_workers: int = 8  # authenticate callers without a client certificate (anonymous, bearer tokens)
    handshake_timeout: float = 10.0  # accept to end of the TLS handshake
    header_timeout: float = 10.0  # end of the handshake (or a keep-alive's first byte) to a complete request head
    idle_timeout: float = 60.0  # a keep-alive connection with no request is closed after this
    max_pending: int = 1024  # connections still in the handshake or sending a request head
    max_pending_per_peer: int = 128  # of those, from one address (newcomers displace that address's oldest)
    log_poll_interval: float = 2.0  # follow polls DescribeContainerLog this often (within the rate limit)
    metrics_ttl: float = 15.0  # one ECI metrics fetch per this many seconds, however often scraped
    stream_creation_timeout: float = 30.0


class KubeletServer:
    """The HTTPS server. ``start()`` serves in background threads; ``stop()`` ends them."""

    def __init__(
        self,
        *,
        node_name: str,
        pods: PodLookup,
        eci: EciApi,
        auth: Authenticator,
        tls: ServingTls,
        settings: ServerSettings | None = None,
        exposition: Callable[[], bytes] = generate_latest,
    ) -> None:
        """``exposition`` is what ``GET /metrics`` serves: the daemon's own series (``vkeci.metrics``)."""
        self.node_name = node_name
        self.exposition = exposition
        self.pods = pods
        self.eci = eci
        self.auth = auth
        self.tls = tls
        self.settings = settings or ServerSettings()
        self.metrics = stats.MetricsCache(pods, eci, ttl=self.settings.metrics_ttl)
        self.started_at = rfc3339(dt.datetime.now(dt.timezone.utc))
        self._listener = socket.create_server((self.settings.host, self.settings.port), backlog=1024)
        self.intake = Intake(
            self._listener,
            self.tls.context,
            self._submit,
            IntakeLimits(
                handshake_timeout=self.settings.handshake_timeout,
                header_timeout=self.settings.header_timeout,
                idle_timeout=self.settings.idle_timeout,
                max_pending=self.settings.max_pending,
                max_pending_per_peer=self.settings.max_pending_per_peer,
            ),
        )
        self.pool = ThreadPoolExecutor(max_workers=self.settings.workers, thread_name_prefix="kubelet-api")
        self.preauth_pool = ThreadPoolExecutor(
            max_workers=self.settings.preauth_workers, thread_name_prefix="kubelet-api-auth"
        )
        self._queued = 0  # request heads handed over by the intake, not yet started
        self._queue_lock = threading.Lock()
        # Connections a worker holds, so stop() can end long-lived ones: the pool's threads are
        # joined at interpreter exit, and a `kubectl logs -f` must not keep the daemon alive.
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        return int(self._listener.getsockname()[1])

    def start(self) -> None:
        """Serve in the background and renew the certificate as it ages."""
        self.tls.start()
        self._thread = threading.Thread(target=self.intake.serve_forever, name="kubelet-api", daemon=True)
        self._thread.start()
        log.info("kubelet API listening on %s:%d", self.settings.host, self.port)

    def stop(self) -> None:
        """Stop accepting, end open connections (log follows, exec sessions) and the workers."""
        self.intake.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._listener.close()
        self._close_connections()
        self.preauth_pool.shutdown(wait=True, cancel_futures=True)
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.tls.stop()

    def _close_connections(self) -> None:
        """Shut down every connection a worker holds; its handler then ends on the next read or write."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            try:
                # The plain socket's shutdown: SSLSocket.shutdown would drop its SSL object under a
                # thread that may be using it.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass

    def _submit(self, sock: ssl.SSLSocket, peer: Any, head: bytes, trusted: bool) -> None:
        """From the intake: a complete request head. A caller with a verified client certificate
        (the API server), or on a connection whose last request was authenticated, goes to the
        request workers at once; anyone else is authenticated by the small pre-auth pool first,
        so a flood of anonymous or bearer-token requests (each token a TokenReview) cannot take
        the request workers."""
        with self._queue_lock:
            if self._queued >= self.settings.max_pending:
                log.debug("kubelet API: %d requests queued; dropping one from %s", self._queued, peer)
                sock.close()
                return
            self._queued += 1
        try:
            pool = self.pool if trusted or sock.getpeercert() else self.preauth_pool
            pool.submit(self._serve, sock, peer, head, pool is self.pool)
        except (RuntimeError, OSError, ValueError):  # stopping (the pools take no more work), or gone
            with self._queue_lock:
                self._queued -= 1
            sock.close()

    def _serve(self, sock: ssl.SSLSocket, peer: Any, head: bytes, in_request_pool: bool) -> None:
        """Authenticate one request and, if allowed, serve it here (request workers) or hand it
        to the request workers (pre-auth pool)."""
        with self._queue_lock:
            self._queued -= 1
        handler = _Handler(sock, peer, self, head)
        ok, allowed = self._step(handler, handler.authenticate)
        if not ok:
            return
        if not allowed:
            self._after(handler)
        elif in_request_pool:
            self._respond(handler)
        else:
            try:
                self.pool.submit(self._respond, handler)
            except RuntimeError:  # stopping
                sock.close()

    def _respond(self, handler: _Handler) -> None:
        ok, _ = self._step(handler, handler.respond)
        if ok:
            self._after(handler)

    def _after(self, handler: _Handler) -> None:
        """The connection goes back to the intake (next request, or a graceful close) or is closed."""
        ok, _ = self._step(handler, handler.done)
        if not ok:
            return
        sock, peer = handler.request, handler.client_address
        if handler.leftover is not None:
            self.intake.park(sock, peer, handler.leftover, trusted=handler.authenticated)
        elif handler.linger:
            self.intake.linger(sock, peer)
        else:
            _close(sock)

    def _step(self, handler: _Handler, step: Callable[[], T]) -> tuple[bool, T | None]:
        """Run one step of a request; a failure closes the connection (a peer gone: debug only)."""
        sock, peer = handler.request, handler.client_address
        with self._open_lock:
            self._open.add(sock)
        try:
            return True, step()
        except OSError as exc:  # includes ssl.SSLError: the client went away mid-request
            log.debug("kubelet API connection from %s ended: %s", peer, exc)
        except Exception:
            log.exception("kubelet API request from %s failed", peer)
        finally:
            with self._open_lock:
                self._open.discard(sock)
        _close(sock)
        return False, None


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass


class _HeadThenSocket(io.RawIOBase):
    """The request head the intake already read, then the socket: the handler's raw input.
    With ``parked`` set it never blocks, so the unread rest can be taken back (:meth:`rest`)."""

    def __init__(self, head: bytes, sock: socket.socket) -> None:
        self._head = head
        self._offset = 0
        self._sock = sock
        self.parked = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        view = memoryview(buffer).cast("B")
        if self._offset < len(self._head):
            n = min(len(view), len(self._head) - self._offset)
            view[:n] = self._head[self._offset : self._offset + n]
            self._offset += n
            return n
        if self.parked:
            return None
        try:
            return self._sock.recv_into(view)
        except (ssl.SSLWantReadError, BlockingIOError):
            return None  # a non-blocking socket (an upgraded connection) with nothing to read yet

    def rest(self) -> bytes:
        """The part of the head not yet handed out."""
        rest = self._head[self._offset :]
        self._offset = len(self._head)
        return rest


class _SocketWriter(io.BufferedIOBase):
    """Unbuffered writes straight to the socket (what socketserver gives a handler)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._sock.sendall(data)
        with memoryview(data) as view:
            return view.nbytes


# At most this much of a request body is read (and dropped) to keep a connection alive, as Go's
# net/http does (maxPostHandlerReadBytes); a larger one is refused and the connection closed.
MAX_DISCARDED_BODY = 256 << 10
_DISCARD_CHUNK = 16 << 10


class _BadFraming(Exception):
    """The request's body framing cannot be understood: answer ``reply`` and close."""

    def __init__(self, reply: bytes) -> None:
        super().__init__()
        self.reply = reply


def body_length(content_length: list[str], transfer_encoding: list[str]) -> int | None:
    """The declared body length (None: chunked), by Go net/http's rules (transfer.go): a
    Transfer-Encoding other than exactly ``chunked`` is 501; a Content-Length must be decimal
    digits below 2^63, and repeated ones must agree, else 400."""
    if transfer_encoding:
        if len(transfer_encoding) != 1 or transfer_encoding[0].strip().lower() != "chunked":
            raise _BadFraming(error_reply(501, "Unsupported transfer encoding"))
        return None  # chunked wins over any Content-Length
    if not content_length:
        return 0
    values = {value.strip(" \t") for value in content_length}
    if len(values) != 1:
        raise _BadFraming(error_reply(400))
    value = values.pop()
    if not value or not value.isascii() or not value.isdigit() or len(value) > 19 or int(value) >= 1 << 63:
        raise _BadFraming(error_reply(400))
    return int(value)


class _Handler(BaseHTTPRequestHandler):
    """One request, in two steps that may run in different workers: :meth:`authenticate` (parse
    the head the intake read, check the body framing, authenticate and authorize) and then
    :meth:`respond`. Afterwards ``leftover`` is the bytes already read past this request (None:
    close the connection) and ``linger`` says whether to close gracefully (unread bytes remain)."""

    protocol_version = "HTTP/1.1"
    app: KubeletServer
    server_version = "vk-eci"
    sys_version = ""

    def __init__(self, sock: socket.socket, peer: Any, app: KubeletServer, head: bytes) -> None:
        # Not BaseRequestHandler.__init__: it would run the whole request inside the constructor.
        self.request = sock
        self.client_address = peer
        self.app = app
        self._head = head
        self.leftover: bytes | None = None
        self.linger = False
        self.authenticated = False
        self.close_connection = True
        self._length: int | None = 0
        self._keep_alive = False
        self.setup()

    def setup(self) -> None:
        self.connection = self.request
        self._raw = _HeadThenSocket(self._head, self.connection)
        self._reader = io.BufferedReader(self._raw)
        self.rfile = self._reader
        self.wfile = _SocketWriter(self.connection)

    def authenticate(self) -> bool:
        """Parse the request and check who calls; False when it has been answered already (an
        unreadable request, 401, 403)."""
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.requestline = self.request_version = self.command = ""
            self.send_error(414)
            return False
        if not self.raw_requestline or not self.parse_request():
            return False  # parse_request answered (send_error)
        if self.command not in _METHODS:
            self.send_error(501)
            return False
        try:
            self._length = body_length(
                self.headers.get_all("Content-Length") or [], self.headers.get_all("Transfer-Encoding") or []
            )
        except _BadFraming as exc:
            self._close_after(exc.reply)
            return False
        self._keep_alive = not self.close_connection
        if self._length != 0:
            # Until the body is read, or known to be unwanted, this connection cannot carry another request.
            self.close_connection = True
            self.linger = True
        try:
            # Authentication first: nothing of the body is read for a caller who may not call.
            peer = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
            try:
                user = self.app.auth.authenticate(peer or None, self.headers.get("Authorization"))
                self.app.auth.authorize(user, self.command, urlsplit(self.path).path)
            except Unauthorized:
                raise HttpError("Unauthorized", 401) from None
            except Forbidden as exc:
                raise HttpError(str(exc), 403) from None
        except HttpError as exc:
            self._answer(exc)
            self.wfile.flush()
            return False
        self.authenticated = True
        return True

    def respond(self) -> None:
        """Serve an authenticated request."""
        url = urlsplit(self.path)
        try:
            try:
                self._discard_body(self._length)
                self.close_connection = not self._keep_alive
                self.linger = False
                self._route(self.command, url.path, parse_qs(url.query, keep_blank_values=True))
            except HttpError as exc:
                self._answer(exc)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, TimeoutError):
            self.close_connection = True
            self.linger = False

    def done(self) -> None:
        """After the last step: take back what was read past the request, release the files."""
        if not self.close_connection:
            self._raw.parked = True
            buffered = self._reader.peek(1 << 20)
            self.leftover = self._reader.read(len(buffered)) + self._raw.rest()
        self.finish()

    def _answer(self, exc: HttpError) -> None:
        body = getattr(exc, "body", None)
        if callable(body):  # exec/attach answer with a metav1.Status the API server can relay
            self._send_json(exc.status, body())
        else:
            self._send_text(exc.status, exc.message)

    def _close_after(self, reply: bytes) -> None:
        self.close_connection = True
        self.linger = True
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.client_address[0], *args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """A request that could not be parsed: Go net/http's reply. Python's parser gives 414 for
        a request line and 431 for a header line over 64 KiB, and 400/505/501 as Go does."""
        log.debug("kubelet API: %s: %d %s", self.client_address[0], code, message or "")
        self._close_after(error_reply(code if code in STATUS_TEXT else 400))

    def handle_expect_100(self) -> bool:
        # No "100 Continue" before authentication: that would invite the body we do not want.
        return True

    # --- plumbing ------------------------------------------------------------------------

    def _discard_body(self, length: int | None) -> None:
        """No route takes a body: drop a small one (so the connection stays usable), refuse a larger one."""
        if length is None or length > MAX_DISCARDED_BODY:
            raise HttpError(
                f"request body too large: the kubelet API's routes take no request body (at most "
                f"{MAX_DISCARDED_BODY >> 10} KiB is read and dropped)",
                413,
            )
        remaining = length
        while remaining:
            chunk = self.rfile.read(min(_DISCARD_CHUNK, remaining))
            if not chunk:
                raise ConnectionResetError("client closed the connection inside the request body")
            remaining -= len(chunk)

    def _send_text(self, status: int, text: str, content_type: str = "text/plain; charset=utf-8") -> None:
        self._send_bytes(status, (text if text.endswith("\n") else text + "\n").encode(), content_type)

    def _send_json(self, status: int, body: Any) -> None:
        self._send_bytes(status, json.dumps(body).encode(), "application/json")

    def _send_bytes(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def client_gone(self) -> bool:
        """Whether the client closed the connection (checked without blocking)."""
        sock = self.connection
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return True
        if not readable:
            return False
        timeout = sock.gettimeout()
        sock.setblocking(False)
        try:
            return sock.recv(1) == b""
        except (ssl.SSLWantReadError, BlockingIOError):
            return False
        except OSError:
            return True
        finally:
            try:
                sock.settimeout(timeout)  # keep the idle timeout for later requests on this connection
            except OSError:
                pass

    # --- routes --------------------------------------------------------------------------

    def _route(self, method: str, path: str, query: dict[str, list[str]]) -> None:
        parts = [unquote(p) for p in path.split("/") if p]
        head = parts[0] if parts else ""
        if head == "containerLogs" and method in ("GET", "HEAD"):
            if len(parts) != 4:
                raise BadRequest("expected /containerLogs/{namespace}/{pod}/{container}")
            self._container_logs(parts[1], parts[2], parts[3], query)
        elif head in ("exec", "attach") and method in ("GET", "POST"):
            try:
                if len(parts) not in (4, 5):  # the kubelet also accepts /exec/{ns}/{pod}/{uid}/{container}
                    raise BadRequest(f"expected /{head}/{{namespace}}/{{pod}}/{{container}}")
                pod, group_id = self._pod(parts[1], parts[2])
                container = parts[-1]
                if not logs.find_container(pod, container):
                    raise NotFound(f'container "{container}" not found in pod "{parts[2]}"')
            except HttpError as exc:  # as a Status, which the API server relays to kubectl readably
                raise streams.StatusError(exc.message, exc.status) from None
            streams.serve(self, head, pod, group_id, container, query)
        elif head == "portForward":
            raise streams.StatusError(PORT_FORWARD_MESSAGE, 501)
        elif path in ("/pods", "/pods/") and method in ("GET", "HEAD"):
            self._send_json(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": self._pods()})
        elif path in ("/runningpods", "/runningpods/") and method in ("GET", "HEAD"):
            self._send_json(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": self._running()})
        elif path in ("/healthz", "/healthz/") and method in ("GET", "HEAD"):
            self._send_bytes(200, b"ok", "text/plain; charset=utf-8")
        elif path in ("/stats/summary", "/stats/summary/") and method in ("GET", "HEAD", "POST"):
            pods, node_cpu = self.app.metrics.get()
            now = rfc3339(dt.datetime.now(dt.timezone.utc))
            self._send_json(200, stats.summary(self.app.node_name, self.app.started_at, pods, node_cpu, now))
        elif path in ("/metrics", "/metrics/") and method in ("GET", "HEAD"):
            # The daemon's own series (vkeci_*, process): what Prometheus' kubelet scrape job reads from a node.
            self._send_bytes(200, self.app.exposition(), "text/plain; version=0.0.4; charset=utf-8")
        elif path in ("/metrics/resource", "/metrics/resource/") and method in ("GET", "HEAD"):
            pods, node_cpu = self.app.metrics.get()
            body = stats.resource_metrics(pods, node_cpu, time.time())
            self._send_bytes(200, body, "text/plain; version=0.0.4; charset=utf-8")
        else:
            raise HttpError("404 page not found", 404)

    def _pod(self, namespace: str, name: str) -> tuple[dict[str, Any], str]:
        found = self.app.pods.get(namespace, name)
        if found is None:
            raise NotFound(f'pod "{name}" does not exist')
        pod, group_id = found
        if not group_id:
            raise BadRequest(
                f'pod "{name}" has no ECI container group yet (it is still being created); try again shortly'
            )
        return pod, group_id

    def _pods(self) -> list[dict[str, Any]]:
        return [dict(pod, kind="Pod", apiVersion="v1") for pod in self.app.pods.list()]

    def _running(self) -> list[dict[str, Any]]:
        running = []
        for pod in self.app.pods.list():
            meta = pod.get("metadata") or {}
            found = self.app.pods.get(str(meta.get("namespace")), str(meta.get("name")))
            if found and found[1]:
                running.append(
                    {
                        "metadata": {k: meta[k] for k in ("name", "namespace", "uid") if k in meta},
                        "spec": {
                            "containers": [
                                {"name": c.get("name"), "image": c.get("image")}
                                for c in (pod.get("spec") or {}).get("containers") or []
                            ]
                        },
                        "status": {},
                    }
                )
        return running

    def _container_logs(self, namespace: str, name: str, container: str, query: dict[str, list[str]]) -> None:
        options = logs.parse_log_options(query)
        found = self.app.pods.get(namespace, name)
        if found is None:
            raise NotFound(f'pod "{name}" does not exist')
        pod, group_id = found
        if not logs.find_container(pod, container):
            raise NotFound(f'container "{container}" not found in pod "{name}"')
        if not group_id:
            raise BadRequest(f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating')
        if options.previous and not logs.has_previous(pod, container):
            raise BadRequest(f'previous terminated container "{container}" in pod "{name}" not found')
        response = _ChunkedResponse(self)

        def finished() -> bool:
            if self.client_gone():
                return True
            current = self.app.pods.get(namespace, name)
            return logs.container_finished(current[0] if current else None, container)

        try:
            logs.stream_logs(
                self.app.eci,
                options,
                group_id,
                container,
                response.write,
                finished,
                poll_interval=self.app.settings.log_poll_interval,
            )
        except EciError as exc:
            if response.started:
                response.finish()
                return
            raise logs.eci_error_to_http(exc, options, name, container) from None
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, TimeoutError, OSError):
            self.close_connection = True
            return
        response.finish()


class _ChunkedResponse:
    """A 200 text response sent with chunked encoding, headers on the first write, so an
    error found before any output can still be answered with its own status."""

    def __init__(self, handler: _Handler) -> None:
        self._handler = handler
        self.started = False

    def _start(self) -> None:
        if not self.started:
            self.started = True
            self._handler.send_response(200)
            self._handler.send_header("Content-Type", "text/plain")
            self._handler.send_header("Transfer-Encoding", "chunked")
            self._handler.end_headers()

    def write(self, data: bytes) -> None:
        """Send one chunk now (the client sees each log line as it comes)."""
        self._start()
        if data and self._handler.command != "HEAD":
            self._handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def finish(self) -> None:
        """End the body."""
        self._start()
        if self._handler.command != "HEAD":
            self._handler.wfile.write(b"0\r\n\r\n")
