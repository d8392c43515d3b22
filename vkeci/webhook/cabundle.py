"""The ``caBundle`` of the webhook's MutatingWebhookConfiguration, kept trusting what is served.

With a self-signed certificate nobody else can vouch for it, so ``vkeci webhook`` writes it into
``clientConfig.caBundle`` of every webhook in its MutatingWebhookConfiguration. On renewal the bundle
holds the new and the previous certificate and is written *before* the new one is served (and the API
server given a moment to load it), so no admission fails on the switch. A periodic
:meth:`CaBundlePublisher.ensure` puts it back when an install or upgrade (``helm upgrade``, ``kubectl
apply``) resets the field, and fills it once the configuration appears.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from urllib.parse import quote

from vkeci.clients.kube import KubeClient, KubeError
from vkeci.kubelet.tls import CertIssuer, CertPair, TlsError
from vkeci.log import fields, get_logger

log = get_logger("webhook")

CONFIGURATIONS = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
# How long the API server gets to load a new caBundle before the certificate it trusts is served. It
# watches the configurations and reloads within a second (measured on the local v1.35 control plane).
SETTLE_SECONDS = 2.0


class CaBundlePublisher:
    """Writes a CA bundle into every webhook of one MutatingWebhookConfiguration."""

    def __init__(self, kube: KubeClient, configuration: str) -> None:
        self.kube = kube
        self.configuration = configuration
        self.path = f"{CONFIGURATIONS}/{quote(configuration, safe='')}"
        self._missing_reported = False

    def ensure(self, bundle_pem: bytes) -> bool:
        """Make every webhook's caBundle ``bundle_pem``; True if it had to write. Raises KubeError."""
        wanted = base64.b64encode(bundle_pem).decode()
        for _attempt in range(5):
            try:
                config = self.kube.get(self.path)
            except KubeError as err:
                if not err.not_found:
                    raise
                if not self._missing_reported:
                    log.warning(
                        "MutatingWebhookConfiguration not found; its caBundle is written once it exists",
                        extra=fields(name=self.configuration),
                    )
                    self._missing_reported = True
                return False
            self._missing_reported = False
            stale = [w for w in config.get("webhooks") or [] if (w.get("clientConfig") or {}).get("caBundle") != wanted]
            if not stale:
                return False
            for webhook in stale:
                webhook.setdefault("clientConfig", {})["caBundle"] = wanted
            try:
                self.kube.put(self.path, config)
            except KubeError as err:
                if err.conflict:
                    continue  # someone else wrote it meanwhile: read it again
                raise
            log.info(
                "caBundle written",
                extra=fields(configuration=self.configuration, webhooks=[w.get("name") for w in stale]),
            )
            return True
        raise KubeError(409, "Conflict", f"{self.path} kept changing under five attempts to write its caBundle")


class PublishingIssuer:
    """A :class:`~vkeci.kubelet.tls.CertIssuer` whose certificates are trusted by the API server before use.

    ``bundle`` is what the configuration should hold now (the current and the previous certificate).
    """

    def __init__(
        self,
        inner: CertIssuer,
        publisher: CaBundlePublisher,
        *,
        settle: float = SETTLE_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.inner = inner
        self.publisher = publisher
        self.settle = settle
        self.sleep = sleep
        self.previous = b""
        self.bundle = b""

    def issue(self) -> CertPair:
        """A new certificate, published first; a renewal that cannot be published is refused (TlsError)."""
        pair = self.inner.issue()
        bundle = pair.cert_pem + self.previous
        try:
            self.publisher.ensure(bundle)
        except KubeError as err:
            if self.previous:
                raise TlsError(
                    f"the new webhook certificate is not trusted yet: writing the caBundle of "
                    f"{self.publisher.configuration} failed ({err})"
                ) from None
            # The first certificate is served anyway (there is nothing else); the periodic check retries.
            log.error("caBundle not written; retrying every check", extra=fields(error=str(err)))
        else:
            if self.previous:
                self.sleep(self.settle)
        self.previous, self.bundle = pair.cert_pem, bundle
        return pair

    def changed(self) -> bool:
        """Whatever the wrapped issuer says."""
        return self.inner.changed()
