"""Test helpers: a tiny PKI, stand-ins for the pod cache and ECI, a stub ECI exec WebSocket
server, and a minimal SPDY/3.1 client like the API server's."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import socket
import ssl
import struct
import threading
import zlib
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from vkeci.kubelet import spdy


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def make_ca(directory: Path, name: str) -> tuple[Path, ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    path = directory / f"{name}.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, key, cert


def make_client(
    directory: Path, ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, cn: str, org: str
) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, org))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    crt, keyfile = directory / f"{cn}.crt", directory / f"{cn}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return crt, keyfile


class FakeLookup:
    """A PodLookup over a dict of pods keyed (namespace, name), with their group ids."""

    def __init__(self) -> None:
        self.pods: dict[tuple[str, str], tuple[dict[str, Any], str | None]] = {}

    def add(self, namespace: str, name: str, group_id: str | None, containers: tuple[str, ...] = ("main",)) -> None:
        self.pods[(namespace, name)] = (
            {
                "metadata": {"namespace": namespace, "name": name, "uid": f"uid-{name}"},
                "spec": {"containers": [{"name": c, "image": "busybox"} for c in containers]},
                "status": {
                    "phase": "Running",
                    "startTime": "2024-01-01T00:00:00Z",
                    "containerStatuses": [
                        {"name": c, "state": {"running": {"startedAt": "2024-01-01T00:00:01Z"}}} for c in containers
                    ],
                },
            },
            group_id,
        )

    def get(self, namespace: str, name: str) -> tuple[dict[str, Any], str | None] | None:
        return self.pods.get((namespace, name))

    def list(self) -> list[dict[str, Any]]:
        return [pod for pod, _ in self.pods.values()]


class FakeEci:
    """An EciApi answering from memory; exec sessions point at a StubExecServer."""

    def __init__(self, exec_server: StubExecServer | None = None) -> None:
        self.logs: dict[tuple[str, str], str] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.exec_server = exec_server

    def describe_container_log(self, params: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("DescribeContainerLog", params))
        content = self.logs.get((params["ContainerGroupId"], params["ContainerName"]), "")
        lines = content.splitlines(keepends=True)
        if "StartTime" in params:  # our stamps are all second precision, so text order is time order
            lines = [line for line in lines if line.split(" ", 1)[0] >= params["StartTime"]]
        lines = lines[-params.get("Tail", 500) :]
        if not params.get("Timestamps"):
            lines = [line.split(" ", 1)[1] for line in lines]
        return {"Content": "".join(lines)}

    def exec_container_command(self, params: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("ExecContainerCommand", params))
        assert self.exec_server is not None
        return {"WebSocketUri": self.exec_server.uri(params["Command"])}

    def describe_multi_container_group_metric(self, group_ids: list[str]) -> dict[str, Any]:
        self.calls.append(("DescribeMultiContainerGroupMetric", {"ids": group_ids}))
        return {
            "MonitorDatas": [
                {
                    "ContainerGroupId": gid,
                    "Records": [
                        {
                            "Timestamp": "2024-01-01T00:00:00Z",
                            "CPU": {"UsageCoreNanoSeconds": 2_000_000_000, "UsageNanoCores": 1000},
                            "Memory": {"WorkingSet": 4096},
                            "Containers": [
                                {
                                    "Name": "main",
                                    "CPU": {"UsageCoreNanoSeconds": 2_000_000_000, "UsageNanoCores": 1000},
                                    "Memory": {"WorkingSet": 4096},
                                }
                            ],
                        }
                    ],
                }
                for gid in group_ids
            ]
        }


def _ws_frame(payload: bytes, opcode: int = 2) -> bytes:
    header = bytes([0x80 | opcode])
    if len(payload) < 126:
        header += bytes([len(payload)])
    elif len(payload) < 65536:
        header += bytes([126]) + struct.pack(">H", len(payload))
    else:
        header += bytes([127]) + struct.pack(">Q", len(payload))
    return header + payload


def _ws_read(conn: socket.socket) -> tuple[int, bytes]:
    def exact(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    b0, b1 = exact(2)
    size = b1 & 0x7F
    if size == 126:
        size = struct.unpack(">H", exact(2))[0]
    elif size == 127:
        size = struct.unpack(">Q", exact(8))[0]
    mask = exact(4) if b1 & 0x80 else b"\0\0\0\0"
    payload = bytes(c ^ mask[i % 4] for i, c in enumerate(exact(size)))
    return b0 & 0x0F, payload


class StubExecServer:
    """A WebSocket server speaking ECI's exec contract for a few canned commands:
    ``echo ARGS`` prints them, ``cat`` echoes stdin until it closes (v5 CLOSE), ``exit N``
    exits with N, ``size`` prints the last terminal size it was sent."""

    def __init__(self, subprotocol: str = "v5.channel.k8s.io") -> None:
        self.subprotocol = subprotocol
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.commands: dict[str, list[str]] = {}
        self.received: list[tuple[int, bytes]] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()
        self._n = 0

    def uri(self, command: list[str]) -> str:
        self._n += 1
        token = f"t{self._n}"
        self.commands[token] = list(command)
        return f"ws://127.0.0.1:{self.listener.getsockname()[1]}/_exec/{token}"

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(4096)
            lines = request.decode().split("\r\n")
            token = lines[0].split()[1].rsplit("/", 1)[-1]
            headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            accept = base64.b64encode(
                hashlib.sha1((headers["sec-websocket-key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
            ).decode()
            chosen = f"Sec-WebSocket-Protocol: {self.subprotocol}\r\n" if self.subprotocol else ""
            reply = (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\n{chosen}\r\n"
            )
            conn.sendall(reply.encode())
            command = self.commands[token]
            send = lambda channel, data: conn.sendall(_ws_frame(bytes([channel]) + data))  # noqa: E731
            if command[0] == "slow":  # quiet for a while, then output
                import time

                time.sleep(float(command[1]))
                send(1, b"done\n")
                send(3, json.dumps({"metadata": {}, "status": "Success"}).encode())
            elif command[0] == "echo":
                send(1, (" ".join(command[1:]) + "\n").encode())
                send(2, b"to stderr\n")
                send(3, json.dumps({"metadata": {}, "status": "Success"}).encode())
            elif command[0] == "exit":
                send(
                    3,
                    json.dumps(
                        {
                            "status": "Failure",
                            "reason": "NonZeroExitCode",
                            "details": {"causes": [{"reason": "ExitCode", "message": command[1]}]},
                        }
                    ).encode(),
                )
            elif command[0] in ("cat", "size"):
                size = b""
                while True:
                    opcode, payload = _ws_read(conn)
                    if opcode == 8:
                        return
                    self.received.append((payload[0], payload[1:]))
                    if payload[0] == 255 or (payload[0] == 0 and len(payload) == 1):
                        break  # v5 close, or the empty stdin frame of the v4 contract
                    if payload[0] == 0 and command[0] == "cat":
                        send(1, payload[1:])
                    elif payload[0] == 4:
                        size = payload[1:]
                        if command[0] == "size":
                            send(1, size + b"\n")
                            break
                send(3, json.dumps({"metadata": {}, "status": "Success"}).encode())
            try:
                conn.sendall(_ws_frame(b"\x03\xe8", opcode=8))
            except OSError:
                pass


class SpdyClient:
    """Enough of the API server's SPDY client to run one exec."""

    def __init__(self, port: int, cert: tuple[Path, Path], ca: Path | None = None) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.load_cert_chain(*cert)
        self.sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10))
        self.file = self.sock.makefile("rb")
        self.compress = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zdict=spdy.DICTIONARY)
        self.decompress = zlib.decompressobj(zdict=spdy.DICTIONARY)
        self.next_id = 1
        self.ids: dict[str, int] = {}
        self.output: dict[int, bytes] = {}
        self.finished: set[int] = set()
        self.replied: set[int] = set()

    def upgrade(self, path: str, protocols: str = "v4.channel.k8s.io") -> tuple[int, dict[str, str], bytes]:
        self.sock.sendall(
            (
                f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                f"X-Stream-Protocol-Version: {protocols}\r\nContent-Length: 0\r\n\r\n"
            ).encode()
        )
        status = int(self.file.readline().split()[1])
        headers: dict[str, str] = {}
        while True:
            line = self.file.readline().decode().strip()
            if not line:
                break
            key, _, value = line.partition(":")
            headers[key.lower()] = value.strip()
        body = self.file.read(int(headers.get("content-length", 0))) if status != 101 else b""
        return status, headers, body

    def open(self, kind: str) -> int:
        stream_id = self.next_id
        self.next_id += 2
        block = self.compress.compress(spdy.encode_headers({"streamType": kind})) + self.compress.flush(
            zlib.Z_SYNC_FLUSH
        )
        self.sock.sendall(spdy.control_frame(spdy.SYN_STREAM, 0, struct.pack(">IIBB", stream_id, 0, 0, 0) + block))
        self.ids[kind] = stream_id
        return stream_id

    def send(self, kind: str, data: bytes, fin: bool = False) -> None:
        self.sock.sendall(spdy.data_frame(self.ids[kind], data, fin))

    def ping(self, ping_id: int) -> None:
        self.sock.sendall(spdy.control_frame(spdy.PING, 0, struct.pack(">I", ping_id)))

    def read_until_finished(self, kind: str, pongs: list[int] | None = None) -> None:
        target = self.ids[kind]
        while target not in self.finished:
            head = self.file.read(8)
            if len(head) < 8:
                raise EOFError("server closed before finishing " + kind)
            first, second = struct.unpack(">II", head)
            flags, length = second >> 24, second & 0xFFFFFF
            payload = self.file.read(length)
            if first & 0x80000000:
                kind_ = first & 0xFFFF
                if kind_ == spdy.SYN_REPLY:
                    self.decompress.decompress(payload[4:])
                    self.replied.add(struct.unpack(">I", payload[:4])[0])
                elif kind_ == spdy.PING and pongs is not None:
                    pongs.append(struct.unpack(">I", payload)[0])
            else:
                assert first in self.replied, "DATA before SYN_REPLY"
                self.output[first] = self.output.get(first, b"") + payload
                if flags & spdy.FLAG_FIN:
                    self.finished.add(first)

    def out(self, kind: str) -> bytes:
        return self.output.get(self.ids[kind], b"")

    def close(self) -> None:
        try:
            self.sock.sendall(spdy.control_frame(spdy.GOAWAY, 0, struct.pack(">II", 0, 0)))
        except OSError:
            pass
        self.sock.close()
