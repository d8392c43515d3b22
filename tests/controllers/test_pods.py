"""The pod controller against in-memory stand-ins for Kubernetes, ECI and the translator."""

from __future__ import annotations

import itertools
import logging
import queue
import random
import threading
import time
from typing import Any

import pytest

from vkeci.clients.eci import EciError, follow_pages
from vkeci.clients.kube import KubeError
from vkeci.config import Config, PodSettings
from vkeci.controllers.pods import PodController
from vkeci.core import identity
from vkeci.core import status as core_status
from vkeci.core.annotations import CLIENT_TOKEN, INSTANCE_ID
from vkeci.core.problems import Missing, MissingRef, Problem, Rejected
from vkeci.core.status import PHASES, TERMINAL_STATES
from vkeci.core.writeback import GROUP_ID_ANNOTATION

CONFIG = Config(region="cn-hangzhou", node_name="vk", cluster_name="c1")


class StubTranslator:
    def request(self, pod):
        if pod["spec"].get("volumes"):
            raise Rejected([Problem("spec.volumes[0].hostPath", "not supported on ECI")])
        if pod["spec"].get("needs"):
            raise Missing([MissingRef("ConfigMap", "cfg", "spec.containers[0].env[0]")])
        if pod["spec"].get("needs_volume"):
            raise Missing([MissingRef("Secret", "tls", "spec.volumes[0].secret")])
        return {"ContainerGroupName": pod["metadata"]["name"], "ClientToken": identity.client_token(pod)}, []

    def pod_status(self, pod, group, now):
        return {"phase": {"Running": "Running", "Succeeded": "Succeeded"}.get(group["Status"], "Pending")}

    def missing_group_status(self, pod, now, group_id):
        return {"phase": "Failed", "reason": "ContainerGroupDeleted", "message": group_id}

    def restart_status(self, pod, group_id, attempt, delay, now):
        return core_status.restart_status(pod, group_id, attempt, delay, now)

    def rejected_status(self, pod, err, now):
        # As the real one: Pending unless restartPolicy is Never (a Pending pod is synced again).
        phase = "Failed" if pod["spec"].get("restartPolicy", "Always") == "Never" else "Pending"
        return {"phase": phase, "reason": "Rejected", "message": str(err)}

    def problem_status(self, pod, reason, message, now, *, fail=False):
        return {"phase": "Failed" if fail else "Pending", "reason": reason, "message": message}

    def waiting_status(self, pod, err, now):
        return {"phase": "Pending", "reason": "ContainerCreating", "message": str(err)}

    def events(self, pod, group, now):
        return [
            {"metadata": {"name": e["Reason"]}, "type": "Normal", "reason": e["Reason"], "message": e["Message"]}
            for e in group.get("Events", [])
        ]


class StubKube:
    def __init__(self) -> None:
        self.pods: dict[str, dict] = {}
        self.writes: list[tuple[str, str, Any]] = []
        self.patch_error: KubeError | None = None

    def add(self, name: str, **spec: Any) -> dict:
        pod = {
            "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}"},
            "spec": {"nodeName": "vk", **spec},
            "status": {"phase": "Pending"},
        }
        self.pods[name] = pod
        return pod

    def patch(self, path: str, body: dict, content_type: str = "") -> dict:
        if getattr(self, "gate", None) is not None:
            assert self.gate.wait(10), "the test never opened the gate"
        if self.patch_error is not None:
            raise self.patch_error
        self.writes.append(("PATCH", path, body))
        name = path.split("/pods/")[1].split("/")[0]
        pod = self.pods[name]
        if body["metadata"]["uid"] != pod["metadata"]["uid"]:
            raise KubeError(409, "Conflict", "uid precondition")
        if "status" in body:
            pod["status"] = {**pod["status"], **body["status"]}
        if "annotations" in body["metadata"]:
            pod["metadata"]["annotations"] = {
                **pod["metadata"].get("annotations", {}),
                **body["metadata"]["annotations"],
            }
        return pod

    def post(self, path: str, body: dict) -> dict:
        self.writes.append(("POST", path, body))
        return body

    def delete(self, path: str, body: dict | None = None) -> dict:
        self.writes.append(("DELETE", path, body))
        return {}

    def events(self) -> list[dict]:
        return [b for m, p, b in self.writes if m == "POST" and p.endswith("/events")]


class StubECI:
    def __init__(self) -> None:
        self.groups: dict[str, dict] = {}
        self.ids = itertools.count(1)
        self.calls: list[str] = []
        self.fail_next: EciError | None = None
        self.fail_repeat = 0  # how many more calls fail_next fails after the next one
        self.flaky: Any = None  # action -> whether this call fails (ServiceUnavailable)

    def _fail(self, action: str) -> None:
        self.calls.append(action)
        if self.fail_next is not None:
            err = self.fail_next
            if self.fail_repeat > 0:
                self.fail_repeat -= 1
            else:
                self.fail_next = None
            raise err
        if self.flaky is not None and self.flaky(action):
            raise EciError(action, "ServiceUnavailable", "injected", status=503, transient=True)

    def add_group(self, uid: str, name: str, node: str = "vk", status: str = "Running") -> str:
        gid = f"eci-{next(self.ids)}"
        tags = [
            {"Key": "ClusterName", "Value": "c1"},
            {"Key": "NodeName", "Value": node},
            {"Key": "NameSpace", "Value": "ns"},
            {"Key": "PodName", "Value": name},
            {"Key": "UID", "Value": uid},
        ]
        self.groups[gid] = {"ContainerGroupId": gid, "Status": status, "Tags": tags, "Events": []}
        return gid

    def _match(self, group: dict, tags: list[dict]) -> bool:
        have = {t["Key"]: t["Value"] for t in group["Tags"]}
        return all(have.get(t["Key"]) == t["Value"] for t in tags)

    def _paged(self, action, records, pager, size):
        """``records`` in pages of ``size`` through ``pager``, as the real client hands them."""

        def fetch(token):
            self._fail(action)
            start = int(token or 0)
            more = start + size < len(records)
            return records[start : start + size], str(start + size) if more else ""

        return (pager or follow_pages)(fetch)

    def list_groups(self, tags, *, with_event=False, pager=None):
        found = [dict(g) for g in self.groups.values() if self._match(g, tags)]
        return self._paged("DescribeContainerGroups", found, pager, 20)

    def create(self, request):
        self._fail("CreateContainerGroup")
        name = request["ContainerGroupName"]
        return self.add_group(f"uid-{name}", name, status="Pending"), "req-1"

    def delete(self, group_id):
        self._fail("DeleteContainerGroup")
        self.groups.pop(group_id, None)

    def describe(self, ids, *, with_event=True):
        self._fail("DescribeContainerGroups")
        return [dict(self.groups[i]) for i in ids if i in self.groups]

    def changed_since(self, tags, since, *, pager=None):
        quiet = since is not None and getattr(self, "quiet", False)  # nothing changed within the window
        found = (
            []
            if quiet
            else [{"ContainerGroupId": g["ContainerGroupId"], "Status": g["Status"]} for g in self.groups.values()]
        )
        return self._paged("DescribeContainerGroupStatus", found, pager, 200)

    def events_since(self, tags, since, *, pager=None):
        found = [
            {"ContainerGroupId": g["ContainerGroupId"], "Events": list(g.get("Events", []))}
            for g in self.groups.values()
            if g.get("Events")
        ]
        return self._paged("DescribeContainerGroupEvents", found, pager, 200)


