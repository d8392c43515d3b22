"""A self-signed webhook certificate shared by every replica through a Secret.

Each replica making its own certificate would make each write its own caBundle, undoing the others'.
Instead the first replica to start makes the certificate and stores it (``kubernetes.io/tls`` Secret,
``tls.crt``/``tls.key``, plus ``ca.crt``: the bundle to trust, this certificate and the one before it);
the others read it. Renewal (at 80% of the certificate's life) is done by whichever replica gets there
first: it writes the bundle with both certificates into the MutatingWebhookConfiguration, then the Secret
(a resourceVersion precondition: one writer wins, the others read the winner's), waits for the API
server to load the bundle, and only then serves the new certificate; the other replicas see the Secret
change at their next check and switch to it.
"""

from __future__ import annotations

import base64
import datetime as dt
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from vkeci.clients.kube import KubeClient, KubeError
from vkeci.kubelet.tls import CertIssuer, CertPair, TlsError
from vkeci.log import fields, get_logger
from vkeci.webhook.cabundle import SETTLE_SECONDS, CaBundlePublisher

log = get_logger("webhook")


def _certificates(bundle: bytes) -> list[x509.Certificate]:
    try:
        return list(x509.load_pem_x509_certificates(bundle))
    except ValueError:
        return []


class SharedIssuer:
    """A :class:`~vkeci.kubelet.tls.CertIssuer` backed by one Secret; ``bundle`` is what to trust now."""

    def __init__(
        self,
        kube: KubeClient,
        namespace: str,
        name: str,
        make: CertIssuer,
        publisher: CaBundlePublisher | None,
        *,
        settle: float = SETTLE_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc),
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.make = make
        self.publisher = publisher
        self.settle = settle
        self.sleep = sleep
        self.now = now
        self.path = f"/api/v1/namespaces/{quote(namespace, safe='')}/secrets/{quote(name, safe='')}"
        self.version = ""
        self.bundle = b""

    def _read(self) -> dict[str, Any] | None:
        try:
            return self.kube.get(self.path)
        except KubeError as err:
            if err.not_found:
                return None
            raise TlsError(f"cannot read the webhook certificate Secret {self.namespace}/{self.name}: {err}") from None

    @staticmethod
    def _decoded(secret: dict[str, Any], key: str) -> bytes:
        try:
            return base64.b64decode((secret.get("data") or {}).get(key) or "")
        except ValueError:
            return b""

    def _usable(self, secret: dict[str, Any]) -> CertPair | None:
        """The Secret's pair, unless it is missing, broken or due for renewal."""
        pair = CertPair(self._decoded(secret, "tls.crt"), self._decoded(secret, "tls.key"))
        if not pair.key_pem or not _certificates(pair.cert_pem):
            return None
        return pair if self.now() < pair.renew_at() else None

    def _publish(self, bundle: bytes, *, renewal: bool) -> None:
        if self.publisher is None:
            return
        try:
            self.publisher.ensure(bundle)
        except KubeError as err:
            if renewal:
                raise TlsError(
                    f"the renewed webhook certificate is not trusted yet: writing the caBundle of "
                    f"{self.publisher.configuration} failed ({err})"
                ) from None
            log.error("caBundle not written; retrying every check", extra=fields(error=str(err)))

    def issue(self) -> CertPair:
        """The Secret's certificate, or a new one stored there first (renewal included)."""
        for _attempt in range(5):
            secret = self._read()
            pair = self._usable(secret) if secret else None
            if secret is not None and pair is not None:
                bundle = self._decoded(secret, "ca.crt") or pair.cert_pem
                self._publish(bundle, renewal=False)
                self.version, self.bundle = str(secret["metadata"].get("resourceVersion") or ""), bundle
                return pair
            fresh = self.make.issue()
            previous = [
                c for c in _certificates(self._decoded(secret, "tls.crt") if secret else b"")
                if c.not_valid_after_utc > self.now()
            ]  # fmt: skip
            bundle = fresh.cert_pem + b"".join(c.public_bytes(Encoding.PEM) for c in previous)
            self._publish(bundle, renewal=secret is not None)
            body: dict[str, Any] = {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "kubernetes.io/tls",
                "metadata": {
                    "name": self.name,
                    "namespace": self.namespace,
                    "labels": {"app.kubernetes.io/name": "vkeci", "app.kubernetes.io/component": "webhook"},
                },
                "data": {
                    "tls.crt": base64.b64encode(fresh.cert_pem).decode(),
                    "tls.key": base64.b64encode(fresh.key_pem).decode(),
                    "ca.crt": base64.b64encode(bundle).decode(),
                },
            }
            try:
                if secret is None:
                    written = self.kube.post(f"/api/v1/namespaces/{quote(self.namespace, safe='')}/secrets", body)
                else:
                    body["metadata"]["resourceVersion"] = secret["metadata"]["resourceVersion"]
                    written = self.kube.put(self.path, body)
            except KubeError as err:
                if err.conflict:
                    continue  # another replica stored one first: use theirs
                raise TlsError(
                    f"cannot store the webhook certificate in Secret {self.namespace}/{self.name}: {err}"
                ) from None
            log.info(
                "webhook certificate stored",
                extra=fields(
                    secret=f"{self.namespace}/{self.name}", valid_until=str(fresh.certificate().not_valid_after_utc)
                ),
            )
            if secret is not None:
                # A losing replica may have written its own bundle meanwhile; the winner's goes back before use.
                self.sleep(self.settle)
                self._publish(bundle, renewal=True)
            self.version, self.bundle = str(written["metadata"].get("resourceVersion") or ""), bundle
            return fresh
        raise TlsError(f"the webhook certificate Secret {self.namespace}/{self.name} kept changing; retrying later")

    def changed(self) -> bool:
        """Whether another replica stored a new certificate since this one read it."""
        try:
            secret = self._read()
        except TlsError as err:
            log.warning("webhook certificate Secret not read", extra=fields(error=str(err)))
            return False
        return secret is not None and str(secret["metadata"].get("resourceVersion") or "") != self.version
