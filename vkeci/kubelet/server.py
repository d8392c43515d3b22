"""The kubelet HTTPS server of the virtual node.

Routes (as the kubelet's, so the API server's node proxy, ``kubectl logs/exec`` and
metrics-server work unchanged):

- ``GET /containerLogs/{ns}/{pod}/{container}``: logs from ECI (see :mod:`.logs`)
- ``GET|POST /exec/{ns}/{pod}/{container}``, ``/attach/...``: SPDY/3.1 streams (see :mod:`.streams`)
- ``/portForward/{ns}/{pod}``: refused with an explanation (ECI cannot tunnel TCP)
- ``GET /pods``, ``/runningpods/``, ``/healthz``
- ``GET /stats/summary``, ``/metrics/resource`` (see :mod:`.stats`)

Each accepted connection is handed to a bounded thread pool; the TLS handshake happens in
the worker so a slow client cannot stall the accept loop.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import select
import socket
import socketserver
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from prometheus_client import generate_latest

from vkeci.core.times import rfc3339
from vkeci.kubelet import logs, stats, streams
from vkeci.kubelet.auth import Authenticator, Forbidden, Unauthorized
from vkeci.kubelet.backend import EciApi, EciError, PodLookup
from vkeci.kubelet.errors import BadRequest, HttpError, NotFound
from vkeci.kubelet.tls import ServingTls

log = logging.getLogger(__name__)

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
    workers: int = 128  # concurrent connections served; exec sessions, log follows and idle keep-alives each hold one
    handshake_timeout: float = 10.0
    idle_timeout: float = 60.0  # keep-alive connections with no request are closed after this (frees a worker)
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
    ) -> None:
        self.node_name = node_name
        self.pods = pods
        self.eci = eci
        self.auth = auth
        self.tls = tls
        self.settings = settings or ServerSettings()
        self.metrics = stats.MetricsCache(pods, eci, ttl=self.settings.metrics_ttl)
        self.started_at = rfc3339(dt.datetime.now(dt.timezone.utc))
        self._server = _TlsPoolServer(self)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Serve in the background and renew the certificate as it ages."""
        self.tls.start()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="kubelet-api", daemon=True
        )
        self._thread.start()
        log.info("kubelet API listening on %s:%d", self.settings.host, self.port)

    def stop(self) -> None:
        """Stop accepting, end open connections (log follows, exec sessions) and the workers."""
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        self._server.pool.shutdown(wait=True, cancel_futures=True)
        self.tls.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)


class _TlsPoolServer(socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, app: KubeletServer) -> None:
        self.app = app
        self.pool = ThreadPoolExecutor(max_workers=app.settings.workers, thread_name_prefix="kubelet-api")
        # Open connections, so stop() can end long-lived ones: the pool's threads are joined at
        # interpreter exit, and a `kubectl logs -f` must not keep the daemon alive.
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__((app.settings.host, app.settings.port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        self.pool.submit(self._serve, request, client_address)

    def close_connections(self) -> None:
        """Shut down every open connection; their handlers then end on the next read or write."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            try:
                # The plain socket's shutdown: SSLSocket.shutdown would drop its SSL object under a
                # thread that may be using it.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass

    def _serve(self, request: socket.socket, client_address: Any) -> None:
        try:
            self._serve_tls(request, client_address)
        finally:
            with self._open_lock:
                self._open.discard(request)
                self._open = {s for s in self._open if s.fileno() != -1}

    def _serve_tls(self, request: socket.socket, client_address: Any) -> None:
        try:
            request.settimeout(self.app.settings.handshake_timeout)
            tls_socket = self.app.tls.context().wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            log.debug("TLS handshake with %s failed: %s", client_address, exc)
            request.close()
            return
        with self._open_lock:  # wrapping detached the plain socket: track the TLS one instead
            self._open.discard(request)
            self._open.add(tls_socket)
        try:
            tls_socket.settimeout(self.app.settings.idle_timeout)
            self.finish_request(tls_socket, client_address)
        except OSError as exc:  # includes ssl.SSLError: the client went away mid-request
            log.debug("kubelet API connection from %s ended: %s", client_address, exc)
        except Exception:
            log.exception("kubelet API request from %s failed", client_address)
        finally:
            self.shutdown_request(tls_socket)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("kubelet API connection from %s failed", client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _TlsPoolServer
    server_version = "vk-eci"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.client_address[0], *args)

    @property
    def app(self) -> KubeletServer:
        return self.server.app

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    # --- plumbing ------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        path = url.path
        query = parse_qs(url.query, keep_blank_values=True)
        try:
            self._drain_body()
            peer = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
            try:
                user = self.app.auth.authenticate(peer or None, self.headers.get("Authorization"))
                self.app.auth.authorize(user, method, path)
            except Unauthorized:
                raise HttpError("Unauthorized", 401) from None
            except Forbidden as exc:
                raise HttpError(str(exc), 403) from None
            self._route(method, path, query)
        except HttpError as exc:
            body = getattr(exc, "body", None)
            if callable(body):  # exec/attach answer with a metav1.Status the API server can relay
                self._send_json(exc.status, body())
            else:
                self._send_text(exc.status, exc.message)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, TimeoutError):
            self.close_connection = True

    def _drain_body(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)

    def _send_text(self, status: int, text: str, content_type: str = "text/plain; charset=utf-8") -> None:
        self._send_bytes(status, (text if text.endswith("\n") else text + "\n").encode(), content_type)

    def _send_json(self, status: int, body: Any) -> None:
        self._send_bytes(status, json.dumps(body).encode(), "application/json")

    def _send_bytes(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
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
            # The daemon's own process metrics, so Prometheus' kubelet scrape job does not mark the node down.
            self._send_bytes(200, generate_latest(), "text/plain; version=0.0.4; charset=utf-8")
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
