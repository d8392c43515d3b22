"""The per-key work queue: dedup, one worker per key, delays, backoff, shutdown."""

import threading
import time

from vkeci.controllers.workqueue import WorkQueue


def test_dedup_while_waiting():
    q = WorkQueue()
    q.add("a")
    q.add("a")
    q.add("b")
    assert [q.get(0), q.get(0), q.get(0)] == ["a", "b", None]


def test_key_readded_while_processing_waits_for_done():
    q = WorkQueue()
    q.add("a")
    assert q.get(0) == "a"
    q.add("a")
    assert q.get(0) is None  # never two workers on one key
    q.done("a")
    assert q.get(0) == "a"


def test_add_after_and_ordering():
    q = WorkQueue()
    q.add_after("late", 0.05)
    q.add("now")
    assert q.get(0) == "now"
    assert q.get(0) is None
    assert q.get(1.0) == "late"


def test_backoff_grows_caps_and_resets():
    q = WorkQueue(base_delay=0.01, max_delay=0.04)
    delays = [q.retry("k") for _ in range(5)]
    assert delays[0] <= 0.01 and delays[-1] <= 0.04
    assert delays[3] >= 0.04 * 0.8
    assert q.failures("k") == 5
    q.forget("k")
    assert q.failures("k") == 0


def test_no_retry_limit():
    q = WorkQueue(base_delay=0.0001, max_delay=0.0001)
    for _ in range(100):
        q.retry("k")
        assert q.get(1.0) == "k"
        q.done("k")


def test_shutdown_wakes_waiters():
    q = WorkQueue()
    got = []
    thread = threading.Thread(target=lambda: got.append(q.get(5.0)))
    thread.start()
    time.sleep(0.05)
    q.shutdown()
    thread.join(2)
    assert got == [None]
    q.add("x")
    assert q.get(0) is None


def test_many_threads_process_each_key_once_at_a_time():
    q = WorkQueue()
    active: set[str] = set()
    seen: list[str] = []
    lock = threading.Lock()
    clash = []

    def worker():
        while True:
            key = q.get(0.2)
            if key is None:
                return
            with lock:
                if key in active:
                    clash.append(key)
                active.add(key)
            time.sleep(0.001)
            with lock:
                active.discard(key)
                seen.append(key)
            q.done(key)

    for i in range(200):
        q.add(f"k{i % 20}")
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for i in range(200):
        q.add(f"k{i % 20}")
    for t in threads:
        t.join(5)
    assert not clash
    assert set(seen) == {f"k{i}" for i in range(20)}


def test_retry_cap():
    q = WorkQueue(base_delay=1.0, max_delay=60.0)
    delays = [q.retry("k", cap=2.0) for _ in range(6)]
    assert max(delays) <= 2.0


def test_retry_floor_holds_back_the_first_retries_but_not_past_max_delay():
    q = WorkQueue(base_delay=0.2, max_delay=8.0)
    delays = [q.retry("k", floor=5.0) for _ in range(8)]
    assert min(delays) >= 5.0
    assert max(delays) <= 8.0
