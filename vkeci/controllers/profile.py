"""The eci-profile in force: a watch of the ``kube-system/eci-profile`` ConfigMap.

Every change is parsed (:func:`vkeci.core.profile.parse_profile`). A valid one replaces the profile in
force at once (the watch delivers an edit in well under a second, so pods admitted or translated 5 s
after ``kubectl edit`` see it); a malformed one is logged and reported as a Warning event on the
ConfigMap, naming each key and problem, and the last good profile stays in force. A deleted ConfigMap
means the empty profile: the daemon's own settings. One event per rejected resourceVersion, so a
relist does not repeat it.

:class:`ProfileWatcher` is a :class:`vkeci.core.profile.ProfileSource`: the webhook reads its selectors,
the translator its cluster parameters (``with_overrides(defaults, watcher.current().cluster)``).
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from typing import Any

from vkeci.clients.kube import KubeError
from vkeci.controllers.ports import JSON, KubeApi
from vkeci.controllers.watch import Reflector
from vkeci.core.profile import EMPTY, PROFILE_NAME, PROFILE_NAMESPACE, Profile, ProfileError, parse_profile
from vkeci.log import fields, get_logger

log = get_logger("profile")

REJECTED_REASON = "InvalidEciProfile"


class ProfileWatcher:
    """Watches one ConfigMap and keeps the last valid profile parsed from it."""

    def __init__(
        self,
        kube: KubeApi,
        *,
        namespace: str = PROFILE_NAMESPACE,
        name: str = PROFILE_NAME,
        component: str = "vkeci",
        watch_timeout: int = 300,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.component = component
        self._lock = threading.Lock()
        self._profile: Profile = EMPTY
        self._reported: set[str] = set()  # resourceVersions already reported as invalid
        self.reflector = Reflector(
            kube,
            f"/api/v1/namespaces/{namespace}/configmaps",
            what="eci-profile",
            params={"fieldSelector": f"metadata.name={name}"},
            on_list=self._listed,
            on_event=self._changed,
            watch_timeout=watch_timeout,
        )

    def current(self) -> Profile:
        """The profile in force (``EMPTY`` until a valid ConfigMap was seen)."""
        with self._lock:
            return self._profile

    @property
    def synced(self) -> threading.Event:
        """Set once the ConfigMap was listed (present or not)."""
        return self.reflector.synced

    def start(self, stop: threading.Event) -> threading.Thread:
        """Watch in the background until ``stop``."""
        return self.reflector.start(stop)

    def _listed(self, items: list[JSON]) -> None:
        mine = [i for i in items if (i.get("metadata") or {}).get("name") == self.name]
        if mine:
            self.apply(mine[0])
        else:
            self._set(EMPTY, f"no ConfigMap {self.namespace}/{self.name}: the daemon's own settings apply")

    def _changed(self, kind: str, obj: JSON) -> None:
        if kind == "DELETED":
            self._set(EMPTY, f"ConfigMap {self.namespace}/{self.name} deleted: the daemon's own settings apply")
        else:
            self.apply(obj)

    def _set(self, profile: Profile, message: str) -> None:
        with self._lock:
            before, self._profile = self._profile, profile
        if before != profile:
            log.info(message, extra=fields(profile=profile.summary()))

    def apply(self, configmap: JSON) -> bool:
        """Parse ``configmap`` and put it in force; False (old profile kept, problem reported) if invalid."""
        meta = configmap.get("metadata") or {}
        version = str(meta.get("resourceVersion") or "")
        with self._lock:
            if self._profile.resource_version == version and version:
                return True
        try:
            profile = parse_profile(configmap.get("data"), version)
        except ProfileError as err:
            self._reject(configmap, err)
            return False
        self._set(profile, f"eci-profile {self.namespace}/{self.name} in force (resourceVersion {version})")
        for note in profile.ignored:
            log.info("eci-profile key not honoured", extra=fields(key=note.field, why=note.fix))
        return True

    def _reject(self, configmap: JSON, err: ProfileError) -> None:
        meta = configmap.get("metadata") or {}
        version = str(meta.get("resourceVersion") or "")
        kept = self.current()
        kept_text = f"resourceVersion {kept.resource_version}" if kept.resource_version else "the daemon's own settings"
        message = f"{err}\nThe last good profile stays in force ({kept_text}); fix the keys above."
        log.warning(
            "eci-profile rejected, keeping the last good one",
            extra=fields(resource_version=version, kept=kept_text, problems=[str(p) for p in err.problems]),
        )
        if version in self._reported:
            return
        self._reported.add(version)
        try:
            self.kube.post(f"/api/v1/namespaces/{self.namespace}/events", self.event(configmap, message))
        except KubeError as exc:
            log.warning("could not post the eci-profile Warning event", extra=fields(error=str(exc)))

    def event(self, configmap: JSON, message: str) -> dict[str, Any]:
        """The Warning event on the ConfigMap that says why it was rejected."""
        meta = configmap.get("metadata") or {}
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{self.name}.{uuid.uuid4().hex[:16]}", "namespace": self.namespace},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "name": self.name,
                "namespace": self.namespace,
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": "Warning",
            "reason": REJECTED_REASON,
            "message": message[:1024],
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "reportingInstance": self.component,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
