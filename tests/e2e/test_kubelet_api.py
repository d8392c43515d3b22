"""The kubelet API end to end: kubectl -> real kube-apiserver 1.35 -> vk-eci's kubelet server -> the
fake ECI through the real SDK over HTTP (logs, exec over SPDY/3.1, stats through the node proxy, auth).

The daemon is not involved: the server gets a stand-in pod lookup that reads the real pods from the API
server and knows which fake ECI group backs each. The fake runs the containers as real processes, so what
kubectl prints is what those processes wrote.

The node's InternalIP is 10.250.0.1 (``e2e.netns.NODE_IP``), an address of the private network namespace
the test run makes (README, "Hermetic tests"): the API server refuses to proxy (`/api/v1/nodes/<n>/proxy/...`)
to loopback, and this address is not loopback yet exists only inside the namespace.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import termios
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from alibabacloud_eci20180808 import models as eci_models
from prometheus_client.parser import text_string_to_metric_families
from vkfixtures import *  # noqa: F403 - pytest fixtures for the daemon test: daemon_factory, fake_eci, kube

from e2e.cluster import Cluster
from e2e.harness import placement, wait_for
from e2e.netns import NODE_IP
from fakes.eci.server import FakeECI
from vkeci.clients.eci import EciClient, new_client
from vkeci.clients.kube import MERGE, KubeClient, KubeError, load_credentials
from vkeci.clients.ratelimit import EciLimiter
from vkeci.config import load
from vkeci.kubelet.auth import Auth
from vkeci.kubelet.server import KubeletServer, ServerSettings
from vkeci.kubelet.tls import SelfSignedIssuer, ServingTls, load_client_ca

AK, SK, REGION = "AKID-kubelet-e2e", "kubelet-e2e-secret", "cn-hangzhou"
CONFIG_BYTES = b"configmap-bytes: \x01 binary-safe\n"
# A little CPU first (so the metrics are non-zero), then three lines and a long sleep.
WEB_SCRIPT = "i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; printf 'one\\ntwo\\nthree\\n'; exec sleep 3600"
TICKER_SCRIPT = "i=0; while [ $i -lt 600 ]; do echo tick-$i; i=$((i+1)); sleep 0.3; done"
CRASHER_SCRIPT = "echo run-$(cat /proc/sys/kernel/random/uuid); sleep 0.5; exit 1"


class LivePods:
    """A PodLookup reading the real pods from the API server (what the daemon's cache would hold)."""

    def __init__(self, kube: KubeClient, node: str) -> None:
        self.kube = kube
        self.node = node
        self.groups: dict[tuple[str, str], str] = {}

    def get(self, namespace: str, name: str) -> tuple[dict[str, Any], str | None] | None:
        try:
            pod = self.kube.get(f"/api/v1/namespaces/{namespace}/pods/{name}")
        except KubeError as exc:
            if exc.not_found:
                return None
            raise
        return pod, self.groups.get((namespace, name))

    def list(self) -> list[dict[str, Any]]:
        items = self.kube.get("/api/v1/pods", params={"fieldSelector": f"spec.nodeName={self.node}"})["items"]
        return list(items)


@dataclass
class Env:
    cluster: Cluster
    kube: KubeClient
    fake: FakeECI
    eci: EciClient
    pods: LivePods
    server: KubeletServer
    node: str
    namespace: str
    address: str

    def kubectl(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.cluster.kubectl("-n", self.namespace, *args, check=False, **kwargs)

    def eci_log(self, pod: str, **params: Any) -> str:
        body = self.eci.describe_container_log(
            {"ContainerGroupId": self.pods.groups[(self.namespace, pod)], "ContainerName": "main", **params}
        )
        return str(body.get("Content") or "")

    def run_pod(self, name: str, script: str, restart: str = "Always") -> None:
        """An ECI group running ``script`` for real, and a Running pod on our node that it backs."""
        request = eci_models.CreateContainerGroupRequest().from_map(
            {
                "RegionId": REGION,
                "ContainerGroupName": f"{name}-{uuid.uuid4().hex[:6]}",
                "SecurityGroupId": "sg-fake",
                "VSwitchId": "vsw-fake-a",
                "RestartPolicy": restart,
                "Container": [
                    {
                        "Name": "main",
                        "Image": "busybox",
                        "Command": ["sh", "-c", script],
                        "EnvironmentVar": [{"Key": "FOO", "Value": "bar value with spaces"}],
                        "VolumeMount": [{"Name": "config", "MountPath": "/etc/config"}],
                    }
                ],
                "Volume": [
                    {
                        "Name": "config",
                        "Type": "ConfigFileVolume",
                        "ConfigFileVolume": {
                            "ConfigFileToPath": [{"Path": "key", "Content": base64.b64encode(CONFIG_BYTES).decode()}]
                        },
                    }
                ],
            }
        )
        group_id = self.eci.client.create_container_group(request).body.container_group_id
        self.pods.groups[(self.namespace, name)] = group_id
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {
                "nodeName": self.node,
                "automountServiceAccountToken": False,
                "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", script], "stdin": True}],
            },
        }
        wait_for(lambda: self._create(pod), 30, f"pod {name} to be created")
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.kube.patch(
            f"/api/v1/namespaces/{self.namespace}/pods/{name}/status",
            {
                "status": {
                    "phase": "Running",
                    "startTime": now,
                    "containerStatuses": [
                        {
                            "name": "main",
                            "image": "busybox",
                            "imageID": "",
                            "ready": True,
                            "restartCount": 0,
                            "state": {"running": {"startedAt": now}},
                        }
                    ],
                }
            },
            content_type=MERGE,
        )

    def _create(self, pod: dict[str, Any]) -> bool:
        try:
            self.kube.post(f"/api/v1/namespaces/{self.namespace}/pods", pod)
        except KubeError as exc:
            if exc.conflict:
                return True
            return False  # e.g. the namespace's default ServiceAccount is not there yet
        return True

    def finish_container(self, name: str) -> None:
        self.kube.patch(
            f"/api/v1/namespaces/{self.namespace}/pods/{name}/status",
            {
                "status": {
                    "containerStatuses": [
                        {
                            "name": "main",
                            "image": "busybox",
                            "imageID": "",
                            "ready": False,
                            "restartCount": 0,
                            "state": {"terminated": {"exitCode": 0}},
                        }
                    ]
                }
            },
            content_type=MERGE,
        )


