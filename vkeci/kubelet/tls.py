"""The kubelet API's serving certificate and the TLS context built from it.

Three sources, one interface (:class:`CertIssuer`): certificate files (re-read when they
change on disk), a ``kubernetes.io/kubelet-serving`` CertificateSigningRequest through the
Kubernetes API, or a self-signed certificate for development. :class:`ServingTls` renews
the certificate at 80% of its lifetime and swaps the SSL context used for new connections.

Client certificates are requested but optional (bearer tokens are the other way in); one
that is presented must chain to the cluster CA, else the handshake fails.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import logging
import os
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger(__name__)

RENEW_FRACTION = 0.8
KUBELET_SERVING_SIGNER = "kubernetes.io/kubelet-serving"


class TlsError(Exception):
    """The serving certificate could not be obtained or loaded; the message says which and why."""


@dataclass(frozen=True)
class CertPair:
    """A PEM certificate (chain) and its PEM private key."""

    cert_pem: bytes
    key_pem: bytes

    def certificate(self) -> x509.Certificate:
        """The leaf certificate."""
        return x509.load_pem_x509_certificate(self.cert_pem)

    def renew_at(self) -> dt.datetime:
        """When to replace it: at 80% of its validity."""
        cert = self.certificate()
        start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
        return start + (end - start) * RENEW_FRACTION


class CertIssuer(Protocol):
    """Where serving certificates come from."""

    def issue(self) -> CertPair:
        """A current certificate and key; may block (a CSR waits for approval)."""
        ...

    def changed(self) -> bool:
        """Whether a new certificate is available without waiting for renewal (files edited)."""
        ...


def _names(addresses: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for address in dict.fromkeys(a for a in addresses if a):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(address)))
        except ValueError:
            names.append(x509.DNSName(address))
    return names


def new_key() -> ec.EllipticCurvePrivateKey:
    """A fresh P-256 key (what the kubelet uses for its serving certificate)."""
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _subject(node_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{node_name}"),
        ]
    )


class SelfSignedIssuer:
    """A self-signed certificate for the node's addresses. Development only: nothing can
    verify it, so the API server must not set --kubelet-certificate-authority."""

    def __init__(self, node_name: str, addresses: list[str], days: int = 365) -> None:
        self._node = node_name
        self._addresses = addresses or ["127.0.0.1"]
        self._days = days

    def issue(self) -> CertPair:
        """Generate a new key and certificate."""
        key = new_key()
        now = dt.datetime.now(dt.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_subject(self._node))
            .issuer_name(_subject(self._node))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=self._days))
            .add_extension(x509.SubjectAlternativeName(_names([self._node, *self._addresses])), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256())
        )
        return CertPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))

    def changed(self) -> bool:
        """Never: a self-signed certificate is only replaced when it nears expiry."""
        return False


class FileIssuer:
    """Certificate and key files managed by someone else (cert-manager, an operator);
    re-read whenever either file changes."""

    def __init__(self, cert_file: str, key_file: str) -> None:
        self._cert = Path(cert_file)
        self._key = Path(key_file)
        self._stamp: tuple[float, float] | None = None

    def _mtimes(self) -> tuple[float, float]:
        return (self._cert.stat().st_mtime, self._key.stat().st_mtime)

    def issue(self) -> CertPair:
        """Read both files."""
        try:
            self._stamp = self._mtimes()
            pair = CertPair(self._cert.read_bytes(), self._key.read_bytes())
            pair.certificate()
        except OSError as exc:
            raise TlsError(f"kubelet serving certificate: cannot read {exc.filename} ({exc.strerror})") from None
        except ValueError as exc:
            raise TlsError(f"kubelet serving certificate {self._cert}: not a PEM certificate ({exc})") from None
        return pair

    def changed(self) -> bool:
        """Whether either file's modification time moved since the last read."""
        try:
            return self._stamp is not None and self._mtimes() != self._stamp
        except OSError:
            return False


class CsrApi(Protocol):
    """The Kubernetes calls a CSR needs."""

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST and return the created object."""
        ...

    def get(self, path: str) -> dict[str, Any]:
        """GET an object."""
        ...

    def put(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT an object."""
        ...


