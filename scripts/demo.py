"""`make demo` / `make demo-down`: the whole product on one machine, no cloud account needed.

``up`` starts (or reuses) a local Kubernetes control plane in .demo/cluster, a fake ECI and
`vkeci run`, applies an nginx Deployment (3 replicas, toleration + nodeSelector for the virtual
node), waits until it is rolled out, prints the node, the pods and the fake's container groups,
and leaves everything running. ``down`` stops exactly what ``up`` started.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the e2e harness package (not installed: it is not in the wheel)

import yaml  # noqa: E402

from e2e.harness import (  # noqa: E402
    daemon_env,
    fake_groups,
    kubelet_listen,
    nginx_deployment,
    start_fake_process,
    start_logged,
    tags_of,
)
from e2e.netns import NODE_IP, inside  # noqa: E402

DEMO = ROOT / ".demo"
CLUSTER = DEMO / "cluster"
KUBECONFIG = CLUSTER / "kubeconfig"
KUBECTL = CLUSTER / "bin" / "kubectl"
NODE = "virtual-kubelet"
ACCESS_KEY_ID = "demo-access-key"
ACCESS_KEY_SECRET = "demo-access-secret"  # only the local fake accepts it


def say(message: str) -> None:
    print(f"demo: {message}", flush=True)


def pid_alive(pid_file: Path) -> int | None:
    """The pid recorded in ``pid_file`` if that process still runs."""
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def spawn(name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start a detached background process logging to .demo/<name>.log; its pid goes to .demo/<name>.pid."""
    proc = start_logged(argv, env, DEMO / f"{name}.log", detach=True)
    (DEMO / f"{name}.pid").write_text(str(proc.pid))
    return proc


def kubectl(*args: str, check: bool = True) -> str:
    result = subprocess.run(
        [str(KUBECTL), "--kubeconfig", str(KUBECONFIG), *args], capture_output=True, text=True, timeout=180
    )
    if check and result.returncode != 0:
        raise SystemExit(f"demo: kubectl {' '.join(args)} failed:\n{result.stderr.strip()}")
    return result.stdout


def start_cluster() -> None:
    say("starting the local Kubernetes control plane (the first run builds it from Go modules: be patient)")
    subprocess.run([sys.executable, "-m", "e2e.cluster", "up", "--dir", str(CLUSTER)], cwd=ROOT, check=True)


def start_metrics_server() -> None:
    """metrics-server (``kubectl top``, HPA) where the API server can reach it: only in the private namespace.
    Outside it, clear a registration an earlier DEMO_NETNS=1 demo left, which would break namespace deletion."""
    action = "up" if inside() else "down"
    if inside():
        say("starting metrics-server (kubectl top, HPA)")
    out = None if inside() else subprocess.DEVNULL
    subprocess.run(
        [sys.executable, "-m", "e2e.metrics_server", action, "--dir", str(CLUSTER)], cwd=ROOT, check=True, stdout=out
    )


def start_fake() -> str:
    """Start (or reuse) the fake ECI; return its endpoint host:port."""
    endpoint_file = DEMO / "fake-eci.endpoint"
    if pid_alive(DEMO / "fake-eci.pid") and endpoint_file.exists():
        say(f"fake ECI already running at {endpoint_file.read_text().strip()}")
        return endpoint_file.read_text().strip()
    say("starting the fake ECI")
    args = ["--state-file", str(DEMO / "fake-eci-state.json")]
    proc, endpoint = start_fake_process(args, ACCESS_KEY_ID, ACCESS_KEY_SECRET, DEMO / "fake-eci.log", detach=True)
    (DEMO / "fake-eci.pid").write_text(str(proc.pid))
    endpoint_file.write_text(endpoint)
    return endpoint


def start_daemon(endpoint: str) -> None:
    if pid_alive(DEMO / "vkeci.pid"):
        say("vkeci already running")
        return
    say(f"starting vkeci run (node {NODE}, ECI at {endpoint})")
    env = daemon_env(
        KUBECONFIG,
        endpoint,
        NODE,
        access_key_id=ACCESS_KEY_ID,
        access_key_secret=ACCESS_KEY_SECRET,
        cluster_name="demo",
        extra={"VKECI_STATUS_INTERVAL": "1"},
    )
    spawn("vkeci", [sys.executable, "-m", "vkeci", "run", kubelet_listen()], env)


def wait_ready(timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = kubectl(
            "get", "node", NODE, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}", check=False
        )
        if out.strip() == "True":
            return
        if not pid_alive(DEMO / "vkeci.pid"):
            raise SystemExit(f"demo: vkeci exited; see {DEMO / 'vkeci.log'}")
        time.sleep(1)
    raise SystemExit(f"demo: node {NODE} not Ready after {timeout:.0f} s; see {DEMO / 'vkeci.log'}")