def created(kube: StubKube, eci: StubECI, ctl: PodController, name: str) -> str:
    """Add a pod, let the controller create its group; the group's id."""
    kube.add(name)
    load(ctl, kube)
    ctl.sync(f"ns/{name}")
    return next(gid for gid, g in eci.groups.items() if {"Key": "PodName", "Value": name} in g["Tags"])


@pytest.fixture
def world():
    kube, eci = StubKube(), StubECI()
    options = PodSettings(lost_grace=0, finished_retention=0, page_backoff=0)
    controller = PodController(kube, eci, CONFIG, StubTranslator(), options)  # type: ignore[arg-type]
    controller.synced.set()
    return kube, eci, controller


def load(controller: PodController, kube: StubKube) -> None:
    for pod in kube.pods.values():
        controller.cache.upsert(pod)


def test_create_once_then_nothing_to_do(world):
    kube, eci, ctl = world
    kube.add("web")
    load(ctl, kube)
    ctl.sync("ns/web")
    ctl.sync("ns/web")
    assert eci.calls.count("CreateContainerGroup") == 1
    assert len(eci.groups) == 1
    assert kube.events() == []


def test_first_create_does_not_list_first(world):
    # The ClientToken (pod UID) makes a repeated create return the same group: a burst of N pods must not
    # cost N DescribeContainerGroups calls on top of the N creates.
    kube, eci, ctl = world
    kube.add("web")
    load(ctl, kube)
    ctl.sync("ns/web")
    assert eci.calls == ["CreateContainerGroup"]


def test_retried_create_looks_first_and_adopts_what_the_lost_answer_created(world):
    kube, eci, ctl = world
    kube.add("web")
    load(ctl, kube)
    real_create = eci.create

    def answer_lost(request):
        real_create(request)  # ECI created the group...
        raise EciError("CreateContainerGroup", "NoResponse", "no answer", transient=True)  # ...the reply was lost

    eci.create = answer_lost  # type: ignore[method-assign]
    with pytest.raises(EciError):
        ctl.sync("ns/web")
    eci.create = real_create  # type: ignore[method-assign]
    eci.add_group("uid-web", "web")  # a duplicate from an old bug: deleted, oldest kept
    ctl.sync("ns/web")
    assert eci.calls.count("CreateContainerGroup") == 1
    assert list(eci.groups) == ["eci-1"]


def test_transient_error_is_raised_for_retry_and_writes_nothing(world):
    kube, eci, ctl = world
    kube.add("web")
    load(ctl, kube)
    eci.fail_next = EciError("DescribeContainerGroups", "ServiceUnavailable", "busy", transient=True)
    with pytest.raises(EciError):
        ctl.sync("ns/web")
    assert kube.writes == []
    ctl.sync("ns/web")
    assert len(eci.groups) == 1


def test_permanent_error_is_shown_with_code_and_request_id(world):
    kube, eci, ctl = world
    kube.add("web", restartPolicy="Never")
    load(ctl, kube)
    eci.calls.clear()
    ctl.eci.list_groups = lambda tags, with_event=False: []  # type: ignore[method-assign]
    eci.fail_next = EciError("CreateContainerGroup", "InvalidParameter", "bad cpu", request_id="RID-9")
    with pytest.raises(EciError):
        ctl.sync("ns/web")
    status = kube.pods["web"]["status"]
    assert status["phase"] == "Failed" and status["reason"] == "ProviderFailed"
    assert "InvalidParameter" in status["message"] and "RID-9" in status["message"]
    assert kube.events()[0]["type"] == "Warning"


def _worker_retries(ctl: PodController, key: str) -> list[tuple[Any, ...]]:
    """Run one worker until it has handled ``key`` once; return the (key, cap, floor) of its retries."""
    retries: list[tuple[Any, ...]] = []
    stop = threading.Event()

    def retry(k, cap=None, floor=0.0):
        retries.append((k, cap, floor))
        stop.set()
        return floor

    ctl.queue.retry = retry  # type: ignore[method-assign]
    ctl.queue.add(key)
    worker = threading.Thread(target=ctl.worker_loop, args=(stop,))
    worker.start()
    worker.join(5)
    assert not worker.is_alive()
    return retries


def test_refused_create_is_retried_no_sooner_than_refused_retry(world):
    kube, eci, ctl = world
    kube.add("web")
    load(ctl, kube)
    eci.fail_next = EciError("CreateContainerGroup", "InvalidParameter", "bad cpu", request_id="RID-9")
    assert _worker_retries(ctl, "ns/web") == [("ns/web", None, ctl.options.refused_retry)]
    assert kube.pods["web"]["status"]["reason"] == "ProviderFailed"


def test_transient_create_error_is_retried_on_the_normal_backoff(world):
    kube, eci, ctl = world
    kube.add("web")
    load(ctl, kube)
    eci.fail_next = EciError("CreateContainerGroup", "ServiceUnavailable", "busy", transient=True)
    assert _worker_retries(ctl, "ns/web") == [("ns/web", None, 0.0)]


