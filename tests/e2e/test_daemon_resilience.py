"""The daemon under stress: kill -9 mid-create, lost and failed ECI answers, an API server restart,
and a stop long enough for the node to go NotReady."""

from __future__ import annotations

from collections import Counter

from vkfixtures import *  # noqa: F403 - pytest fixtures: daemon, daemon_factory, fake_eci, kube

from e2e.harness import fake_groups, nginx_deployment, running, set_faults, settled, wait_for


def _no_failed(kube, namespace, app):
    failed = [p["metadata"]["name"] for p in kube.pods(namespace, f"app={app}") if p["status"].get("phase") == "Failed"]
    assert not failed, f"pods wrongly Failed: {failed}"


def test_kill_9_mid_create_then_restart_makes_exactly_20_groups(daemon_factory, kube, fake_eci, namespace):
    first = daemon_factory()
    wait_for(lambda: kube.ready(first.node) == "True", 60, "node Ready")
    # Slow creates down so that the kill lands in the middle of the burst.
    set_faults(fake_eci, {"latency": {"CreateContainerGroup": 1.0}})
    kube.create(namespace, nginx_deployment("burst", first.node, 20))
    wait_for(lambda: len(fake_groups(fake_eci, first.node)) >= 3, 60, "the first groups")
    first.kill()
    made = len(fake_groups(fake_eci, first.node))
    assert made < 20, "the daemon finished before it was killed; the test proves nothing"
    set_faults(fake_eci, {"latency": {}})
    second = daemon_factory(node=first.node)
    _, groups = wait_for(lambda: settled(kube, fake_eci, namespace, second.node, "burst", 20), 120, "20 pods")
    assert len(groups) == 20
    _no_failed(kube, namespace, "burst")


def test_dropped_answers_and_server_errors_make_no_duplicates_and_no_failures(daemon, kube, fake_eci, namespace):
    pod_actions = ("CreateContainerGroup", "DeleteContainerGroup", "DescribeContainerGroups")
    set_faults(
        fake_eci,
        {
            "seed": 7,
            "drop_response": {action: 0.2 for action in pod_actions},
            "errors": [
                {"action": action, "code": code, "rate": 0.05}
                for action in (*pod_actions, "DescribeContainerGroupStatus")
                for code in ("ServiceUnavailable", "Throttling.User")
            ],
        },
    )
    kube.create(namespace, nginx_deployment("flaky", daemon.node, 20))
    wait_for(lambda: settled(kube, fake_eci, namespace, daemon.node, "flaky", 20), 120, "20 pods despite faults")
    _no_failed(kube, namespace, "flaky")
    kube.scale(namespace, "flaky", 0)
    wait_for(lambda: not kube.pods(namespace, "app=flaky"), 120, "all pods deleted despite faults")
    wait_for(lambda: not fake_groups(fake_eci, daemon.node), 60, "all groups deleted")
    outcomes = Counter()
    for action in fake_eci.faults.call_counts()["by_action"].values():
        outcomes.update(action["outcomes"])
    # The faults really happened: the test is not green by luck.
    assert outcomes["Dropped"] >= 3 and outcomes["ServiceUnavailable"] + outcomes["Throttling.User"] >= 3, outcomes


def test_api_server_restart_is_survived(daemon, kube, fake_eci, namespace, cluster):
    kube.create(namespace, nginx_deployment("steady", daemon.node, 2))
    wait_for(lambda: settled(kube, fake_eci, namespace, daemon.node, "steady", 2), 60, "2 pods")
    cluster.restart("kube-apiserver")
    kube.scale(namespace, "steady", 5)
    wait_for(lambda: settled(kube, fake_eci, namespace, daemon.node, "steady", 5), 90, "5 pods after the restart")
    kube.scale(namespace, "steady", 1)
    wait_for(lambda: settled(kube, fake_eci, namespace, daemon.node, "steady", 1), 90, "1 pod after scale down")
    assert daemon.alive


def test_stopped_daemon_goes_not_ready_and_comes_back_with_pods_kept(daemon_factory, kube, fake_eci, namespace):
    first = daemon_factory()
    wait_for(lambda: kube.ready(first.node) == "True", 60, "node Ready")
    kube.create(namespace, nginx_deployment("kept", first.node, 2))
    _, before = wait_for(lambda: settled(kube, fake_eci, namespace, first.node, "kept", 2), 60, "2 pods")
    assert first.stop() == 0
    # node-monitor-grace-period is 20 s in the test cluster.
    wait_for(lambda: kube.ready(first.node) == "Unknown", 60, "node NotReady (Unknown) after the lease expired")
    assert {g["ContainerGroupId"] for g in fake_groups(fake_eci, first.node)} == {g["ContainerGroupId"] for g in before}
    second = daemon_factory(node=first.node)
    wait_for(lambda: kube.ready(second.node) == "True", 60, "node Ready again")
    _, after = wait_for(lambda: settled(kube, fake_eci, namespace, second.node, "kept", 2), 60, "2 pods")
    assert {g["ContainerGroupId"] for g in after} == {g["ContainerGroupId"] for g in before}
    _no_failed(kube, namespace, "kept")


