"""vk-eci with exactly the identity the manifests give it: the kustomize base applied with the real kubectl,
the ServiceAccount's token from a TokenRequest, and `vkeci run` (and `--decommission`) with nothing else.

Any 403 in the daemon's log fails the test, and so does a request the RBAC table does not account for
(the daemon's own request counts, from --stats-file). No Deployment pod runs here (no kubelet), so the
daemon runs beside the control plane as a process, as every daemon e2e test does.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from vkfixtures import *  # noqa: F403 - pytest fixtures: fake_eci, kube
from vkharness import DaemonProcess, Kube, pod_manifest, running, wait_for

from e2e.cluster import Cluster
from e2e.manifests import KUSTOMIZE, METHOD_VERBS, NAMESPACE, calls_for


@pytest.fixture(scope="module")
def installed(cluster: Cluster) -> Iterator[None]:
    """The kustomize base applied as an admin would (`kubectl apply -k`); deleted afterwards."""
    cluster.kubectl("apply", "-k", str(KUSTOMIZE / "base"))
    yield
    cluster.kubectl("delete", "-k", str(KUSTOMIZE / "base"), "--wait=false", "--ignore-not-found", check=False)


# Requests the scenario must make (the daemon's own counts), so the coverage check above is not vacuous.
EXERCISED = {
    "GET pods",
    "PATCH pods/status",
    "DELETE pods",
    "POST events",
    "PATCH nodes/status",
    "GET configmaps",
    "GET secrets",
    "GET services",
    "POST serviceaccounts/token",
    "POST tokenreviews",
    "POST subjectaccessreviews",
    "PUT leases",
}


def service_account_kubeconfig(cluster: Cluster, path: Path) -> Path:
    """A kubeconfig holding only the vkeci ServiceAccount's token (TokenRequest) and the cluster CA."""
    token = cluster.kubectl("-n", NAMESPACE, "create", "token", "vkeci", "--duration=1h").stdout.strip()
    assert token, "TokenRequest returned no token"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "e2e", "cluster": {"server": cluster.api_url, "certificate-authority": str(cluster.pki.ca_crt)}}
        ],
        "users": [{"name": "vkeci", "user": {"token": token}}],
        "contexts": [{"name": "vkeci", "context": {"cluster": "e2e", "user": "vkeci"}}],
        "current-context": "vkeci",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def kubelet_reader_token(cluster: Cluster, namespace: str) -> str:
    """The token of a ServiceAccount bound to the built-in system:kubelet-api-admin (what an API client
    needs to read a kubelet's logs)."""
    cluster.kubectl("-n", namespace, "create", "serviceaccount", "kubelet-reader")
    cluster.kubectl(
        "create",
        "clusterrolebinding",
        f"{namespace}-kubelet-reader",
        "--clusterrole=system:kubelet-api-admin",
        f"--serviceaccount={namespace}:kubelet-reader",
    )
    return cluster.kubectl("-n", namespace, "create", "token", "kubelet-reader").stdout.strip()


def uncovered(stats_file: Path) -> dict[str, int]:
    """Requests the daemon made (``"METHOD resource"`` -> count) that no base rule of the table covers."""
    counts: dict[str, int] = json.loads(stats_file.read_text())["kubernetes"]
    table = calls_for("base")
    missing = {}
    for request, count in counts.items():
        method, _, resource = request.partition(" ")
        if not any(c.resource == resource and METHOD_VERBS[method] & set(c.verbs) for c in table):
            missing[request] = count
    return missing


