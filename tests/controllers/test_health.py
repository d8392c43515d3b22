"""The health endpoint: loops' liveness stamps through their ``stop`` events, /healthz and /readyz."""

from __future__ import annotations

import threading

import requests

from vkeci.controllers.health import HealthServer, Liveness


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_loop_checking_its_stop_stays_alive_and_a_silent_one_is_overdue():
    clock = Clock()
    liveness = Liveness(stale_after=30.0, clock=clock)
    stop = threading.Event()
    worker = liveness.stop_for("worker-0", stop, period=0.5)
    status = liveness.stop_for("status", stop, period=5.0)
    clock.now += 20
    assert liveness.overdue() == []
    assert not worker.is_set()  # the worker checks: stamped
    clock.now += 20  # 40 s since the status loop last checked > 5 + 30
    assert liveness.overdue() == ["status"]
    assert not status.is_set()
    assert liveness.overdue() == []


def test_a_loop_sleeping_in_wait_is_due_after_its_sleep():
    clock = Clock()
    liveness = Liveness(stale_after=10.0, clock=clock)
    stop = threading.Event()
    ping = liveness.stop_for("ping", stop, period=1.0)
    sleeping = threading.Thread(target=ping.wait, args=(100.0,))
    sleeping.start()
    try:
        threading.Event().wait(0.05)  # the thread is in its wait: stamped due at 100 + 100 + 10
        clock.now += 50
        assert liveness.overdue() == []
        clock.now += 100
        assert liveness.overdue() == ["ping"]
    finally:
        stop.set()
        sleeping.join()
    assert liveness.overdue() == []  # it woke and stamped again


def test_the_stamping_event_is_the_daemons_stop():
    liveness = Liveness(stale_after=10.0)
    stop = threading.Event()
    own = liveness.stop_for("watch", stop, period=1.0)
    own.set()
    assert stop.is_set() and own.is_set() and own.wait(0)
    own.clear()
    assert not stop.is_set()


def test_a_dead_thread_is_overdue_at_once():
    liveness = Liveness(stale_after=1000.0)
    stop = threading.Event()
    own = liveness.stop_for("worker-1", stop, period=0.5)
    thread = liveness.track(threading.Thread(target=own.is_set, name="worker-1"))
    assert liveness.overdue() == []  # not started yet: not dead
    thread.start()
    thread.join()
    assert liveness.overdue() == ["worker-1"]


def test_healthz_and_readyz_answer_plain_http():
    clock = Clock()
    liveness = Liveness(stale_after=10.0, clock=clock)
    stop = threading.Event()
    liveness.stop_for("heartbeat", stop, period=10.0)
    waiting = ["node registration"]
    server = HealthServer("127.0.0.1", 0, liveness, lambda: list(waiting))
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        answer = requests.get(base + "/healthz", timeout=5)
        assert (answer.status_code, answer.text) == (200, "ok\n")
        answer = requests.get(base + "/readyz", timeout=5)
        assert (answer.status_code, answer.text) == (503, "waiting for: node registration\n")
        waiting.clear()
        assert requests.get(base + "/readyz", timeout=5).status_code == 200
        clock.now += 60
        answer = requests.get(base + "/healthz", timeout=5)
        assert (answer.status_code, answer.text) == (503, "loops not making progress: heartbeat\n")
        assert requests.get(base + "/other", timeout=5).status_code == 404
    finally:
        server.stop()
