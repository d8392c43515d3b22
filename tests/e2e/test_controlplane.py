"""The local control plane is the real thing: scheduler, controller-manager, RBAC, tokens, CSR signing, restarts."""

from __future__ import annotations

import base64
import datetime
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.build import K8S_VERSION
from e2e.cluster import Cluster

REPO = Path(__file__).resolve().parents[2]
TAINT_KEY = "vkeci.e2e/virtual"


def wait_until(what: str, check: Callable[[], Any], timeout: float = 60.0, interval: float = 0.5) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def get_json(cluster: Cluster, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def now_rfc3339(micro: bool = False) -> str:
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


def heartbeat(cluster: Cluster, node: str) -> None:
    """Do what a kubelet does to stay Ready: renew the node lease, post a Ready condition and capacity."""
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": node, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": now_rfc3339(micro=True)},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(lease))
    ready = {
        "type": "Ready",
        "status": "True",
        "reason": "KubeletReady",
        "message": "e2e test heartbeat",
        "lastHeartbeatTime": now_rfc3339(),
        "lastTransitionTime": now_rfc3339(),
    }
    # Without capacity the scheduler sees room for 0 pods ("Too many pods"); a kubelet always reports it.
    resources = {"cpu": "8", "memory": "32Gi", "pods": "110"}
    patch = {"status": {"conditions": [ready], "capacity": resources, "allocatable": resources}}
    cluster.kubectl("patch", "node", node, "--subresource=status", "--type=strategic", "-p", json.dumps(patch))


@pytest.fixture
def tainted_node(cluster: Cluster) -> Iterator[str]:
    """A Node object (no kubelet behind it) with a NoSchedule taint, made Ready once; deleted afterwards."""
    name = f"vk-e2e-{uuid.uuid4().hex[:6]}"
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "type": "virtual-kubelet"}},
        "spec": {"taints": [{"key": TAINT_KEY, "value": "true", "effect": "NoSchedule"}]},
    }
    cluster.kubectl("create", "-f", "-", input=json.dumps(node))
    try:
        heartbeat(cluster, name)
        yield name
    finally:
        cluster.kubectl("delete", "node", name, "--ignore-not-found", "--wait=false", check=False)
        cluster.kubectl("delete", "lease", name, "-n", "kube-node-lease", "--ignore-not-found", check=False)


def test_scheduler_binds_deployment_pods_to_the_tainted_node(cluster: Cluster, namespace: str, tainted_node: str):
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": tainted_node},
                    "tolerations": [{"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [{"name": "web", "image": "registry.k8s.io/pause:3.10"}],
                },
            },
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(deployment))

    def bound_pods() -> list[dict[str, Any]]:
        heartbeat(cluster, tainted_node)  # keep the node Ready while we wait, as a kubelet would
        pods = get_json(cluster, "pods", "-n", namespace, "-l", "app=web")["items"]
        bound = [p for p in pods if p["spec"].get("nodeName") == tainted_node]
        return bound if len(bound) == 2 else []

    pods = wait_until("both replicas bound to the tainted node", bound_pods, timeout=90)
    assert {p["spec"]["nodeName"] for p in pods} == {tainted_node}
    replicasets = get_json(cluster, "replicasets", "-n", namespace, "-l", "app=web")["items"]
    assert len(replicasets) == 1
    assert replicasets[0]["metadata"]["ownerReferences"][0]["name"] == "web"
    assert all(p["metadata"]["ownerReferences"][0]["name"] == replicasets[0]["metadata"]["name"] for p in pods)
    # The controller-manager's node-lifecycle controller lifted the not-ready taint admission put on the node.
    taints = get_json(cluster, "node", tainted_node)["spec"].get("taints", [])
    assert [t["key"] for t in taints] == [TAINT_KEY]


def test_node_goes_not_ready_when_heartbeats_stop(cluster: Cluster, tainted_node: str):
    # The controller-manager runs with a 20s grace period: a silent node is marked Unknown soon after.
    def ready_status() -> str:
        conditions = get_json(cluster, "node", tainted_node)["status"].get("conditions", [])
        return next((c["status"] for c in conditions if c["type"] == "Ready"), "")

    assert ready_status() == "True"
    wait_until("Ready=Unknown after heartbeats stop", lambda: ready_status() == "Unknown", timeout=75, interval=1)


