"""Measure the kubelet API under unauthenticated load (issue 12, section 5): the server's RSS
around an anonymous 256 MiB POST, and the latency of an authenticated exec while 160 half-open
TCP connections or 127 slow TLS clients (one header byte every 5 s) are connected.

Loopback only; every scenario is bounded in connections and time. The server runs in a child
process (production settings: 128 workers) so its RSS is its own.

    .venv/bin/python -m e2e.netns -- .venv/bin/python tests/kubelet/measure_dos.py \
        [--scenario all|rss|halfopen|slow] [--seconds 12]
"""

from __future__ import annotations

import argparse
import multiprocessing
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# It drives the kubelet tests' stand-ins (kubelet_helpers), so it lives beside them.
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

from kubelet_helpers import FakeEci, FakeLookup, SpdyClient, StubExecServer, make_ca, make_client  # noqa: E402

from vkeci.kubelet import auth  # noqa: E402
from vkeci.kubelet.server import KubeletServer, ServerSettings  # noqa: E402
from vkeci.kubelet.tls import SelfSignedIssuer, ServingTls, load_client_ca  # noqa: E402

HOST = "127.0.0.1"


class _Kube:
    """Answers reviews: the client certificate's group system:masters may do everything."""

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path.endswith("tokenreviews"):
            return {"status": {"authenticated": False}}
        return {"status": {"allowed": "system:masters" in body["spec"].get("groups", [])}}


def _serve(directory: str, ports: Any) -> None:
    pods = FakeLookup()
    pods.add("ns", "web", "eci-web")
    exec_server = StubExecServer()
    tls = ServingTls(SelfSignedIssuer("vk-node", [HOST]), load_client_ca(str(Path(directory) / "cluster-ca.crt")))
    server = KubeletServer(
        node_name="vk-node",
        pods=pods,
        eci=FakeEci(exec_server),
        auth=auth.Auth(_Kube(), "vk-node"),
        tls=tls,
        settings=ServerSettings(host=HOST, port=0),
    )
    server.start()
    ports.put(server.port)
    threading.Event().wait()


def _rss_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def _exec_latency(port: int, cert: tuple[Path, Path], timeout: float = 20.0) -> float:
    """Seconds for one `echo hi` exec over SPDY, or the timeout if it did not finish."""
    start = time.monotonic()
    try:
        client = SpdyClient(port, cert)
        client.sock.settimeout(timeout)
        status, _, _ = client.upgrade("/exec/ns/web/main?command=echo&command=hi&output=1&error=1")
        if status != 101:
            return float("nan")
        for kind in ("error", "stdout", "stderr"):
            client.open(kind)
        client.read_until_finished("error")
        client.close()
    except OSError:
        return timeout
    return time.monotonic() - start


def _latencies(port: int, cert: tuple[Path, Path], n: int = 3) -> str:
    values = [_exec_latency(port, cert) for _ in range(n)]
    listed = ", ".join(f"{v:.3f}" for v in values)
    return f"{listed} s (first, then again; median {statistics.median(values):.3f} s)"


def _idle_keepalive(port: int, cert: tuple[Path, Path]) -> ssl.SSLSocket:
    """An authenticated keep-alive connection left idle after one request, as the API server's
    connection pool holds them."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(*cert)
    sock = context.wrap_socket(socket.create_connection((HOST, port), timeout=10))
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    sock.recv(4096)
    return sock


def scenario_rss(port: int, pid: int) -> str:
    size = 256 << 20
    before = _rss_kib(pid)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    sock = context.wrap_socket(socket.create_connection((HOST, port), timeout=30))
    sock.sendall(f"POST /pods HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode())
    chunk = b"\0" * (1 << 20)
    sent = 0
    reply = b""
    try:
        while sent < size:
            sock.sendall(chunk)
            sent += len(chunk)
    except OSError as exc:
        reply = f"(server closed after {sent >> 20} MiB: {type(exc).__name__})".encode()
    try:
        reply = sock.recv(200) or reply
    except OSError:
        pass
    sock.close()
    time.sleep(0.5)
    after = _rss_kib(pid)
    status = reply.split(b"\r\n", 1)[0].decode(errors="replace")
    return (
        f"RSS {before['VmRSS'] >> 10} -> {after['VmRSS'] >> 10} MiB (peak {after['VmHWM'] >> 10} MiB); reply: {status}"
    )


def scenario_halfopen(port: int, cert: tuple[Path, Path], count: int = 160) -> str:
    socks = [socket.create_connection((HOST, port), timeout=5) for _ in range(count)]
    time.sleep(0.5)
    try:
        return f"{count} half-open connections: exec {_latencies(port, cert)}"
    finally:
        for s in socks:
            s.close()


def scenario_slow(port: int, cert: tuple[Path, Path], seconds: float, count: int = 127) -> str:
    stop = threading.Event()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE

    def slow_client() -> None:
        try:
            with context.wrap_socket(socket.create_connection((HOST, port), timeout=10)) as sock:
                for byte in b"GET /pods HTTP/1.1\r\nHost: x\r\n":
                    sock.sendall(bytes([byte]))
                    if stop.wait(5.0):
                        return
        except OSError:
            return

    threads = [threading.Thread(target=slow_client, daemon=True) for _ in range(count)]
    for t in threads:
        t.start()
    time.sleep(min(seconds, 3.0))
    idle = _idle_keepalive(port, cert)
    try:
        return f"{count} slow TLS clients + 1 idle keep-alive: exec {_latencies(port, cert)}"
    finally:
        idle.close()
        stop.set()
        for t in threads:
            t.join(timeout=15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=["all", "rss", "halfopen", "slow"], default="all")
    parser.add_argument("--seconds", type=float, default=12.0, help="upper bound of a scenario's load phase")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        _, ca_key, ca_cert = make_ca(Path(directory), "cluster-ca")
        cert = make_client(Path(directory), ca_key, ca_cert, "kube-apiserver-kubelet-client", "system:masters")
        ports: Any = multiprocessing.get_context("fork").Queue()
        child = multiprocessing.get_context("fork").Process(target=_serve, args=(directory, ports), daemon=True)
        child.start()
        try:
            port = ports.get(timeout=30)
            assert child.pid is not None
            print(f"idle: exec {_latencies(port, cert)}")
            if args.scenario in ("all", "halfopen"):
                print(scenario_halfopen(port, cert))
            if args.scenario in ("all", "slow"):
                print(scenario_slow(port, cert, args.seconds))
            if args.scenario in ("all", "rss"):
                print(scenario_rss(port, child.pid))
        finally:
            child.terminate()
            child.join(timeout=10)


if __name__ == "__main__":
    main()
