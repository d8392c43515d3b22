"""The fake ECI HTTP server: OpenAPI at `/`, admin API at `/_fake/`, exec WebSockets at `/_exec/<token>`.

    fake = FakeECI.start(access_key_id="AK", access_key_secret="SK")   # port 0 = any free port
    client = Client(Config(access_key_id="AK", access_key_secret="SK", endpoint=fake.endpoint, protocol="http"))
    ...
    fake.stop()   # also kills every sandbox process it started

A threaded HTTP/1.1 server with keep-alive; the request path does no sleeping and no disk I/O unless a
fault asks for latency (the state file is written by the ticker).
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from fakes.eci import admin
from fakes.eci.actions import Context, dispatch, json_dumps
from fakes.eci.clock import Clock
from fakes.eci.cloud import Cloud
from fakes.eci.errors import ApiError
from fakes.eci.faults import Faults
from fakes.eci.params import Params, parse_query, unflatten
from fakes.eci.runner import Runner
from fakes.eci.settings import Settings, from_mapping
from fakes.eci.signature import Credential, Verifier

API_VERSION = "2018-08-08"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    fake: FakeECI

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (a daemon killed with -9 resets its connections) is not an error of
        the fake: no traceback for it, as ECI would log nothing. Anything else keeps socketserver's."""
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)

    def close_all(self) -> None:
        """Cut keep-alive connections, so a stopped fake answers nothing more."""
        with self.sockets_lock:
            sockets = list(self.open_sockets)
            self.open_sockets.clear()
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


# Inferred: Alibaba does not document its gateway's URL limit; 1 MiB admits every request ECI's own
# documented limits allow (the largest part, ConfigFile volumes, is at most 60 KB per volume).
MAX_REQUEST_LINE = 1 << 20


class _Headers(dict[str, str]):
    """Request headers keyed by lower-case name; `get` is case-insensitive like http.client's message."""

    def get(self, name: str, default: Any = None) -> Any:
        return dict.get(self, name.lower(), default)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes; no 40 ms delayed-ACK stalls
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet: benchmarks make thousands of calls
        pass

    def handle_one_request(self) -> None:
        """The stdlib's, with a longer request line: the SDK sends every parameter in the query, and a
        pod's ConfigFile volumes alone may hold 60 KB (80 KB of base64), past the stdlib's 64 KiB."""
        try:
            self.raw_requestline = self.rfile.readline(MAX_REQUEST_LINE + 1)
            if len(self.raw_requestline) > MAX_REQUEST_LINE:
                self.requestline, self.request_version, self.command = "", "", ""
                self.close_connection = True
                self.send_error(414, f"Request line longer than {MAX_REQUEST_LINE} bytes")
                return
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            method = getattr(self, "do_" + self.command, None)
            if method is None:
                self.send_error(501, f"Unsupported method ({self.command!r})")
                return
            method()
            self.wfile.flush()
        except TimeoutError:
            self.close_connection = True

    def parse_request(self) -> bool:
        """A lean replacement of the stdlib's (whose email-based header parsing dominated the request cost)."""
        raw_line: bytes = getattr(self, "raw_requestline", b"")
        line = str(raw_line, "iso-8859-1").rstrip("\r\n")
        self.requestline = line
        parts = line.split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            self.request_version = "HTTP/1.0"
            self.close_connection = True
            self.send_error(400, "Bad request line")
            return False
        self.command, self.path, self.request_version = parts
        headers = _Headers()
        for _ in range(100):
            raw = self.rfile.readline(65537)
            if raw in (b"\r\n", b"\n", b""):
                break
            name, sep, value = str(raw, "iso-8859-1").partition(":")
            if not sep:
                self.close_connection = True
                self.send_error(400, "Bad header line")
                return False
            headers[name.strip().lower()] = value.strip()
        else:
            self.close_connection = True
            self.send_error(431, "Too many headers")
            return False
        self.headers = headers  # type: ignore[assignment]
        conn = headers.get("connection", "").lower()
        self.close_connection = conn == "close" or (self.request_version == "HTTP/1.0" and conn != "keep-alive")
        return True

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _reply(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        # One write per response (status line, headers and body together): the hot path of the benchmark.
        lines = [
            f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}",
            "Content-Type: application/json;charset=utf-8",
            f"Content-Length: {len(body)}",
        ]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if self.close_connection:
            lines.append("Connection: close")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    def _route(self) -> None:
        fake = self.server.fake
        split = urlsplit(self.path)
        if split.path.startswith("/_fake/") or split.path == "/_fake":
            status, obj = admin.handle(fake, self.command, split.path, self._body())
            self._reply(status, json.dumps(obj, default=str).encode())
            return
        if split.path.startswith("/_exec/"):
            fake.serve_exec(self, split.path[len("/_exec/") :])
            return
        if split.path != "/" or self.command not in ("POST", "GET"):
            self._body()
            err = ApiError(
                "InvalidAction.NotFound", "Specified api is not found, please check your url and method.", 404
            )
            self._reply(err.status, json_dumps(err.body(str(uuid.uuid4()).upper())))
            return
        fake.serve_api(self, split.path, split.query, self._body())

    do_GET = do_POST = do_PUT = do_DELETE = _route


