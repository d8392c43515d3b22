"""`vkeci webhook` end to end: the real kube-apiserver calls it for every pod creation.

Each test runs its own webhook process and its own copy of the shipped MutatingWebhookConfiguration
(deploy/kustomize/components/webhook/mutatingwebhook.yaml), pointed at ``https://127.0.0.1:PORT/mutate-pods``
with the caBundle the process itself writes there (the self-signed path, for real). Two things keep tests
apart in the shared cluster: the configuration only applies to namespaces labelled with the test's id, and the
daemon and the webhook use a taint key of their own, so a routed pod can only land on this test's virtual
node.
"""

from __future__ import annotations

import base64
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
import yaml
from vkfixtures import *  # noqa: F403 - pytest fixtures: daemon_factory, fake_eci, kube

from e2e.cluster import Cluster
from e2e.harness import ROOT, fake_groups, free_port, running, wait_for
from e2e.manifests import with_components
from vkeci.clients.kube import KubeError

CONFIGURATION = ROOT / "deploy" / "kustomize" / "components" / "webhook" / "mutatingwebhook.yaml"
PROFILE_PATH = "/api/v1/namespaces/kube-system/configmaps"
ISOLATION_LABEL = "e2e.vkeci.io/webhook"


class WebhookProcess:
    """One `vkeci webhook` on 127.0.0.1 with its own MutatingWebhookConfiguration."""

    def __init__(
        self, kubeconfig: Path, log_path: Path, *, test_id: str, taint_key: str, extra_args: tuple[str, ...] = ()
    ) -> None:
        self.port = free_port()
        self.configuration = f"vkeci-e2e-{test_id}"
        self.log_path = log_path
        self.args = [
            sys.executable,
            "-m",
            "vkeci",
            "webhook",
            "--kubeconfig",
            str(kubeconfig),
            "--listen",
            "127.0.0.1",
            f"--port={self.port}",
            "--service=",
            "--tls-san=127.0.0.1",
            f"--webhook-configuration={self.configuration}",
            "--cert-check-interval=1",
            "--log-level=debug",
            *extra_args,
        ]
        self.env = {**os.environ, "VKUBELET_TAINT_KEY": taint_key, "PYTHONUNBUFFERED": "1"}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WebhookProcess:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        wait_for(
            lambda: "admission webhook: https://" in self.log_text() or self.proc.poll() is not None,
            30,
            "the webhook to listen",
        )  # type: ignore[union-attr]
        assert self.proc.poll() is None, f"vkeci webhook exited:\n{self.log_text()}"
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def manifest(self, test_id: str) -> dict[str, Any]:
        """The shipped configuration, pointed at this process and limited to this test's namespaces."""
        config = yaml.safe_load(CONFIGURATION.read_text())
        config["metadata"]["name"] = self.configuration
        (webhook,) = config["webhooks"]
        webhook["clientConfig"] = {"url": f"https://127.0.0.1:{self.port}/mutate-pods"}
        webhook["namespaceSelector"]["matchExpressions"].append(
            {"key": ISOLATION_LABEL, "operator": "In", "values": [test_id]}
        )
        return dict(config)


@pytest.fixture
def test_id() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
def taint_key(test_id: str) -> str:
    return f"e2e.vkeci.io/{test_id}"


@pytest.fixture
def profile(kube: Any) -> Iterator[Callable[[dict[str, str]], None]]:
    """Write kube-system/eci-profile (created or replaced); deleted after the test."""

    def put(data: dict[str, str]) -> None:
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "eci-profile"}, "data": data}
        try:
            current = kube.client.get(f"{PROFILE_PATH}/eci-profile")
        except KubeError as err:
            if not err.not_found:
                raise
            kube.client.post(PROFILE_PATH, body)
            return
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        kube.client.put(f"{PROFILE_PATH}/eci-profile", body)

    yield put
    try:
        kube.client.delete(f"{PROFILE_PATH}/eci-profile")
    except KubeError as err:
        if not err.not_found:
            raise


