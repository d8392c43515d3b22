"""The kubelet HTTPS server over real TLS: auth, routes, logs and exec over SPDY."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubelet_helpers import FakeEci, FakeLookup, SpdyClient, StubExecServer, make_ca, make_client

from vkeci.kubelet import auth
from vkeci.kubelet.server import KubeletServer, ServerSettings
from vkeci.kubelet.tls import SelfSignedIssuer, ServingTls, load_client_ca


class FakeKube:
    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path.endswith("tokenreviews"):
            ok = body["spec"]["token"] == "reader-token"
            return {"status": {"authenticated": ok, "user": {"username": "reader", "groups": []}}}
        spec = body["spec"]
        allowed = "system:masters" in spec.get("groups", []) or (
            spec["user"] == "reader" and spec["resourceAttributes"]["subresource"] in ("stats", "metrics")
        )
        return {"status": {"allowed": allowed}}


@dataclass
class Env:
    server: KubeletServer
    pods: FakeLookup
    eci: FakeEci
    client_cert: tuple[Path, Path]
    rogue_cert: tuple[Path, Path]
    exec_server: StubExecServer

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.server.port}{path}"

    def get(self, path: str, cert: tuple[Path, Path] | None = None, token: str | None = None) -> tuple[int, bytes]:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if cert:
            context.load_cert_chain(*cert)
        request = urllib.request.Request(self.url(path))
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, context=context, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    ca_path, ca_key, ca_cert = make_ca(tmp_path, "cluster-ca")
    client = make_client(tmp_path, ca_key, ca_cert, "kube-apiserver-kubelet-client", "system:masters")
    _, rogue_key, rogue_ca = make_ca(tmp_path, "rogue-ca")
    rogue = make_client(tmp_path, rogue_key, rogue_ca, "mallory", "system:masters")
    pods = FakeLookup()
    pods.add("ns", "web", "eci-web")
    pods.add("ns", "new", None)
    exec_server = StubExecServer()
    eci = FakeEci(exec_server)
    eci.logs[("eci-web", "main")] = "".join(f"2024-01-01T00:00:{i:02d}Z line {i}\n" for i in range(10))
    tls = ServingTls(SelfSignedIssuer("vk-node", ["127.0.0.1"]), load_client_ca(str(ca_path)))
    server = KubeletServer(
        node_name="vk-node",
        pods=pods,
        eci=eci,
        auth=auth.Auth(FakeKube(), "vk-node"),
        tls=tls,
        settings=ServerSettings(host="127.0.0.1", port=0, workers=8, stream_creation_timeout=5),
    )
    server.start()
    try:
        yield Env(server, pods, eci, client, rogue, exec_server)
    finally:
        server.stop()
        exec_server.close()


def test_requests_without_credentials_are_refused(env: Env) -> None:
    assert env.get("/pods") == (401, b"Unauthorized\n")
    assert env.get("/pods", token="wrong")[0] == 401


def test_certificate_from_another_ca_fails_the_handshake(env: Env) -> None:
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionResetError)):
        env.get("/pods", cert=env.rogue_cert)


def test_token_user_is_authorized_per_subresource(env: Env) -> None:
    status, body = env.get("/stats/summary", token="reader-token")
    assert status == 200
    status, body = env.get("/pods", token="reader-token")
    assert status == 403
    assert b"Forbidden (user=reader, verb=get, resource=nodes, subresource(s)=[pods proxy])" in body


def test_basic_routes(env: Env) -> None:
    cert = env.client_cert
    assert env.get("/healthz", cert) == (200, b"ok")
    status, body = env.get("/pods", cert)
    assert status == 200
    assert {p["metadata"]["name"] for p in json.loads(body)["items"]} == {"web", "new"}
    status, body = env.get("/runningpods/", cert)
    assert [p["metadata"]["name"] for p in json.loads(body)["items"]] == ["web"]
    assert env.get("/nope", cert)[0] == 404
    status, body = env.get("/metrics", cert)
    assert status == 200 and b"python_info" in body
    status, body = env.get("/portForward/ns/web", cert)
    assert status == 501 and b"port-forward is not supported on ECI" in body


def test_logs(env: Env) -> None:
    cert = env.client_cert
    status, body = env.get("/containerLogs/ns/web/main?tailLines=2", cert)
    assert (status, body) == (200, b"line 8\nline 9\n")
    status, body = env.get("/containerLogs/ns/web/main?tailLines=1&timestamps=true", cert)
    assert body == b"2024-01-01T00:00:09Z line 9\n"
    assert env.get("/containerLogs/ns/gone/main", cert) == (404, b'pod "gone" does not exist\n')
    assert env.get("/containerLogs/ns/web/other", cert) == (404, b'container "other" not found in pod "web"\n')
    status, body = env.get("/containerLogs/ns/web/main?tailLines=abc", cert)
    assert status == 400 and b"tailLines='abc' is not a whole number" in body
    status, body = env.get("/containerLogs/ns/new/main", cert)
    assert status == 400 and b"ContainerCreating" in body


def test_stats_and_metrics(env: Env) -> None:
    status, body = env.get("/stats/summary", env.client_cert)
    summary = json.loads(body)
    assert summary["node"]["nodeName"] == "vk-node"
    assert summary["pods"][0]["podRef"]["name"] == "web"
    assert summary["pods"][0]["memory"]["workingSetBytes"] == 4096
    status, body = env.get("/metrics/resource", env.client_cert)
    assert status == 200
    assert b'container_cpu_usage_seconds_total{container="main",namespace="ns",pod="web"} 2.0' in body
    assert b"node_memory_working_set_bytes 4096.0" in body


def exec_path(command: list[str], stdin: bool = False, tty: bool = False) -> str:
    args = "&".join(f"command={c}" for c in command)
    flags = "&output=1" + ("&input=1" if stdin else "") + ("&tty=1" if tty else "&error=1")
    return f"/exec/ns/web/main?{args}{flags}"


def test_exec_over_spdy_v4(env: Env) -> None:
    client = SpdyClient(env.server.port, env.client_cert)
    status, headers, _ = client.upgrade(exec_path(["echo", "hello", "world"]))
    assert status == 101 and headers["x-stream-protocol-version"] == "v4.channel.k8s.io"
    client.ping(1)  # first, so the answer comes before the (fast) command's end
    for kind in ("error", "stdout", "stderr"):
        client.open(kind)
    pongs: list[int] = []
    client.read_until_finished("error", pongs)
    assert client.out("stdout") == b"hello world\n"
    assert client.out("stderr") == b"to stderr\n"
    assert json.loads(client.out("error")) == {"metadata": {}, "status": "Success"}
    assert pongs == [1]
    client.close()
    exec_call = next(c for c in env.eci.calls if c[0] == "ExecContainerCommand")[1]
    assert exec_call["Command"] == ["echo", "hello", "world"]  # argv preserved


def test_exec_exit_code_and_stdin(env: Env) -> None:
    client = SpdyClient(env.server.port, env.client_cert)
    assert client.upgrade(exec_path(["exit", "3"]))[0] == 101
    for kind in ("error", "stdout", "stderr"):
        client.open(kind)
    client.read_until_finished("error")
    status = json.loads(client.out("error"))
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    client.close()

    client = SpdyClient(env.server.port, env.client_cert)
    assert client.upgrade(exec_path(["cat"], stdin=True))[0] == 101
    for kind in ("error", "stdin", "stdout", "stderr"):
        client.open(kind)
    client.send("stdin", b"piped input\n")
    client.send("stdin", b"", fin=True)
    client.read_until_finished("error")
    assert client.out("stdout") == b"piped input\n"
    client.close()


def test_exec_tty_resize(env: Env) -> None:
    client = SpdyClient(env.server.port, env.client_cert)
    assert client.upgrade(exec_path(["size"], stdin=True, tty=True))[0] == 101
    for kind in ("error", "stdin", "stdout", "resize"):
        client.open(kind)
    client.send("resize", b'{"Width":120,"Height":40}\n')
    client.read_until_finished("error")
    assert json.loads(client.out("stdout")) == {"Width": 120, "Height": 40}
    client.close()


def test_exec_protocol_errors(env: Env) -> None:
    client = SpdyClient(env.server.port, env.client_cert)
    status, _headers, body = client.upgrade(exec_path(["echo"]), protocols="v9.channel.k8s.io")
    assert status == 403 and b"unable to negotiate protocol" in body
    client.close()
    client = SpdyClient(env.server.port, env.client_cert)
    status, _, body = client.upgrade("/exec/ns/web/main?output=1")
    assert status == 400 and b"missing command" in body
    client.close()
    client = SpdyClient(env.server.port, env.client_cert)
    status, _, body = client.upgrade("/exec/ns/web/main?command=x&output=1", protocols="")
    assert status == 403 and json.loads(body)["message"].startswith("unable to upgrade")
    client.close()


def test_attach_with_stdin_explains_the_alternative(env: Env) -> None:
    client = SpdyClient(env.server.port, env.client_cert)
    assert client.upgrade("/attach/ns/web/main?input=1&output=1&tty=1")[0] == 101
    for kind in ("error", "stdin", "stdout", "resize"):
        client.open(kind)
    client.read_until_finished("error")
    assert "attach is not supported on ECI" in json.loads(client.out("error"))["message"]
    client.close()


def test_attach_follows_new_output(env: Env) -> None:
    import datetime as dt

    now = dt.datetime.now(dt.timezone.utc)
    later = (now + dt.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    env.eci.logs[("eci-web", "main")] = f"2024-01-01T00:00:00Z old line\n{later} new line\n"
    pod = env.pods.pods[("ns", "web")][0]
    client = SpdyClient(env.server.port, env.client_cert)
    assert client.upgrade("/attach/ns/web/main?output=1&error=1")[0] == 101
    for kind in ("error", "stdout", "stderr"):
        client.open(kind)
    pod["status"]["containerStatuses"][0]["state"] = {"terminated": {"exitCode": 0}}
    client.read_until_finished("error")
    assert client.out("stdout") == b"new line\n"
    assert json.loads(client.out("error"))["status"] == "Success"
    client.close()


def ws_exec(env: Env, path: str, protocol: str, send: list[bytes] | None = None) -> dict[int, bytes]:
    """Run an exec over WebSocket as the Python/JS Kubernetes clients do; collect output per channel."""
    import base64 as b64

    import websocket

    conn = websocket.create_connection(
        f"wss://127.0.0.1:{env.server.port}{path}",
        sslopt={"cert_reqs": ssl.CERT_NONE, "certfile": str(env.client_cert[0]), "keyfile": str(env.client_cert[1])},
        subprotocols=[protocol],
        timeout=10,
    )
    assert conn.subprotocol == protocol
    for data in send or []:
        conn.send_binary(data)
    out: dict[int, bytes] = {}
    while True:
        opcode, data = conn.recv_data()
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            break
        if "base64" in protocol:
            channel, payload = data[0] - ord("0"), b64.b64decode(data[1:])
        else:
            channel, payload = data[0], data[1:]
        out[channel] = out.get(channel, b"") + payload
    conn.close()
    return out


def test_exec_over_websocket_v4_binary_and_base64(env: Env) -> None:
    out = ws_exec(env, exec_path(["echo", "over", "ws"]), "v4.channel.k8s.io")
    assert out[1] == b"over ws\n"
    assert out[2] == b"to stderr\n"
    assert json.loads(out[3]) == {"metadata": {}, "status": "Success"}
    out = ws_exec(env, exec_path(["exit", "5"]), "v4.base64.channel.k8s.io")
    assert json.loads(out[3])["details"]["causes"] == [{"reason": "ExitCode", "message": "5"}]
    out = ws_exec(env, exec_path(["exit", "5"]), "channel.k8s.io")
    assert out[3] == b"command terminated with non-zero exit code: exit status 5"


def test_exec_over_websocket_stdin(env: Env) -> None:
    # Pre-v5 WebSocket has no stdin close: the stub's `size` command ends on the first resize message.
    out = ws_exec(env, exec_path(["size"], stdin=True), "v4.channel.k8s.io", [b"\x04" + b'{"Width":7,"Height":9}'])
    assert json.loads(out[1]) == {"Width": 7, "Height": 9}


def test_stop_ends_open_follows_and_exec_sessions(env: Env) -> None:
    import threading
    import time

    results: list[Any] = []

    def follow() -> None:
        try:
            results.append(env.get("/containerLogs/ns/web/main?follow=true", env.client_cert))
        except Exception as exc:  # the connection is cut mid-body: that is the point
            results.append(exc)

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    client = SpdyClient(env.server.port, env.client_cert)
    assert client.upgrade(exec_path(["cat"], stdin=True))[0] == 101
    for kind in ("error", "stdin", "stdout", "stderr"):
        client.open(kind)
    time.sleep(0.5)  # both are now being served
    started = time.monotonic()
    env.server.stop()
    assert time.monotonic() - started < 5
    follower.join(5)
    assert not follower.is_alive()
    client.close()


def test_exec_survives_a_quiet_command_and_a_server_without_subprotocol(env: Env) -> None:
    import dataclasses

    env.server.settings = dataclasses.replace(env.server.settings, stream_creation_timeout=0.5)
    client = SpdyClient(env.server.port, env.client_cert)
    assert client.upgrade(exec_path(["slow", "1.5"]))[0] == 101
    for kind in ("error", "stdout", "stderr"):
        client.open(kind)
    client.read_until_finished("error")
    assert client.out("stdout") == b"done\n"
    assert json.loads(client.out("error"))["status"] == "Success"
    client.close()

    env.exec_server.subprotocol = ""  # an ECI endpoint that picks no subprotocol: v4 rules, stdin EOF as an empty frame
    client = SpdyClient(env.server.port, env.client_cert)
    assert client.upgrade(exec_path(["cat"], stdin=True))[0] == 101
    for kind in ("error", "stdin", "stdout", "stderr"):
        client.open(kind)
    client.send("stdin", b"abc")
    client.send("stdin", b"", fin=True)
    client.read_until_finished("error")
    assert client.out("stdout") == b"abc"
    client.close()


@pytest.mark.parametrize("protocol", ["v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"])
def test_exec_over_older_spdy_protocols(env: Env, protocol: str) -> None:
    # Before v4 the error stream carries only a failure's message, as text; success is silence.
    client = SpdyClient(env.server.port, env.client_cert)
    status, headers, _ = client.upgrade(exec_path(["exit", "2"]), protocols=f"{protocol},v1.bogus")
    assert status == 101 and headers["x-stream-protocol-version"] == protocol
    for kind in ("error", "stdout", "stderr"):
        client.open(kind)
    client.read_until_finished("error")
    assert client.out("error") == b"command terminated with non-zero exit code: exit status 2"
    client.close()
    client = SpdyClient(env.server.port, env.client_cert)
    assert client.upgrade(exec_path(["echo", "ok"]), protocols=protocol)[0] == 101
    for kind in ("error", "stdout", "stderr"):
        client.open(kind)
    client.read_until_finished("error")
    assert client.out("stdout") == b"ok\n" and client.out("error") == b""
    client.close()
