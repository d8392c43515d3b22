"""The kubelet API against unauthenticated peers (issue 12, section 5): slow and half-open
clients, bodies before authentication, malformed requests answered as Go's net/http does.
Every client here is on 127.0.0.1 and bounded in count and time."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubelet_helpers import FakeEci, FakeLookup, make_ca, make_client

from vkeci.kubelet import auth
from vkeci.kubelet.intake import PLAIN_HTTP_REPLY, PeerBudget
from vkeci.kubelet.server import KubeletServer, ServerSettings
from vkeci.kubelet.tls import SelfSignedIssuer, ServingTls, load_client_ca

GO_400 = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request"
)
GO_431 = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Connection: close\r\n\r\n431 Request Header Fields Too Large"
)
GO_414 = (
    b"HTTP/1.1 414 Request URI Too Long\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Connection: close\r\n\r\n414 Request URI Too Long"
)
GO_501 = (
    b"HTTP/1.1 501 Not Implemented\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Connection: close\r\n\r\nUnsupported transfer encoding"
)


class FakeKube:
    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path.endswith("tokenreviews"):
            return {"status": {"authenticated": False}}
        return {"status": {"allowed": "system:masters" in body["spec"].get("groups", [])}}


@dataclass
class Env:
    server: KubeletServer
    cert: tuple[Path, Path]

    def tls(self, cert: bool = False, timeout: float = 5.0) -> ssl.SSLSocket:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if cert:
            context.load_cert_chain(*self.cert)
        return context.wrap_socket(socket.create_connection(("127.0.0.1", self.server.port), timeout=timeout))

    def plain(self, timeout: float = 5.0) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.server.port), timeout=timeout)

    def healthz(self, timeout: float = 5.0) -> bytes:
        """An authenticated request on a new connection; raises if no answer within ``timeout``."""
        with self.tls(cert=True, timeout=timeout) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            return read_response(sock)


def read_response(sock: socket.socket) -> bytes:
    """One response: head and a Content-Length body, or everything until the server closes."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
        None,
    )
    if length is None:
        while chunk := sock.recv(65536):
            body += chunk
    while length is not None and len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def read_all(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, ssl.SSLError):
        pass
    return data


@pytest.fixture
def make_env(tmp_path: Path) -> Iterator[Callable[..., Env]]:
    servers: list[KubeletServer] = []
    ca_path, ca_key, ca_cert = make_ca(tmp_path, "cluster-ca")
    cert = make_client(tmp_path, ca_key, ca_cert, "kube-apiserver-kubelet-client", "system:masters")

    def make(kube: Any = None, **overrides: Any) -> Env:
        pods = FakeLookup()
        pods.add("ns", "web", "eci-web")
        settings = dict(host="127.0.0.1", port=0, workers=8)
        settings.update(overrides)
        server = KubeletServer(
            node_name="vk-node",
            pods=pods,
            eci=FakeEci(),
            auth=auth.Auth(kube or FakeKube(), "vk-node"),
            tls=ServingTls(SelfSignedIssuer("vk-node", ["127.0.0.1"]), load_client_ca(str(ca_path))),
            settings=ServerSettings(**settings),  # type: ignore[arg-type]
        )
        server.start()
        servers.append(server)
        return Env(server, cert)

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def env(make_env: Callable[..., Env]) -> Env:
    return make_env()


# --- slow and half-open clients ----------------------------------------------------------


def test_half_open_connections_do_not_delay_an_authenticated_request(env: Env) -> None:
    # 20x the workers, none of which sends a byte: before, each held a worker for the 10 s
    # handshake timeout, so the request below waited for them.
    idle = [env.plain() for _ in range(160)]
    try:
        time.sleep(0.3)
        assert env.healthz(timeout=5).endswith(b"\r\n\r\nok")
    finally:
        for sock in idle:
            sock.close()