class CsrIssuer:
    """A certificate from the cluster's ``kubernetes.io/kubelet-serving`` signer.

    Creates a CertificateSigningRequest (CN ``system:node:<node>``, O ``system:nodes``, the
    node's addresses as SANs), approves it itself when ``approve`` is set (the identity
    needs ``approve`` on ``signers/kubernetes.io/kubelet-serving``; otherwise an operator
    runs ``kubectl certificate approve``) and waits for the signed certificate.
    """

    _PATH = "/apis/certificates.k8s.io/v1/certificatesigningrequests"

    def __init__(
        self,
        kube: CsrApi,
        node_name: str,
        addresses: list[str],
        *,
        approve: bool = False,
        timeout: float = 300.0,
        poll: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._kube = kube
        self._node = node_name
        self._addresses = addresses
        self._approve = approve
        self._timeout = timeout
        self._poll = poll
        self._sleep = sleep

    def issue(self) -> CertPair:
        """Request, optionally approve, and wait for a signed certificate."""
        key = new_key()
        request = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(_subject(self._node))
            .add_extension(x509.SubjectAlternativeName(_names(self._addresses)), critical=False)
            .sign(key, hashes.SHA256())
        )
        body = {
            "apiVersion": "certificates.k8s.io/v1",
            "kind": "CertificateSigningRequest",
            "metadata": {"generateName": f"vkeci-{self._node}-"},
            "spec": {
                "request": base64.b64encode(request.public_bytes(serialization.Encoding.PEM)).decode(),
                "signerName": KUBELET_SERVING_SIGNER,
                "usages": ["digital signature", "server auth"],
            },
        }
        created = self._kube.post(self._PATH, body)
        name = created["metadata"]["name"]
        if self._approve:
            created.setdefault("status", {})["conditions"] = [
                {
                    "type": "Approved",
                    "status": "True",
                    "reason": "VkEciSelfApproved",
                    "message": f"vk-eci approved its own serving certificate for node {self._node}",
                }
            ]
            self._kube.put(f"{self._PATH}/{name}/approval", created)
        deadline = time.monotonic() + self._timeout
        while True:
            status = self._kube.get(f"{self._PATH}/{name}").get("status") or {}
            for condition in status.get("conditions") or []:
                if condition.get("type") in ("Denied", "Failed") and condition.get("status") == "True":
                    raise TlsError(
                        f"CertificateSigningRequest {name} was {condition['type'].lower()}: "
                        f"{condition.get('message') or condition.get('reason')}"
                    )
            if status.get("certificate"):
                return CertPair(base64.b64decode(status["certificate"]), _key_pem(key))
            if time.monotonic() > deadline:
                raise TlsError(
                    f"CertificateSigningRequest {name} not signed after {self._timeout:.0f}s: approve it with "
                    f"`kubectl certificate approve {name}` (or enable self-approval), and check that the "
                    f"controller manager runs the {KUBELET_SERVING_SIGNER} signer"
                )
            self._sleep(self._poll)

    def changed(self) -> bool:
        """Never: a CSR certificate is only replaced when it nears expiry."""
        return False


def load_client_ca(path: str) -> str:
    """The cluster CA bundle (PEM) that client certificates must chain to."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise TlsError(f"client CA file {path}: cannot be read ({exc.strerror})") from None
    if "BEGIN CERTIFICATE" not in text:
        raise TlsError(f"client CA file {path}: contains no PEM certificate")
    return text


class ServingTls:
    """The current server SSL context, replaced when the certificate is renewed or its
    files change. Call :meth:`context` for each new connection."""

    def __init__(
        self,
        issuer: CertIssuer,
        client_ca_pem: str | None,
        check_every: float = 60.0,
        *,
        purpose: str = "kubelet API",
        client_certs: bool = True,
    ) -> None:
        # ``purpose`` names the server in messages; ``client_certs`` False: its clients do not present
        # certificates (the admission webhook's caller, the API server), so no client CA is wanted.
        self._purpose = purpose
        self._client_certs = client_certs
        self._issuer = issuer
        self._client_ca = client_ca_pem
        self._check_every = check_every
        self._lock = threading.Lock()
        self._dir = tempfile.mkdtemp(prefix="vkeci-tls-")
        os.chmod(self._dir, 0o700)
        self._pair = issuer.issue()
        self._context = self._build(self._pair)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _build(self, pair: CertPair) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        # The stdlib loads chains only from files; they live in a private directory.
        cert_path = os.path.join(self._dir, "serving.crt")
        key_path = os.path.join(self._dir, "serving.key")
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pair.key_pem)
        Path(cert_path).write_bytes(pair.cert_pem)
        try:
            context.load_cert_chain(cert_path, key_path)
        except ssl.SSLError as exc:
            raise TlsError(f"{self._purpose} serving certificate and key do not load together ({exc.reason})") from None
        finally:
            os.unlink(key_path)
        if self._client_ca:
            context.load_verify_locations(cadata=self._client_ca)
            context.verify_mode = ssl.CERT_OPTIONAL
        elif self._client_certs:
            log.warning(
                "no client CA for the kubelet API: client certificates are not accepted, so the API server "
                "(which calls in with one) will be refused; pass the cluster CA (--client-ca-file)"
            )
        context.set_alpn_protocols(["http/1.1"])
        return context

    @property
    def certificate(self) -> x509.Certificate:
        """The certificate being served."""
        return self._pair.certificate()

    def context(self) -> ssl.SSLContext:
        """The SSL context for a new connection."""
        with self._lock:
            return self._context

    def refresh(self, now: dt.datetime | None = None) -> bool:
        """Replace the certificate if its files changed or it reached its renewal time.
        A failure keeps the old certificate and is logged; returns whether it was replaced."""
        now = now or dt.datetime.now(dt.timezone.utc)
        if not (self._issuer.changed() or now >= self._pair.renew_at()):
            return False
        try:
            pair = self._issuer.issue()
            context = self._build(pair)
        except TlsError as exc:
            log.error("keeping the current serving certificate: %s", exc)
            return False
        with self._lock:
            self._pair, self._context = pair, context
        log.info(
            "%s serving certificate renewed, valid until %s", self._purpose, pair.certificate().not_valid_after_utc
        )
        return True

    def start(self) -> None:
        """Check for renewal in the background."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="kubelet-tls-renew", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._check_every):
            self.refresh()

    def stop(self) -> None:
        """Stop the renewal thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