@pytest.fixture
def webhook(
    cluster: Cluster, kubeconfig: Path, kube: Any, tmp_path: Path, test_id: str, taint_key: str
) -> Iterator[WebhookProcess]:
    """A running webhook whose configuration is in force (a dry-run pod comes back routed)."""
    proc = WebhookProcess(kubeconfig, tmp_path / "webhook.log", test_id=test_id, taint_key=taint_key).start()
    path = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
    kube.client.post(path, proc.manifest(test_id))
    try:
        probe_ns = f"e2e-probe-{test_id}"
        kube.client.post("/api/v1/namespaces", {"metadata": {"name": probe_ns, "labels": {ISOLATION_LABEL: test_id}}})

        def routed() -> bool:
            body = bare_pod("probe", {"alibabacloud.com/eci": "true"})
            created = dry_run(kube, probe_ns, body)
            return "nodeSelector" in created["spec"]

        # The caBundle is written by the process, then loaded by the API server from its watch.
        wait_for(routed, 30, "the API server to call the webhook with its caBundle")
        kube.client.delete(f"/api/v1/namespaces/{probe_ns}")
        yield proc
    finally:
        proc.stop()
        cluster.kubectl("delete", "mutatingwebhookconfiguration", proc.configuration, "--ignore-not-found", check=False)
        print("---- webhook log (last 60 lines) ----")
        print("\n".join(proc.log_text().splitlines()[-60:]))


@pytest.fixture
def routed_namespace(cluster: Cluster, namespace: str, test_id: str) -> str:
    """The test's namespace, in the webhook's scope."""
    cluster.kubectl("label", "namespace", namespace, f"{ISOLATION_LABEL}={test_id}")
    return namespace


def bare_pod(
    name: str, labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    """A pod with no toleration and no node selector: only the webhook can send it to ECI."""
    meta: dict[str, Any] = {"name": name, "labels": labels or {}, "annotations": annotations or {}}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]},
    }


def dry_run(kube: Any, namespace: str, pod: dict[str, Any]) -> dict[str, Any]:
    """What admission makes of ``pod`` (the webhook's patch applied) without storing it: a dry-run create."""
    return dict(
        kube.client.request("POST", f"/api/v1/namespaces/{namespace}/pods", params={"dryRun": "All"}, body=pod).json()
    )


def routed_to_eci(pod: dict[str, Any], taint_key: str) -> bool:
    spec = pod["spec"]
    tolerated = any(t.get("key") == taint_key for t in spec.get("tolerations") or [])
    return tolerated and (spec.get("nodeSelector") or {}).get("type") == "virtual-kubelet"


def test_a_labelled_pod_runs_on_the_virtual_node(webhook, daemon_factory, kube, routed_namespace, taint_key):
    daemon = daemon_factory(env={"VKUBELET_TAINT_KEY": taint_key})
    wait_for(lambda: kube.ready(daemon.node) == "True", 60, f"node {daemon.node} Ready")
    created = kube.create(routed_namespace, bare_pod("web", {"alibabacloud.com/eci": "true"}))
    assert routed_to_eci(created, taint_key), created["spec"]
    pod = wait_for(lambda: (p := kube.pod(routed_namespace, "web")) and running(p) and p, 60, "the pod Running")
    assert pod["spec"]["nodeName"] == daemon.node


