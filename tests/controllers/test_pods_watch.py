"""The pod watch: list then watch, bookmarks, 410 Gone → relist, errors → backoff and relist."""

from __future__ import annotations

import threading

from vkeci.clients.kube import KubeError
from vkeci.config import Config, PodSettings
from vkeci.controllers.pods import PodController


def pod(name: str, rv: str, uid: str | None = None) -> dict:
    return {"metadata": {"name": name, "namespace": "ns", "uid": uid or f"uid-{name}", "resourceVersion": rv}}


class ScriptedKube:
    """LIST answers and a script of WATCH outcomes (a list of events, or an exception)."""

    def __init__(self, lists, watches, stop):
        self.lists = list(lists)
        self.watches = list(watches)
        self.stop = stop
        self.watch_params: list[dict] = []

    def get(self, path, params=None):
        items, rv = self.lists.pop(0)
        return {"items": items, "metadata": {"resourceVersion": rv}}

    def watch(self, path, params, read_timeout):
        self.watch_params.append(dict(params))
        if not self.watches:
            self.stop.set()
            return
        step = self.watches.pop(0)
        if isinstance(step, Exception):
            raise step
        yield from step


def controller(kube) -> PodController:
    return PodController(kube, None, Config(node_name="vk"), None, PodSettings(watch_timeout=5))  # type: ignore[arg-type]


def drain(ctl: PodController) -> list[str]:
    keys = []
    while (key := ctl.queue.get(0)) is not None:
        keys.append(key)
        ctl.queue.done(key)
    return keys


def test_list_watch_bookmark_and_resume_from_the_last_resource_version():
    stop = threading.Event()
    watches = [
        [
            {"type": "ADDED", "object": pod("b", "11")},
            {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}},
        ]
    ]
    kube = ScriptedKube([([pod("a", "9")], "10")], watches, stop)
    ctl = controller(kube)
    ctl.watch_loop(stop)
    assert set(ctl.pods) == {"ns/a", "ns/b"}
    first, second = kube.watch_params
    assert first["resourceVersion"] == "10" and first["allowWatchBookmarks"] == "true"
    assert first["fieldSelector"] == "spec.nodeName=vk" and first["timeoutSeconds"] >= 5
    assert second["resourceVersion"] == "15"  # the bookmark moved it on; no relist
    assert sorted(drain(ctl)) == ["ns/a", "ns/b"]


def test_410_gone_relists_and_diffs_the_cache():
    stop = threading.Event()
    gone = KubeError(410, "Expired", "too old resource version")
    lists = [([pod("a", "9"), pod("b", "9")], "10"), ([pod("b", "20"), pod("c", "20")], "21")]
    kube = ScriptedKube(lists, [gone], stop)
    ctl = controller(kube)
    ctl.watch_loop(stop)
    assert set(ctl.pods) == {"ns/b", "ns/c"}  # a was deleted while we were away
    assert kube.watch_params[-1]["resourceVersion"] == "21"
    assert "ns/a" in drain(ctl)  # queued so its group gets deleted


def test_error_event_in_the_stream_is_handled_like_a_410():
    stop = threading.Event()
    error = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "gone"}}
    lists = [([pod("a", "9")], "10"), ([pod("a", "30")], "31")]
    kube = ScriptedKube(lists, [[error]], stop)
    ctl = controller(kube)
    ctl.watch_loop(stop)
    assert kube.watch_params[-1]["resourceVersion"] == "31"


def test_broken_watch_backs_off_then_relists():
    stop = threading.Event()
    broken = KubeError(0, "Unreachable", "connection refused")
    lists = [([pod("a", "9")], "10"), ([], "40")]
    kube = ScriptedKube(lists, [broken], stop)
    ctl = controller(kube)
    ctl.watch_loop(stop)
    assert ctl.pods == {}
    assert kube.watch_params[-1]["resourceVersion"] == "40"
