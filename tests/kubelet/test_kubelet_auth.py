"""Authentication and authorization of kubelet API requests."""

from __future__ import annotations

from typing import Any

import pytest

from vkeci.kubelet import auth


class FakeKube:
    def __init__(self, allowed: set[tuple[str, str]] | None = None, tokens: dict[str, str] | None = None) -> None:
        self.allowed = allowed or set()
        self.tokens = tokens or {}
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((path, body))
        if path.endswith("tokenreviews"):
            user = self.tokens.get(body["spec"]["token"])
            if user is None:
                return {"status": {"authenticated": False}}
            return {"status": {"authenticated": True, "user": {"username": user, "groups": ["g1"], "uid": "u1"}}}
        attrs = body["spec"]["resourceAttributes"]
        assert attrs["resource"] == "nodes" and attrs["name"] == "vk-node"
        return {"status": {"allowed": (body["spec"]["user"], attrs["subresource"]) in self.allowed}}


CERT = {"subject": ((("organizationName", "system:masters"),), (("commonName", "kube-apiserver"),))}


def test_client_certificate_names_the_user() -> None:
    user = auth.user_from_certificate(CERT)
    assert user == auth.User("kube-apiserver", ("system:masters",))
    assert auth.user_from_certificate(None) is None
    assert auth.user_from_certificate({}) is None


def test_anonymous_is_401_and_bad_token_is_401() -> None:
    a = auth.Auth(FakeKube(tokens={"good": "alice"}), "vk-node")
    with pytest.raises(auth.Unauthorized):
        a.authenticate(None, None)
    with pytest.raises(auth.Unauthorized):
        a.authenticate(None, "Bearer nope")
    with pytest.raises(auth.Unauthorized):
        a.authenticate(None, "Basic abc")


def test_token_review_is_cached_and_never_stores_the_token() -> None:
    kube = FakeKube(tokens={"s3cret-token": "alice"})
    a = auth.Auth(kube, "vk-node")
    assert a.authenticate(None, "Bearer s3cret-token").name == "alice"
    assert a.authenticate(None, "Bearer s3cret-token").name == "alice"
    assert len(kube.calls) == 1
    assert "s3cret-token" not in repr(a._tokens._items)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/stats/summary", ["stats"]),
        ("/metrics/resource", ["metrics"]),
        ("/logs/", ["log"]),
        ("/containerLogs/ns/p/c", ["proxy"]),
        ("/exec/ns/p/c", ["proxy"]),
        ("/pods", ["pods", "proxy"]),
        ("/runningpods/", ["pods", "proxy"]),
        ("/healthz", ["healthz", "proxy"]),
    ],
)
def test_subresources_follow_the_kubelet(path: str, expected: list[str]) -> None:
    assert auth.subresources(path) == expected


def test_authorize_with_fallback_and_caching() -> None:
    kube = FakeKube(allowed={("alice", "proxy"), ("bob", "pods")})
    a = auth.Auth(kube, "vk-node")
    alice, bob = auth.User("alice"), auth.User("bob")
    a.authorize(alice, "GET", "/pods")  # pods denied, proxy allowed
    a.authorize(bob, "GET", "/pods")
    with pytest.raises(auth.Forbidden) as info:
        a.authorize(bob, "POST", "/exec/ns/p/c")
    assert "user=bob, verb=create, resource=nodes, subresource(s)=[proxy]" in str(info.value)
    count = len(kube.calls)
    a.authorize(alice, "GET", "/pods")
    with pytest.raises(auth.Forbidden):
        a.authorize(bob, "POST", "/exec/ns/p/c")
    assert len(kube.calls) == count  # both decisions cached


def test_review_failure_denies_without_caching() -> None:
    class Broken:
        def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
            raise ConnectionError("down")

    a = auth.Auth(Broken(), "vk-node")
    with pytest.raises(auth.Forbidden):
        a.authorize(auth.User("alice"), "GET", "/pods")
    with pytest.raises(auth.Unauthorized):
        a.authenticate(None, "Bearer x")


def test_allow_all_warns(caplog: pytest.LogCaptureFixture) -> None:
    dev = auth.AllowAll()
    assert "DISABLED" in caplog.text
    dev.authorize(dev.authenticate(None, None), "POST", "/exec/a/b/c")