def test_rejected_pod_gets_status_and_one_warning_and_no_group(world):
    kube, eci, ctl = world
    kube.add("bad", volumes=[{"hostPath": {}}])
    load(ctl, kube)
    ctl.sync("ns/bad")
    ctl.sync("ns/bad")
    assert not eci.groups
    assert kube.pods["bad"]["status"]["reason"] == "Rejected"
    events = kube.events()
    assert len(events) == 1 and "spec.volumes[0]" in events[0]["message"]


def test_rejected_pod_is_logged_once(world, caplog):
    """Issue 12: "pod rejected" was logged on every sync of the pod (twice per rejected pod)."""
    kube, _eci, ctl = world
    kube.add("bad", volumes=[{"hostPath": {}}])
    load(ctl, kube)
    with caplog.at_level(logging.INFO):
        ctl.sync("ns/bad")
        ctl.sync("ns/bad")
    assert [r.getMessage() for r in caplog.records].count("pod rejected") == 1


@pytest.mark.parametrize(
    ("spec", "reason", "message"),
    [
        ({"needs": True}, "Failed", 'Error: configmap "cfg" not found'),
        ({"needs_volume": True}, "FailedMount", "spec.volumes[0].secret: Secret 'tls' not found"),
    ],
)
def test_missing_env_source_is_failed_like_a_kubelet_and_a_volume_source_failed_mount(world, spec, reason, message):
    """Issue 12: a kubelet posts Failed / 'Error: configmap "name" not found' for env, FailedMount for volumes."""
    kube, _eci, ctl = world
    kube.add("wait", **spec)
    load(ctl, kube)
    with pytest.raises(Missing):
        ctl.sync("ns/wait")
    (event,) = kube.events()
    assert event["reason"] == reason and message in event["message"]


def test_missing_reference_waits_and_retries(world):
    kube, eci, ctl = world
    kube.add("wait", needs=True)
    load(ctl, kube)
    with pytest.raises(Missing):
        ctl.sync("ns/wait")
    assert kube.pods["wait"]["status"]["phase"] == "Pending"
    assert not eci.groups


def test_daemonset_pods_are_pending_visibly(world):
    kube, eci, ctl = world
    pod = kube.add("ds")
    pod["metadata"]["ownerReferences"] = [{"kind": "DaemonSet", "name": "agent", "controller": True}]
    load(ctl, kube)
    ctl.sync("ns/ds")
    assert not eci.groups
    assert kube.pods["ds"]["status"]["reason"] == "DaemonSetPodNotSupported"
    assert kube.events()[0]["type"] == "Warning"


def test_status_is_written_only_on_change(world):
    kube, eci, ctl = world
    gid = created(kube, eci, ctl, "web")
    eci.groups[gid]["Status"] = "Running"
    eci.groups[gid]["Events"] = [{"Reason": "Started", "Message": "Started container web"}]
    ctl.poll_status(full=True)
    assert kube.pods["web"]["status"]["phase"] == "Running"
    writes = len(kube.writes)
    ctl.poll_status(full=True)
    ctl.poll_status(full=False)
    status_writes = [w for w in kube.writes[writes:] if w[1].endswith("/status")]
    assert status_writes == []
    assert [e["reason"] for e in kube.events()].count("Started") == 1


def test_a_status_someone_else_overwrote_is_put_back_on_the_pods_next_sync(world):
    # The node lifecycle controller marks every pod of a NotReady node Ready=False, for example while
    # a standby takes over; the group did not change, so no listing would ever describe it again.
    kube, eci, ctl = world
    gid = created(kube, eci, ctl, "web")
    eci.groups[gid]["Status"] = "Running"
    ctl.poll_status(full=True)
    assert kube.pods["web"]["status"]["phase"] == "Running"
    kube.pods["web"]["status"] = {"phase": "Pending", "reason": "NodeNotReady"}
    load(ctl, kube)  # the watch delivers the overwritten pod
    ctl.sync("ns/web")
    calls = len(eci.calls)
    ctl.poll_status(full=False)  # the next tick describes the group again, though no listing changed
    assert kube.pods["web"]["status"]["phase"] == "Running"
    assert eci.calls[calls:].count("DescribeContainerGroups") == 1
    writes, calls = len(kube.writes), len(eci.calls)
    load(ctl, kube)
    ctl.sync("ns/web")  # nothing differs now: nothing is described or written
    ctl.poll_status(full=False)
    assert kube.writes[writes:] == [] and "DescribeContainerGroups" not in eci.calls[calls:]


def test_api_error_is_never_taken_for_a_lost_group(world):
    kube, eci, ctl = world
    kube.add("web")
    load(ctl, kube)
    ctl.sync("ns/web")
    eci.fail_next = EciError("DescribeContainerGroupStatus", "InternalError", "x", transient=True)
    ctl.poll_status(full=True)  # the failed page is tried again
    assert kube.pods["web"]["status"]["phase"] == "Pending"
    eci.fail_next, eci.fail_repeat = EciError("DescribeContainerGroupStatus", "InternalError", "x", transient=True), 9
    with pytest.raises(EciError):  # a page that keeps failing: the poll fails, nothing is taken for lost
        ctl.poll_status(full=True)
    assert kube.pods["web"]["status"]["phase"] == "Pending"


def test_group_deleted_outside_vk_eci_fails_a_restart_policy_never_pod_and_is_not_recreated(world):
    kube, eci, ctl = world
    gid = created(kube, eci, ctl, "web")
    kube.pods["web"]["spec"]["restartPolicy"] = "Never"
    load(ctl, kube)
    eci.groups.clear()
    ctl.poll_status(full=False, presence=True)
    assert kube.pods["web"]["status"] == {"phase": "Failed", "reason": "ContainerGroupDeleted", "message": gid}
    [event] = kube.events()
    assert event["reason"] == "ContainerGroupDeleted" and gid in event["message"] and "Never" in event["message"]
    eci.calls.clear()
    ctl.cache.upsert({**kube.pods["web"], "status": {"phase": "Pending"}})
    ctl.sync("ns/web")
    assert "CreateContainerGroup" not in eci.calls


def _tokens(eci: StubECI) -> list[str]:
    """Record the ClientToken of every create from now on."""
    tokens: list[str] = []
    create = eci.create

    def recording(request):
        tokens.append(request["ClientToken"])
        return create(request)

    eci.create = recording  # type: ignore[method-assign]
    return tokens


