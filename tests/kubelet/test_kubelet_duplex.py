"""TlsDuplex: simultaneous reads and writes on one TLS connection keep every byte intact."""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import tempfile
import threading

from vkeci.kubelet.duplex import TlsDuplex
from vkeci.kubelet.tls import SelfSignedIssuer

SIZE = 4 << 20


def tls_pair() -> tuple[ssl.SSLSocket, ssl.SSLSocket]:
    pair = SelfSignedIssuer("duplex", ["127.0.0.1"]).issue()
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = os.path.join(tmp, "c"), os.path.join(tmp, "k")
        open(cert, "wb").write(pair.cert_pem)
        open(key, "wb").write(pair.key_pem)
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    listener = socket.create_server(("127.0.0.1", 0))
    result: dict[str, ssl.SSLSocket] = {}

    def accept() -> None:
        conn, _ = listener.accept()
        result["server"] = server_ctx.wrap_socket(conn, server_side=True)

    thread = threading.Thread(target=accept)
    thread.start()
    client = client_ctx.wrap_socket(socket.create_connection(listener.getsockname()))
    thread.join(10)
    listener.close()
    return result["server"], client


def test_concurrent_reads_and_writes_are_intact() -> None:
    server, client = tls_pair()
    duplex = TlsDuplex(server)
    upstream = os.urandom(SIZE)
    downstream = os.urandom(SIZE)
    got: dict[str, bytes] = {}

    def client_send() -> None:
        client.sendall(upstream)

    def client_recv() -> None:
        chunks, total = [], 0
        while total < SIZE:
            chunk = client.recv(1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        got["client"] = b"".join(chunks)

    def server_write() -> None:
        for start in range(0, SIZE, 50_000):  # many small writes interleaved with the reads
            duplex.write(downstream[start : start + 50_000])

    def server_read() -> None:
        got["server"] = duplex.read(SIZE)

    threads = [threading.Thread(target=f) for f in (client_send, client_recv, server_write, server_read)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert hashlib.sha256(got["server"]).digest() == hashlib.sha256(upstream).digest()
    assert hashlib.sha256(got["client"]).digest() == hashlib.sha256(downstream).digest()
    client.close()
    assert duplex.read(1) == b""  # end of stream once the peer is gone
    duplex.release()
    server.close()
