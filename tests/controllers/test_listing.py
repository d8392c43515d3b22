"""The controllers' pager: a failed page is retried, a listing that stops halfway resumes at its NextToken."""

from __future__ import annotations

import logging
import random
import threading

import pytest

from vkeci.clients.eci import EciError, follow_pages
from vkeci.config import PodSettings
from vkeci.controllers.listing import Listing

log = logging.getLogger("test")
FAST = PodSettings(page_backoff=0)


class Pages:
    """A listing of ``pages`` pages of ``size`` records; ``fails(token)`` says whether a call fails."""

    def __init__(self, pages: int, size: int = 20, fails=lambda token: False, permanent=False) -> None:
        self.pages, self.size, self.fails, self.permanent = pages, size, fails, permanent
        self.calls: list[str | None] = []
        self.served: list[str | None] = []  # the tokens of the pages answered

    def __call__(self, token):
        self.calls.append(token)
        if self.fails(token):
            raise EciError("DescribeContainerGroups", "ServiceUnavailable", "injected", transient=not self.permanent)
        index = int(token or 0)
        self.served.append(token)
        records = [{"ContainerGroupId": f"eci-{index}-{i}"} for i in range(self.size)]
        return records, str(index + 1) if index + 1 < self.pages else ""


def third_fail(seed: int):
    rng = random.Random(seed)
    return lambda token: rng.random() < 1 / 3


def test_a_listing_whose_pages_fail_a_third_of_the_time_completes_each_page_fetched_once():
    pages = Pages(15, fails=third_fail(1))
    listing = Listing.per_settings("test listing", log, FAST)
    records = listing(pages)
    assert [r["ContainerGroupId"] for r in records] == [f"eci-{p}-{i}" for p in range(15) for i in range(20)]
    assert pages.served == [None, *map(str, range(1, 15))]  # each page answered once, in order
    assert listing.complete and listing.pages == 15 and listing.failures == len(pages.calls) - 15 > 0


def test_without_the_pager_one_failed_page_loses_the_whole_listing():
    # What the ECI client does on its own (it never retries): issue 12's all-or-nothing listing.
    pages = Pages(15, fails=third_fail(1))
    with pytest.raises(EciError):
        follow_pages(pages)


def test_a_page_that_keeps_failing_raises_and_the_next_call_resumes_at_its_token():
    down = {"3"}
    pages = Pages(5, fails=lambda token: token in down)
    seen: list[str] = []
    listing = Listing.per_settings(
        "test listing", log, FAST, resume=True, on_page=lambda page: seen.extend(r["ContainerGroupId"] for r in page)
    )
    with pytest.raises(EciError):
        listing(pages)
    assert pages.calls.count("3") == FAST.page_attempts  # bounded tries of the failed page
    assert not listing.complete and listing.token == "3" and len(listing.records) == 60
    assert len(seen) == 60  # the pages so far were handed on as they came
    down.clear()
    records = listing(pages)
    assert len(records) == 100 and len({r["ContainerGroupId"] for r in records}) == 100
    assert pages.served == [None, "1", "2", "3", "4"]  # pages 0-2 were not fetched again
    assert listing.complete and listing.token == "" and listing.records == []


def test_a_listing_without_resume_starts_again_from_the_first_page():
    down = {"2"}
    pages = Pages(3, fails=lambda token: token in down)
    listing = Listing.per_settings("status listing", log, FAST)
    with pytest.raises(EciError):
        listing(pages)
    down.clear()
    assert len(listing(pages)) == 60
    assert pages.served == [None, "1", None, "1", "2"]  # a new window is a new request: no stale token


def test_a_refused_token_restarts_the_listing_and_a_refused_first_page_is_not_retried():
    pages = Pages(3, fails=lambda token: token == "1", permanent=True)
    listing = Listing.per_settings("test listing", log, FAST, resume=True)
    with pytest.raises(EciError):
        listing(pages)
    assert pages.calls == [None, "1"]  # not retried: the answer will not change
    assert listing.token == "" and listing.records == []  # the next call starts afresh


def test_a_stopped_listing_gives_up_at_once():
    stop = threading.Event()
    stop.set()
    pages = Pages(3, fails=lambda token: True)
    listing = Listing.per_settings("test listing", log, PodSettings(page_backoff=5.0), stop=stop)
    with pytest.raises(EciError):
        listing(pages)
    assert len(pages.calls) == 1