class FakeECI:
    """A running fake ECI. Use `FakeECI.start(...)`, then `stop()` (or `with FakeECI.start(...) as fake:`)."""

    def __init__(
        self,
        host: str,
        port: int,
        credentials: list[Credential],
        settings: Settings,
        state_file: str | None = None,
    ) -> None:
        self.settings = settings
        self.clock = Clock()
        self.cloud = Cloud(settings, self.clock, state_file)
        self.faults = Faults()
        self.verifier = Verifier(credentials, check_time=settings.check_timestamp, check_nonce=settings.check_nonce)
        self.httpd = _Server((host, port), _Handler)
        self.httpd.fake = self
        self.host, self.port = str(self.httpd.server_address[0]), int(self.httpd.server_address[1])
        self.runner = Runner(self.cloud, settings)
        self.ctx = Context(self.cloud, self.runner, base_ws_url=f"ws://{self.endpoint}")
        self.cloud.on_created = self.runner.group_created
        self.cloud.on_removed = self.runner.stop_group
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.log_requests = False  # one stderr line per API call (the CLI's --log-requests)
        if settings.faults:
            self.set_faults(settings.faults)
        self.runner.recover()

    # ---- construction ------------------------------------------------------------------------------
    @classmethod
    def start(
        cls,
        host: str = "127.0.0.1",
        port: int = 0,
        access_key_id: str = "fake-ak",
        access_key_secret: str = "fake-secret",
        config: Mapping[str, Any] | Settings | None = None,
        state_file: str | None = None,
        security_token: str | None = None,
    ) -> FakeECI:
        """Start serving in background threads and return at once (the socket is already bound)."""
        settings = config if isinstance(config, Settings) else from_mapping(config)
        creds = [Credential(access_key_id, access_key_secret, security_token)]
        creds += [
            Credential(c["access_key_id"], c.get("access_key_secret", ""), c.get("security_token"))
            for c in settings.extra_credentials
        ]
        fake = cls(host, port, creds, settings, state_file)
        fake._spawn(lambda: fake.httpd.serve_forever(poll_interval=0.05), "fake-eci-http")
        fake._spawn(fake._ticker, "fake-eci-ticker")
        return fake

    def _spawn(self, target: Any, name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    @property
    def endpoint(self) -> str:
        """`host:port`, what the SDK's Config(endpoint=...) takes."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """`http://host:port`."""
        return f"http://{self.endpoint}"

    @property
    def admin_url(self) -> str:
        """Base URL of the admin API."""
        return f"{self.url}/_fake"

    def __enter__(self) -> FakeECI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop serving, kill every sandbox process, write the state file. Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.httpd.close_all()
        for t in self._threads:
            t.join(timeout=5)
        with self.cloud.lock:
            if self.cloud.state_file:
                self.cloud.save()
        self.runner.shutdown()

    # ---- a hard outage (in-process only: the admin API shares the socket) ---------------------------
    def go_offline(self) -> None:
        """Close the listening socket and cut every connection: calls get "connection refused", as from an
        endpoint nothing listens on. The groups keep their state (and their processes run on)."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.httpd.close_all()

    def come_online(self) -> None:
        """Listen again on the same address after ``go_offline``."""
        self.httpd = _Server((self.host, self.port), _Handler)
        self.httpd.fake = self
        self._spawn(lambda: self.httpd.serve_forever(poll_interval=0.05), "fake-eci-http")

    # ---- background work ---------------------------------------------------------------------------
    def tick(self) -> None:
        """One pass of the ticker: start/restart real processes, retention, persistence."""
        self.runner.tick()
        now = time.monotonic()
        if now - getattr(self, "_last_purge", 0.0) >= 1.0:
            self._last_purge = now
            self.cloud.purge_terminal()
            if now - getattr(self, "_last_token_gc", 0.0) >= 5.0:
                self._last_token_gc = now
                vnow = self.clock.now()
                for tok, rec in list(self.ctx.exec_tokens.items()):
                    if rec["expires"] < vnow:
                        self.ctx.exec_tokens.pop(tok, None)
        # At most once a second: a benchmark with thousands of groups changes state on every tick.
        if self.cloud.dirty and self.cloud.state_file and now - getattr(self, "_last_save", 0.0) >= 1.0:
            self._last_save = now
            with self.cloud.lock:
                self.cloud.save()

    def _ticker(self) -> None:
        while not self._stop.wait(self.settings.tick_s):
            try:
                self.tick()
            except Exception as e:  # the ticker must survive anything one group does
                print(f"fake-eci: ticker error: {e!r}", file=sys.stderr, flush=True)

    def set_faults(self, spec: Mapping[str, Any]) -> None:
        """Apply a (partial) fault set; stock counts go to the cloud's live counters."""
        self.faults.update(spec)
        with self.cloud.lock:
            if "stock" in spec:
                self.cloud.stock = dict(self.faults.stock)
            self.cloud.stock_mode = self.faults.stock_mode
            self.cloud.image_pull_errors = list(self.faults.image_pull_errors)

    # ---- the OpenAPI -------------------------------------------------------------------------------
    def serve_api(self, h: _Handler, path: str, query: str, body: bytes) -> None:
        """Verify, apply faults, dispatch, count, reply (or drop the reply)."""
        request_id = str(uuid.uuid4()).upper()
        headers: Mapping[str, str] = h.headers  # type: ignore[assignment]  # _Headers: lower-case keys
        action = headers.get("x-acs-action", "")
        extra: Mapping[str, str] = {}
        try:
            pairs = parse_query(query)
            if body and headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                pairs += parse_query(body.decode("utf-8", errors="strict"))
            action = action or dict(pairs).get("Action", "")
            version = headers.get("x-acs-version") or dict(pairs).get("Version", "")
            self.verifier.verify(h.command, path, pairs, headers, body)
            if not action:
                raise ApiError("MissingParameter", 'The input parameter "Action" that is mandatory is not supplied.')
            if version != API_VERSION:
                raise ApiError(
                    "InvalidVersion", f'Specified parameter Version "{version}" is not valid; use {API_VERSION}.'
                )
            delay = self.faults.delay_for(action)
            if delay:
                time.sleep(delay)
            self.faults.check(action)
            result = dispatch(self.ctx, action, Params(unflatten(pairs)))
            if self.faults.should_drop(action):
                # The action took effect but the client never hears so: it must retry idempotently.
                self.faults.count(action, "Dropped", headers.get("user-agent", ""))
                h.close_connection = True
                return
            result["RequestId"] = request_id
            status, outcome, reply = 200, "OK", json_dumps(result)
        except ApiError as e:
            status, outcome, reply, extra = e.status, e.code, json_dumps(e.body(request_id)), e.headers
        except Exception as e:  # a bug in the fake must still produce a well-formed 500
            err = ApiError("InternalError", f"The fake ECI failed: {type(e).__name__}: {e}", 500)
            status, outcome, reply = 500, "InternalError", json_dumps(err.body(request_id))
        # Count before replying, so a client that reads /_fake/calls right after sees its own call.
        self.faults.count(action or "?", outcome, headers.get("user-agent", ""))
        if self.log_requests:
            print(f"fake-eci: {action or '?'} -> {status} {outcome}", file=sys.stderr, flush=True)
        h._reply(status, reply, extra)

    def serve_exec(self, h: _Handler, token: str) -> None:
        """Upgrade to a WebSocket and run the command of a one-time exec token."""
        from fakes.eci import exec_ws

        rec = self.ctx.exec_tokens.pop(token, None)
        if rec is None or rec["expires"] < self.clock.now():
            h._reply(404, b'{"error":"unknown or expired exec token"}')
            return
        exec_ws.serve(h, self, rec)
