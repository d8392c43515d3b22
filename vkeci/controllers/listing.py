"""Paged ECI listings followed to their end despite failed pages: the controllers' pager.

The ECI client gives a listing's pages one call at a time and never retries (``clients.eci.Pager``);
:class:`Listing` is the pager the controllers hand it. A failed page is tried again (bounded, with
back-off), not the whole listing: with a third of calls failing, an all-or-nothing listing of 15 pages
succeeds in 0.23 % of attempts ((2/3)^15, issue 12); one that retries each page almost always finishes.
If a page still fails after ``attempts`` tries the error is raised, and a listing made with ``resume``
keeps its NextToken and the records so far: the next call (the same request: same tags, same
options) goes on from that page instead of from the first.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from vkeci.clients.eci import MAX_PAGES, EciError, PageFetch
from vkeci.config import PodSettings
from vkeci.controllers.loops import Backoff
from vkeci.log import fields

JSON = dict[str, Any]
_BACKOFF_CAP = 8.0  # the longest wait before a page's next try: a listing is waited for


class Listing:
    """One paged listing, a pager for ``EciClient.list_groups`` / ``changed_since`` / ``events_since``.

    ``on_page`` sees each page's records as they arrive (the start-up reconcile adopts from them before
    the listing is complete). ``complete`` is True once a call has returned the whole listing. Not
    thread-safe: one listing is followed by one thread at a time."""

    def __init__(
        self,
        what: str,
        log: logging.Logger,
        *,
        attempts: int,
        backoff: Callable[[], Backoff],
        stop: threading.Event | None = None,
        on_page: Callable[[list[JSON]], None] | None = None,
        resume: bool = False,
    ) -> None:
        self.what = what
        self.log = log
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.stop = stop or threading.Event()
        self.on_page = on_page
        self.resume = resume
        self.token = ""  # where a resumed listing goes on ("" : from the first page)
        self.records: list[JSON] = []  # the records of the pages fetched so far
        self.complete = False
        self.pages = 0  # pages fetched (over every call)
        self.failures = 0  # failed page calls (over every call)

    @classmethod
    def per_settings(
        cls,
        what: str,
        log: logging.Logger,
        settings: PodSettings,
        *,
        stop: threading.Event | None = None,
        on_page: Callable[[list[JSON]], None] | None = None,
        resume: bool = False,
    ) -> Listing:
        """A listing whose pages are tried ``settings.page_attempts`` times, ``page_backoff`` apart (doubling,
        20 % jitter so that a retried page does not meet the next burst of faults in step)."""
        base = settings.page_backoff
        return cls(
            what,
            log,
            attempts=settings.page_attempts,
            backoff=lambda: Backoff(base, max(base, _BACKOFF_CAP), jitter=0.2),
            stop=stop,
            on_page=on_page,
            resume=resume,
        )

    def __call__(self, fetch: PageFetch) -> list[JSON]:
        """Every record of the listing, each page tried up to ``attempts`` times; raises the last
        EciError of a page that kept failing (or as soon as ``stop`` is set)."""
        if not self.resume:
            self.token, self.records = "", []
        self.complete = False
        backoff = self.backoff()
        tries = 0
        for _ in range(MAX_PAGES):
            try:
                page, token = fetch(self.token or None)
            except EciError as err:
                self.failures += 1
                tries += 1
                if not err.transient and self.token:
                    # Perhaps a NextToken ECI no longer accepts (expired): the next call starts afresh.
                    self.log.warning(
                        f"{self.what}: a page was refused, the listing starts again from the first page",
                        extra=fields(error=str(err), pages=len(self.records)),
                    )
                    self.token, self.records = "", []
                    raise
                if not err.transient or tries >= self.attempts or self.stop.is_set():
                    raise
                delay = backoff.next()
                self.log.info(
                    f"{self.what}: a page failed, retrying that page",
                    extra=fields(error=str(err), attempt=tries, retry_in=round(delay, 2), listed=len(self.records)),
                )
                if self.stop.wait(delay):
                    raise
                continue
            tries = 0
            backoff.reset()
            self.pages += 1
            self.records.extend(page)
            if self.on_page is not None:
                self.on_page(page)
            self.token = token
            if not token:
                break
        records, self.token, self.records = self.records, "", []
        self.complete = True
        return records
