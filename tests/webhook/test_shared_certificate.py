"""The self-signed certificate shared through a Secret: one per cluster, renewed once, trusted before use."""

from __future__ import annotations

import base64
import copy
import datetime as dt
from typing import Any

import pytest

from vkeci.clients.kube import KubeError
from vkeci.kubelet.tls import SelfSignedIssuer, TlsError
from vkeci.webhook.shared import SharedIssuer

PATH = "/api/v1/namespaces/vk/secrets/tls"


class Store:
    """An API server holding one Secret, with resourceVersion preconditions."""

    def __init__(self) -> None:
        self.secret: dict[str, Any] | None = None
        self.version = 0
        self.writes = 0
        self.before_write: Any = None

    def get(self, path: str, params: Any = None) -> dict[str, Any]:
        assert path == PATH
        if self.secret is None:
            raise KubeError(404, "NotFound", 'secrets "tls" not found')
        return copy.deepcopy(self.secret)

    def _hook(self) -> None:
        if self.before_write is not None:
            hook, self.before_write = self.before_write, None
            hook()

    def _store(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        self.writes += 1
        body = copy.deepcopy(body)
        body["metadata"]["resourceVersion"] = str(self.version)
        self.secret = body
        return copy.deepcopy(body)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self._hook()
        if self.secret is not None:
            raise KubeError(409, "AlreadyExists", "exists")
        return self._store(body)

    def put(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self._hook()
        assert self.secret is not None
        if body["metadata"].get("resourceVersion") != self.secret["metadata"]["resourceVersion"]:
            raise KubeError(409, "Conflict", "the object has been modified")
        return self._store(body)


class Publisher:
    configuration = "vkeci"

    def __init__(self) -> None:
        self.bundles: list[bytes] = []

    def ensure(self, bundle: bytes) -> bool:
        changed = not self.bundles or self.bundles[-1] != bundle
        if changed:
            self.bundles.append(bundle)
        return changed


def issuer(store: Store, publisher: Publisher, clock: list[dt.datetime], days: int = 10) -> SharedIssuer:
    return SharedIssuer(
        store,  # type: ignore[arg-type]
        "vk",
        "tls",
        SelfSignedIssuer("w", ["127.0.0.1"], days=days),
        publisher,  # type: ignore[arg-type]
        sleep=lambda _s: None,
        now=lambda: clock[0],
    )


def test_replicas_share_one_certificate_and_one_bundle() -> None:
    store, publisher, clock = Store(), Publisher(), [dt.datetime.now(dt.timezone.utc)]
    first, second = issuer(store, publisher, clock), issuer(store, publisher, clock)
    pair = first.issue()
    assert second.issue() == pair
    assert store.writes == 1
    assert publisher.bundles == [pair.cert_pem]
    assert base64.b64decode(store.secret["data"]["ca.crt"]) == pair.cert_pem  # type: ignore[index]
    assert not second.changed()


def test_renewal_trusts_both_certificates_before_the_new_one_is_used() -> None:
    store, publisher, clock = Store(), Publisher(), [dt.datetime.now(dt.timezone.utc)]
    old = issuer(store, publisher, clock, days=2).issue()
    first, second = issuer(store, publisher, clock), issuer(store, publisher, clock)
    second.issue()
    clock[0] += dt.timedelta(days=1.7)  # past 80% of the old one's two days, before it expires
    new = first.issue()
    assert new != old
    assert publisher.bundles[-1] == new.cert_pem + old.cert_pem
    assert second.changed()
    assert second.issue() == new  # the other replica takes the stored one, it does not renew again
    assert store.writes == 2


def test_a_replica_that_loses_the_renewal_race_uses_the_winners_certificate() -> None:
    store, publisher, clock = Store(), Publisher(), [dt.datetime.now(dt.timezone.utc)]
    issuer(store, publisher, clock, days=2).issue()
    first, second = issuer(store, publisher, clock), issuer(store, publisher, clock)
    clock[0] += dt.timedelta(days=1.7)
    winner: dict[str, Any] = {}
    # While `second` is about to write its renewal, `first` writes one.
    store.before_write = lambda: winner.setdefault("pair", first.issue())
    got = second.issue()
    assert got == winner["pair"]
    assert publisher.bundles[-1].startswith(winner["pair"].cert_pem)
    assert base64.b64decode(store.secret["data"]["tls.crt"]) == got.cert_pem  # type: ignore[index]


def test_a_broken_secret_is_replaced_and_an_unreadable_one_is_an_error() -> None:
    store, publisher, clock = Store(), Publisher(), [dt.datetime.now(dt.timezone.utc)]
    store.secret = {"metadata": {"name": "tls", "resourceVersion": "9"}, "data": {"tls.crt": "bm90IGEgY2VydA=="}}
    pair = issuer(store, publisher, clock).issue()
    assert base64.b64decode(store.secret["data"]["tls.crt"]) == pair.cert_pem

    class Forbidden(Store):
        def get(self, path: str, params: Any = None) -> dict[str, Any]:
            raise KubeError(403, "Forbidden", "secrets is forbidden")

    with pytest.raises(TlsError, match="cannot read the webhook certificate Secret vk/tls"):
        issuer(Forbidden(), publisher, clock).issue()
