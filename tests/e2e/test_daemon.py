"""`vkeci run` end to end: the real control plane, the real SDK over HTTP, the fake ECI.

Node and lease registration, an nginx Deployment scaled 0 → 10 → 3 → 0, Jobs that succeed, fail
with exit code 3 and restart OnFailure, a rejected hostPath pod, and an orphan group swept (a group
deleted behind the daemon's back: test_lost_groups.py).
"""

from __future__ import annotations

import subprocess
import sys

import requests
from vkfixtures import *  # noqa: F403 - pytest fixtures: daemon, daemon_factory, fake_eci, kube

from e2e.harness import (
    ROOT,
    fake_groups,
    job_manifest,
    nginx_deployment,
    pod_manifest,
    running,
    stray_group,
    tags_of,
    wait_for,
)
from e2e.netns import node_ip
from vkeci.clients.kube import KubeError


def test_node_and_lease_are_registered(daemon, kube):
    node = kube.node(daemon.node)
    labels = node["metadata"]["labels"]
    assert labels["type"] == "virtual-kubelet" and labels["kubernetes.io/hostname"] == daemon.node
    assert {"key": "virtual-kubelet.io/provider", "value": "alibabacloud", "effect": "NoSchedule"} in node["spec"][
        "taints"
    ]
    status = node["status"]
    assert status["addresses"] == [{"type": "InternalIP", "address": node_ip()}]
    assert status["nodeInfo"]["kubeletVersion"].startswith("v1.35.")
    lease_path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{daemon.node}"
    lease = wait_for(lambda: kube.get(lease_path), 20, "the lease (created by the first heartbeat)")
    assert lease["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]
    first = lease["spec"]["renewTime"]
    wait_for(lambda: kube.get(lease_path)["spec"]["renewTime"] != first, 10, "the lease to be renewed")
    # The health endpoint, plain HTTP on loopback (the default address), no credentials.
    for path in ("/healthz", "/readyz"):
        answer = requests.get(f"http://127.0.0.1:{daemon.health_port}{path}", timeout=5)
        assert (answer.status_code, answer.text) == (200, "ok\n"), path


def _deployment_pods(kube, namespace, name):
    return [p for p in kube.pods(namespace, f"app={name}") if not p["metadata"].get("deletionTimestamp")]


def _check_scale(kube, fake, namespace, node, name, replicas):
    kube.scale(namespace, name, replicas)

    def settled():
        pods = kube.pods(namespace, f"app={name}")
        groups = fake_groups(fake, node)
        # The write-back annotations ride on the first status write that follows the describe.
        annotated = all("k8s.aliyun.com/eci-instance-id" in (p["metadata"].get("annotations") or {}) for p in pods)
        ok = len(pods) == replicas and all(running(p) for p in pods) and len(groups) == replicas and annotated
        return (pods, groups) if ok else None

    pods, groups = wait_for(settled, 90, f"{replicas} Running, annotated pods and {replicas} groups")
    ips = {g.get("IntranetIp") for g in groups}
    by_uid = {tags_of(g)["UID"]: g for g in groups}
    for pod in pods:
        group = by_uid[pod["metadata"]["uid"]]
        assert pod["status"]["podIP"] == group["IntranetIp"] and pod["status"]["podIP"] in ips
        conditions = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
        assert conditions.get("Ready") == "True" and conditions.get("ContainersReady") == "True"
        assert conditions.get("PodScheduled") == "True"  # the scheduler's condition survives our patches
        assert_no_stale_reasons(pod)
        assert pod["metadata"]["annotations"]["k8s.aliyun.com/eci-instance-id"] == group["ContainerGroupId"]


def test_nginx_deployment_scales_0_10_3_0(daemon, kube, fake_eci, namespace):
    kube.create(namespace, nginx_deployment("web", daemon.node, 0))
    for replicas in (10, 3, 0):
        _check_scale(kube, fake_eci, namespace, daemon.node, "web", replicas)
    assert fake_groups(fake_eci, daemon.node, live_only=False) == []


def _job_pod(kube, namespace, job):
    pods = kube.pods(namespace, f"job-name={job}")
    return pods[0] if pods else None


def test_jobs_succeed_fail_with_exit_code_and_count_restarts(daemon, kube, fake_eci, namespace):
    kube.create(namespace, job_manifest("ok", daemon.node, ["sh", "-c", "exit 0"]))
    kube.create(namespace, job_manifest("bad", daemon.node, ["sh", "-c", "exit 3"]))
    kube.create(namespace, job_manifest("retry", daemon.node, ["sh", "-c", "sleep 0.5; exit 1"], "OnFailure", 6))

    def phase(job, want):
        pod = _job_pod(kube, namespace, job)
        return pod if pod and pod["status"].get("phase") == want else None

    ok = wait_for(lambda: phase("ok", "Succeeded"), 60, "the exit-0 job pod to succeed")
    assert ok["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    bad = wait_for(lambda: phase("bad", "Failed"), 60, "the exit-3 job pod to fail")
    terminated = bad["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 3 and terminated["reason"] == "Error"

    def restarted():
        pod = _job_pod(kube, namespace, "retry")
        statuses = (pod or {}).get("status", {}).get("containerStatuses") or []
        return pod if statuses and statuses[0].get("restartCount", 0) >= 2 else None

    pod = wait_for(restarted, 60, "the OnFailure job to restart its container twice")
    assert pod["status"]["phase"] in ("Running", "Pending")  # restarting, never Failed under OnFailure
    # Finished pods keep their status; their groups are cleaned up.
    wait_for(
        lambda: (
            not [
                g
                for g in fake_groups(fake_eci, daemon.node, live_only=False)
                if tags_of(g).get("PodName", "").startswith(("ok-", "bad-"))
            ]
        ),
        30,
        "finished groups cleaned up",
    )


def test_hostpath_pod_is_rejected_clearly_and_others_run(daemon, kube, fake_eci, namespace):
    bad = pod_manifest(
        "hostpath",
        daemon.node,
        containers=[{"name": "c", "image": "nginx", "volumeMounts": [{"name": "h", "mountPath": "/h"}]}],
        volumes=[{"name": "h", "hostPath": {"path": "/var/log"}}],
    )
    kube.create(namespace, bad)
    kube.create(namespace, pod_manifest("fine", daemon.node, containers=[{"name": "c", "image": "nginx"}]))
    wait_for(lambda: running(kube.pod(namespace, "fine")), 60, "the good pod to run")

    def rejected():
        pod = kube.pod(namespace, "hostpath")
        return pod if pod["status"].get("reason") == "ProviderFailed" else None

    pod = wait_for(rejected, 30, "the hostPath pod to be rejected")
    assert "spec.volumes[0]" in pod["status"]["message"]
    events = wait_for(lambda: [e for e in kube.events(namespace, "hostpath") if e["type"] == "Warning"], 30, "event")
    assert any("spec.volumes[0]" in e["message"] for e in events)
    uids = {tags_of(g).get("UID") for g in fake_groups(fake_eci, daemon.node)}
    assert pod["metadata"]["uid"] not in uids


def test_invalid_image_references_get_invalid_image_name_and_no_group(daemon, kube, fake_eci, namespace):
    """Issue 12: each of these got a billed container group; a kubelet refuses them at once."""
    images = ["nginx@sha256:deadbeef", "Docker.IO/Library/NGINX:Latest", "nginx:1.27:extra", "a" * 455]
    for index, image in enumerate(images):
        kube.create(
            namespace, pod_manifest(f"bad-image-{index}", daemon.node, containers=[{"name": "c", "image": image}])
        )

    def refused(name):
        statuses = kube.pod(namespace, name)["status"].get("containerStatuses") or []
        waiting = [s.get("state", {}).get("waiting", {}) for s in statuses]
        return waiting[0] if waiting and waiting[0].get("reason") == "InvalidImageName" else None

    for index, image in enumerate(images):
        waiting = wait_for(lambda: refused(f"bad-image-{index}"), 30, f"InvalidImageName for {image[:40]}")  # noqa: B023
        assert waiting["message"].startswith(f'Failed to apply default image tag "{image}"')
    names = {tags_of(g).get("PodName") for g in fake_groups(fake_eci, daemon.node)}
    assert not {f"bad-image-{index}" for index in range(len(images))} & names


def test_orphan_group_is_swept(daemon, kube, fake_eci):
    gid = stray_group(fake_eci, daemon.node, "default", "ghost", "00000000-0000-0000-0000-000000000000", name="ghost")
    wait_for(lambda: gid not in {g["ContainerGroupId"] for g in fake_groups(fake_eci, daemon.node)}, 30, "sweep")


def test_daemonset_pods_stay_pending_visibly(daemon, kube, fake_eci, namespace):
    ds = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": daemon.node},
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [{"name": "agent", "image": "busybox"}],
                },
            },
        },
    }
    kube.create(namespace, ds)

    def pending():
        pods = kube.pods(namespace, "app=agent")
        return pods[0] if pods and pods[0]["status"].get("reason") == "DaemonSetPodNotSupported" else None

    pod = wait_for(pending, 60, "the DaemonSet pod to be marked")
    assert pod["status"]["phase"] == "Pending"
    name = pod["metadata"]["name"]
    wait_for(lambda: [e for e in kube.events(namespace, name) if e["type"] == "Warning"], 30, "a Warning event")
    assert not [g for g in fake_groups(fake_eci, daemon.node) if tags_of(g).get("PodName") == name]