def test_a_pod_in_a_labelled_namespace_is_routed_and_one_labelled_false_is_not(
    webhook, cluster, kube, routed_namespace, taint_key
):
    cluster.kubectl("label", "namespace", routed_namespace, "alibabacloud.com/eci=true")
    # The webhook's namespace watch may lag the label by a moment; the first pod may miss it.
    wait_for(
        lambda: routed_to_eci(
            dry_run(kube, routed_namespace, bare_pod("x")),
            taint_key,
        ),
        10,
        "the namespace label to reach the webhook",
    )
    assert routed_to_eci(kube.create(routed_namespace, bare_pod("in-namespace")), taint_key)
    opted_out = kube.create(routed_namespace, bare_pod("opted-out", {"alibabacloud.com/eci": "false"}))
    assert "tolerations" not in opted_out["spec"] or not any(
        t.get("key") == taint_key for t in opted_out["spec"]["tolerations"]
    )
    assert "nodeSelector" not in opted_out["spec"]


def test_an_unlabelled_pod_is_left_alone(webhook, kube, routed_namespace):
    created = kube.create(routed_namespace, bare_pod("plain", {"app": "web"}))
    assert "nodeSelector" not in created["spec"]
    assert "affinity" not in created["spec"]


def test_a_selector_routes_and_its_annotation_reaches_the_container_group(
    webhook, daemon_factory, kube, fake_eci, cluster, routed_namespace, taint_key, profile, test_id
):
    daemon = daemon_factory(env={"VKUBELET_TAINT_KEY": taint_key})
    cluster.kubectl("label", "namespace", routed_namespace, f"team={test_id}")
    selectors = [
        {
            "name": "small-batch",
            "namespaceSelector": {"matchLabels": {"team": test_id}},
            "objectSelector": {"matchLabels": {"job": "batch"}},
            "effect": {"annotations": {"k8s.aliyun.com/eci-use-specs": "1-2Gi"}, "labels": {"cost": "batch"}},
        }
    ]
    profile({"selectors": json.dumps(selectors)})

    def admitted_with_effect() -> bool:
        dry = dry_run(kube, routed_namespace, bare_pod("dry", {"job": "batch"}))
        return (dry["metadata"].get("annotations") or {}).get("k8s.aliyun.com/eci-use-specs") == "1-2Gi"

    wait_for(admitted_with_effect, 5, "the profile to be in force within 5 s")
    created = kube.create(routed_namespace, bare_pod("job", {"job": "batch"}))
    assert routed_to_eci(created, taint_key)
    assert created["metadata"]["labels"]["cost"] == "batch"
    wait_for(lambda: kube.ready(daemon.node) == "True", 60, f"node {daemon.node} Ready")
    wait_for(lambda: running(kube.pod(routed_namespace, "job")), 60, "the pod Running")
    (group,) = fake_groups(fake_eci, daemon.node)
    assert (float(group["Cpu"]), float(group["Memory"])) == (1.0, 2.0), group


def test_a_broken_profile_keeps_the_last_good_one_with_a_warning_event(
    webhook, kube, routed_namespace, profile, test_id
):
    def annotation_of_new_pod() -> str | None:
        dry = dry_run(kube, routed_namespace, bare_pod("dry", {"app": test_id}))
        return (dry["metadata"].get("annotations") or {}).get("e2e.vkeci.io/profile")

    def selectors(value: str) -> str:
        effect = {"annotations": {"e2e.vkeci.io/profile": value}}
        return json.dumps([{"name": "mark", "objectSelector": {"matchLabels": {"app": test_id}}, "effect": effect}])

    profile({"selectors": selectors("first"), "vSwitchIds": "vsw-e2e-a"})
    wait_for(lambda: annotation_of_new_pod() == "first", 5, "the first profile in force")

    profile({"selectors": selectors("second")[:-3], "vSwitchIds": "vsw-e2e-a,subnet-b"})  # cut JSON, a bad id
    events_path = "/api/v1/namespaces/kube-system/events"

    def warning() -> dict[str, Any] | None:
        params = {"fieldSelector": "involvedObject.name=eci-profile,reason=InvalidEciProfile"}
        items = kube.client.get(events_path, params).get("items") or []
        return items[-1] if items else None

    event = wait_for(warning, 10, "a Warning event on the ConfigMap")
    assert event["type"] == "Warning" and event["involvedObject"]["kind"] == "ConfigMap"
    assert "selectors: not valid JSON" in event["message"]
    assert "vSwitchIds: 'subnet-b' is not a vSwitch id" in event["message"]
    assert "The last good profile stays in force" in event["message"]
    time.sleep(1)  # the rejected edit has been seen (the event says so); pods keep the old profile
    assert annotation_of_new_pod() == "first"

    profile({"selectors": selectors("third")})
    started = time.monotonic()
    wait_for(lambda: annotation_of_new_pod() == "third", 5, "the fixed profile in force within 5 s")
    print(f"fixed profile in force after {time.monotonic() - started:.2f}s")


