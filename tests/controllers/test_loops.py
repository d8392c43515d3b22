"""The loop vocabulary: backoff, guarded passes, periodic runs, retries that stop."""

from __future__ import annotations

import logging
import threading

import pytest

from vkeci.controllers.loops import Backoff, Streak, guarded, retry_until, run_periodic

log = logging.getLogger("test-loops")


def test_backoff_doubles_up_to_the_cap_and_resets():
    backoff = Backoff(0.5, 3.0)
    assert [backoff.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next() == 0.5


def test_jitter_only_adds():
    backoff = Backoff(1.0, 10.0, jitter=0.5)
    assert 1.0 <= backoff.next() <= 1.5
    assert 2.0 <= backoff.next() <= 3.0


def test_a_guarded_pass_never_raises(caplog):
    def boom() -> None:
        raise KeyError("x")

    def expected() -> None:
        raise TimeoutError("slow")

    with caplog.at_level(logging.WARNING):
        assert not guarded(log, "thing", boom)
        assert not guarded(log, "thing", expected, (TimeoutError,))
        assert guarded(log, "thing", lambda: None)
    assert [r.getMessage() for r in caplog.records] == ["thing crashed, will retry", "thing failed, will retry"]
    assert caplog.records[0].exc_info and not caplog.records[1].exc_info


def test_retry_until_retries_expected_errors_and_stops_on_stop():
    stop, calls = threading.Event(), []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TimeoutError("not yet")
        return "done"

    assert retry_until(stop, flaky, "thing", log, Backoff(0.001, 0.001), (TimeoutError,)) == (True, "done")
    stop.set()
    assert retry_until(stop, flaky, "thing", log, Backoff(0.001, 0.001), (TimeoutError,)) == (False, None)
    with pytest.raises(KeyError):
        retry_until(threading.Event(), lambda: {}["x"], "thing", log, Backoff(0.001, 0.001), (TimeoutError,))


def test_run_periodic_runs_until_stop():
    stop, runs = threading.Event(), []

    def once() -> None:
        runs.append(1)
        if len(runs) == 3:
            stop.set()
        raise ValueError("survived")

    run_periodic(stop, 0.001, once, "thing", log)
    assert len(runs) == 3


def test_a_run_of_failures_is_one_warning_then_one_line_when_it_works_again(caplog):
    streak = Streak()
    outcomes = iter([False] * 5 + [True, True, False])

    def tick() -> None:
        if not next(outcomes):
            raise OSError("connection refused")

    caplog.set_level(logging.DEBUG, logger="test-loops")
    for _ in range(8):
        guarded(log, "status poll", tick, (OSError,), streak)
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in lines if level == "WARNING"] == ["WARNING", "WARNING"]  # the 1st and the 8th
    assert ("INFO", "status poll works again") in lines
    assert [level for level, _ in lines].count("DEBUG") == 4
    assert streak.failures == 1