@pytest.fixture(scope="module")
def env(cluster: Cluster) -> Iterator[Env]:
    node = f"vk-kapi-{uuid.uuid4().hex[:6]}"
    namespace = f"kapi-{uuid.uuid4().hex[:6]}"
    address = NODE_IP
    fake = FakeECI.start(
        access_key_id=AK, access_key_secret=SK, config={"scheduling_delay_s": 0.0, "pending_delay_s": 0.0}
    )
    config = load(
        flags={
            "region": REGION,
            "access_key_id": AK,
            "access_key_secret": SK,
            "eci_endpoint": fake.endpoint,
            "eci_protocol": "http",
        },
        env={},
    )
    eci = EciClient(new_client(config), REGION, EciLimiter())
    kube = KubeClient(load_credentials(str(cluster.kubeconfig)))
    pods = LivePods(kube, node)
    server = KubeletServer(
        node_name=node,
        pods=pods,
        eci=eci,
        auth=Auth(kube, node),
        tls=ServingTls(SelfSignedIssuer(node, [address]), load_client_ca(str(cluster.pki.ca_crt))),
        settings=ServerSettings(host=address, port=0, log_poll_interval=0.5, metrics_ttl=1.0),
    )
    server.start()
    status = {
        "addresses": [{"type": "InternalIP", "address": address}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": server.port}},
    }
    kube.post("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}, "status": status})
    kube.patch(f"/api/v1/nodes/{node}/status", {"status": status}, content_type=MERGE)
    cluster.kubectl("create", "namespace", namespace)
    e = Env(cluster, kube, fake, eci, pods, server, node, namespace, address)
    try:
        e.run_pod("web", WEB_SCRIPT)
        e.run_pod("ticker", TICKER_SCRIPT)
        e.run_pod("crasher", CRASHER_SCRIPT)
        e.run_pod("talker", TICKER_SCRIPT)
        yield e
    finally:
        server.stop()
        fake.stop()
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        cluster.kubectl("delete", "node", node, "--wait=false", check=False)


def test_logs_tail_timestamps_since_limit(env: Env) -> None:
    wait_for(lambda: env.eci_log("web") == "one\ntwo\nthree\n", 30, "the web container's output")
    assert env.kubectl("logs", "web").stdout == "one\ntwo\nthree\n"
    assert env.kubectl("logs", "web", "--tail=2").stdout == "two\nthree\n"
    assert env.kubectl("logs", "web", "--tail=0").stdout == ""
    assert env.kubectl("logs", "web", "--limit-bytes=6").stdout == "one\ntw"
    stamped = env.kubectl("logs", "web", "--timestamps").stdout
    assert stamped == env.eci_log("web", Timestamps=True)
    assert [line.split(" ", 1)[1] for line in stamped.splitlines()] == ["one", "two", "three"]
    assert env.kubectl("logs", "web", "--since=1h").stdout == "one\ntwo\nthree\n"
    assert env.kubectl("logs", "web", "--since-time=2020-01-01T00:00:00Z").stdout == "one\ntwo\nthree\n"
    assert env.kubectl("logs", "web", "--since-time=2999-01-01T00:00:00Z").stdout == ""
    time.sleep(2.2)
    assert env.kubectl("logs", "web", "--since=1s").stdout == ""


def test_logs_errors(env: Env) -> None:
    missing = env.kubectl("logs", "nosuchpod")
    assert missing.returncode != 0 and "not found" in missing.stderr
    wrong = env.kubectl("logs", "web", "-c", "nosuchcontainer")
    assert wrong.returncode != 0 and "nosuchcontainer" in wrong.stderr
    previous = env.kubectl("logs", "web", "--previous")
    assert previous.returncode != 0, previous.stdout


def test_logs_previous(env: Env) -> None:
    def two_runs() -> str:
        current = env.eci_log("crasher")
        previous = env.eci_log("crasher", LastTime=True)
        return previous if current.startswith("run-") and previous.startswith("run-") and previous != current else ""

    previous = wait_for(two_runs, 60, "the crasher to restart once")
    env.kube.patch(  # what the daemon's status loop would report after the restart
        f"/api/v1/namespaces/{env.namespace}/pods/crasher/status",
        {
            "status": {
                "containerStatuses": [
                    {
                        "name": "main",
                        "image": "busybox",
                        "imageID": "",
                        "ready": True,
                        "restartCount": 1,
                        "state": {"running": {}},
                        "lastState": {"terminated": {"exitCode": 1}},
                    }
                ]
            }
        },
        content_type=MERGE,
    )
    shown = env.kubectl("logs", "crasher", "--previous")
    assert shown.returncode == 0, shown.stderr
    # The fake may restart it again between the two reads; the answer is one whole earlier run.
    assert shown.stdout.startswith("run-") and shown.stdout.count("\n") == 1
    assert previous.startswith("run-")


def test_logs_follow(env: Env) -> None:
    wait_for(lambda: env.eci_log("ticker").count("\n") >= 3, 30, "the ticker's first lines")
    follower = subprocess.Popen(
        [
            str(env.cluster.bin("kubectl")),
            "--kubeconfig",
            str(env.cluster.kubeconfig),
            "-n",
            env.namespace,
            "logs",
            "-f",
            "ticker",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert follower.stdout is not None
        seen = b""
        deadline = time.monotonic() + 30
        while seen.count(b"\n") < 12 and time.monotonic() < deadline:
            ready, _, _ = select.select([follower.stdout], [], [], 1)
            if ready:
                seen += os.read(follower.stdout.fileno(), 65536)
        assert seen.count(b"\n") >= 12, seen
        env.finish_container("ticker")  # following ends when the container does
        rest, err = follower.communicate(timeout=30)
        assert follower.returncode == 0, err
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    lines = (seen + rest).decode().splitlines()
    # Every line exactly once, in order, from the first: tick-0, tick-1, ... with none missing.
    assert lines == [f"tick-{i}" for i in range(len(lines))]


def test_exec_env_and_configmap(env: Env) -> None:
    result = env.kubectl("exec", "web", "--", "sh", "-c", "echo $FOO; cat /etc/config/key")
    assert result.returncode == 0, result.stderr
    assert result.stdout.encode() == b"bar value with spaces\n" + CONFIG_BYTES


def test_exec_argv_is_preserved(env: Env) -> None:
    result = env.kubectl("exec", "web", "--", "printf", "[%s]\\n", "a b", "", "c'd\"e", "$HOME")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[a b]\n[]\n[c'd\"e]\n[$HOME]\n"


def test_exec_exit_code_and_stderr(env: Env) -> None:
    result = env.kubectl("exec", "web", "--", "sh", "-c", "echo out; echo err >&2; exit 7")
    assert result.returncode == 7
    assert result.stdout == "out\n"
    assert "err\n" in result.stderr
    assert "command terminated with exit code 7" in result.stderr


def test_exec_stdin(env: Env) -> None:
    data = "line one\nline two with ünïcode\n" * 50
    result = env.kubectl("exec", "-i", "web", "--", "cat", input=data)
    assert result.returncode == 0, result.stderr
    assert result.stdout == data


def test_kubectl_cp_both_ways(env: Env, tmp_path: Any) -> None:
    # kubectl cp is tar over exec: stdin with an end (upload) and binary stdout (download).
    original = os.urandom(200_000)
    (tmp_path / "up.bin").write_bytes(original)
    up = env.kubectl("cp", str(tmp_path / "up.bin"), "web:/tmp/up.bin", timeout=60)
    assert up.returncode == 0, up.stderr
    down = env.kubectl("cp", "web:/tmp/up.bin", str(tmp_path / "down.bin"), timeout=60)
    assert down.returncode == 0, down.stderr
    assert (tmp_path / "down.bin").read_bytes() == original


def test_exec_tty_and_resize(env: Env) -> None:
    # The command starts as soon as ECI's exec session opens, before kubectl's first terminal size
    # arrives (a container runtime behaves the same), so it waits a moment before reading the size.
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 111, 0, 0))
    proc = subprocess.Popen(
        [
            str(env.cluster.bin("kubectl")),
            "--kubeconfig",
            str(env.cluster.kubeconfig),
            "-n",
            env.namespace,
            "exec",
            "-it",
            "web",
            "--",
            "sh",
            "-c",
            "test -t 0 && echo IS-A-TTY; sleep 1; stty size; exit 4",
        ],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    output = b""
    try:
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    output += os.read(master, 65536)
                except OSError:
                    break
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    text = output.decode(errors="replace")
    assert "IS-A-TTY" in text, text
    assert "33 111" in text, text
    assert proc.returncode == 4, text


def test_exec_over_websocket_from_the_python_client(env: Env) -> None:
    # The official Python client speaks WebSocket v4.channel.k8s.io; the API server proxies that
    # straight to the kubelet (only v5 is translated to SPDY).
    from kubernetes import client, config
    from kubernetes.stream import stream

    api = client.CoreV1Api(config.new_client_from_config(str(env.cluster.kubeconfig)))
    output = stream(
        api.connect_get_namespaced_pod_exec,
        "web",
        env.namespace,
        command=["sh", "-c", "echo $FOO; cat /etc/config/key"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
        _preload_content=False,
    )
    output.run_forever(timeout=30)
    assert output.read_stdout() == "bar value with spaces\n" + CONFIG_BYTES.decode()
    assert output.returncode == 0
    output.close()

    failing = stream(
        api.connect_get_namespaced_pod_exec,
        "web",
        env.namespace,
        command=["sh", "-c", "exit 6"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
        _preload_content=False,
    )
    failing.run_forever(timeout=30)
    assert failing.returncode == 6
    failing.close()


def test_attach_streams_new_output_until_the_container_ends(env: Env) -> None:
    wait_for(lambda: env.eci_log("talker").count("\n") >= 3, 30, "the talker's first lines")
    attach = subprocess.Popen(
        [
            str(env.cluster.bin("kubectl")),
            "--kubeconfig",
            str(env.cluster.kubeconfig),
            "-n",
            env.namespace,
            "attach",
            "talker",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert attach.stdout is not None
        seen = b""
        deadline = time.monotonic() + 30
        while seen.count(b"\n") < 5 and time.monotonic() < deadline:
            ready, _, _ = select.select([attach.stdout], [], [], 1)
            if ready:
                seen += os.read(attach.stdout.fileno(), 65536)
        env.finish_container("talker")
        rest, err = attach.communicate(timeout=30)
    finally:
        if attach.poll() is None:
            attach.kill()
            attach.wait()
    lines = (seen + rest).decode().splitlines()
    assert len(lines) >= 5, err
    # New output only (not the log from the start), consecutive, nothing repeated.
    first = int(lines[0].split("-")[1])
    assert first > 0
    assert lines == [f"tick-{i}" for i in range(first, first + len(lines))]
    assert attach.returncode == 0, err


def test_attach_and_port_forward_say_what_to_use(env: Env) -> None:
    attach = env.kubectl("attach", "-i", "web", timeout=60)
    assert attach.returncode != 0 and "attach is not supported on ECI" in attach.stderr
    forward = env.kubectl("port-forward", "pod/web", "18080:80", timeout=60)
    assert forward.returncode != 0 and "port-forward is not supported on ECI" in forward.stderr


def test_the_api_server_proxies_to_the_namespace_address_but_not_to_loopback(env: Env) -> None:
    """Why the node address is 10.250.0.1 (README, "Hermetic tests"): a node whose InternalIP is 127.0.0.1,
    served by the very same kubelet server, is refused by the API server's node proxy."""
    assert env.kube.get(f"/api/v1/nodes/{env.node}/proxy/pods")["kind"] == "PodList"
    loop = f"vk-loop-{uuid.uuid4().hex[:6]}"
    status = {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": env.server.port}},
    }
    env.kube.post("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": loop}, "status": status})
    try:
        env.kube.patch(f"/api/v1/nodes/{loop}/status", {"status": status}, content_type=MERGE)
        with pytest.raises(KubeError) as refused:
            env.kube.get(f"/api/v1/nodes/{loop}/proxy/pods")
        assert refused.value.status == 400 and refused.value.message == "address not allowed", refused.value
    finally:
        env.cluster.kubectl("delete", "node", loop, "--wait=false", check=False)


def test_stats_summary_and_resource_metrics_through_the_node_proxy(env: Env) -> None:
    def summary() -> dict[str, Any]:
        raw = env.cluster.kubectl("get", "--raw", f"/api/v1/nodes/{env.node}/proxy/stats/summary", check=False)
        if raw.returncode != 0:
            return {}
        doc: dict[str, Any] = json.loads(raw.stdout)
        pods = {p["podRef"]["name"]: p for p in doc["pods"] if p["podRef"]["namespace"] == env.namespace}
        return doc if "web" in pods else {}

    doc = wait_for(summary, 30, "stats for the web pod")
    web = next(p for p in doc["pods"] if p["podRef"]["name"] == "web" and p["podRef"]["namespace"] == env.namespace)
    assert doc["node"]["nodeName"] == env.node
    assert doc["node"]["cpu"]["usageCoreNanoSeconds"] > 0
    assert doc["node"]["memory"]["workingSetBytes"] > 0
    assert web["containers"][0]["name"] == "main"
    assert web["memory"]["workingSetBytes"] > 0
    assert web["cpu"]["usageCoreNanoSeconds"] > 0

    raw = env.cluster.kubectl("get", "--raw", f"/api/v1/nodes/{env.node}/proxy/metrics/resource").stdout
    samples = {
        (s.name, s.labels.get("pod", ""), s.labels.get("namespace", "")): s.value
        for family in text_string_to_metric_families(raw)
        for s in family.samples
    }
    assert samples[("node_cpu_usage_seconds_total", "", "")] > 0
    assert samples[("node_memory_working_set_bytes", "", "")] > 0
    assert samples[("container_cpu_usage_seconds_total", "web", env.namespace)] > 0
    assert samples[("container_memory_working_set_bytes", "web", env.namespace)] > 0


def test_requests_straight_to_the_port_need_credentials(env: Env) -> None:
    base = f"https://{env.address}:{env.server.port}"
    assert requests.get(f"{base}/pods", verify=False, timeout=10).status_code == 401
    assert requests.get(f"{base}/containerLogs/{env.namespace}/web/main", verify=False, timeout=10).status_code == 401
    # A real token without RBAC on nodes/proxy: authenticated by TokenReview, refused by SubjectAccessReview.
    env.cluster.kubectl("-n", env.namespace, "create", "serviceaccount", "nobody")
    token = env.cluster.kubectl("-n", env.namespace, "create", "token", "nobody").stdout.strip()
    denied = requests.get(f"{base}/pods", verify=False, timeout=10, headers={"Authorization": f"Bearer {token}"})
    assert denied.status_code == 403
    assert f"system:serviceaccount:{env.namespace}:nobody" in denied.text


def test_serving_certificate_from_a_kubelet_serving_csr(env: Env) -> None:
    from cryptography import x509

    from vkeci.kubelet.tls import CsrIssuer

    pair = CsrIssuer(env.kube, env.node, [env.address], approve=True, timeout=60, poll=0.5).issue()
    cert = pair.certificate()
    ca = x509.load_pem_x509_certificate(env.cluster.pki.ca_crt.read_bytes())
    assert cert.issuer == ca.subject
    cert.verify_directly_issued_by(ca)  # signed by the cluster CA (raises otherwise)
    assert cert.subject.rfc4514_string() == f"CN=system:node:{env.node},O=system:nodes"
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == [env.address]
    # And it serves: a TLS context builds from it.
    serving = ServingTls(CsrIssuer(env.kube, env.node, [env.address], approve=True, timeout=60, poll=0.5), None)
    assert serving.certificate.issuer == ca.subject


def test_logs_exec_and_stats_through_the_daemon(cluster: Cluster, daemon_factory: Any, kube: Any) -> None:
    """The whole path: a pod created with kubectl, run by `vkeci run` on the fake ECI, then kubectl
    logs/exec/top-data through the daemon's own kubelet API."""
    daemon = daemon_factory()  # its node address is NODE_IP: the harness gives it to every daemon
    wait_for(lambda: kube.ready(daemon.node) == "True", 60, f"node {daemon.node} Ready")
    namespace = f"kapi-d-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace)
    try:
        cluster.kubectl("-n", namespace, "create", "configmap", "cfg", "--from-literal=key=configmap-bytes")
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "app", "namespace": namespace},
            "spec": {
                **placement(daemon.node),
                "containers": [
                    {
                        "name": "main",
                        "image": "busybox",
                        "command": ["sh", "-c", WEB_SCRIPT],
                        "env": [{"name": "FOO", "value": "from-the-pod-spec"}],
                        "volumeMounts": [{"name": "cfg", "mountPath": "/etc/config"}],
                    }
                ],
                "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}}],
            },
        }
        wait_for(lambda: _create_pod(kube, namespace, pod), 30, "the pod to be created")
        wait_for(lambda: kube.pod(namespace, "app")["status"].get("phase") == "Running", 60, "the pod to run")

        def k(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
            return cluster.kubectl("-n", namespace, *args, check=False, **kwargs)

        wait_for(lambda: k("logs", "app").stdout == "one\ntwo\nthree\n", 30, "the pod's output through the daemon")
        assert k("logs", "app", "--tail=1").stdout == "three\n"
        result = k("exec", "app", "--", "sh", "-c", "echo $FOO; cat /etc/config/key")
        assert (result.returncode, result.stdout) == (0, "from-the-pod-spec\nconfigmap-bytes"), result.stderr
        assert k("exec", "app", "--", "sh", "-c", "exit 3").returncode == 3
        assert k("exec", "-i", "app", "--", "cat", input="piped\n").stdout == "piped\n"

        def has_stats() -> bool:
            raw = cluster.kubectl("get", "--raw", f"/api/v1/nodes/{daemon.node}/proxy/stats/summary", check=False)
            if raw.returncode != 0:
                return False
            pods = json.loads(raw.stdout)["pods"]
            return any(p["podRef"]["name"] == "app" and p["memory"]["workingSetBytes"] > 0 for p in pods)

        wait_for(has_stats, 45, "stats for the pod through the daemon")
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _create_pod(kube: Any, namespace: str, pod: dict[str, Any]) -> bool:
    try:
        kube.create(namespace, pod)
    except Exception as exc:  # the namespace's default ServiceAccount may not exist yet
        return "already exists" in str(exc)
    return True
