"""A container group deleted outside vk-eci (issue 12 item 3), on the real control plane with the fake ECI.

The group is deleted with the real SDK's DeleteContainerGroup, as the console or another tool would. The
daemon runs with the default full listing interval (60 s): the loss must be noticed by the 10 s look for
lost groups, within 15 s. A Deployment's pod gets a new group for the same pod (restartCount 1, an event),
and a scale to 0 then leaves nothing behind; a restartPolicy Never pod fails with ContainerGroupDeleted.
"""

from __future__ import annotations

import time

from vkfixtures import *  # noqa: F403 - pytest fixtures: daemon, daemon_factory, fake_eci, kube

from e2e.harness import (
    ACCESS_KEY_ID,
    ACCESS_KEY_SECRET,
    fake_groups,
    nginx_deployment,
    pod_manifest,
    running,
    tags_of,
    wait_for,
)
from vkeci.clients.eci import EciClient, new_client
from vkeci.config import Config, Secret

DETECT_WITHIN = 15.0  # issue 12: noticed within 15 s of the deletion
DEFAULT_FULL = "--full-status-interval=60"  # the default: the full listing must not be what notices it


def _delete_with_the_sdk(fake, group_id: str) -> None:
    """DeleteContainerGroup through the real SDK, as someone outside vk-eci would."""
    config = Config(
        region="cn-hangzhou",
        access_key_id=Secret(ACCESS_KEY_ID),
        access_key_secret=Secret(ACCESS_KEY_SECRET),
        eci_endpoint=fake.endpoint,
        eci_protocol="http",
    )
    EciClient(new_client(config), "cn-hangzhou").delete(group_id)


def _groups_of(fake, node: str, uid: str) -> list[dict]:
    return [g for g in fake_groups(fake, node) if tags_of(g).get("UID") == uid]


