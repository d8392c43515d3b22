"""Admission latency of `vkeci webhook` at a steady rate (default 50 pods/s), over loopback TLS.

The webhook server (the real :class:`vkeci.webhook.server.WebhookServer` with a self-signed certificate,
an eci-profile of ``--selectors`` selectors and a namespace table) runs in a child process, so the load
generator does not share its interpreter. The generator sends AdmissionReviews of a realistic pod (two
containers, labels, annotations, tolerations: about 3 KB) on a fixed schedule (open loop: a slow answer
does not delay the next request), over a few keep-alive connections as the API server does, and reports
p50/p99/max of the time from sending a request to having its answer.

    python scripts/bench_webhook.py                      # 50/s for 20 s
    python scripts/bench_webhook.py --rate 200 --seconds 30 --json out.json
    python scripts/bench_webhook.py --cluster            # through a real kube-apiserver, see below

With ``--cluster`` it starts the local control plane (``e2e.cluster``) and `vkeci webhook` as a process,
installs deploy/kustomize/components/webhook/mutatingwebhook.yaml pointed at it, and creates pods
(``dryRun=All``: admission runs in full, nothing is stored or scheduled) at the same rate, once with the
webhook and once without, so the difference of the two create latencies is what the webhook costs a pod
creation; it also reads the API server's own histogram of the webhook's calls
(``apiserver_admission_webhook_admission_duration_seconds``).

Loopback only (127.0.0.1); nothing else is contacted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from e2e.harness import free_port  # noqa: E402


def profile_data(selectors: int) -> dict[str, str]:
    """An eci-profile with ``selectors`` selectors, the last of which matches the benchmark's pods."""
    items: list[dict[str, Any]] = [
        {
            "name": f"team-{i}",
            "namespaceSelector": {"matchLabels": {"team": f"t{i}"}},
            "objectSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["batch", "web"]}]},
            "effect": {"annotations": {"k8s.aliyun.com/eci-use-specs": "2-4Gi"}, "labels": {"cost": f"c{i}"}},
        }
        for i in range(selectors - 1)
    ]
    items.append(
        {
            "name": "bench",
            "namespaceSelector": {"matchLabels": {"team": "bench"}},
            "effect": {"annotations": {"k8s.aliyun.com/eci-spot-strategy": "SpotAsPriceGo"}},
        }
    )
    return {"selectors": json.dumps(items), "vSwitchIds": "vsw-a,vsw-b", "securityGroupId": "sg-bench"}


def serve(port_file: str, selectors: int) -> None:
    """Child process: serve until stdin closes."""
    from vkeci.core.admission import Target
    from vkeci.core.profile import parse_profile
    from vkeci.kubelet.tls import SelfSignedIssuer, ServingTls
    from vkeci.webhook.admit import Admitter
    from vkeci.webhook.server import WebhookServer

    class Fixed:
        def __init__(self) -> None:
            self.profile = parse_profile(profile_data(selectors))

        def current(self) -> Any:
            return self.profile

    namespaces = {
        f"ns-{i}": {"metadata": {"name": f"ns-{i}", "labels": {"team": "bench", "alibabacloud.com/eci": "true"}}}
        for i in range(100)
    }
    tls = ServingTls(SelfSignedIssuer("bench", ["127.0.0.1"]), None, purpose="webhook", client_certs=False)
    server = WebhookServer(Admitter(namespaces.get, Fixed(), Target()), tls, host="127.0.0.1", port=0)
    server.start()
    from cryptography.hazmat.primitives import serialization

    ca = tls.certificate.public_bytes(serialization.Encoding.PEM).decode()
    Path(port_file).write_text(json.dumps({"port": server.port, "ca": ca}))
    sys.stdin.read()
    server.stop()