def test_no_stock_in_one_zone_moves_to_the_next(daemon, kube, fake_eci, namespace):
    set_faults(fake_eci, {"stock": {"cn-hangzhou-a": 0}})
    kube.create(namespace, nginx_deployment("zonal", daemon.node, 2))
    live, groups = wait_for(lambda: settled(kube, fake_eci, namespace, daemon.node, "zonal", 2), 60, "2 pods")
    assert {g["ZoneId"] for g in groups} == {"cn-hangzhou-b"}
    assert len(live) == 2

    def zones():
        pods = kube.pods(namespace, "app=zonal")
        return {(p["metadata"].get("annotations") or {}).get("k8s.aliyun.com/eci-instance-zone") for p in pods}

    wait_for(lambda: zones() == {"cn-hangzhou-b"}, 30, "the zone written back on the pods")
    # Same with the fake in synchronous stock mode. (The daemon's own fallback, dropping a vSwitch after a
    # 403 OperationDenied.NoStock, is unit-tested: the fake only answers that when every zone is out.)
    set_faults(fake_eci, {"stock": {"cn-hangzhou-a": 0}, "stock_mode": "sync"})
    kube.scale(namespace, "zonal", 4)
    _, groups = wait_for(lambda: settled(kube, fake_eci, namespace, daemon.node, "zonal", 4), 60, "4 pods")
    assert {g["ZoneId"] for g in groups} == {"cn-hangzhou-b"}


def test_refused_create_is_shown_with_code_and_request_id_then_recovers(daemon, kube, fake_eci, namespace):
    refusal = {"action": "CreateContainerGroup", "code": "InvalidParameter.Test", "status": 400, "times": 1}
    set_faults(fake_eci, {"errors": [refusal]})
    kube.create(namespace, nginx_deployment("refused", daemon.node, 1))

    def provider_failed():
        pods = kube.pods(namespace, "app=refused")
        return pods[0] if pods and pods[0]["status"].get("reason") == "ProviderFailed" else None

    pod = wait_for(provider_failed, 60, "ProviderFailed with the ECI error")
    assert pod["status"]["phase"] == "Pending"  # restartPolicy Always: a later retry may succeed
    assert "InvalidParameter.Test" in pod["status"]["message"] and "RequestId" in pod["status"]["message"]

    # The status is written before the Warning is posted, and the scheduler's own event may come first:
    # wait for the Warning itself.
    def create_failed():
        events = kube.events(namespace, pod["metadata"]["name"])
        return [e for e in events if e["reason"] == "ProviderCreateFailed"] or None

    events = wait_for(create_failed, 30, "a ProviderCreateFailed Warning event")
    assert any("InvalidParameter.Test" in e["message"] for e in events)
    # The fault was one-shot: the retry succeeds and the pod turns Running with the reason cleared.
    wait_for(lambda: settled(kube, fake_eci, namespace, daemon.node, "refused", 1), 90, "Running")
    assert not kube.pods(namespace, "app=refused")[0]["status"].get("reason")


def test_a_ready_condition_someone_else_set_false_is_put_back(daemon, kube, fake_eci, namespace):
    # The node lifecycle controller marks every pod of a NotReady node Ready=False (as during a leader
    # take-over that outlasts node-monitor-grace-period); the groups did not change, so no ECI listing
    # would ever describe them again: the pod's next sync (the watch event of that very write) puts it back.
    kube.create(namespace, nginx_deployment("marked", daemon.node, 2))
    live, _ = wait_for(lambda: settled(kube, fake_eci, namespace, daemon.node, "marked", 2), 60, "2 pods")
    name = live[0]["metadata"]["name"]
    kube.client.patch(
        f"/api/v1/namespaces/{namespace}/pods/{name}/status",
        {"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "NodeNotReady"}]}},
        content_type="application/strategic-merge-patch+json",
    )
    assert not running(kube.pod(namespace, name))
    wait_for(lambda: running(kube.pod(namespace, name)), 30, f"pod {name} Ready again")
    _no_failed(kube, namespace, "marked")