def test_deployment_pod_whose_group_is_deleted_gets_a_new_group_then_scales_to_nothing(
    daemon_factory, kube, fake_eci, namespace
):
    daemon = daemon_factory(extra_args=[DEFAULT_FULL])
    wait_for(lambda: kube.ready(daemon.node) == "True", 60, "node Ready")
    kube.create(namespace, nginx_deployment("web", daemon.node, 1))

    def one_running():
        pods = [p for p in kube.pods(namespace, "app=web") if running(p)]
        return pods[0] if len(pods) == 1 else None

    pod = wait_for(one_running, 60, "the Deployment's pod Running")
    uid, name = pod["metadata"]["uid"], pod["metadata"]["name"]
    [old] = wait_for(lambda: _groups_of(fake_eci, daemon.node, uid) or None, 10, "its group")
    time.sleep(1)  # the group has been seen by the status poller at least once
    deleted_at = time.monotonic()
    _delete_with_the_sdk(fake_eci, old["ContainerGroupId"])

    def restarted():
        statuses = kube.pod(namespace, name)["status"].get("containerStatuses") or []
        return statuses if statuses and statuses[0].get("restartCount") == 1 else None

    wait_for(restarted, DETECT_WITHIN + 5, "restartCount 1")
    detected = time.monotonic() - deleted_at

    def new_group():
        groups = [g for g in _groups_of(fake_eci, daemon.node, uid) if g["ContainerGroupId"] != old["ContainerGroupId"]]
        return groups or None

    # The first restart has no back-off (the kubelet's doBackOff): the new group follows the detection at once.
    [new] = wait_for(new_group, DETECT_WITHIN + 5, "a new group for the same pod")
    recreated = time.monotonic() - deleted_at
    print(f"lost group noticed after {detected:.1f} s, new group after {recreated:.1f} s")
    assert recreated <= DETECT_WITHIN
    assert tags_of(new)["GroupAttempt"] == "1" and new["Fake"]["ClientToken"] == f"{uid}-1"
    assert old["Fake"]["ClientToken"] == uid, "attempt 0 keeps the pod UID as its token"

    pod = wait_for(lambda: running(kube.pod(namespace, name)) and kube.pod(namespace, name), 30, "Running again")
    assert pod["metadata"]["uid"] == uid and pod["status"]["containerStatuses"][0]["restartCount"] == 1
    last = pod["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert last["reason"] == "ContainerGroupDeleted" and old["ContainerGroupId"] in last["message"]
    assert pod["metadata"]["annotations"]["vk-eci.io/group-attempt"] == "1"
    assert pod["metadata"]["annotations"]["k8s.aliyun.com/eci-instance-id"] == new["ContainerGroupId"]
    events = [e for e in kube.events(namespace, name) if e.get("reason") == "ContainerGroupDeleted"]
    assert len(events) == 1 and events[0]["type"] == "Warning"
    assert old["ContainerGroupId"] in events[0]["message"] and "attempt 1" in events[0]["message"]
    # The same pod was restarted: the ReplicaSet made no replacement, nothing is Failed.
    pods = kube.pods(namespace, "app=web")
    assert [p["metadata"]["uid"] for p in pods] == [uid]

    # Deleted again soon after: the kubelet's back-off (10 s, CrashLoopBackOff meanwhile) before attempt 2.
    deleted_at = time.monotonic()
    _delete_with_the_sdk(fake_eci, new["ContainerGroupId"])

    def backing_off():
        statuses = kube.pod(namespace, name)["status"].get("containerStatuses") or []
        waiting = statuses[0].get("state", {}).get("waiting", {}) if statuses else {}
        return waiting if statuses[0].get("restartCount") == 2 and waiting.get("reason") == "CrashLoopBackOff" else None

    waiting = wait_for(backing_off, DETECT_WITHIN + 5, "restartCount 2, CrashLoopBackOff")
    noticed = time.monotonic()
    assert waiting["message"].startswith("back-off 10s")
    assert not [g for g in _groups_of(fake_eci, daemon.node, uid) if g["ContainerGroupId"] != new["ContainerGroupId"]]

    def third_group():
        groups = [g for g in _groups_of(fake_eci, daemon.node, uid) if tags_of(g).get("GroupAttempt") == "2"]
        return groups or None

    [third] = wait_for(third_group, DETECT_WITHIN + 15, "attempt 2's group after the back-off")
    waited, total = time.monotonic() - noticed, time.monotonic() - deleted_at
    print(f"second loss noticed after {noticed - deleted_at:.1f} s, new group {waited:.1f} s later ({total:.1f} s)")
    assert waited >= 8.0, "the back-off was not applied"
    assert third["Fake"]["ClientToken"] == f"{uid}-2"
    wait_for(lambda: running(kube.pod(namespace, name)), 30, "Running again")

    kube.scale(namespace, "web", 0)

    def nothing_left():
        left = kube.pods(namespace, "app=web"), fake_groups(fake_eci, daemon.node, live_only=False)
        return left if left == ([], []) else None

    wait_for(nothing_left, 60, "0 pods and 0 groups after the scale to 0")


def test_never_pod_whose_group_is_deleted_fails_with_container_group_deleted(daemon_factory, kube, fake_eci, namespace):
    daemon = daemon_factory(extra_args=[DEFAULT_FULL])
    wait_for(lambda: kube.ready(daemon.node) == "True", 60, "node Ready")
    manifest = pod_manifest("once", daemon.node, restartPolicy="Never", containers=[{"name": "c", "image": "nginx"}])
    kube.create(namespace, manifest)
    pod = wait_for(lambda: running(kube.pod(namespace, "once")) and kube.pod(namespace, "once"), 60, "Running")
    uid = pod["metadata"]["uid"]
    [group] = wait_for(lambda: _groups_of(fake_eci, daemon.node, uid) or None, 10, "its group")
    time.sleep(1)
    deleted_at = time.monotonic()
    _delete_with_the_sdk(fake_eci, group["ContainerGroupId"])

    def failed():
        status = kube.pod(namespace, "once")["status"]
        return status if status.get("phase") == "Failed" else None

    status = wait_for(failed, DETECT_WITHIN + 5, "the pod Failed")
    detected = time.monotonic() - deleted_at
    print(f"lost group noticed (pod Failed) after {detected:.1f} s")
    assert detected <= DETECT_WITHIN
    assert status["reason"] == "ContainerGroupDeleted"
    assert group["ContainerGroupId"] in status["message"] and "outside vk-eci" in status["message"]
    terminated = status["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == -137 and terminated["reason"] == "ContainerGroupDeleted"
    events = [e for e in kube.events(namespace, "once") if e.get("reason") == "ContainerGroupDeleted"]
    assert len(events) == 1 and "restartPolicy Never" in events[0]["message"]
    time.sleep(2)
    assert not _groups_of(fake_eci, daemon.node, uid), "not recreated"


def test_group_deleted_while_the_daemon_is_down_is_recreated_once_across_restarts(
    daemon_factory, kube, fake_eci, namespace
):
    """The attempt lives on the pod: the next daemon notices the group is gone (a describe of the annotated
    group) and creates attempt 1; the daemon after that adopts attempt 1's group and creates nothing."""
    first = daemon_factory(extra_args=[DEFAULT_FULL])
    wait_for(lambda: kube.ready(first.node) == "True", 60, "node Ready")
    kube.create(namespace, nginx_deployment("away", first.node, 1))

    def annotated():
        pods = [p for p in kube.pods(namespace, "app=away") if running(p)]
        written = pods and "k8s.aliyun.com/eci-instance-id" in (pods[0]["metadata"].get("annotations") or {})
        return pods[0] if written else None

    pod = wait_for(annotated, 60, "the pod Running, its write-back annotations written")
    uid, name = pod["metadata"]["uid"], pod["metadata"]["name"]
    [old] = _groups_of(fake_eci, first.node, uid)
    first.kill()
    _delete_with_the_sdk(fake_eci, old["ContainerGroupId"])
    second = daemon_factory(node=first.node, extra_args=[DEFAULT_FULL])
    [new] = wait_for(lambda: _groups_of(fake_eci, first.node, uid) or None, 60, "a new group from the next daemon")
    assert tags_of(new)["GroupAttempt"] == "1" and new["Fake"]["ClientToken"] == f"{uid}-1"
    pod = wait_for(lambda: running(kube.pod(namespace, name)) and kube.pod(namespace, name), 30, "Running again")
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 1
    second.kill()
    third = daemon_factory(node=first.node, extra_args=[DEFAULT_FULL])
    wait_for(lambda: "daemon running" in third.log_text(), 60, "the third daemon running")
    time.sleep(5)  # its start-up adoption and a few status ticks
    assert [g["ContainerGroupId"] for g in _groups_of(fake_eci, first.node, uid)] == [new["ContainerGroupId"]]
    assert kube.pod(namespace, name)["status"]["containerStatuses"][0]["restartCount"] == 1
    assert [p["metadata"]["uid"] for p in kube.pods(namespace, "app=away")] == [uid]
    kube.scale(namespace, "away", 0)
    wait_for(lambda: not kube.pods(namespace, "app=away"), 60, "0 pods after the scale to 0")
    assert not fake_groups(fake_eci, first.node, live_only=False)
