"""The webhook's HTTPS server over loopback: answers, 400s, health, and the caBundle on renewal."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization

from vkeci.commands.webhook import names
from vkeci.core.admission import Target
from vkeci.core.profile import EMPTY, Profile, parse_profile
from vkeci.kubelet.tls import SelfSignedIssuer, ServingTls, TlsError
from vkeci.webhook.admit import Admitter
from vkeci.webhook.cabundle import PublishingIssuer
from vkeci.webhook.server import WebhookServer


class FixedProfile:
    def __init__(self, profile: Profile) -> None:
        self.profile = profile

    def current(self) -> Profile:
        return self.profile


NAMESPACES = {"data": {"metadata": {"name": "data", "labels": {"alibabacloud.com/eci": "true"}}}}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str]]:
    tls = ServingTls(SelfSignedIssuer("vkeci-webhook", ["127.0.0.1"]), None, purpose="webhook", client_certs=False)
    ca = tmp_path / "ca.pem"
    ca.write_bytes(tls.certificate.public_bytes(serialization.Encoding.PEM))
    profile = parse_profile(
        {
            "selectors": json.dumps(
                [{"name": "a", "objectSelector": {"matchLabels": {"app": "x"}}, "effect": {"annotations": {"k": "v"}}}]
            )
        }
    )
    server = WebhookServer(Admitter(NAMESPACES.get, FixedProfile(profile), Target()), tls, host="127.0.0.1", port=0)
    server.start()
    try:
        yield f"https://127.0.0.1:{server.port}", str(ca)
    finally:
        server.stop()


def review(namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u-1",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "namespace": namespace,
            "operation": "CREATE",
            "object": {"metadata": {"name": "p", "labels": labels}, "spec": {"containers": []}},
        },
    }


def test_a_pod_in_a_labelled_namespace_is_patched_over_https(served: tuple[str, str]) -> None:
    url, ca = served
    with requests.Session() as session:
        for _ in range(3):  # one keep-alive connection, several admissions
            answer = session.post(url + "/mutate-pods", json=review("data", {}), verify=ca, timeout=5)
            assert answer.status_code == 200
            response = answer.json()["response"]
            assert response["uid"] == "u-1"
            patch = json.loads(base64.b64decode(response["patch"]))
            assert {"op": "add", "path": "/spec/nodeSelector", "value": {"type": "virtual-kubelet"}} in patch


def test_a_selector_match_in_an_unknown_namespace_still_routes(served: tuple[str, str]) -> None:
    url, ca = served
    response = requests.post(url + "/mutate-pods", json=review("other", {"app": "x"}), verify=ca, timeout=5).json()
    patch = json.loads(base64.b64decode(response["response"]["patch"]))
    assert {"op": "add", "path": "/metadata/annotations", "value": {"k": "v"}} in patch


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        (b"{not json", 400, "the body is not JSON"),
        (b'{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}', 400, "admissionReviewVersions"),
        (b"[]", 400, "expected a JSON AdmissionReview object"),
    ],
)
def test_a_malformed_review_gets_a_400_with_the_reason(
    served: tuple[str, str], body: bytes, status: int, text: str
) -> None:
    url, ca = served
    answer = requests.post(url + "/mutate-pods", data=body, verify=ca, timeout=5)
    assert answer.status_code == status
    assert text in answer.text
    # ...and the server carries on.
    assert requests.get(url + "/healthz", verify=ca, timeout=5).text == "ok"


def test_other_paths_are_404_and_metrics_count_admissions(served: tuple[str, str]) -> None:
    url, ca = served
    assert requests.post(url + "/validate", json={}, verify=ca, timeout=5).status_code == 404
    requests.post(url + "/mutate-pods", json=review("data", {}), verify=ca, timeout=5)
    metrics = requests.get(url + "/metrics", verify=ca, timeout=5).text
    assert 'vkeci_webhook_admissions_total{mode="eci"}' in metrics
    assert "vkeci_webhook_admission_seconds_bucket" in metrics


class Publisher:
    configuration = "vkeci"

    def __init__(self, fail: bool = False) -> None:
        self.bundles: list[bytes] = []
        self.fail = fail

    def ensure(self, bundle: bytes) -> bool:
        from vkeci.clients.kube import KubeError

        if self.fail:
            raise KubeError(403, "Forbidden", "cannot update mutatingwebhookconfigurations")
        self.bundles.append(bundle)
        return True


def test_a_renewal_is_published_with_the_previous_certificate_before_it_is_served() -> None:
    publisher = Publisher()
    slept: list[float] = []
    issuer = PublishingIssuer(SelfSignedIssuer("w", ["127.0.0.1"]), publisher, sleep=slept.append)  # type: ignore[arg-type]
    first = issuer.issue()
    assert publisher.bundles == [first.cert_pem] and slept == []
    second = issuer.issue()
    assert publisher.bundles[-1] == second.cert_pem + first.cert_pem
    assert slept == [2.0]
    assert issuer.bundle == second.cert_pem + first.cert_pem


def test_a_renewal_that_cannot_be_published_keeps_the_old_certificate() -> None:
    publisher = Publisher()
    issuer = PublishingIssuer(SelfSignedIssuer("w", ["127.0.0.1"]), publisher, sleep=lambda _s: None)  # type: ignore[arg-type]
    tls = ServingTls(issuer, None, client_certs=False)
    before = tls.certificate
    publisher.fail = True
    with pytest.raises(TlsError, match="not trusted yet"):
        issuer.issue()
    assert tls.refresh(now=dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc)) is False
    assert tls.certificate == before


def test_certificate_names() -> None:
    assert names("vkeci-webhook.vk", ["127.0.0.1"], "0.0.0.0") == [
        "vkeci-webhook.vk.svc",
        "vkeci-webhook.vk.svc.cluster.local",
        "127.0.0.1",
    ]
    assert names("", [], "10.250.0.1") == ["10.250.0.1"]
    assert names("", [], "0.0.0.0") == ["127.0.0.1"]


def test_empty_profile_source_is_usable() -> None:
    assert FixedProfile(EMPTY).current() is EMPTY


def test_the_shipped_configuration_never_blocks_pod_creation() -> None:
    import yaml

    root = Path(__file__).resolve().parents[2]
    config = yaml.safe_load(
        (root / "deploy" / "kustomize" / "components" / "webhook" / "mutatingwebhook.yaml").read_text()
    )
    (webhook,) = config["webhooks"]
    assert webhook["failurePolicy"] == "Ignore"
    assert webhook["timeoutSeconds"] <= 5
    assert webhook["sideEffects"] == "None"
    assert webhook["reinvocationPolicy"] == "IfNeeded"
    assert webhook["admissionReviewVersions"] == ["v1"]
    assert webhook["clientConfig"]["service"]["path"] == "/mutate-pods"
    assert webhook["rules"] == [
        {
            "operations": ["CREATE"],
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }
    ]
    (skip,) = webhook["namespaceSelector"]["matchExpressions"]
    assert skip["key"] == "kubernetes.io/metadata.name" and skip["operator"] == "NotIn"
    assert set(skip["values"]) == {"kube-system", "vkeci-system"}
