"""Serving certificates: self-signed, from files, through a CSR; renewal."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from kubelet_helpers import make_ca

from vkeci.kubelet import tls


def sans(cert: x509.Certificate) -> list[str]:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(v) for v in ext.get_values_for_type(x509.IPAddress)] + ext.get_values_for_type(x509.DNSName)


def test_self_signed_covers_the_node_addresses() -> None:
    pair = tls.SelfSignedIssuer("vk-node", ["10.0.0.5", "vk.example"]).issue()
    cert = pair.certificate()
    assert sorted(sans(cert)) == sorted(["10.0.0.5", "vk-node", "vk.example"])
    assert cert.subject.rfc4514_string() == "CN=system:node:vk-node,O=system:nodes"
    serving = tls.ServingTls(tls.SelfSignedIssuer("vk-node", ["127.0.0.1"]), None)
    assert serving.context() is not None


def test_files_are_reloaded_when_they_change(tmp_path: Path) -> None:
    first = tls.SelfSignedIssuer("a", ["127.0.0.1"]).issue()
    crt, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    crt.write_bytes(first.cert_pem)
    key.write_bytes(first.key_pem)
    issuer = tls.FileIssuer(str(crt), str(key))
    serving = tls.ServingTls(issuer, None)
    assert not serving.refresh()
    second = tls.SelfSignedIssuer("b", ["127.0.0.1"]).issue()
    crt.write_bytes(second.cert_pem)
    key.write_bytes(second.key_pem)
    os.utime(crt, (1, 1))
    assert serving.refresh()
    assert "system:node:b" in serving.certificate.subject.rfc4514_string()


def test_missing_or_mismatched_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(tls.TlsError, match="cannot read"):
        tls.FileIssuer(str(tmp_path / "none.crt"), str(tmp_path / "none.key")).issue()
    a = tls.SelfSignedIssuer("a", []).issue()
    b = tls.SelfSignedIssuer("b", []).issue()
    (tmp_path / "c").write_bytes(a.cert_pem)
    (tmp_path / "k").write_bytes(b.key_pem)
    with pytest.raises(tls.TlsError, match="do not load together"):
        tls.ServingTls(tls.FileIssuer(str(tmp_path / "c"), str(tmp_path / "k")), None)
    (tmp_path / "ca").write_text("nothing")
    with pytest.raises(tls.TlsError, match="no PEM certificate"):
        tls.load_client_ca(str(tmp_path / "ca"))


def test_renewal_at_eighty_percent() -> None:
    serving = tls.ServingTls(tls.SelfSignedIssuer("vk", ["127.0.0.1"], days=10), None)
    before = serving.certificate.serial_number
    start = serving.certificate.not_valid_before_utc
    assert not serving.refresh(now=start + dt.timedelta(days=7))
    assert serving.refresh(now=start + dt.timedelta(days=8.1))
    assert serving.certificate.serial_number != before


class FakeCsrApi:
    """Signs a CSR with a test CA once it is approved, like the controller manager."""

    def __init__(self, tmp: Path, deny: bool = False) -> None:
        _, self.ca_key, self.ca_cert = make_ca(tmp, "ca")
        self.objects: dict[str, dict[str, Any]] = {}
        self.deny = deny

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["generateName"] + "x1"
        body = dict(body, metadata={"name": name})
        self.objects[name] = body
        return body

    def put(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        assert path.endswith("/approval")
        self.objects[body["metadata"]["name"]]["status"] = body["status"]
        return body

    def get(self, path: str) -> dict[str, Any]:
        obj = self.objects[path.rsplit("/", 1)[-1]]
        status = obj.setdefault("status", {})
        if self.deny:
            status["conditions"] = [{"type": "Denied", "status": "True", "message": "no"}]
        elif any(c["type"] == "Approved" for c in status.get("conditions", [])):
            csr = x509.load_pem_x509_csr(base64.b64decode(obj["spec"]["request"]))
            now = dt.datetime.now(dt.timezone.utc)
            cert = (
                x509.CertificateBuilder()
                .subject_name(csr.subject)
                .issuer_name(self.ca_cert.subject)
                .public_key(csr.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now)
                .not_valid_after(now + dt.timedelta(days=1))
                .add_extension(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value, False)
                .sign(self.ca_key, hashes.SHA256())
            )
            status["certificate"] = base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode()
        return obj


def test_csr_self_approved_and_signed(tmp_path: Path) -> None:
    api = FakeCsrApi(tmp_path)
    pair = tls.CsrIssuer(api, "vk-node", ["10.1.2.3"], approve=True, sleep=lambda _: None).issue()
    cert = pair.certificate()
    assert cert.issuer == api.ca_cert.subject
    assert sans(cert) == ["10.1.2.3"]
    request = next(iter(api.objects.values()))
    assert request["spec"]["signerName"] == "kubernetes.io/kubelet-serving"
    assert "server auth" in request["spec"]["usages"]
    assert ipaddress.ip_address("10.1.2.3")


def test_csr_denied_or_never_approved(tmp_path: Path) -> None:
    with pytest.raises(tls.TlsError, match="was denied: no"):
        tls.CsrIssuer(FakeCsrApi(tmp_path, deny=True), "n", ["10.0.0.1"], sleep=lambda _: None).issue()
    with pytest.raises(tls.TlsError, match="kubectl certificate approve"):
        tls.CsrIssuer(FakeCsrApi(tmp_path), "n", ["10.0.0.1"], timeout=0, sleep=lambda _: None).issue()