def test_kubectl_matches_the_server_version(cluster: Cluster):
    versions = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert versions["clientVersion"]["gitVersion"] == K8S_VERSION
    assert versions["serverVersion"]["gitVersion"] == K8S_VERSION


def test_service_account_tokens_and_root_ca_configmap(cluster: Cluster, namespace: str):
    wait_until(
        "the default ServiceAccount",
        lambda: cluster.kubectl("get", "sa", "default", "-n", namespace, check=False).returncode == 0,
    )
    token = cluster.kubectl("create", "token", "default", "-n", namespace).stdout.strip()
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["iss"] == "https://kubernetes.default.svc.cluster.local"
    assert claims["sub"] == f"system:serviceaccount:{namespace}:default"

    def root_ca() -> str:
        r = cluster.kubectl("get", "configmap", "kube-root-ca.crt", "-n", namespace, "-o", "json", check=False)
        return json.loads(r.stdout)["data"]["ca.crt"] if r.returncode == 0 else ""

    assert wait_until("the kube-root-ca.crt ConfigMap", root_ca).strip() == cluster.pki.ca_crt.read_text().strip()


def test_rbac_is_enforced(cluster: Cluster, namespace: str):
    allowed = cluster.kubectl(
        "auth", "can-i", "list", "pods", "-n", namespace, f"--as=system:serviceaccount:{namespace}:default", check=False
    )
    assert allowed.stdout.strip() == "no"
    assert cluster.kubectl("auth", "can-i", "*", "*").stdout.strip() == "yes"


def test_kubelet_serving_csr_is_signed_by_the_cluster_ca(cluster: Cluster, tmp_path: Path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    node = f"vk-csr-{uuid.uuid4().hex[:6]}"
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                    x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{node}"),
                ]
            )
        )
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(node)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    request = {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": node},
        "spec": {
            "request": base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode(),
            "signerName": "kubernetes.io/kubelet-serving",
            "usages": ["digital signature", "server auth"],
        },
    }
    cluster.kubectl("create", "-f", "-", input=json.dumps(request))
    try:
        cluster.kubectl("certificate", "approve", node)

        def issued() -> str:
            return get_json(cluster, "csr", node).get("status", {}).get("certificate", "")

        pem = base64.b64decode(wait_until("the controller-manager to sign the CSR", issued, timeout=30))
        crt = x509.load_pem_x509_certificate(pem)
        ca = x509.load_pem_x509_certificate(cluster.pki.ca_crt.read_bytes())
        assert crt.issuer == ca.subject
        crt.verify_directly_issued_by(ca)
    finally:
        cluster.kubectl("delete", "csr", node, "--ignore-not-found", check=False)


def test_up_on_a_running_cluster_is_a_no_op(cluster: Cluster):
    before = {s.name: s.pid for s in cluster.status()}
    started = time.monotonic()
    cluster.up()
    assert {s.name: s.pid for s in cluster.status()} == before
    assert time.monotonic() - started < 15


def test_apiserver_restart_keeps_port_and_certificates(cluster: Cluster, namespace: str):
    url, old_pid = cluster.api_url, cluster.component_status("kube-apiserver").pid
    cluster.kubectl("create", "configmap", "survivor", "-n", namespace, "--from-literal=k=v")
    cluster.restart("kube-apiserver")
    status = cluster.component_status("kube-apiserver")
    assert status.state == "running" and status.pid != old_pid
    assert cluster.api_url == url
    assert get_json(cluster, "configmap", "survivor", "-n", namespace)["data"] == {"k": "v"}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "(gone)"


