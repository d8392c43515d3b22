"""vk-eci with exactly the identity the manifests give it, in in-cluster mode.

The kustomize base is applied with the real kubectl; the ServiceAccount's token comes from a TokenRequest;
`vkeci run` gets nothing but what a pod of the Deployment would: KUBERNETES_SERVICE_HOST/PORT and the
token, CA and namespace files at the in-cluster paths (/var/run/secrets/kubernetes.io/serviceaccount, on a
tmpfs in a private mount namespace of the daemon's own, so the machine's /run is untouched), and no
kubeconfig. No Deployment pod runs here (the control plane has no kubelet), so the daemon is a process
beside it, as in every daemon e2e test.

Any 403 in the daemon's log fails a test at once, and so does a request the RBAC table does not account
for (the daemon's own request counts, --stats-file).
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
from vkfixtures import *  # noqa: F403 - pytest fixtures: fake_eci, kube

from e2e.cluster import Cluster
from e2e.harness import DaemonProcess, Kube, fake_groups, nginx_deployment, pod_manifest, running, wait_for
from e2e.helm import ensure_helm
from e2e.manifests import CHART, KUSTOMIZE, METHOD_VERBS, NAMESPACE, calls_for, helm, with_components
from e2e.netns import node_ip

SERVICE_ACCOUNT = f"system:serviceaccount:{NAMESPACE}:vkeci"
# Requests the scenarios must make (the daemon's own counts), so the coverage check is not vacuous.
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
# Mounts a tmpfs on /run (= /var/run) in the daemon's private mount namespace, puts the ServiceAccount
# files where a pod has them, then becomes the daemon (exec: same pid, so kill -9 reaches it).
IN_CLUSTER = (
    "mount -t tmpfs -o size=1m,mode=0755 vkeci-e2e /run"
    ' && dir=/run/secrets/kubernetes.io/serviceaccount && mkdir -p "$dir"'
    ' && src="$VKECI_E2E_SERVICEACCOUNT" && cp "$src/token" "$src/ca.crt" "$src/namespace" "$dir/"'
    ' && exec "$@"'
)


@pytest.fixture(scope="module")
def installed(cluster: Cluster) -> Iterator[None]:
    """The kustomize base applied as an admin would (`kubectl apply -k`); deleted afterwards."""
    cluster.kubectl("apply", "-k", str(KUSTOMIZE / "base"))
    yield
    cluster.kubectl("delete", "-k", str(KUSTOMIZE / "base"), "--wait=false", "--ignore-not-found", check=False)


@pytest.fixture
def service_account(installed: None, cluster: Cluster, tmp_path: Path) -> Path:
    """A directory laid out like a pod's service-account mount: token (TokenRequest), ca.crt, namespace."""
    token = cluster.kubectl("-n", NAMESPACE, "create", "token", "vkeci", "--duration=1h").stdout.strip()
    assert token, "TokenRequest returned no token"
    directory = tmp_path / "serviceaccount"
    directory.mkdir()
    (directory / "token").write_text(token)
    (directory / "ca.crt").write_bytes(Path(cluster.pki.ca_crt).read_bytes())
    (directory / "namespace").write_text(NAMESPACE)
    for path in directory.iterdir():
        path.chmod(0o600)
    who = _kubectl_as(cluster, token, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
    assert who == SERVICE_ACCOUNT
    return directory


def _kubectl_as(cluster: Cluster, token: str, *args: str) -> str:
    cmd = [str(cluster.bin("kubectl")), "--server", cluster.api_url, "--certificate-authority", str(cluster.pki.ca_crt)]
    result = subprocess.run([*cmd, "--token", token, *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def in_cluster_daemon(
    cluster: Cluster, fake: Any, sa: Path, node: str, log: Path, extra_args: list[str], home: Path
) -> DaemonProcess:
    """`vkeci run` as the Deployment's pod would run it: in-cluster credentials only."""
    home.mkdir(exist_ok=True)  # no ~/.kube/config in it
    env = {
        "KUBECONFIG": "",
        "HOME": str(home),
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(cluster.ports.apiserver),
        "VKECI_E2E_SERVICEACCOUNT": str(sa),
    }
    # DaemonProcess wants a kubeconfig path; the empty KUBECONFIG above overrides it.
    proc = DaemonProcess(Path("/nonexistent"), fake.endpoint, node, log, extra_args=extra_args, env=env)
    proc.args = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        IN_CLUSTER,
        "vkeci-in-cluster",
        *proc.args,
    ]
    return proc.start()


def kubelet_reader_token(cluster: Cluster, namespace: str) -> str:
    """The token of a ServiceAccount bound to the built-in system:kubelet-api-admin (what an API client
    needs to read a kubelet's logs and stats)."""
    cluster.kubectl("-n", namespace, "create", "serviceaccount", "kubelet-reader")
    cluster.kubectl(
        "create",
        "clusterrolebinding",
        f"{namespace}-kubelet-reader",
        "--clusterrole=system:kubelet-api-admin",
        f"--serviceaccount={namespace}:kubelet-reader",
    )
    return cluster.kubectl("-n", namespace, "create", "token", "kubelet-reader").stdout.strip()


def lease_version(cluster: Cluster, node: str) -> str:
    """The resourceVersion of the node's Lease ("" while there is none)."""
    result = cluster.kubectl(
        "-n", "kube-node-lease", "get", "lease", node, "-o", "jsonpath={.metadata.resourceVersion}", check=False
    )
    return result.stdout.strip() if result.returncode == 0 else ""


def kubelet_get(daemon: DaemonProcess, path: str, token: str) -> requests.Response:
    """GET on the daemon's kubelet API with a bearer token, directly on the node address where the harness
    makes it listen (10.250.0.1 inside the test namespace), as the API server would dial it."""
    return requests.get(
        f"https://{node_ip()}:{daemon.env['KUBELET_PORT']}{path}",
        headers={"Authorization": f"Bearer {token}"},
        verify=False,  # the daemon's self-signed serving certificate, the manifests' default mode
        timeout=30,
    )


def request_counts(stats_file: Path) -> dict[str, int]:
    """``"METHOD resource"`` -> requests, from the daemon's --stats-file."""
    return dict(json.loads(stats_file.read_text())["kubernetes"])


def uncovered(counts: dict[str, int]) -> dict[str, int]:
    """The requests that no base rule of the RBAC table covers."""
    table = calls_for("base")
    missing = {}
    for request, count in counts.items():
        method, _, resource = request.partition(" ")
        if not any(c.resource == resource and METHOD_VERBS[method] & set(c.verbs) for c in table):
            missing[request] = count
    return missing


def forbidden_lines(*daemons: DaemonProcess) -> list[str]:
    return [line for d in daemons for line in d.log_text().splitlines() if " 403 " in line or "Forbidden" in line]


def unless_forbidden(check: Callable[[], Any], *daemons: DaemonProcess) -> Callable[[], Any]:
    """``check``, but a 403 in a daemon's log fails at once, naming the request (not as a timeout later)."""

    def checked() -> Any:
        denied = forbidden_lines(*daemons)
        assert not denied, "the daemon was refused:\n" + "\n".join(denied[:5])
        return check()

    return checked


def dump(*daemons: DaemonProcess) -> None:
    for d in daemons:
        d.stop()
        print(f"---- {d.log_path.name} (last 80 lines) ----")  # shown when the test failed
        print("\n".join(d.log_text().splitlines()[-80:]))


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_pod_lifecycle_logs_and_decommission_with_only_the_manifests_rbac(
    service_account: Path, cluster: Cluster, fake_eci: Any, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    node = f"vk-rbac-{uuid.uuid4().hex[:6]}"
    stats = tmp_path / "stats.json"
    home = tmp_path / "home"
    daemon = in_cluster_daemon(
        cluster, fake_eci, service_account, node, tmp_path / "daemon.log", [f"--stats-file={stats}"], home
    )
    drain: DaemonProcess | None = None
    try:
        wait_for(unless_forbidden(lambda: kube.ready(node) == "True", daemon), 60, f"node {node} Ready")
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
        kube.create(namespace, pod_manifest("web", node, containers=[{"name": "web", "image": "nginx", "env": env}]))
        wait_for(unless_forbidden(lambda: running(kube.pod(namespace, "web")), daemon), 60, "pod web Running")
        # The kubelet API checks a bearer token with a TokenReview and authorizes it with a
        # SubjectAccessReview, both made with the daemon's identity.
        reader = kubelet_reader_token(cluster, namespace)
        logs = kubelet_get(daemon, f"/containerLogs/{namespace}/web/web", reader)
        assert logs.status_code == 200, logs.text
        # kubectl exec through the API server's node proxy: the API server's client certificate is checked
        # against the in-cluster CA and authorized with a SubjectAccessReview of the daemon's identity.
        result = cluster.kubectl("-n", namespace, "exec", "web", "--", "sh", "-c", "echo $MODE", check=False)
        assert (result.returncode, result.stdout) == (0, "e2e\n"), result.stderr
        cluster.kubectl("-n", namespace, "delete", "pod", "web", "--wait=false")
        wait_for(unless_forbidden(lambda: not kube.pods(namespace), daemon), 60, "pod web gone")
        # The Lease is renewed (PUT) every --lease-interval; on a fast run the scenario can end before the
        # first renewal, so wait for one to be seen before counting.
        first = lease_version(cluster, node)
        wait_for(unless_forbidden(lambda: lease_version(cluster, node) != first, daemon), 30, "a lease renewal")
        assert daemon.stop() == 0
        assert not forbidden_lines(daemon)
        counts = request_counts(stats)
        assert uncovered(counts) == {}
        assert EXERCISED <= set(counts), f"the scenario did not make {EXERCISED - set(counts)}"

        # Uninstall: --decommission with the same identity cordons the node and deletes it.
        # (It returns before the daemon writes --stats-file: no request counts for this part.)
        log = tmp_path / "decommission.log"
        drain = in_cluster_daemon(cluster, fake_eci, service_account, node, log, ["--decommission"], home)
        deadline = time.monotonic() + 90
        while drain.alive and time.monotonic() < deadline:
            time.sleep(0.5)
        assert drain.stop() == 0, drain.log_text()[-3000:]
        assert not forbidden_lines(drain)
        gone = cluster.kubectl("get", "node", node, check=False)
        assert gone.returncode != 0 and "NotFound" in gone.stderr
    finally:
        dump(daemon, *([drain] if drain else []))
        cluster.kubectl("delete", "node", node, "--ignore-not-found", "--wait=false", check=False)
        cluster.kubectl(
            "delete", "clusterrolebinding", f"{namespace}-kubelet-reader", "--ignore-not-found", check=False
        )


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_scale_kill_9_and_restart_with_only_the_manifests_rbac(
    service_account: Path, cluster: Cluster, fake_eci: Any, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    node = f"vk-rbac-{uuid.uuid4().hex[:6]}"
    home = tmp_path / "home"
    first = in_cluster_daemon(cluster, fake_eci, service_account, node, tmp_path / "first.log", [], home)
    stats = tmp_path / "stats.json"
    second: DaemonProcess | None = None
    try:
        wait_for(unless_forbidden(lambda: kube.ready(node) == "True", first), 60, f"node {node} Ready")
        kube.create(namespace, nginx_deployment("web", node, 3))

        def all_running() -> bool:
            return len([p for p in kube.pods(namespace) if running(p)]) == 3

        wait_for(unless_forbidden(all_running, first), 90, "3 replicas Running")
        first.kill()  # kill -9: no clean-up at all
        second = in_cluster_daemon(
            cluster, fake_eci, service_account, node, tmp_path / "second.log", [f"--stats-file={stats}"], home
        )
        # The node is still Ready (its lease has not run out): wait for the new daemon itself.
        wait_for(unless_forbidden(lambda: "daemon running" in second.log_text(), second), 60, "the new daemon running")
        reader = kubelet_reader_token(cluster, namespace)
        summary = kubelet_get(second, "/stats/summary", reader)
        assert summary.status_code == 200, summary.text
        kube.scale(namespace, "web", 0)
        wait_for(unless_forbidden(lambda: not kube.pods(namespace), second), 90, "every replica gone")
        wait_for(unless_forbidden(lambda: not fake_groups(fake_eci, node), second), 60, "every group gone")
        assert second.stop() == 0
        assert not forbidden_lines(first, second)
        assert uncovered(request_counts(stats)) == {}
    finally:
        dump(first, *([second] if second else []))
        cluster.kubectl("delete", "node", node, "--ignore-not-found", "--wait=false", check=False)
        cluster.kubectl(
            "delete", "clusterrolebinding", f"{namespace}-kubelet-reader", "--ignore-not-found", check=False
        )


@pytest.mark.parametrize("components", [[], ["tls-csr"], ["tls-csr-approve"], ["decommission"], ["webhook"]])
def test_kustomize_objects_pass_the_api_servers_validation(
    installed: None, cluster: Cluster, tmp_path: Path, components: list[str]
) -> None:
    directory = with_components(tmp_path, components)
    result = cluster.kubectl("apply", "--dry-run=server", "-k", str(directory))
    assert "(server dry run)" in result.stdout


def test_helm_install_passes_the_api_servers_validation_and_prints_its_notes(cluster: Cluster, namespace: str) -> None:
    args = ["install", "vkeci-dry", str(CHART), "--namespace", namespace, "--kubeconfig", str(cluster.kubeconfig)]
    result = helm(
        ensure_helm(),
        *args,
        "--dry-run=server",
        "--set",
        "tls.mode=csr",
        "--set",
        "settings.region=cn-hangzhou",
        "--set",
        "webhook.enabled=true",
    )
    assert "STATUS: pending-install" in result.stdout
    assert "kind: MutatingWebhookConfiguration" in result.stdout
    notes = result.stdout.split("NOTES:", 1)[1]
    assert "kubectl certificate approve" in notes and "credential chain" in notes
    assert "deployment/vkeci-dry-webhook" in notes
