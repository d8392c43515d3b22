"""The daemon's health: proof of life of its loops, and the ``/healthz`` and ``/readyz`` endpoint the
probes read (like the kubelet's 10248 ``healthz``: plain HTTP, unauthenticated, saying only what is stuck).

Every loop the probes care about (the pod watch, the workers, the status poller, the heartbeat and the
ECI ping) checks its ``stop`` event at each pass: that check is the proof of life. ``Liveness.stop_for``
hands a loop an event that notes each check (and, for ``wait``, how long the loop said it would sleep)
and otherwise is the daemon's ``stop``. A loop is overdue when it has not checked within its own period
plus ``HealthSettings.stale_after`` (the longest one pass may take); a loop whose thread died is overdue
at once. ``/healthz`` is 200 while none is overdue, 503 naming the overdue ones otherwise; ``/readyz`` is
200 once the node is registered and the pod cache has synced. ``/metrics`` serves the daemon's ``vkeci_*``
series, as the kubelet port's authenticated ``/metrics`` does; unauthenticated like the probes (the series
hold no secret and no pod name).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from vkeci.log import fields, get_logger
from vkeci.metrics import CONTENT_TYPE

log = get_logger("health")


class _Stamping(threading.Event):
    """The daemon's ``stop``, seen by one loop: every ``is_set``/``wait`` stamps that loop's liveness.

    A subclass, so the loops keep their ``threading.Event`` signature; all state is the wrapped event's."""

    def __init__(self, stop: threading.Event, stamp: Callable[[float], None]) -> None:
        super().__init__()
        self._stop = stop
        self._stamp = stamp

    def is_set(self) -> bool:
        self._stamp(0.0)
        return self._stop.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        self._stamp(math.inf if timeout is None else timeout)
        result = self._stop.wait(timeout)
        self._stamp(0.0)
        return result

    def set(self) -> None:
        self._stop.set()

    def clear(self) -> None:
        self._stop.clear()


class Liveness:
    """When each loop is next due to show life (monotonic seconds), and its thread."""

    def __init__(self, stale_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stale_after = stale_after
        self.clock = clock
        self._lock = threading.Lock()
        self._due: dict[str, float] = {}
        self._threads: dict[str, threading.Thread] = {}

    def stop_for(self, name: str, stop: threading.Event, period: float) -> threading.Event:
        """The ``stop`` to hand loop ``name``, which checks it at least every ``period`` seconds when well."""

        def stamp(sleeping: float) -> None:
            due = self.clock() + max(period, sleeping) + self.stale_after
            with self._lock:
                self._due[name] = due

        stamp(0.0)
        return _Stamping(stop, stamp)

    def track(self, thread: threading.Thread) -> threading.Thread:
        """Watch ``thread`` (named as its loop) too: a loop whose thread ended is overdue at once."""
        with self._lock:
            self._threads[thread.name] = thread
        return thread

    def overdue(self) -> list[str]:
        """The loops that showed no life in time, sorted."""
        now = self.clock()
        with self._lock:
            late = {name for name, due in self._due.items() if now > due}
            late |= {
                name for name, thread in self._threads.items() if thread.ident is not None and not thread.is_alive()
            }
        return sorted(late)


class HealthServer:
    """``/healthz`` (liveness) and ``/readyz`` (readiness) over plain HTTP, in one daemon thread."""

    def __init__(
        self,
        host: str,
        port: int,
        liveness: Liveness,
        ready: Callable[[], list[str]],
        metrics: Callable[[], bytes] | None = None,
    ) -> None:
        """``ready`` returns what the daemon still waits for (empty when ready); ``metrics`` the Prometheus
        exposition served on ``/metrics`` (404 without it)."""
        self.liveness = liveness
        self.ready = ready
        self.metrics = metrics
        self.httpd = ThreadingHTTPServer((host, port), self._handler())
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    late = server.liveness.overdue()
                    self._answer(
                        503 if late else 200, f"loops not making progress: {', '.join(late)}" if late else "ok"
                    )
                elif path == "/readyz":
                    waiting = server.ready()
                    self._answer(503 if waiting else 200, f"waiting for: {', '.join(waiting)}" if waiting else "ok")
                elif path == "/metrics" and server.metrics is not None:
                    self._send(200, server.metrics(), CONTENT_TYPE)
                else:
                    self._answer(404, "not found: /healthz, /readyz or /metrics")

            def _answer(self, code: int, text: str) -> None:
                self._send(code, (text + "\n").encode(), "text/plain; charset=utf-8")

            def _send(self, code: int, body: bytes, content_type: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # a probe every 10 s is not news

        return Handler

    def start(self) -> None:
        """Serve in the background."""
        threading.Thread(target=self.httpd.serve_forever, name="health", daemon=True).start()
        log.info("health endpoint serving", extra=fields(address=self.httpd.server_address[0], port=self.port))

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