def forbidden_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if " 403 " in line or "Forbidden" in line]


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_daemon_runs_with_only_the_manifests_rbac(
    installed: None, cluster: Cluster, fake_eci: Any, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    whoami = service_account_kubeconfig(cluster, tmp_path / "vkeci.kubeconfig")
    who = subprocess.run(
        [
            str(cluster.bin("kubectl")),
            "--kubeconfig",
            str(whoami),
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert who.stdout == f"system:serviceaccount:{NAMESPACE}:vkeci"
    node = f"vk-rbac-{uuid.uuid4().hex[:6]}"
    stats = tmp_path / "stats.json"
    daemon = DaemonProcess(
        whoami, fake_eci.endpoint, node, tmp_path / "daemon.log", extra_args=[f"--stats-file={stats}"]
    )
    daemon.start()
    try:

        def unless_forbidden(check: Callable[[], bool]) -> Callable[[], bool]:
            # A 403 fails at once, naming the request, rather than as a timeout later.
            def checked() -> bool:
                denied = forbidden_lines(daemon.log_text())
                assert not denied, "the daemon was refused:\n" + "\n".join(denied[:5])
                return check()

            return checked

        wait_for(unless_forbidden(lambda: kube.ready(node) == "True"), 60, f"node {node} Ready")
        # A pod that needs what pods need: a ConfigMap and a Secret in its env, a projected token
        # (the default automount), service-link variables (the default enableServiceLinks).
        cluster.kubectl("-n", namespace, "create", "configmap", "settings", "--from-literal=mode=e2e")
        cluster.kubectl("-n", namespace, "create", "secret", "generic", "creds", "--from-literal=password=p")
        wait_for(
            lambda: cluster.kubectl("-n", namespace, "get", "serviceaccount", "default", check=False).returncode == 0,
            30,
            "the namespace's default ServiceAccount",
        )
        env = [
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        ]
        pod = pod_manifest("web", node, containers=[{"name": "web", "image": "nginx:1.27", "env": env}])
        kube.create(namespace, pod)
        wait_for(unless_forbidden(lambda: running(kube.pod(namespace, "web"))), 60, "pod web Running")
        # The kubelet API authenticates a bearer token with a TokenReview and authorizes it with a
        # SubjectAccessReview, both made with the daemon's identity. (Called directly on 127.0.0.1: the API
        # server refuses to proxy to a loopback node address.)
        reader = kubelet_reader_token(cluster, namespace)
        port = daemon.env["KUBELET_PORT"]
        logs = requests.get(
            f"https://127.0.0.1:{port}/containerLogs/{namespace}/web/web",
            headers={"Authorization": f"Bearer {reader}"},
            verify=False,  # the daemon's self-signed serving certificate, as in the manifests' default mode
            timeout=30,
        )
        assert logs.status_code == 200, logs.text
        cluster.kubectl("-n", namespace, "delete", "pod", "web", "--wait=false")
        wait_for(unless_forbidden(lambda: not kube.pods(namespace)), 60, "pod web gone")
        assert daemon.stop() == 0
        assert not forbidden_lines(daemon.log_text()), forbidden_lines(daemon.log_text())
        assert uncovered(stats) == {}
        made = set(json.loads(stats.read_text())["kubernetes"])
        assert EXERCISED <= made, f"the scenario did not make {EXERCISED - made}"

        # Uninstall: --decommission with the same identity cordons the node and deletes it.
        # (--decommission returns before the daemon writes --stats-file: no request counts for this part.)
        drain_args = ["--decommission", "--drain-timeout=60"]
        drain = DaemonProcess(whoami, fake_eci.endpoint, node, tmp_path / "decommission.log", extra_args=drain_args)
        drain.start()
        deadline = time.monotonic() + 90
        while drain.alive and time.monotonic() < deadline:
            time.sleep(0.5)
        assert drain.stop() == 0, drain.log_text()[-3000:]
        assert not forbidden_lines(drain.log_text()), forbidden_lines(drain.log_text())
        gone = cluster.kubectl("get", "node", node, check=False)
        assert gone.returncode != 0 and "NotFound" in gone.stderr
    finally:
        daemon.stop()
        print("---- daemon log (last 80 lines) ----")
        print("\n".join(daemon.log_text().splitlines()[-80:]))
        cluster.kubectl("delete", "node", node, "--ignore-not-found", "--wait=false", check=False)
        cluster.kubectl(
            "delete", "clusterrolebinding", f"{namespace}-kubelet-reader", "--ignore-not-found", check=False
        )
