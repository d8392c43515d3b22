"""The thin Kubernetes client: auth headers, errors, watch streaming, kubeconfig loading."""

import json

import pytest
import responses

from vkeci.clients.kube import Credentials, KubeClient, KubeError, load_credentials, pod_path
from vkeci.clients.ratelimit import RateLimitTimeout, TokenBucket

HOST = "https://api.test:6443"


def client(**kw):
    return KubeClient(Credentials(host=HOST, verify=False, token=lambda: "Bearer abc"), **kw)


@responses.activate
def test_get_sends_token_and_counts():
    responses.get(HOST + "/api/v1/nodes/n", json={"metadata": {"name": "n"}})
    kube = client()
    assert kube.get("/api/v1/nodes/n")["metadata"]["name"] == "n"
    assert responses.calls[0].request.headers["Authorization"] == "Bearer abc"
    assert kube.request_count == 1


@responses.activate
def test_errors_carry_status_and_reason():
    responses.patch(HOST + "/api/v1/nodes/n/status", status=404, json={"reason": "NotFound", "message": "nope"})
    with pytest.raises(KubeError) as info:
        client().patch("/api/v1/nodes/n/status", {"status": {}})
    assert info.value.not_found and info.value.reason == "NotFound"
    assert responses.calls[0].request.headers["Content-Type"] == "application/strategic-merge-patch+json"


@responses.activate
def test_a_403_says_where_the_permission_is_granted():
    # The API server's message names the user, verb and resource; the admin at 3 a.m. needs where to fix it.
    message = (
        'pods "web" is forbidden: User "system:serviceaccount:vkeci-system:vkeci" cannot patch resource "pods/status"'
    )
    responses.patch(
        HOST + "/api/v1/namespaces/ns/pods/web/status", status=403, json={"reason": "Forbidden", "message": message}
    )
    with pytest.raises(KubeError) as info:
        client().patch("/api/v1/namespaces/ns/pods/web/status", {"status": {}})
    text = str(info.value)
    assert info.value.forbidden and message in text
    assert "RBAC" in text and "deploy/" in text and "vkeci check" in text


def test_unreachable_is_status_zero():
    kube = KubeClient(Credentials(host="http://127.0.0.1:1"), timeout=1, connect_timeout=0.5)
    with pytest.raises(KubeError) as info:
        kube.get("/version")
    assert info.value.status == 0


@responses.activate
def test_watch_yields_events():
    lines = [{"type": "ADDED", "object": {"metadata": {"name": "a"}}}, {"type": "BOOKMARK", "object": {}}]
    body = "\n".join(json.dumps(x) for x in lines) + "\n"
    responses.get(HOST + "/api/v1/pods", body=body)
    events = list(client().watch("/api/v1/pods", {"fieldSelector": "spec.nodeName=n"}, read_timeout=5))
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    assert "watch=true" in responses.calls[0].request.url


@responses.activate
def test_limiter_is_used_with_priority():
    responses.get(HOST + "/version", json={})
    bucket = TokenBucket(1, 3, reserve=2)
    normal, urgent = client(limiter=bucket), client(limiter=bucket, priority=True)
    normal.get("/version")  # leaves exactly the reserve
    assert bucket.try_acquire() > 0
    urgent.get("/version")
    urgent.get("/version")


def test_pod_path_escapes():
    assert pod_path("ns", "a b", "status") == "/api/v1/namespaces/ns/pods/a%20b/status"


def test_load_credentials_from_kubeconfig(tmp_path):
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t0ken"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(cfg))
    creds = load_credentials(str(path))
    assert creds.host == "https://127.0.0.1:6443"
    assert creds.token is not None and creds.token() == "Bearer t0ken"


def test_bad_kubeconfig_is_one_clear_error(tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text("not: [valid")
    with pytest.raises(KubeError) as info:
        load_credentials(str(path))
    assert "kubeconfig" in str(info.value)


class Exhausted:
    def acquire(self, priority=False, timeout=None):
        raise RateLimitTimeout("no token")


def test_exhausted_limiter_is_a_kube_error():
    kube = client(limiter=Exhausted())
    with pytest.raises(KubeError) as info:
        kube.get("/version")
    assert info.value.status == 429 and "VKECI_KUBE_QPS" in str(info.value)


def test_unreachable_keeps_the_root_cause_and_names_the_server():
    # R3: the message used to be cut at 200 characters, inside urllib3's wrappers ("...Failed to e").
    kube = KubeClient(Credentials(host="http://127.0.0.1:1"), timeout=1, connect_timeout=0.5)
    with pytest.raises(KubeError) as info:
        kube.get("/version")
    message = str(info.value)
    assert "http://127.0.0.1:1 did not answer" in message
    assert message.endswith("Failed to establish a new connection: [Errno 111] Connection refused")
    assert "HTTPConnectionPool" not in message and "Max retries" not in message


def test_an_untrusted_serving_certificate_is_named_as_the_cause(tmp_path):
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from vkeci.kubelet.tls import SelfSignedIssuer

    pair = SelfSignedIssuer("apiserver", ["127.0.0.1"]).issue()
    (tmp_path / "c.pem").write_bytes(pair.cert_pem)
    (tmp_path / "k.pem").write_bytes(pair.key_pem)
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        kube = KubeClient(Credentials(host=f"https://127.0.0.1:{server.server_port}"), timeout=5)
        with pytest.raises(KubeError) as info:
            kube.get("/version")
    finally:
        server.shutdown()
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value) and "self-signed certificate" in str(info.value)


@responses.activate
def test_requests_are_prepared_as_requests_would():
    """The client prepares its own requests (no Session.request merging): query, body, headers as before."""
    responses.post(HOST + "/api/v1/namespaces/ns/events", json={"ok": True})
    responses.get(HOST + "/api/v1/pods", json={})
    responses.delete(HOST + "/api/v1/namespaces/ns/pods/p", json={})
    kube = client()
    kube.post("/api/v1/namespaces/ns/events", {"message": "é"})
    kube.get("/api/v1/pods", {"labelSelector": "a=b,c in (d)", "limit": 5, "continue": None})
    kube.delete("/api/v1/namespaces/ns/pods/p")
    post, get, delete = (c.request for c in responses.calls)
    assert json.loads(post.body) == {"message": "é"}
    assert post.headers["Content-Type"] == "application/json"
    assert post.headers["Content-Length"] == str(len(post.body))
    assert post.headers["Accept"] == "application/json" and post.headers["User-Agent"] == "vkeci"
    assert post.headers["Authorization"] == "Bearer abc"
    assert get.url == HOST + "/api/v1/pods?labelSelector=a%3Db%2Cc+in+%28d%29&limit=5"
    assert "Content-Length" not in get.headers
    assert delete.headers["Content-Length"] == "0"


def test_the_connection_pool_is_looked_up_once(monkeypatch):
    """One API server, one TLS setting: the adapter keeps the pool instead of rebuilding its key per request."""
    from requests.adapters import HTTPAdapter

    lookups = []
    real = HTTPAdapter.get_connection_with_tls_context

    def counting(self, request, verify, proxies=None, cert=None):
        lookups.append(request.url)
        return real(self, request, verify, proxies=proxies, cert=cert)

    monkeypatch.setattr(HTTPAdapter, "get_connection_with_tls_context", counting)
    kube = KubeClient(Credentials(host="http://127.0.0.1:1"), timeout=1, connect_timeout=0.5)
    for _ in range(3):
        with pytest.raises(KubeError):
            kube.get("/version")
    assert len(lookups) == 1