def test_pods_are_still_created_while_the_webhook_hangs_or_is_down(webhook, kube, routed_namespace, taint_key):
    # Hung (accepts connections, never answers): the API server gives up after timeoutSeconds (3 s).
    assert webhook.proc is not None
    webhook.proc.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        created = kube.create(routed_namespace, bare_pod("hung", {"alibabacloud.com/eci": "true"}))
        hung = time.monotonic() - started
    finally:
        webhook.proc.send_signal(signal.SIGCONT)
    assert not routed_to_eci(created, taint_key)
    assert 2.5 < hung < 10.0, f"creating a pod took {hung:.1f}s with the webhook hung"

    # Down (connection refused): no wait at all.
    webhook.stop()
    started = time.monotonic()
    created = kube.create(routed_namespace, bare_pod("unrouted", {"alibabacloud.com/eci": "true"}))
    down = time.monotonic() - started
    # failurePolicy Ignore: created as written, not routed.
    assert not routed_to_eci(created, taint_key)
    assert down < 2.0, f"creating a pod took {down:.1f}s with the webhook down"
    print(f"pod created in {hung:.2f}s with the webhook hung, {down:.2f}s with it down")


def test_a_burst_deployment_fills_the_real_node_then_spills_onto_the_virtual_node(
    webhook, daemon_factory, kube, fake_eci, cluster, routed_namespace, taint_key, test_id
):
    daemon = daemon_factory(env={"VKUBELET_TAINT_KEY": taint_key})
    real = f"real-{test_id}"
    capacity = {"cpu": "2", "memory": "8Gi", "pods": "110"}
    kube.client.post("/api/v1/nodes", {"metadata": {"name": real, "labels": {"kubernetes.io/hostname": real}}})
    try:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        ready = {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "a plain fake node: nothing runs on it, it only attracts the scheduler",
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }
        kube.client.patch(
            f"/api/v1/nodes/{real}/status",
            {"status": {"capacity": capacity, "allocatable": capacity, "conditions": [ready]}},
            content_type="application/merge-patch+json",
        )
        # The node lifecycle controller removes the not-ready taint it put on the new node.
        wait_for(lambda: not kube.node(real)["spec"].get("taints"), 20, "the real node without taints")
        wait_for(lambda: kube.ready(daemon.node) == "True", 60, f"node {daemon.node} Ready")
        template = bare_pod("", annotations={"alibabacloud.com/burst-resource": "eci"})
        template["metadata"] = {"labels": {"app": "burst"}, "annotations": template["metadata"]["annotations"]}
        template["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "500m", "memory": "256Mi"}}
        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "burst"},
            "spec": {"replicas": 6, "selector": {"matchLabels": {"app": "burst"}}, "template": template},
        }
        kube.create(routed_namespace, deployment)

        def placed() -> dict[str, int] | None:
            pods = kube.pods(routed_namespace, "app=burst")
            nodes = [p["spec"].get("nodeName") for p in pods]
            if len(nodes) != 6 or not all(nodes):
                return None
            return {node: nodes.count(node) for node in set(nodes)}

        counts = wait_for(placed, 60, "all six replicas scheduled")
        # 2 CPUs of 500m requests: the real node takes four, the other two spill onto ECI.
        assert counts == {real: 4, daemon.node: 2}, counts
        on_eci = [p for p in kube.pods(routed_namespace, "app=burst") if p["spec"]["nodeName"] == daemon.node]
        wait_for(lambda: len(fake_groups(fake_eci, daemon.node)) == 2, 60, "two container groups")
        assert all(any(t.get("key") == taint_key for t in p["spec"]["tolerations"]) for p in on_eci)
    finally:
        cluster.kubectl("delete", "deployment", "burst", "-n", routed_namespace, "--wait=false", check=False)
        cluster.kubectl("delete", "node", real, "--ignore-not-found", "--wait=false", check=False)