def _vkeci(*args, env):
    return subprocess.run(
        [sys.executable, "-m", "vkeci", *args], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT
    )


def test_unknown_and_unsupported_aliyun_annotations_get_a_warning_event_and_the_pod_runs(
    daemon, kube, fake_eci, namespace
):
    # Admin review R12: a typo'd eci-use-specs and Alibaba's eci-instance-family were ignored without a word.
    manifest = pod_manifest("typo", daemon.node, containers=[{"name": "c", "image": "nginx"}])
    manifest["metadata"]["annotations"] = {
        "k8s.aliyun.com/eci-usespecs": "8-16Gi",
        "k8s.aliyun.com/eci-instance-family": "ecs.c6",
    }
    kube.create(namespace, manifest)
    wait_for(lambda: running(kube.pod(namespace, "typo")), 60, "the pod to run")

    def warned():
        return [e for e in kube.events(namespace, "typo") if e["reason"] == "TranslationWarning"]

    [event] = wait_for(warned, 30, "the TranslationWarning event")
    assert event["type"] == "Warning"
    assert "eci-usespecs']: unknown annotation; ignored; did you mean k8s.aliyun.com/eci-use-specs?" in event["message"]
    assert "eci-instance-family']: not supported by vk-eci yet" in event["message"]


def test_check_reports_each_problem_in_one_line(daemon):
    ok = _vkeci("check", env=daemon.env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "ok   ECI" in ok.stdout and "ok   Kubernetes" in ok.stdout and "ok   ECI placement" in ok.stdout
    wrong_place = _vkeci("check", env={**daemon.env, "ECI_VSWITCH": "vsw-does-not-exist"})
    assert wrong_place.returncode == 1
    assert any(
        line.startswith("FAIL ECI placement") and "vsw-does-not-exist" in line
        for line in wrong_place.stdout.splitlines()
    ), wrong_place.stdout
    bad = _vkeci("check", env={**daemon.env, "ECI_SECRET_KEY": "wrong-secret", "ECI_SECURITY_GROUP": ""})
    assert bad.returncode == 1
    lines = bad.stdout.splitlines()
    assert any(line.startswith("FAIL ECI") for line in lines)
    assert any(line.startswith("FAIL config security_group") and "ECI_SECURITY_GROUP" in line for line in lines)
    assert "wrong-secret" not in bad.stdout + bad.stderr
    nowhere = _vkeci("check", env={**daemon.env, "ECI_REGION": "cn-nowhere"})
    assert any(
        line.startswith("FAIL ECI:") and "'cn-nowhere' is not one of its ECI regions" in line
        for line in nowhere.stdout.splitlines()
    ), nowhere.stdout


def test_decommission_drains_and_removes_the_node(daemon_factory, kube, fake_eci, namespace):
    first = daemon_factory()
    wait_for(lambda: kube.ready(first.node) == "True", 60, "node Ready")
    kube.create(namespace, pod_manifest("solo", first.node, containers=[{"name": "c", "image": "nginx"}]))
    wait_for(lambda: running(kube.pod(namespace, "solo")), 60, "the pod to run")
    first.stop()
    done = _vkeci("run", *first.args[4:], "--decommission", "--drain-timeout=60", env=first.env)
    assert done.returncode == 0, done.stderr[-2000:]
    wait_for(lambda: not fake_groups(fake_eci, first.node), 30, "groups gone")
    try:
        kube.node(first.node)
        raise AssertionError("the node still exists")
    except KubeError as err:
        assert err.not_found


def test_pod_waits_for_a_missing_configmap_then_runs(daemon, kube, fake_eci, namespace):
    container = {
        "name": "c",
        "image": "nginx",
        "env": [{"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "later", "key": "greeting"}}}],
    }
    kube.create(namespace, pod_manifest("patient", daemon.node, containers=[container]))

    def waiting():
        status = kube.pod(namespace, "patient")["status"]
        states = [c.get("state", {}).get("waiting", {}) for c in status.get("containerStatuses") or []]
        return status if any(s.get("reason") == "CreateContainerConfigError" for s in states) else None

    status = wait_for(waiting, 60, "CreateContainerConfigError while the ConfigMap is missing")
    assert status["phase"] == "Pending"
    # As a kubelet words it (issue 12): reason Failed, the API's NotFound with Go quoting.
    # The kubelet's (the daemon's) Warnings only: the scheduler may add a FailedScheduling of its own
    # while the virtual node of this test is not yet Ready.
    warnings = lambda: [  # noqa: E731
        e
        for e in kube.events(namespace, "patient")
        if e["type"] == "Warning" and (e.get("source") or {}).get("component") == "kubelet"
    ]
    events = wait_for(warnings, 30, "the Warning event")
    assert {(e["reason"], e["message"]) for e in events} == {("Failed", 'Error: configmap "later" not found')}
    assert not [g for g in fake_groups(fake_eci, daemon.node) if tags_of(g).get("PodName") == "patient"]
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "later"}, "data": {"greeting": "hi"}}
    kube.create(namespace, configmap)
    wait_for(lambda: running(kube.pod(namespace, "patient")), 90, "the pod to run once the ConfigMap exists")
    assert_no_stale_reasons(wait_for(lambda: _ready(kube.pod(namespace, "patient")), 30, "the pod to be Ready"))


def _ready(pod):
    conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions") or []}
    return pod if conditions.get("Ready") == "True" else None


def assert_no_stale_reasons(pod):
    """Issue 12: a pod written while Pending (ContainersNotReady) keeps no reason on its True conditions."""
    for condition in pod["status"]["conditions"]:
        if condition["status"] == "True" and condition["type"] != "PodScheduled":
            assert "reason" not in condition and "message" not in condition, condition


def test_force_deleted_pod_still_loses_its_group(daemon, kube, fake_eci, namespace, cluster):
    kube.create(namespace, pod_manifest("forced", daemon.node, containers=[{"name": "c", "image": "nginx"}]))
    pod = wait_for(lambda: running(kube.pod(namespace, "forced")) and kube.pod(namespace, "forced"), 60, "running")
    uid = pod["metadata"]["uid"]
    assert [g for g in fake_groups(fake_eci, daemon.node) if tags_of(g)["UID"] == uid]
    cluster.kubectl("delete", "pod", "forced", "-n", namespace, "--grace-period=0", "--force")
    wait_for(lambda: not [g for g in fake_groups(fake_eci, daemon.node) if tags_of(g)["UID"] == uid], 30, "no group")


def test_clusterfirst_pods_get_the_cluster_dns_and_the_api_server_endpoints(
    daemon_factory, kube, fake_eci, namespace, cluster
):
    # The local control plane has no cluster DNS: the test makes the kube-dns Service (ClusterIP allocated).
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "kube-dns"},
        "spec": {"selector": {"k8s-app": "kube-dns"}, "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]},
    }
    dns_ip = kube.create("kube-system", service)["spec"]["clusterIP"]
    # Nor does its API server publish its endpoints (--endpoint-reconciler-type=none, as kwok runs it): the
    # test writes the EndpointSlice a real cluster's API server keeps, with the address the netns gives it.
    api_host, api_port = node_ip(), "6443"
    endpoints = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [api_host], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": int(api_port), "protocol": "TCP"}],
    }
    try:
        kube.create("default", endpoints)

        def request_of(proc, pod_name):
            kube.create(namespace, pod_manifest(pod_name, proc.node, containers=[{"name": "c", "image": "nginx"}]))
            group = wait_for(lambda: fake_groups(fake_eci, proc.node) or None, 60, f"the group of {pod_name}")[0]
            env = {e["Key"]: e.get("Value") for e in group["Containers"][0].get("EnvironmentVars") or []}
            return group["DnsConfig"], env

        found = daemon_factory()
        dns, env = request_of(found, "from-cluster")
        assert dns["NameServers"] == [dns_ip]
        assert dns["Searches"][:3] == [f"{namespace}.svc.cluster.local", "svc.cluster.local", "cluster.local"]
        assert (env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"]) == (api_host, api_port)
        assert "cluster DNS from the kube-system/kube-dns Service" in found.log_text()
        # Both settings override what the cluster says (documentation addresses: never dialled).
        given = daemon_factory(env={"CLUSTER_DNS": "192.0.2.53", "API_SERVER": "192.0.2.10:8443"})
        dns, env = request_of(given, "from-settings")
        assert dns["NameServers"] == ["192.0.2.53"]
        assert (env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"]) == ("192.0.2.10", "8443")
    finally:
        cluster.kubectl("delete", "service", "kube-dns", "-n", "kube-system", "--ignore-not-found", check=False)
        cluster.kubectl("delete", "endpointslice", "kubernetes", "-n", "default", "--ignore-not-found", check=False)
