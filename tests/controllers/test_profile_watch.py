"""The eci-profile watch: valid edits go in force, a bad one keeps the last good profile and warns once."""

from __future__ import annotations

import json
from typing import Any

from vkeci.clients.kube import KubeError
from vkeci.controllers.namespaces import NamespaceCache
from vkeci.controllers.profile import REJECTED_REASON, ProfileWatcher
from vkeci.core.profile import EMPTY


class Recorder:
    """Just the calls the controllers make, answered from dicts."""

    def __init__(self, objects: dict[str, Any] | None = None) -> None:
        self.objects = objects or {}
        self.posted: list[tuple[str, dict[str, Any]]] = []
        self.gets: list[str] = []

    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self.gets.append(path)
        if path not in self.objects:
            raise KubeError(404, "NotFound", f"{path} not found")
        return dict(self.objects[path])

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.posted.append((path, body))
        return body

    def with_priority(self, priority: bool = True) -> Recorder:
        return self


def configmap(version: str, **data: str) -> dict[str, Any]:
    meta = {"name": "eci-profile", "namespace": "kube-system", "uid": "cm-uid", "resourceVersion": version}
    return {"metadata": meta, "data": data}


def watcher(kube: Recorder) -> ProfileWatcher:
    return ProfileWatcher(kube)  # type: ignore[arg-type]


def test_a_valid_edit_is_in_force_and_a_bad_one_keeps_it_with_one_warning_event() -> None:
    kube = Recorder()
    profiles = watcher(kube)
    assert profiles.current() is EMPTY
    assert profiles.apply(configmap("1", vSwitchIds="vsw-a"))
    assert profiles.current().cluster.vswitch_ids == ("vsw-a",)

    bad = configmap("2", vSwitchIds="vsw-a", selectors="[{")
    assert not profiles.apply(bad)
    assert not profiles.apply(bad)  # seen again on a relist: no second event
    assert profiles.current().resource_version == "1"
    ((path, event),) = kube.posted
    assert path == "/api/v1/namespaces/kube-system/events"
    assert event["type"] == "Warning" and event["reason"] == REJECTED_REASON
    assert event["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "eci-profile",
        "namespace": "kube-system",
        "uid": "cm-uid",
        "resourceVersion": "2",
    }
    assert "selectors: not valid JSON" in event["message"]
    assert "stays in force (resourceVersion 1)" in event["message"]

    assert profiles.apply(configmap("3", vSwitchIds="vsw-b"))
    assert profiles.current().cluster.vswitch_ids == ("vsw-b",)


def test_a_deleted_or_missing_configmap_means_the_empty_profile() -> None:
    profiles = watcher(Recorder())
    profiles.apply(configmap("1", securityGroupId="sg-a"))
    profiles._changed("DELETED", configmap("2"))
    assert profiles.current() is EMPTY
    profiles.apply(configmap("3", securityGroupId="sg-b"))
    profiles._listed([])
    assert profiles.current() is EMPTY


def test_a_first_profile_that_is_bad_leaves_the_daemon_settings_and_says_so() -> None:
    kube = Recorder()
    profiles = watcher(kube)
    profiles.apply(configmap("7", selectors=json.dumps([{"name": "x"}])))
    assert profiles.current() is EMPTY
    assert "stays in force (the daemon's own settings)" in kube.posted[0][1]["message"]


def test_the_namespace_cache_reads_a_namespace_it_has_not_seen_once() -> None:
    kube = Recorder({"/api/v1/namespaces/new": {"metadata": {"name": "new", "labels": {"a": "b"}, "uid": "x"}}})
    cache = NamespaceCache(kube)  # type: ignore[arg-type]
    cache._listed([{"metadata": {"name": "old", "labels": {"alibabacloud.com/eci": "true"}}}])
    assert cache.get("old") == {
        "metadata": {"name": "old", "labels": {"alibabacloud.com/eci": "true"}, "annotations": {}}
    }
    assert cache.get("new") == {"metadata": {"name": "new", "labels": {"a": "b"}, "annotations": {}}}
    assert cache.get("new") is not None
    assert kube.gets == ["/api/v1/namespaces/new"]
    assert cache.get("gone") is None  # 404: logged, treated as unlabelled
    cache._changed("DELETED", {"metadata": {"name": "old"}})
    assert cache.get("old") is None