def namespace_exists(kube: Any, name: str) -> bool:
    """Whether the namespace is still there (terminating counts)."""
    try:
        kube.client.get(f"/api/v1/namespaces/{name}")
    except KubeError as err:
        if err.not_found:
            return False
        raise
    return True


def test_the_shipped_manifests_are_accepted_by_the_api_server(cluster, kube, tmp_path):
    """The kustomize base with the webhook component, as the example overlay installs it."""
    created = False
    try:
        kube.client.post("/api/v1/namespaces", {"metadata": {"name": "vkeci-system"}})
        created = True
    except KubeError as err:
        if not err.conflict:
            raise
    try:
        out = cluster.kubectl("apply", "--dry-run=server", "-k", str(with_components(tmp_path, ["webhook"])))
    finally:
        if created:
            kube.client.delete("/api/v1/namespaces/vkeci-system")
            # Gone before the next test: tests/e2e/test_deploy_identity.py installs into it.
            wait_for(lambda: not namespace_exists(kube, "vkeci-system"), 60, "namespace vkeci-system deleted")
    assert "mutatingwebhookconfiguration.admissionregistration.k8s.io/vkeci created (server dry run)" in out.stdout
    assert "deployment.apps/vkeci-webhook created (server dry run)" in out.stdout
    assert "role.rbac.authorization.k8s.io/vkeci-webhook created (server dry run)" in out.stdout


def test_two_replicas_share_one_self_signed_certificate(
    cluster, kubeconfig, kube, tmp_path, routed_namespace, test_id, taint_key
):
    """Two `vkeci webhook` processes with one --tls-secret serve the same certificate, so the one caBundle
    trusts both (each would otherwise write its own, undoing the other's)."""
    import ssl

    secret = f"{routed_namespace}/vkeci-webhook-tls"
    procs = [
        WebhookProcess(
            kubeconfig,
            tmp_path / f"webhook-{i}.log",
            test_id=test_id,
            taint_key=taint_key,
            extra_args=(f"--tls-secret={secret}",),
        ).start()
        for i in range(2)
    ]
    path = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
    config = procs[0].manifest(test_id)
    second = json.loads(json.dumps(config["webhooks"][0]))
    second["name"] = "pods-2.webhook.vkeci.io"
    second["clientConfig"] = {"url": f"https://127.0.0.1:{procs[1].port}/mutate-pods"}
    config["webhooks"].append(second)
    kube.client.post(path, config)
    try:
        served = {ssl.get_server_certificate(("127.0.0.1", p.port)) for p in procs}
        assert len(served) == 1, "the two replicas serve different certificates"

        def both_called() -> bool:
            pod = dry_run(kube, routed_namespace, bare_pod("dry", {"alibabacloud.com/eci": "true"}))
            return routed_to_eci(pod, taint_key) and all("pod admitted" in p.log_text() for p in procs)

        wait_for(both_called, 30, "both webhooks called and trusted")
        for p in procs:
            p.log_path.write_text("")  # from here on, no handshake may fail
        for i in range(5):
            assert routed_to_eci(
                kube.create(routed_namespace, bare_pod(f"p{i}", {"alibabacloud.com/eci": "true"})), taint_key
            )
        for p in procs:
            assert "bad certificate" not in p.log_text() and "pod admitted" in p.log_text(), p.log_text()
        stored = kube.client.get(f"/api/v1/namespaces/{routed_namespace}/secrets/vkeci-webhook-tls")
        assert stored["type"] == "kubernetes.io/tls" and set(stored["data"]) == {"tls.crt", "tls.key", "ca.crt"}
    finally:
        for p in procs:
            p.stop()
        cluster.kubectl(
            "delete", "mutatingwebhookconfiguration", procs[0].configuration, "--ignore-not-found", check=False
        )