def _processes_mentioning(directory: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        if str(directory) in _cmdline(int(entry.name)) and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


def _dead(pid: int) -> bool:
    # Gone, or a zombie: the orphaned component's parent (init, here) may not reap it at once, or ever.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] in ("Z", "X")
    except OSError:
        return True


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "e2e.cluster", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def test_cli_up_status_crash_report_and_down_leave_nothing_behind(cluster: Cluster, tmp_path: Path):
    # `cluster` first: the binary is built and cached, so this measures a warm start-up.
    d = tmp_path / "cli-cluster"
    try:
        started = time.monotonic()
        up = _cli("up", "--dir", str(d))
        warm_start = time.monotonic() - started
        assert up.returncode == 0, up.stderr
        print(f"warm start-up of a second control plane: {warm_start:.1f}s")
        assert warm_start < 60
        for name in ("kubeconfig", "pki/ca.crt", "bin/kubectl", "logs/kube-apiserver.log", "kube-apiserver.pid"):
            assert (d / name).exists(), name

        assert _cli("up", "--dir", str(d)).returncode == 0  # already up: no-op

        status = _cli("status", "--dir", str(d))
        assert status.returncode == 0, status.stdout + status.stderr
        assert status.stdout.count("running") == 4

        scheduler_pid = int((d / "kube-scheduler.pid").read_text())
        os.kill(scheduler_pid, signal.SIGKILL)
        wait_until("the killed scheduler to die", lambda: _dead(scheduler_pid), 10)
        status = _cli("status", "--dir", str(d))
        assert status.returncode == 1
        assert "kube-scheduler" in status.stdout and "crashed" in status.stdout
        assert "last lines of" in status.stdout

        assert _cli("up", "--dir", str(d)).returncode == 0  # restarts only what is missing
        assert _cli("status", "--dir", str(d)).returncode == 0
    finally:
        down = _cli("down", "--dir", str(d))
    assert down.returncode == 0, down.stderr
    assert not list(d.glob("*.pid"))
    assert _processes_mentioning(d) == []


def test_concurrent_first_builds_run_go_build_once(cluster: Cluster, tmp_path: Path):
    # `cluster` first: Go's build cache is warm, so this build is a link only (seconds).
    env = dict(os.environ, VKECI_CACHE_DIR=str(tmp_path / "cache"))
    cmd = [sys.executable, "-m", "e2e.build", "--print-dir"]
    procs = [
        subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    dirs = {Path(out.strip()) for out, _ in outputs}
    assert len(dirs) == 1
    built = [err for _, err in outputs if "control plane: building" in err]
    assert len(built) == 1, outputs  # the other one waited on the lock, then found the binary
    target = dirs.pop()
    assert (target / "k8s-local").is_file() and not (target / "k8s-local.partial").exists()
    version = subprocess.run([target / "kube-apiserver", "--version"], capture_output=True, text=True, timeout=30)
    assert version.stdout.strip() == f"Kubernetes {K8S_VERSION}"


def test_a_killed_test_run_leaves_no_component_behind(cluster: Cluster, tmp_path: Path):
    # What the session fixture relies on when CI kills pytest: die_with_parent components die with it.
    d = tmp_path / "orphan-check"
    script = (
        "import os, signal, sys\n"
        "from e2e.cluster import Cluster\n"
        f"Cluster({str(d)!r}, die_with_parent=True).up()\n"
        "print('up', flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == -signal.SIGKILL and run.stdout.strip() == "up", run.stderr
    names = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
    pids = [int((d / f"{name}.pid").read_text()) for name in names]
    wait_until("the orphaned components to die", lambda: all(_dead(pid) for pid in pids), timeout=15)
    # Every component got SIGKILL from the kernel at once, but they exit one after the other on a busy machine.
    deadline = time.monotonic() + 15
    while _processes_mentioning(d) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = {pid: _cmdline(pid) for pid in _processes_mentioning(d)}
    assert left == {}, f"processes left behind: {left}"


def test_a_failing_build_raises_with_the_compiler_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from e2e import build

    module = tmp_path / "module"
    module.mkdir()
    (module / "go.mod").write_text("module example.invalid/broken\n\ngo 1.25.0\n")
    (module / "main.go").write_text("package main\n\nfunc main() { undefinedThing() }\n")
    monkeypatch.setattr(build, "MODULE_DIR", module)
    monkeypatch.setenv("VKECI_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(build.BuildError, match="undefined: undefinedThing") as err:
        build.ensure_binary(progress=lambda _: None)
    assert "go build` failed" in str(err.value)
    assert build.cached_binary() is None  # nothing half-built is left to be mistaken for a binary


def test_a_missing_go_toolchain_is_named_in_the_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from e2e import build

    monkeypatch.setenv("VKECI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no `go` here
    with pytest.raises(build.BuildError, match="Go toolchain is not installed"):
        build.ensure_binary(progress=lambda _: None)
