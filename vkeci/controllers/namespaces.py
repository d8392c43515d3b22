"""Labels and annotations of every namespace, for the admission webhook (an AdmissionReview carries only the pod).

A watch keeps the cache current; a namespace the cache has not seen yet (created a moment before its
first pod) is read once with a GET. Only metadata is kept: a few hundred bytes per namespace.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import quote

from vkeci.clients.kube import KubeError
from vkeci.controllers.ports import JSON, KubeApi
from vkeci.controllers.watch import Reflector
from vkeci.log import fields, get_logger

log = get_logger("namespaces")


def _slim(obj: JSON) -> JSON:
    meta = obj.get("metadata") or {}
    return {
        "metadata": {
            "name": meta.get("name"),
            "labels": dict(meta.get("labels") or {}),
            "annotations": dict(meta.get("annotations") or {}),
        }
    }


class NamespaceCache:
    """``get(name)``: the namespace's metadata, from the watch or one GET; None if it cannot be had."""

    def __init__(self, kube: KubeApi, *, watch_timeout: int = 300) -> None:
        self.kube = kube
        self._lock = threading.Lock()
        self._items: dict[str, JSON] = {}
        self.reflector = Reflector(
            kube,
            "/api/v1/namespaces",
            what="namespaces",
            on_list=self._listed,
            on_event=self._changed,
            watch_timeout=watch_timeout,
        )
        self.misses = 0  # GETs for namespaces the watch had not delivered yet

    def start(self, stop: threading.Event) -> threading.Thread:
        """Watch in the background until ``stop``."""
        return self.reflector.start(stop)

    def _listed(self, items: list[JSON]) -> None:
        fresh = {str((i.get("metadata") or {}).get("name")): _slim(i) for i in items}
        with self._lock:
            self._items = fresh

    def _changed(self, kind: str, obj: JSON) -> None:
        name = str((obj.get("metadata") or {}).get("name"))
        with self._lock:
            if kind == "DELETED":
                self._items.pop(name, None)
            else:
                self._items[name] = _slim(obj)

    def get(self, name: str) -> dict[str, Any] | None:
        """The namespace's ``{"metadata": {name, labels, annotations}}``."""
        if not name:
            return None
        with self._lock:
            hit = self._items.get(name)
        if hit is not None:
            return hit
        self.misses += 1
        try:
            obj = _slim(self.kube.get(f"/api/v1/namespaces/{quote(name, safe='')}"))
        except KubeError as err:
            log.warning(
                "namespace unknown to the webhook; its labels are not applied",
                extra=fields(namespace=name, error=str(err)),
            )
            return None
        with self._lock:
            self._items.setdefault(name, obj)
        return obj