def review(index: int) -> bytes:
    """An AdmissionReview for the ``index``-th pod of a Deployment."""
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "web-7d4b9c8f6-",
            "namespace": f"ns-{index % 100}",
            "labels": {"app": "web", "pod-template-hash": "7d4b9c8f6", "tier": "web"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-12-02T10:00:00Z"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "web-7d4b9c8f6",
                    "uid": "rs",
                    "controller": True,
                }
            ],
        },
        "spec": {
            "containers": [
                {
                    "name": name,
                    "image": f"registry.example.com/{name}:1.2.3",
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "env": [{"name": f"VAR_{i}", "value": "x" * 20} for i in range(10)],
                    "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
                    "volumeMounts": [{"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io"}],
                }
                for name in ("app", "sidecar")
            ],
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
            ],
            "volumes": [{"name": "kube-api-access", "emptyDir": {}}],
            "restartPolicy": "Always",
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
        },
    }
    body = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": f"bench-{index}",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": pod["metadata"]["namespace"],
            "operation": "CREATE",
            "object": pod,
            "dryRun": False,
        },
    }
    return json.dumps(body).encode()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def run(rate: float, seconds: float, connections: int, selectors: int) -> dict[str, Any]:
    """Start the child server, send ``rate`` reviews a second for ``seconds``, return the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        port_file = os.path.join(tmp, "port.json")
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve", port_file, "--selectors", str(selectors)],
            stdin=subprocess.PIPE,
            cwd=ROOT,
        )
        try:
            deadline = time.monotonic() + 30
            while not os.path.exists(port_file) or not Path(port_file).read_text():
                if time.monotonic() > deadline or child.poll() is not None:
                    raise SystemExit("the webhook server did not start")
                time.sleep(0.05)
            info = json.loads(Path(port_file).read_text())
            ca_file = os.path.join(tmp, "ca.pem")
            Path(ca_file).write_text(info["ca"])
            url = f"https://127.0.0.1:{info['port']}/mutate-pods"
            return _load(url, ca_file, rate, seconds, connections)
        finally:
            assert child.stdin is not None
            child.stdin.close()
            child.wait(10)


def _at_rate(send: Callable[[int], None], rate: float, total: int, connections: int) -> float:
    """Call ``send(0)`` .. ``send(total - 1)`` at ``rate`` a second from ``connections`` threads, an open loop
    (a slow answer does not hold back the next call); return the seconds until the last one returned."""
    with ThreadPoolExecutor(max_workers=connections) as pool:
        start = time.perf_counter()
        for index in range(total):
            delay = start + index / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(send, index)
    return time.perf_counter() - start


def _load(url: str, ca_file: str, rate: float, seconds: float, connections: int) -> dict[str, Any]:
    local = threading.local()
    bodies = [review(i) for i in range(200)]
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def send(index: int) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        started = time.perf_counter()
        try:
            answer = session.post(url, data=bodies[index % len(bodies)], verify=ca_file, timeout=10)
            ok = answer.status_code == 200 and answer.json()["response"].get("patch")
        except requests.RequestException as exc:
            ok, answer = False, exc
        elapsed = time.perf_counter() - started
        with lock:
            if ok:
                latencies.append(elapsed)
            else:
                errors.append(str(answer)[:200])

    # Warm-up: open the connections (TLS handshakes are not admissions).
    with ThreadPoolExecutor(max_workers=connections) as pool:
        list(pool.map(send, range(connections * 4)))
    latencies.clear()
    total = int(rate * seconds)
    wall = _at_rate(send, rate, total, connections)
    ms = [value * 1000 for value in latencies]
    server = _server_side(url.replace("/mutate-pods", "/metrics"), ca_file)
    return {
        "rate_per_s": rate,
        "seconds": seconds,
        "sent": total,
        "answered": len(ms),
        "errors": len(errors),
        "achieved_per_s": round(len(ms) / wall, 1),
        "p50_ms": round(percentile(ms, 0.50), 2) if ms else None,
        "p90_ms": round(percentile(ms, 0.90), 2) if ms else None,
        "p99_ms": round(percentile(ms, 0.99), 2) if ms else None,
        "max_ms": round(max(ms), 2) if ms else None,
        "mean_ms": round(statistics.fmean(ms), 2) if ms else None,
        "server_side": server,
        "first_error": errors[0] if errors else "",
    }


def _server_side(url: str, ca_file: str | bool) -> dict[str, Any]:
    """The webhook's own histogram (parse, decide, encode; no TLS or HTTP): share of admissions under each bound."""
    text = requests.get(url, verify=ca_file, timeout=10).text
    buckets: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("vkeci_webhook_admission_seconds_bucket"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[bound] = float(line.rsplit(" ", 1)[1])
    total = buckets.get("+Inf") or 1.0
    return {f"under_{float(b) * 1000:g}ms": round(n / total, 4) for b, n in buckets.items() if b != "+Inf"}


def through_apiserver(rate: float, seconds: float, connections: int) -> dict[str, Any]:
    """Pod creations at ``rate`` through a local kube-apiserver, with the webhook and without."""
    import uuid

    import yaml

    from e2e.cluster import Cluster
    from vkeci.clients.kube import KubeClient, load_credentials

    with tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster(Path(tmp) / "cluster", die_with_parent=True)
        cluster.up()
        webhook: subprocess.Popen[bytes] | None = None
        try:
            kube = KubeClient(load_credentials(str(cluster.kubeconfig)), timeout=15)
            port = free_port()
            log_path = Path(tmp) / "webhook.log"
            with open(log_path, "wb") as log:
                webhook = subprocess.Popen(
                    [sys.executable, "-m", "vkeci", "webhook", "--kubeconfig", str(cluster.kubeconfig),
                     "--listen", "127.0.0.1", f"--port={port}", "--service=", "--tls-san=127.0.0.1",
                     "--cert-check-interval=1", "--log-level=warning"],
                    cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                )  # fmt: skip
            config = yaml.safe_load(
                (ROOT / "deploy" / "kustomize" / "components" / "webhook" / "mutatingwebhook.yaml").read_text()
            )
            config["webhooks"][0]["clientConfig"] = {"url": f"https://127.0.0.1:{port}/mutate-pods"}
            kube.post("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations", config)
            namespace = f"bench-{uuid.uuid4().hex[:6]}"
            kube.post(
                "/api/v1/namespaces", {"metadata": {"name": namespace, "labels": {"alibabacloud.com/eci": "true"}}}
            )
            pod = json.loads(review(0))["request"]["object"]
            pod["metadata"]["namespace"] = namespace
            path = f"/api/v1/namespaces/{namespace}/pods"

            def create(_index: int) -> bool:
                created = kube.request("POST", path, params={"dryRun": "All"}, body=pod).json()
                return "nodeSelector" in created["spec"]

            deadline = time.monotonic() + 60
            while not create(0):  # the caBundle is written, then loaded by the API server
                if time.monotonic() > deadline:
                    raise SystemExit(f"the API server never called the webhook:\n{log_path.read_text()[-2000:]}")
                time.sleep(0.25)
            with_webhook = _paced(create, rate, seconds, connections, expect=True)
            admission = _apiserver_histogram(kube)
            metrics = requests.get(f"https://127.0.0.1:{port}/metrics", verify=False, timeout=10).text
            own = _server_side(f"https://127.0.0.1:{port}/metrics", False)
            connections_opened = next(
                float(line.split()[-1])
                for line in metrics.splitlines()
                if line.startswith("vkeci_webhook_connections_total")
            )
            kube.delete(
                f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{config['metadata']['name']}"
            )
            deadline = time.monotonic() + 30
            while create(0):  # the API server drops the configuration from its watch
                if time.monotonic() > deadline:
                    raise SystemExit("the webhook configuration did not go away")
                time.sleep(0.25)
            without = _paced(create, rate, seconds, connections, expect=False)
        finally:
            if webhook is not None:
                webhook.terminate()
                webhook.wait(15)
            cluster.down()
    return {
        "rate_per_s": rate,
        "seconds": seconds,
        "create_with_webhook": with_webhook,
        "create_without_webhook": without,
        "webhook_cost_p50_ms": round(with_webhook["p50_ms"] - without["p50_ms"], 2),
        "webhook_cost_p99_ms": round(with_webhook["p99_ms"] - without["p99_ms"], 2),
        "apiserver_webhook_histogram": admission,
        "webhook_own_histogram": own,
        "webhook_connections_opened": connections_opened,
    }


def _paced(call: Any, rate: float, seconds: float, connections: int, *, expect: bool) -> dict[str, Any]:
    latencies: list[float] = []
    wrong: list[int] = []
    lock = threading.Lock()

    def one(index: int) -> None:
        started = time.perf_counter()
        result = call(index)
        elapsed = time.perf_counter() - started
        with lock:
            latencies.append(elapsed * 1000)
            if result != expect:
                wrong.append(index)

    total = int(rate * seconds)
    _at_rate(one, rate, total, connections)
    return {
        "sent": total,
        "not_as_expected": len(wrong),
        "p50_ms": round(percentile(latencies, 0.5), 2),
        "p90_ms": round(percentile(latencies, 0.9), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "max_ms": round(max(latencies), 2),
    }


def _apiserver_histogram(kube: Any) -> dict[str, float]:
    text = kube.request("GET", "/metrics").text
    buckets: dict[str, float] = {}
    for line in text.splitlines():
        if (
            line.startswith("apiserver_admission_webhook_admission_duration_seconds_bucket")
            and "pods.webhook.vkeci.io" in line
        ):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[bound] = buckets.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    total = buckets.get("+Inf") or 1.0
    return {f"under_{float(b) * 1000:g}ms": round(n / total, 4) for b, n in buckets.items() if b != "+Inf"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="admissions per second (default 50)")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to send (default 20)")
    parser.add_argument("--connections", type=int, default=4, help="keep-alive connections (default 4)")
    parser.add_argument("--selectors", type=int, default=10, help="selectors in the eci-profile (default 10)")
    parser.add_argument("--cluster", action="store_true", help="through a local kube-apiserver (see above)")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.selectors)
        return 0
    if args.cluster:
        result = through_apiserver(args.rate, args.seconds, args.connections)
        failed = bool(
            result["create_with_webhook"]["not_as_expected"] or result["create_without_webhook"]["not_as_expected"]
        )
    else:
        result = run(args.rate, args.seconds, args.connections, args.selectors)
        failed = bool(result["errors"])
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