def test_group_deleted_outside_vk_eci_is_recreated_with_the_kubelets_back_off(world):
    """Issue 12: restartPolicy Always: the same pod gets a new group (attempt 1, its own ClientToken, restartCount
    1, an event), at once the first time, then after 10 s, 20 s ... as a kubelet restarts a container."""
    kube, eci, ctl = world
    now = [1000.0]
    ctl.clock = lambda: now[0]
    tokens = _tokens(eci)
    first = created(kube, eci, ctl, "web")
    assert tokens == ["uid-web"], "attempt 0 keeps the pod UID as its token"
    kube.pods["web"]["status"] = {"phase": "Running", "containerStatuses": [{"name": "c", "restartCount": 0}]}
    kube.pods["web"]["spec"]["containers"] = [{"name": "c", "image": "nginx"}]
    load(ctl, kube)
    eci.groups.clear()
    now[0] += 1  # past lost_grace (0 here)
    ctl.poll_status(full=False, presence=True)
    assert ctl.sync("ns/web") is None
    pod = kube.pods["web"]
    assert pod["metadata"]["annotations"][identity.ATTEMPT_ANNOTATION] == "1"
    assert pod["status"]["phase"] == "Running"
    [container] = pod["status"]["containerStatuses"]
    assert container["restartCount"] == 1
    assert container["lastState"]["terminated"]["reason"] == "ContainerGroupDeleted"
    assert container["state"]["waiting"]["reason"] == "ContainerCreating"
    [event] = [e for e in kube.events() if e["reason"] == "ContainerGroupDeleted"]
    assert first in event["message"] and "attempt 1" in event["message"] and "outside vk-eci" in event["message"]
    assert tokens == ["uid-web", "uid-web-1"]
    assert len(eci.groups) == 1 and ctl.groups.get("uid-web").attempt == 1

    # Lost again at once: the kubelet's back-off (10 s) before attempt 2.
    eci.groups.clear()
    now[0] += 1
    ctl.poll_status(full=False, presence=True)
    again = ctl.sync("ns/web")
    assert again == pytest.approx(10.0)
    assert tokens == ["uid-web", "uid-web-1"] and not eci.groups
    waiting = kube.pods["web"]["status"]["containerStatuses"][0]
    assert waiting["restartCount"] == 2 and waiting["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    now[0] += 5
    assert ctl.sync("ns/web") == pytest.approx(5.0), "a resync during the back-off creates nothing"
    now[0] += 5
    assert ctl.sync("ns/web") is None
    assert tokens == ["uid-web", "uid-web-1", "uid-web-2"] and len(eci.groups) == 1
    assert len([e for e in kube.events() if e["reason"] == "ContainerGroupDeleted"]) == 2


def test_on_failure_pod_is_recreated_unless_it_had_succeeded(world):
    kube, eci, ctl = world
    tokens = _tokens(eci)
    for name, code in (("fails", 1), ("done", 0)):
        created(kube, eci, ctl, name)
        kube.pods[name]["spec"]["restartPolicy"] = "OnFailure"
        terminated = {"terminated": {"exitCode": code}}
        kube.pods[name]["status"] = {"phase": "Running", "containerStatuses": [{"name": "c", "state": terminated}]}
    load(ctl, kube)
    eci.groups.clear()
    ctl.poll_status(full=False, presence=True)
    ctl.sync("ns/fails")
    ctl.sync("ns/done")
    assert tokens == ["uid-fails", "uid-done", "uid-fails-1"]
    assert kube.pods["done"]["status"]["reason"] == "ContainerGroupDeleted"


def test_a_restarted_daemon_creates_the_attempt_on_the_pod_and_adopts_groups_of_any_attempt(world):
    """The attempt is on the pod before its create is sent: a daemon restarted after that sends the same
    ClientToken (ECI answers with that attempt's group), and its start-up adoption knows groups of any attempt."""
    kube, eci, ctl = world
    tokens = _tokens(eci)
    pod = kube.add("web")
    pod["metadata"]["annotations"] = {identity.ATTEMPT_ANNOTATION: "2"}
    load(ctl, kube)
    ctl.sync("ns/web")
    assert tokens == ["uid-web-2"]

    kube.add("other")
    gid = eci.add_group("uid-other", "other")
    eci.groups[gid]["Tags"].append({"Key": identity.TAG_ATTEMPT, "Value": "3"})
    older = eci.add_group("uid-other", "other")  # a duplicate of an older attempt
    load(ctl, kube)
    ctl.sweep(adopt=True)
    record = ctl.groups.get("uid-other")
    assert record is not None and record.group_id == gid and record.attempt == 3
    assert older not in eci.groups
    ctl.sync("ns/other")
    assert tokens == ["uid-web-2"], "an adopted group is not created again"


def test_a_group_deleted_while_the_daemon_was_away_is_recreated_and_one_still_there_adopted(world):
    """The write-back annotations name the group of the pod's current attempt; a describe by id tells whether
    it is still there (adopt it, whatever the start-up adoption has reached) or gone (the next attempt)."""
    kube, eci, ctl = world
    tokens = _tokens(eci)
    for name in ("gone", "there"):
        pod = kube.add(name)
        pod["status"] = {"phase": "Running"}
        pod["metadata"]["annotations"] = {INSTANCE_ID: "eci-gone", CLIENT_TOKEN: f"uid-{name}"}
    there = eci.add_group("uid-there", "there")
    kube.pods["there"]["metadata"]["annotations"][INSTANCE_ID] = there
    load(ctl, kube)
    ctl.sync("ns/there")
    assert ctl.groups.get("uid-there").group_id == there and tokens == []
    assert ctl.sync("ns/gone") is None
    assert ctl.groups.pending_restart("uid-gone").group_id == "eci-gone"
    ctl.sync("ns/gone")
    assert tokens == ["uid-gone-1"]
    assert kube.pods["gone"]["metadata"]["annotations"][identity.ATTEMPT_ANNOTATION] == "1"
    # Annotations copied from another pod (another UID, so another ClientToken) mean nothing.
    copied = kube.add("copy")
    copied["metadata"]["annotations"] = {INSTANCE_ID: "eci-gone", CLIENT_TOKEN: "uid-gone"}
    load(ctl, kube)
    ctl.sync("ns/copy")
    assert tokens == ["uid-gone-1", "uid-copy"]


def test_a_new_group_not_yet_listed_is_not_taken_for_a_deleted_one():
    """Eventual consistency: a group just created may be missing from ECI's listings. Only a group ECI has shown
    once (listed or described), or one older than lost_grace, counts as deleted when both looks miss it."""
    kube, eci = StubKube(), StubECI()
    ctl = PodController(kube, eci, CONFIG, StubTranslator(), PodSettings(lost_grace=30))  # type: ignore[arg-type]
    ctl.synced.set()
    now = [1000.0]
    ctl.clock = lambda: now[0]
    gid = created(kube, eci, ctl, "web")
    hidden = eci.groups.pop(gid)  # created, but not listed or described yet
    ctl.poll_status(full=False, presence=True)
    assert ctl.groups.get("uid-web") is not None and ctl.groups.pending_restart("uid-web") is None
    eci.groups[gid] = hidden  # now ECI shows it...
    ctl.poll_status(full=False, presence=True)
    del eci.groups[gid]  # ...and then it is deleted: noticed at the next look, well within lost_grace
    now[0] += 10
    ctl.poll_status(full=False, presence=True)
    assert ctl.groups.pending_restart("uid-web") is not None


def test_a_failed_describe_during_the_lost_check_concludes_nothing(world):
    kube, eci, ctl = world
    created(kube, eci, ctl, "web")
    eci.groups.clear()
    describe = eci.describe

    def failing(ids, *, with_event=True):
        if not with_event:  # the confirming describe
            raise EciError("DescribeContainerGroups", "ServiceUnavailable", "x", transient=True)
        return describe(ids, with_event=with_event)

    eci.describe = failing  # type: ignore[method-assign]
    with pytest.raises(EciError):
        ctl.poll_status(full=False, presence=True)
    assert ctl.groups.get("uid-web") is not None and ctl.groups.pending_restart("uid-web") is None
    assert kube.pods["web"]["status"]["phase"] == "Pending"


def test_the_lost_check_is_due_every_lost_check_interval():
    kube, eci = StubKube(), StubECI()
    options = PodSettings(lost_check_interval=10, status_interval=5, transition_interval=0.25)
    ctl = PodController(kube, eci, CONFIG, StubTranslator(), options)  # type: ignore[arg-type]
    ctl.synced.set()
    now = [1000.0]
    ctl.clock = lambda: now[0]
    gid = created(kube, eci, ctl, "web")
    eci.groups[gid]["Status"] = "Running"  # settled: the status poll would wait status_interval (5 s)
    ctl.poll_status(full=False, presence=True)
    now[0] += 7
    assert ctl.next_poll_in() == pytest.approx(3.0)
    now[0] += 3
    assert ctl.next_poll_in() == 0.0


def test_a_pod_deleted_during_its_back_off_leaves_no_group(world):
    kube, eci, ctl = world
    now = [1000.0]
    ctl.clock = lambda: now[0]
    created(kube, eci, ctl, "web")
    for _ in range(2):  # the second loss starts a 10 s back-off
        eci.groups.clear()
        now[0] += 1
        ctl.poll_status(full=False, presence=True)
        ctl.sync("ns/web")
    assert not eci.groups and ctl.groups.pending_restart("uid-web") is not None
    kube.pods["web"]["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    load(ctl, kube)
    assert ctl.sync("ns/web") is None
    now[0] += 60
    ctl.sync("ns/web")
    assert not eci.groups and ctl.groups.pending_restart("uid-web") is None
    assert any(m == "DELETE" for m, _, _ in kube.writes)


def test_graceful_delete_removes_group_then_pod_with_uid_precondition(world):
    kube, eci, ctl = world
    kube.add("web")
    load(ctl, kube)
    ctl.sync("ns/web")
    kube.pods["web"]["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    load(ctl, kube)
    assert ctl.sync("ns/web") is None
    assert not eci.groups
    method, path, body = kube.writes[-1]
    assert (method, path) == ("DELETE", "/api/v1/namespaces/ns/pods/web")
    assert body["gracePeriodSeconds"] == 0 and body["preconditions"] == {"uid": "uid-web"}


def test_force_deleted_pod_still_loses_its_group(world):
    kube, eci, ctl = world
    pod = kube.add("web")
    load(ctl, kube)
    ctl.sync("ns/web")
    ctl.cache.remove(pod)
    ctl.sync("ns/web")
    assert not eci.groups


def test_terminal_pod_group_is_cleaned_up(world):
    kube, eci, ctl = world
    kube.add("job")
    load(ctl, kube)
    ctl.sync("ns/job")
    kube.pods["job"]["status"]["phase"] = "Succeeded"
    load(ctl, kube)
    ctl.sync("ns/job")
    assert not eci.groups


def test_startup_sweep_adopts_live_and_deletes_orphans(world):
    kube, eci, ctl = world
    kube.add("live")
    eci.add_group("uid-live", "live")
    orphan = eci.add_group("uid-gone", "gone")
    eci.add_group("uid-x", "x", node="other-node")
    load(ctl, kube)
    assert ctl.sweep(adopt=True) == 1
    assert orphan not in eci.groups and len(eci.groups) == 2
    ctl.sync("ns/live")
    assert "CreateContainerGroup" not in eci.calls


def test_restart_adoption_applies_status_without_reposting_old_events(world):
    kube, eci, ctl = world
    kube.add("web")
    gid = eci.add_group("uid-web", "web", status="Running")
    eci.groups[gid]["Events"] = [{"Reason": "Started", "Message": "Started container web"}]
    load(ctl, kube)
    ctl.sweep(adopt=True)
    assert kube.pods["web"]["status"]["phase"] == "Running"
    assert kube.events() == []
    ctl.poll_status(full=True)
    ctl.poll_status(full=False)
    assert kube.events() == []
    eci.groups[gid]["Events"].append({"Reason": "Killing", "Message": "Stopping container web"})
    ctl.poll_status(full=False)
    assert [e["reason"] for e in kube.events()] == ["Killing"]


@pytest.mark.parametrize("state", sorted(TERMINAL_STATES))
def test_a_finished_group_is_kept_for_logs_then_deleted_whatever_its_terminal_state(world, state):
    # StartingFailed and WatingForDel used to be Failed for the status mapper but not finished for the
    # controller: no finished_at, so the group was deleted at once and the poller stayed at 0.25 s.
    kube, eci, ctl = world
    ctl.options.finished_retention = 60
    now = [1000.0]
    ctl.clock = lambda: now[0]
    ctl.translator.pod_status = lambda pod, group, now: {"phase": PHASES[group["Status"]]}
    kube.add("job")
    load(ctl, kube)
    ctl.sync("ns/job")
    gid = next(iter(eci.groups))
    eci.groups[gid]["Status"] = state
    ctl.poll_status(full=True)
    assert kube.pods["job"]["status"]["phase"] in ("Succeeded", "Failed")
    assert ctl.next_poll_in() == ctl.options.status_interval
    load(ctl, kube)
    assert ctl.sync("ns/job") == 60
    assert gid in eci.groups
    now[0] += 61
    assert ctl.sync("ns/job") is None
    assert gid not in eci.groups


def test_image_change_on_a_running_pod_is_reported_not_ignored(world):
    kube, eci, ctl = world
    pod = kube.add("web")
    pod["spec"]["containers"] = [{"name": "web", "image": "nginx:1.27"}]
    load(ctl, kube)
    ctl.sync("ns/web")
    gid = next(iter(eci.groups))
    eci.groups[gid]["Containers"] = [{"Name": "web", "Image": "nginx:1.27"}]
    ctl.poll_status(full=True)
    ctl.sync("ns/web")
    assert kube.events() == []
    pod["spec"]["containers"][0]["image"] = "nginx:1.28"
    load(ctl, kube)
    ctl.sync("ns/web")
    ctl.sync("ns/web")
    events = kube.events()
    assert len(events) == 1 and events[0]["reason"] == "SpecChangeNotApplied"
    assert "spec.containers[0].image" in events[0]["message"]


def test_a_burst_poll_writes_every_status_before_any_event(world):
    kube, eci, ctl = world
    for name in ("a", "b", "c"):
        kube.add(name)
    load(ctl, kube)
    for name in ("a", "b", "c"):
        ctl.sync(f"ns/{name}")
    for group in eci.groups.values():
        group["Status"] = "Running"
        group["Events"] = [{"Reason": "Started", "Message": "Started container"}]
    ctl.poll_status(full=True)
    kinds = ["event" if p.endswith("/events") else "status" for m, p, _ in kube.writes if m in ("PATCH", "POST")]
    assert kinds == ["status"] * 3 + ["event"] * 3


def test_with_event_threads_a_poll_queues_events_and_posts_each_once(world):
    kube, eci, ctl = world
    ctl.recorder.queue = queue.Queue()  # what start() sets up with --event-writers > 0
    gid = created(kube, eci, ctl, "web")
    eci.groups[gid]["Status"] = "Running"
    eci.groups[gid]["Events"] = [{"Reason": "Started", "Message": "Started container web"}]
    ctl.poll_status(full=True)
    ctl.poll_status(full=False)
    assert kube.pods["web"]["status"]["phase"] == "Running"
    assert kube.events() == []  # not posted by the poll itself...
    assert ctl.recorder.queue.qsize() == 1  # ...but queued once, although two polls saw it
    stop = threading.Event()
    thread = threading.Thread(target=ctl.event_loop, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 5
    while not kube.events() and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(5)
    assert [e["reason"] for e in kube.events()] == ["Started"]


def test_cached_pods_drop_managed_fields(world):
    kube, _eci, ctl = world
    pod = kube.add("web")
    pod["metadata"]["managedFields"] = [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]
    load(ctl, kube)
    assert "managedFields" not in ctl.pods["ns/web"]["metadata"]


def test_a_listing_seen_before_costs_no_describe(world):
    kube, eci, ctl = world
    gid = created(kube, eci, ctl, "web")
    eci.groups[gid]["Status"] = "Running"
    assert ctl.poll_status(full=True) == 1
    assert ctl.poll_status(full=False) == 0  # overlapping windows list the group again: no describe
    assert ctl.poll_status(full=True) == 0
    eci.groups[gid]["Events"] = [{"Reason": "Unhealthy", "Message": "Readiness probe failed"}]
    assert ctl.poll_status(full=False) == 1  # an event without a status change is still seen
    assert [e["reason"] for e in kube.events()] == ["Unhealthy"]


def test_a_failed_status_write_is_retried_by_the_next_poll(world):
    kube, eci, ctl = world
    gid = created(kube, eci, ctl, "web")
    eci.groups[gid]["Status"] = "Running"
    kube.patch_error = KubeError(500, "InternalError", "etcd timeout")
    assert ctl.poll_status(full=False) == 1  # logged, and the group goes back to the backlog
    assert kube.pods["web"]["status"]["phase"] == "Pending"
    kube.patch_error = None
    eci.quiet = True  # the listing window has moved on: the backlog alone brings the group back
    assert ctl.poll_status(full=False) == 1
    assert kube.pods["web"]["status"]["phase"] == "Running"


def test_a_burst_is_described_oldest_pod_first_and_no_faster_than_it_is_written(world):
    kube, eci, ctl = world
    ctl.options.status_in_flight = 2
    now = [100.0]
    ctl.clock = lambda: now[0]
    gids = []
    for name in ("c-first", "a-second", "b-third"):  # ids and names in another order than age
        gids.append(created(kube, eci, ctl, name))
        now[0] += 1
    for gid in gids:
        eci.groups[gid]["Status"] = "Running"
    assert ctl.poll_status(full=False) == 2
    assert [kube.pods[n]["status"]["phase"] for n in ("c-first", "a-second", "b-third")] == [
        "Running",
        "Running",
        "Pending",
    ]
    assert ctl.next_poll_in() == ctl.options.transition_interval  # the backlog is not empty
    eci.quiet = True
    eci.calls.clear()
    assert ctl.poll_status(full=False) == 1
    assert kube.pods["b-third"]["status"]["phase"] == "Running"
    # The backlog (1) was below what the writers take (2): that tick listed. With a backlog that
    # fills the writers, a tick only describes (the next listing reaches back to the last one).
    assert eci.calls.count("DescribeContainerGroupStatus") == 1
    assert ctl.poll_status(full=False) == 0
    ctl.options.status_in_flight = 0
    ctl.status.backlog["eci-none"] = ("x", None)
    eci.calls.clear()
    assert ctl.poll_status(full=False) == 0
    assert "DescribeContainerGroupStatus" not in eci.calls


def test_the_next_listing_overlaps_the_writes_without_describing_them_twice(world):
    kube, eci, ctl = world
    gid = created(kube, eci, ctl, "web")
    eci.groups[gid]["Status"] = "Running"
    kube.gate = threading.Event()
    try:
        assert ctl.poll_status(full=False, wait_writes=False) == 1  # returns while the write waits
        assert ctl.poll_status(full=False, wait_writes=False) == 0  # same listing, write in flight
        assert kube.pods["web"]["status"]["phase"] == "Pending"
    finally:
        kube.gate.set()
    ctl.flush_status_writes()
    assert kube.pods["web"]["status"]["phase"] == "Running"
    assert ctl.poll_status(full=False) == 0  # written: the same listing costs nothing
    assert len([w for w in kube.writes if w[1].endswith("/status")]) == 1


def test_polls_are_quick_while_a_group_changes_state(world):
    kube, eci, ctl = world
    ctl.options.transition_interval, ctl.options.status_interval = 0.5, 5.0
    assert ctl.next_poll_in() == 5.0
    kube.add("web")
    load(ctl, kube)
    ctl.sync("ns/web")
    assert ctl.next_poll_in() == 0.5  # created, not described yet
    gid = next(iter(eci.groups))
    eci.groups[gid]["Status"] = "Pending"
    ctl.poll_status(full=False)
    assert ctl.next_poll_in() == 0.5
    eci.groups[gid]["Status"] = "Running"
    ctl.poll_status(full=False)
    assert ctl.next_poll_in() == 5.0


def test_cached_pods_share_their_keys_and_short_strings():
    import json

    from vkeci.controllers.podcache import slim as _slim

    text = json.dumps(
        {
            "metadata": {"name": "web-1", "managedFields": [{"manager": "kubectl"}], "annotations": {"a": "x" * 100}},
            "spec": {"containers": [{"name": "web", "imagePullPolicy": "IfNotPresent"}]},
        }
    )
    one, two = _slim(json.loads(text)), _slim(json.loads(text))
    assert one == two and "managedFields" not in one["metadata"]
    key_one = next(iter(one["spec"]["containers"][0]))
    key_two = next(iter(two["spec"]["containers"][0]))
    assert key_one is key_two
    assert one["spec"]["containers"][0]["imagePullPolicy"] is two["spec"]["containers"][0]["imagePullPolicy"]


def test_the_write_back_annotations_ride_on_the_first_status_write(world):
    kube, eci, ctl = world
    gid = created(kube, eci, ctl, "web")
    eci.groups[gid]["Status"] = "Running"
    ctl.poll_status(full=True)
    patches = [(p, b) for m, p, b in kube.writes if m == "PATCH"]
    assert [p.endswith("/status") for p, _ in patches] == [True]
    assert kube.pods["web"]["metadata"]["annotations"]["k8s.aliyun.com/eci-instance-id"] == gid
    load(ctl, kube)
    ctl.sync("ns/web")  # the worker finds nothing left to write
    assert len([w for w in kube.writes if w[0] == "PATCH"]) == 1


def test_the_cache_is_the_kubelet_apis_pod_lookup(world):
    # The kubelet API reads the pod cache directly (vkeci.kubelet.backend.PodLookup): pod and group id.
    kube, eci, ctl = world
    gid = created(kube, eci, ctl, "a")
    pod, group_id = ctl.cache.get("ns", "a")
    assert pod["metadata"]["name"] == "a" and group_id == gid
    assert ctl.cache.get("ns", "b") is None
    assert [p["metadata"]["name"] for p in ctl.cache.list()] == ["a"]


# ---- the start-up reconcile (issue 12, item 5) ------------------------------------------------------


@pytest.fixture
def restarted():
    """A controller just started: nothing reconciled yet; the ECI stand-in pages 20 groups at a time."""
    kube, eci = StubKube(), StubECI()
    options = PodSettings(lost_grace=0, finished_retention=0, page_backoff=0)
    controller = PodController(kube, eci, CONFIG, StubTranslator(), options)  # type: ignore[arg-type]
    return kube, eci, controller


def had_group(kube: StubKube, name: str) -> dict:
    """A pod the previous daemon ran: its group exists, it carries the write-back annotation."""
    pod = kube.add(name)
    pod["metadata"]["annotations"] = {GROUP_ID_ANNOTATION: "eci-from-before"}
    pod["status"] = {"phase": "Running"}
    return pod


def uids(eci: StubECI) -> list[str]:
    return sorted(next(t["Value"] for t in g["Tags"] if t["Key"] == "UID") for g in eci.groups.values())


def test_a_startup_listing_whose_pages_fail_a_third_of_the_time_completes_in_one_attempt(restarted):
    kube, eci, ctl = restarted
    for i in range(70):
        had_group(kube, f"web-{i}")
        eci.add_group(f"uid-web-{i}", f"web-{i}")
    orphans = {eci.add_group(f"uid-gone-{i}", f"gone-{i}") for i in range(5)}  # 75 groups: 4 pages
    load(ctl, kube)
    rng = random.Random(3)  # the old all-or-nothing listing fails with this sequence: 1 - (2/3)^4 = 80 % do
    eci.flaky = lambda action: action == "DescribeContainerGroups" and rng.random() < 1 / 3
    assert ctl.sweep(adopt=True) == 5
    assert ctl.reconciled() and not orphans & set(eci.groups)
    assert len(ctl.groups.records()) == 70
    assert eci.calls.count("DescribeContainerGroups") > 4  # some pages failed and were tried again


def test_orphans_are_deleted_only_once_the_startup_listing_is_complete(restarted):
    kube, eci, ctl = restarted
    orphan = eci.add_group("uid-gone", "gone")
    for i in range(59):
        had_group(kube, f"web-{i}")
        eci.add_group(f"uid-web-{i}", f"web-{i}")
    load(ctl, kube)
    calls = {"n": 0}

    def third_page_down(action: str) -> bool:
        calls["n"] += 1
        return calls["n"] >= 3  # pages 1 and 2 answer, the third keeps failing

    eci.flaky = third_page_down
    with pytest.raises(EciError):
        ctl.sweep(adopt=True)
    assert orphan in eci.groups and not ctl.reconciled()  # a partial listing proves nothing about the rest
    assert len(ctl.groups.records()) == 39  # the 40 groups listed so far, less the orphan, are adopted
    eci.flaky = None
    eci.calls.clear()
    assert ctl.sweep(adopt=True) == 1
    assert orphan not in eci.groups and ctl.reconciled() and len(ctl.groups.records()) == 59
    assert eci.calls.count("DescribeContainerGroups") == 1  # resumed at the third page, not from the first


def test_while_the_startup_listing_runs_a_pod_is_looked_up_before_it_is_created(restarted):
    kube, eci, ctl = restarted
    kube.add("lost-answer")  # the previous daemon's create acted, its answer never came: no annotation yet
    before = eci.add_group("uid-lost-answer", "lost-answer")
    kube.add("new")
    had_group(kube, "old")
    eci.add_group("uid-old", "old")
    load(ctl, kube)
    for name in ("lost-answer", "new", "old"):
        ctl.sync(f"ns/{name}")
    assert ctl.groups.get("uid-lost-answer").group_id == before  # found by its UID and adopted
    assert uids(eci) == ["uid-lost-answer", "uid-new", "uid-old"]  # no duplicate
    assert eci.calls.count("CreateContainerGroup") == 1  # the new pod only
    assert ctl.groups.get("uid-old") is None  # it waits for the listing, which adopts it
    ctl.sweep(adopt=True)
    assert ctl.groups.get("uid-old") is not None and uids(eci) == ["uid-lost-answer", "uid-new", "uid-old"]


def test_pages_with_duplicates_of_one_pod_keep_the_oldest(restarted):
    kube, eci, ctl = restarted
    had_group(kube, "web")
    first = eci.add_group("uid-web", "web")
    for i in range(25):
        had_group(kube, f"x-{i}")
        eci.add_group(f"uid-x-{i}", f"x-{i}")
    second = eci.add_group("uid-web", "web")  # a duplicate on the second page
    eci.groups[first]["CreationTime"], eci.groups[second]["CreationTime"] = "2026-01-01", "2026-01-02"
    load(ctl, kube)
    ctl.sweep(adopt=True)
    assert first in eci.groups and second not in eci.groups
    assert ctl.groups.get("uid-web").group_id == first


class RunningKube(StubKube):
    """LIST answers the pods; WATCH waits quietly until the test ends."""

    def __init__(self, stop: threading.Event) -> None:
        super().__init__()
        self.stop = stop

    def get(self, path, params=None):
        return {"items": list(self.pods.values()), "metadata": {"resourceVersion": "1"}}

    def watch(self, path, params, read_timeout):
        self.stop.wait(0.2)
        return iter(())


def test_the_controller_runs_while_the_startup_listing_cannot_finish(restarted):
    _, eci, _ = restarted
    stop = threading.Event()
    kube = RunningKube(stop)
    options = PodSettings(lost_grace=60, page_backoff=0, status_interval=0.05, workers=2, sweep_interval=0.05)
    ctl = PodController(kube, eci, CONFIG, StubTranslator(), options)  # type: ignore[arg-type]
    had_group(kube, "old")
    kept = eci.add_group("uid-old", "old")
    orphan = eci.add_group("uid-gone", "gone")
    kube.add("new")
    listing = [True]
    # The node's listing (no UID in the tags) keeps failing; a look-up by UID works.
    eci.list_groups = _failing_listing(eci.list_groups, listing)  # type: ignore[method-assign]
    assert not ctl.running()
    threads = ctl.start(stop)
    try:
        assert ctl.running() and not ctl.reconciled()
        wait(lambda: "uid-new" in uids(eci))
        for group in eci.groups.values():
            group["Status"] = "Running"  # ECI starts the new group
        wait(lambda: kube.pods["new"]["status"]["phase"] == "Running")  # the status poller runs too
        assert orphan in eci.groups and uids(eci).count("uid-old") == 1  # nothing deleted, nothing duplicated
        listing[0] = False
        wait(ctl.reconciled)
        wait(lambda: orphan not in eci.groups)
        assert ctl.groups.get("uid-old").group_id == kept and ctl.running()
        assert uids(eci) == ["uid-new", "uid-old"]
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)
    assert not ctl.running()


def _failing_listing(real, failing):
    def list_groups(tags, *, with_event=False, pager=None):
        if failing[0] and not any(t["Key"] == "UID" for t in tags):
            raise EciError("DescribeContainerGroups", "ServiceUnavailable", "injected", transient=True)
        return real(tags, with_event=with_event, pager=pager)

    return list_groups


def wait(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_group_listed_twice_by_a_resumed_listing_is_kept(restarted):
    kube, eci, ctl = restarted
    had_group(kube, "web")
    gid = eci.add_group("uid-web", "web")
    real = eci.list_groups

    def twice(tags, *, with_event=False, pager=None):
        return real(tags, with_event=with_event, pager=pager) * 2  # pages that overlapped after a resume

    eci.list_groups = twice  # type: ignore[method-assign]
    load(ctl, kube)
    assert ctl.sweep(adopt=True) == 0
    assert gid in eci.groups and "DeleteContainerGroup" not in eci.calls


def test_sweep_never_deletes_or_adopts_a_group_of_another_node_or_cluster_or_without_tags(world):
    # ECI filters the listing by the node's tags; were a listing ever to hold more (a filter ignored, a
    # tag lost), no group of another node, another cluster or without identity tags is touched (issue 16).
    kube, eci, ctl = world
    kube.add("live")
    other_node = eci.add_group("uid-b", "b", node="vk-b")
    other_cluster = eci.add_group("uid-c", "c")
    eci.groups[other_cluster]["Tags"][0]["Value"] = "another-cluster"
    untagged = eci.add_group("uid-u", "u")
    eci.groups[untagged]["Tags"] = [{"Key": "UID", "Value": "uid-u"}, {"Key": "PodName", "Value": "u"}]
    eci.list_groups = lambda tags, with_event=False, pager=None: [dict(g) for g in eci.groups.values()]  # type: ignore[method-assign]
    load(ctl, kube)
    assert ctl.sweep(adopt=True) == 0
    assert ctl.sweep() == 0
    assert {other_node, other_cluster, untagged} <= set(eci.groups)
    assert "DeleteContainerGroup" not in eci.calls
    assert all(ctl.groups.get(uid) is None for uid in ("uid-b", "uid-c", "uid-u"))