def print_groups(endpoint: str) -> None:
    print(f"\n$ curl http://{endpoint}/_fake/groups   # the fake ECI's container groups")
    print(f"{'CONTAINER GROUP':28} {'STATUS':10} {'IP':12} {'ZONE':15} POD")
    for group in fake_groups(endpoint, live_only=False):
        tags = tags_of(group)
        pod = f"{tags.get('NameSpace', '?')}/{tags.get('PodName', '?')}"
        print(
            f"{group.get('ContainerGroupId', ''):28} {group.get('Status', ''):10} "
            f"{group.get('IntranetIp', ''):12} {group.get('ZoneId', ''):15} {pod}"
        )


def check_same_network() -> None:
    """Refuse to reuse demo processes that run in another network namespace (a `make demo` with a different
    DEMO_NETNS): this process could not reach them."""
    here = os.readlink("/proc/self/ns/net")
    pid_files = [DEMO / "vkeci.pid", DEMO / "fake-eci.pid", *CLUSTER.glob("*.pid")]
    for pid in filter(None, (pid_alive(path) for path in pid_files)):
        try:
            theirs = os.readlink(f"/proc/{pid}/ns/net")
        except OSError:
            continue  # gone meanwhile, or not ours to inspect
        if theirs != here:
            raise SystemExit(
                f"demo: the running demo (pid {pid}) is in another network namespace than this `make demo` "
                "(DEMO_NETNS differs); stop it first with `make demo-down`"
            )


def how_to_enter() -> str:
    """The command that runs a shell in the demo's private network namespace (DEMO_NETNS=1)."""
    pid = pid_alive(DEMO / "vkeci.pid")
    user = "" if os.geteuid() == 0 else " --user --preserve-credentials"
    return f"nsenter --target {pid} --net{user}"


def up() -> int:
    DEMO.mkdir(exist_ok=True)
    check_same_network()
    start_cluster()
    start_metrics_server()
    endpoint = start_fake()
    start_daemon(endpoint)
    wait_ready()
    say("applying an nginx Deployment (3 replicas) for the virtual node")
    manifest = DEMO / "nginx.yaml"
    manifest.write_text(yaml.safe_dump(nginx_deployment("nginx", NODE, 3), sort_keys=False))
    kubectl("apply", "-f", str(manifest))
    kubectl("rollout", "status", "deployment/nginx", "--timeout=120s")
    print("\n$ kubectl get nodes -o wide")
    print(kubectl("get", "nodes", "-o", "wide"), end="")
    print("\n$ kubectl get pods -o wide")
    print(kubectl("get", "pods", "-o", "wide"), end="")
    print_groups(endpoint)
    if inside():
        print(
            f"""
The demo runs in a private network namespace (node address {NODE_IP}); kubectl logs/exec work there,
and kubectl top (metrics-server, first figures about 40 s after a pod runs). Enter it first:
  {how_to_enter()} bash"""
        )
    else:
        print(
            """
The demo runs on loopback (node address 127.0.0.1): the API server does not proxy to loopback, so
kubectl logs/exec fail; `make demo-down && make demo DEMO_NETNS=1` runs it where they work."""
        )
    # On loopback the API server refuses to proxy to the node, so exec is offered only where it works.
    try_exec = "\n  kubectl exec deploy/nginx -- echo hello from ECI" if inside() else ""
    print(
        f"""
The demo stays up. Try:
  export KUBECONFIG={KUBECONFIG}
  alias kubectl={KUBECTL}
  kubectl scale deployment nginx --replicas=10 && kubectl get pods -o wide -w
  kubectl describe pod -l app=nginx | grep -A12 Events
  kubectl describe node {NODE}{try_exec}
  curl http://{endpoint}/_fake/groups        # what the fake ECI holds
Logs: {DEMO}/vkeci.log, {DEMO}/fake-eci.log, {CLUSTER}/logs/
Stop everything: make demo-down"""
    )
    return 0


def stop(name: str) -> None:
    pid = pid_alive(DEMO / f"{name}.pid")
    if pid is None:
        return
    say(f"stopping {name} (pid {pid})")
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and pid_alive(DEMO / f"{name}.pid"):
        time.sleep(0.2)
    if pid_alive(DEMO / f"{name}.pid"):
        os.killpg(pid, signal.SIGKILL)
    (DEMO / f"{name}.pid").unlink(missing_ok=True)


def down() -> int:
    stop("vkeci")
    stop("fake-eci")
    if (CLUSTER / "metrics-server.pid").exists():
        subprocess.run([sys.executable, "-m", "e2e.metrics_server", "down", "--dir", str(CLUSTER)], cwd=ROOT)
    if CLUSTER.exists():
        subprocess.run([sys.executable, "-m", "e2e.cluster", "down", "--dir", str(CLUSTER)], cwd=ROOT, check=False)
    say("stopped (state kept in .demo/; delete it for a fresh start)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("up", "down"))
    args = parser.parse_args()
    return up() if args.action == "up" else down()


if __name__ == "__main__":
    sys.exit(main())
