"""Certificates and keys of the local control plane: one CA, serving and client certificates, SA keys.

Every leaf carries SANs, a Subject Key Identifier and an Authority Key Identifier, and the CA carries
keyUsage: Go ignores the CN, and strict X.509 verification (Python >= 3.13's default) rejects leaves
without AKI and CAs without keyUsage.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_NAME = "vkeci-e2e-ca"
FRONT_PROXY_CA_NAME = "vkeci-e2e-front-proxy-ca"
FRONT_PROXY_CLIENT = "front-proxy-client"
VALIDITY = datetime.timedelta(days=365)

# The first IP of --service-cluster-ip-range: in-cluster clients reach the apiserver as kubernetes.default.
SERVICE_IP = "10.0.0.1"
APISERVER_SANS = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
    "127.0.0.1",
    SERVICE_IP,
)


@dataclass(frozen=True)
class Pki:
    """Paths of every PEM file of a control plane's PKI directory."""

    dir: Path

    @property
    def ca_crt(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca.key"

    @property
    def apiserver_crt(self) -> Path:
        return self.dir / "apiserver.crt"

    @property
    def apiserver_key(self) -> Path:
        return self.dir / "apiserver.key"

    @property
    def admin_crt(self) -> Path:
        """Client certificate of user ``admin`` in group ``system:masters``."""
        return self.dir / "admin.crt"

    @property
    def admin_key(self) -> Path:
        return self.dir / "admin.key"

    @property
    def kubelet_client_crt(self) -> Path:
        """Client certificate kube-apiserver presents to kubelets (logs, exec, port-forward, metrics)."""
        return self.dir / "kubelet-client.crt"

    @property
    def kubelet_client_key(self) -> Path:
        return self.dir / "kubelet-client.key"

    @property
    def front_proxy_ca_crt(self) -> Path:
        """CA of the request-header (front proxy) client: a separate CA, as kubeadm does, so no ordinary
        client certificate can assert an identity through X-Remote-User headers."""
        return self.dir / "front-proxy-ca.crt"

    @property
    def front_proxy_ca_key(self) -> Path:
        return self.dir / "front-proxy-ca.key"

    @property
    def front_proxy_client_crt(self) -> Path:
        """Client certificate kube-apiserver presents to aggregated API servers."""
        return self.dir / "front-proxy-client.crt"

    @property
    def front_proxy_client_key(self) -> Path:
        return self.dir / "front-proxy-client.key"

    @property
    def sa_key(self) -> Path:
        """Service-account token signing key (private)."""
        return self.dir / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.dir / "sa.pub"


def ensure_pki(directory: Path) -> Pki:
    """Create the PKI in ``directory`` unless it is complete already; return its paths.

    Idempotent: existing certificates are kept, so a restarted control plane keeps its identity and
    kubeconfigs handed out earlier stay valid.
    """
    pki = Pki(Path(directory).resolve())
    pki.dir.mkdir(parents=True, exist_ok=True)
    files = [
        pki.ca_crt,
        pki.ca_key,
        pki.apiserver_crt,
        pki.apiserver_key,
        pki.admin_crt,
        pki.admin_key,
        pki.kubelet_client_crt,
        pki.kubelet_client_key,
        pki.front_proxy_ca_crt,
        pki.front_proxy_ca_key,
        pki.front_proxy_client_crt,
        pki.front_proxy_client_key,
        pki.sa_key,
        pki.sa_pub,
    ]
    if all(f.exists() for f in files):
        return pki
    ca_key = _new_key()
    ca_crt = _ca_certificate(ca_key, CA_NAME)
    _write_key(pki.ca_key, ca_key)
    _write_crt(pki.ca_crt, ca_crt)
    fp_key = _new_key()
    fp_crt = _ca_certificate(fp_key, FRONT_PROXY_CA_NAME)
    _write_key(pki.front_proxy_ca_key, fp_key)
    _write_crt(pki.front_proxy_ca_crt, fp_crt)
    _issue_to(pki.front_proxy_client_crt, pki.front_proxy_client_key, fp_crt, fp_key, FRONT_PROXY_CLIENT)
    _issue_to(pki.apiserver_crt, pki.apiserver_key, ca_crt, ca_key, "kube-apiserver", server=True, sans=APISERVER_SANS)
    _issue_to(pki.admin_crt, pki.admin_key, ca_crt, ca_key, "admin", org="system:masters")
    _issue_to(
        pki.kubelet_client_crt,
        pki.kubelet_client_key,
        ca_crt,
        ca_key,
        "kube-apiserver-kubelet-client",
        org="system:masters",
    )
    sa = _new_key()
    _write_key(pki.sa_key, sa)
    pki.sa_pub.write_bytes(
        sa.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return pki


def issue_certificate(
    pki: Pki,
    crt_path: Path,
    key_path: Path,
    common_name: str,
    *,
    org: str | None = None,
    server: bool = False,
    client: bool = False,
    sans: Sequence[str] = (),
) -> None:
    """Issue a certificate signed by the cluster CA, e.g. a serving certificate for a virtual kubelet.

    ``sans`` mixes DNS names and IP addresses; ``server``/``client`` pick the extended key usages
    (client only when neither is set).
    """
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    if not isinstance(ca_key, rsa.RSAPrivateKey):
        raise ValueError(f"{pki.ca_key}: expected an RSA key")
    ca_crt = x509.load_pem_x509_certificate(pki.ca_crt.read_bytes())
    _issue_to(crt_path, key_path, ca_crt, ca_key, common_name, org=org, server=server, client=client, sans=sans)


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)] if org else []
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key_usage(ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        key_encipherment=not ca,
        key_cert_sign=ca,
        crl_sign=ca,
        content_commitment=False,
        data_encipherment=False,
        key_agreement=False,
        encipher_only=False,
        decipher_only=False,
    )


def _builder(subject: x509.Name, issuer: x509.Name, key: rsa.RSAPublicKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key), critical=False)
    )


def _ca_certificate(key: rsa.RSAPrivateKey, name: str) -> x509.Certificate:
    return (
        _builder(_name(name), _name(name), key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .sign(key, hashes.SHA256())
    )


def _san(value: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(value))
    except ValueError:
        return x509.DNSName(value)


def _issue_to(
    crt_path: Path,
    key_path: Path,
    ca_crt: x509.Certificate,
    ca_key: rsa.RSAPrivateKey,
    common_name: str,
    *,
    org: str | None = None,
    server: bool = False,
    client: bool = False,
    sans: Iterable[str] = (),
) -> None:
    key = _new_key()
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] if server else []
    if client or not server:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        _builder(_name(common_name, org), ca_crt.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    names = [_san(s) for s in sans]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    _write_key(key_path, key)
    _write_crt(crt_path, builder.sign(ca_key, hashes.SHA256()))


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    # Created 0600 from the start: a private key is never world-readable, not even for a moment.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)


def _write_crt(path: Path, crt: x509.Certificate) -> None:
    path.write_bytes(crt.public_bytes(serialization.Encoding.PEM))