def test_slow_tls_clients_do_not_hold_the_workers(env: Env) -> None:
    # As many slow clients as workers, each past the handshake and sending its request head one
    # byte a second (for at most 8 s), plus an idle authenticated keep-alive.
    stop = threading.Event()
    ready = threading.Barrier(9, timeout=10)

    def slow() -> None:
        with env.tls() as sock:
            ready.wait()
            for byte in b"GET /pods HTTP/1.1\r\n":
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    return
                if stop.wait(1.0):
                    return

    threads = [threading.Thread(target=slow, daemon=True) for _ in range(8)]
    for thread in threads:
        thread.start()
    ready.wait()
    keepalive = env.tls(cert=True)
    try:
        keepalive.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(keepalive).endswith(b"ok")
        time.sleep(0.5)
        assert env.healthz(timeout=5).endswith(b"\r\n\r\nok")
        # and the idle keep-alive still works for its next request
        keepalive.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(keepalive).endswith(b"ok")
    finally:
        keepalive.close()
        stop.set()
        for thread in threads:
            thread.join(timeout=10)


def test_a_request_head_has_a_deadline(make_env: Callable[..., Env]) -> None:
    env = make_env(header_timeout=1.0)
    with env.tls(timeout=6) as sock:
        sock.sendall(b"GET /pods HTTP/1.1\r\n")  # and never the rest
        start = time.monotonic()
        assert read_all(sock) == b""  # closed without a reply, as Go does on a read timeout
        assert time.monotonic() - start < 4


def test_the_handshake_has_a_deadline(make_env: Callable[..., Env]) -> None:
    env = make_env(handshake_timeout=1.0)
    with env.plain(timeout=6) as sock:
        start = time.monotonic()
        assert read_all(sock) == b""
        assert time.monotonic() - start < 4


def test_waiting_connections_from_one_peer_are_capped(make_env: Callable[..., Env]) -> None:
    env = make_env(max_pending_per_peer=4)
    idle = [env.plain() for _ in range(12)]
    try:
        deadline = time.monotonic() + 5
        while env.server.intake.waiting > 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert env.server.intake.waiting <= 4
        # a newcomer from the same address displaces the oldest waiting one, so it is served
        assert env.healthz().endswith(b"ok")
    finally:
        for sock in idle:
            sock.close()