def test_a_certificate_from_the_cluster_ca_through_a_csr(
    cluster, kubeconfig, kube, tmp_path, routed_namespace, test_id, taint_key
):
    """--tls-csr: a kubelet-serving CSR, approved by the webhook itself and signed by the controller
    manager; the caBundle written is the cluster CA (here the kubeconfig's)."""
    proc = WebhookProcess(
        kubeconfig,
        tmp_path / "webhook.log",
        test_id=test_id,
        taint_key=taint_key,
        extra_args=("--tls-csr", "--tls-csr-approve"),
    ).start()
    path = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
    kube.client.post(path, proc.manifest(test_id))
    try:

        def routed() -> bool:
            pod = dry_run(kube, routed_namespace, bare_pod("dry", {"alibabacloud.com/eci": "true"}))
            return routed_to_eci(pod, taint_key)

        wait_for(routed, 30, "the API server to trust the CSR-issued certificate")
        config = kube.client.get(f"{path}/{proc.configuration}")
        bundle = base64.b64decode(config["webhooks"][0]["clientConfig"]["caBundle"])
        assert bundle.strip() == cluster.pki.ca_crt.read_bytes().strip()
    finally:
        proc.stop()
        cluster.kubectl("delete", "mutatingwebhookconfiguration", proc.configuration, "--ignore-not-found", check=False)


def test_a_profile_edit_changes_the_vswitch_of_the_next_pod(
    webhook, daemon_factory, kube, fake_eci, routed_namespace, taint_key, profile
):
    daemon = daemon_factory(env={"VKUBELET_TAINT_KEY": taint_key})  # its own setting: vsw-fake-a,vsw-fake-b
    wait_for(lambda: kube.ready(daemon.node) == "True", 60, f"node {daemon.node} Ready")

    def vswitch_of_new_pod(name: str) -> str:
        kube.create(routed_namespace, bare_pod(name, {"alibabacloud.com/eci": "true"}))
        wait_for(lambda: running(kube.pod(routed_namespace, name)), 60, f"{name} Running")
        group = next(g for g in fake_groups(fake_eci, daemon.node) if tags_of_pod(g) == name)
        return str(group["VSwitchId"])

    assert vswitch_of_new_pod("before") == "vsw-fake-a"
    for vswitch, name in (("vsw-fake-b", "after"), ("vsw-fake-a", "again")):
        started = time.monotonic()
        profile({"vSwitchIds": vswitch})
        version = kube.client.get(f"{PROFILE_PATH}/eci-profile")["metadata"]["resourceVersion"]
        wait_for(lambda v=version: f"resourceVersion {v}" in daemon.log_text(), 5, "the daemon to take the edit in 5 s")
        print(f"profile in force in the daemon after {time.monotonic() - started:.2f}s")
        assert vswitch_of_new_pod(name) == vswitch
    # A broken edit keeps the last good one for the next pod as well.
    profile({"vSwitchIds": "subnet-x"})
    wait_for(lambda: "eci-profile rejected" in daemon.log_text(), 5, "the daemon to reject the edit")
    assert vswitch_of_new_pod("kept") == "vsw-fake-a"


def tags_of_pod(group: dict[str, Any]) -> str:
    return next((str(t.get("Value")) for t in group.get("Tags") or [] if t.get("Key") == "PodName"), "")
