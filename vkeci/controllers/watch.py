"""LIST then WATCH one collection of the API server, handing every object to a controller.

The loop of ``vkeci.pods`` in a reusable form: a LIST sets the starting resourceVersion, the WATCH
follows from it (bookmarks on), a 410 Gone relists, any other failure backs off 0.5 s -> 30 s and
relists (an outage may have hidden a deletion). Used by the eci-profile watch and the namespace cache.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

from vkeci.clients.kube import KubeError
from vkeci.controllers.loops import Backoff
from vkeci.controllers.ports import JSON, KubeApi
from vkeci.log import fields, get_logger

log = get_logger("watch")


class Reflector:
    """Keeps a controller's view of ``path`` current: ``on_list`` gets every LIST, ``on_event`` every change."""

    def __init__(
        self,
        kube: KubeApi,
        path: str,
        *,
        what: str,
        on_list: Callable[[list[JSON]], None],
        on_event: Callable[[str, JSON], None],
        params: dict[str, Any] | None = None,
        watch_timeout: int = 300,
    ) -> None:
        self.kube = kube
        self.path = path
        self.what = what
        self.params = dict(params or {})
        self.on_list = on_list
        self.on_event = on_event
        self.watch_timeout = watch_timeout
        self.resource_version = ""
        self.synced = threading.Event()  # set after the first successful LIST

    def relist(self) -> None:
        """LIST everything (500 a page) and hand it over."""
        items: list[JSON] = []
        params: dict[str, Any] = {**self.params, "limit": 500}
        while True:
            page = self.kube.get(self.path, params)
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            if not meta.get("continue"):
                break
            params["continue"] = meta["continue"]
        self.on_list(items)
        self.resource_version = str(meta.get("resourceVersion") or "")
        self.synced.set()

    def watch_once(self, stop: threading.Event) -> None:
        """One WATCH from the current resourceVersion; raises KubeError (410 -> ``gone``)."""
        timeout = int(self.watch_timeout * random.uniform(1.0, 1.2))
        params = {
            **self.params,
            "resourceVersion": self.resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": timeout,
        }
        for event in self.kube.watch(self.path, params, read_timeout=timeout + 15):
            if stop.is_set():
                return
            kind, obj = str(event.get("type") or ""), event.get("object") or {}
            if kind == "ERROR":
                code = int(obj.get("code") or 0)
                raise KubeError(
                    code, str(obj.get("reason") or "Error"), str(obj.get("message") or ""), "WATCH", self.path
                )
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if rv:
                self.resource_version = str(rv)
            if kind in ("ADDED", "MODIFIED", "DELETED"):
                self.on_event(kind, obj)

    def run(self, stop: threading.Event) -> None:
        """Watch until ``stop``, whatever fails in between."""
        backoff = Backoff(0.5, 30.0)
        need_list = True
        while not stop.is_set():
            try:
                if need_list:
                    self.relist()
                    need_list = False
                self.watch_once(stop)
                backoff.reset()
            except KubeError as err:
                if err.gone:
                    need_list = True
                    continue
                delay = backoff.next()
                log.warning(
                    f"{self.what} watch failed, reconnecting", extra=fields(error=str(err), retry_in=round(delay, 1))
                )
                stop.wait(delay)
                need_list = True
            except Exception:  # a handler's bug must not end the watch for good
                log.exception(f"{self.what} watch crashed, relisting")
                stop.wait(backoff.next())
                need_list = True

    def start(self, stop: threading.Event) -> threading.Thread:
        """Run in a daemon thread named after ``what``."""
        thread = threading.Thread(target=self.run, args=(stop,), name=f"watch-{self.what}", daemon=True)
        thread.start()
        return thread