class SlowTokenReviews(FakeKube):
    """TokenReviews that hang (at most 8 s) until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.reviews = 0

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path.endswith("tokenreviews"):
            self.reviews += 1
            self.release.wait(8)
        return super().post(path, body)


def test_bearer_token_floods_do_not_take_the_request_workers(make_env: Callable[..., Env]) -> None:
    kube = SlowTokenReviews()
    env = make_env(kube=kube, workers=4, preauth_workers=2)
    flood = []
    try:
        for i in range(10):  # each a different token: a TokenReview each, all hanging
            sock = env.tls()
            sock.sendall(f"GET /pods HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t{i}\r\n\r\n".encode())
            flood.append(sock)
        deadline = time.monotonic() + 5
        while kube.reviews < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert kube.reviews == 2  # only the pre-auth pool's two workers are stuck in reviews
        assert env.healthz(timeout=5).endswith(b"ok")  # the API server (client certificate) is served
    finally:
        kube.release.set()
        for sock in flood:
            sock.close()


def test_peer_budget_displaces_the_flooding_peer() -> None:
    budget = PeerBudget(total=4, per_peer=3)
    assert budget.admit("a1", "attacker") == []
    assert budget.admit("a2", "attacker") == []
    assert budget.admit("a3", "attacker") == []
    assert budget.admit("a4", "attacker") == ["a1"]  # its own oldest, at the per-peer limit
    assert budget.admit("s1", "apiserver") == []
    assert budget.admit("o1", "other") == ["a2"]  # total reached: the busiest peer pays
    assert len(budget) == 4
    budget.release("s1")
    budget.release("s1")  # twice is harmless
    assert len(budget) == 3


# --- bodies are not read before authentication -------------------------------------------


def test_an_anonymous_body_is_not_read(env: Env) -> None:
    with env.tls(timeout=5) as sock:
        sock.sendall(b"POST /pods HTTP/1.1\r\nHost: x\r\nContent-Length: 268435456\r\n\r\n" + b"\0" * 65536)
        # Before, the server read all 256 MiB first; now it answers at once and closes.
        reply = read_response(sock)
    assert reply.startswith(b"HTTP/1.1 401 Unauthorized\r\n")
    assert b"\r\nConnection: close\r\n" in reply


def test_expect_continue_is_not_granted_before_authentication(env: Env) -> None:
    with env.tls() as sock:
        sock.sendall(b"POST /pods HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 401 ")


def test_a_small_body_is_dropped_and_the_connection_reused(env: Env) -> None:
    with env.tls(cert=True) as sock:
        sock.sendall(b"POST /stats/summary HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + b"{" * 5000)
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock).endswith(b"ok")


def test_a_large_body_is_refused_after_authentication(env: Env) -> None:
    with env.tls(cert=True) as sock:
        sock.sendall(b"POST /stats/summary HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n")
        reply = read_response(sock)
    assert reply.startswith(b"HTTP/1.1 413 ")
    assert b"take no request body" in reply


def test_pipelined_requests_are_served_in_order(env: Env) -> None:
    with env.tls(cert=True) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock).endswith(b"ok")
        assert read_response(sock).startswith(b"HTTP/1.1 404 ")


# --- malformed requests: Go's replies, no tracebacks ---------------------------------------


@pytest.fixture
def no_errors(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG, logger="vkeci.kubelet")
    yield caplog
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert errors == [], [r.getMessage() for r in errors]


@pytest.mark.parametrize("value", ["abc", "1e9", "1" * 23, "-1", "", "9223372036854775808", "+5", "0x10"])
def test_a_malformed_content_length_gets_400(env: Env, no_errors: Any, value: str) -> None:
    with env.tls() as sock:
        sock.sendall(f"POST /pods HTTP/1.1\r\nHost: x\r\nContent-Length: {value}\r\n\r\n".encode())
        assert read_all(sock) == GO_400


def test_conflicting_content_lengths_get_400(env: Env, no_errors: Any) -> None:
    with env.tls() as sock:
        sock.sendall(b"POST /pods HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
        assert read_all(sock) == GO_400


def test_an_unknown_transfer_encoding_gets_501(env: Env, no_errors: Any) -> None:
    with env.tls() as sock:
        sock.sendall(b"POST /pods HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n")
        assert read_all(sock) == GO_501


def test_plain_http_on_the_tls_port_gets_go_s_400(env: Env, no_errors: Any) -> None:
    with env.plain() as sock:
        sock.sendall(b"GET /pods HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_all(sock) == PLAIN_HTTP_REPLY
    assert PLAIN_HTTP_REPLY == b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"


def test_not_tls_and_not_http_is_closed(env: Env, no_errors: Any) -> None:
    with env.plain() as sock:
        sock.sendall(b"\x00\x01\x02\x03\x04\x05")
        assert read_all(sock) == b""


def test_a_100_kb_header_line_gets_431(env: Env, no_errors: Any) -> None:
    with env.tls() as sock:
        sock.sendall(b"GET /pods HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
        assert read_all(sock) == GO_431


def test_a_100_kb_request_line_gets_414(env: Env, no_errors: Any) -> None:
    with env.tls() as sock:
        sock.sendall(b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_all(sock) == GO_414


def test_a_request_head_over_1_mib_gets_431(env: Env, no_errors: Any) -> None:
    line = b"X-Part: " + b"a" * 60_000 + b"\r\n"
    with env.tls() as sock:
        sock.sendall(b"GET /pods HTTP/1.1\r\nHost: x\r\n" + line * 18 + b"\r\n")  # 1.08 MB, never a whole head
        assert read_all(sock) == GO_431


def test_peers_hanging_up_early_are_debug_lines(env: Env, no_errors: pytest.LogCaptureFixture) -> None:
    hello = _client_hello()
    for cut in (0, 5, len(hello) // 2):
        with env.plain() as sock:
            sock.sendall(hello[:cut])
    for _ in range(5):  # and with a reset instead of a close
        sock = env.plain()
        sock.sendall(hello[:20])
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
    with env.tls() as tls:  # past the handshake, gone mid-head
        tls.sendall(b"GET /pods HT")
    assert env.healthz().endswith(b"ok")
    deadline = time.monotonic() + 3
    while "went away" not in no_errors.text and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "went away" in no_errors.text


def _client_hello() -> bytes:
    """The first flight of a real TLS client, captured from a memory BIO."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()
