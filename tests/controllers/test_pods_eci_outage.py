"""New pods while ECI is unreachable (#12 item 2): held Pending with a reason that says so, created on recovery."""

from __future__ import annotations

from tests.controllers.test_pods import load, world  # noqa: F401  (world is a fixture)


def test_a_new_pod_waits_visibly_while_eci_is_unreachable_and_is_created_on_recovery(world):  # noqa: F811
    kube, eci, ctl = world
    ctl.eci_changed(False, "ECI endpoint eci.test:443 fails: no answer (connection refused)")
    kube.add("web")
    load(ctl, kube)
    assert ctl.sync("ns/web") is None  # held, not retried with backoff
    assert "CreateContainerGroup" not in eci.calls and eci.groups == {}
    status = kube.pods["web"]["status"]
    assert (status["phase"], status["reason"]) == ("Pending", "ECIUnreachable")
    assert "connection refused" in status["message"] and "created when ECI answers again" in status["message"]
    events = kube.events()
    assert [(e["type"], e["reason"]) for e in events] == [("Warning", "ECIUnreachable")]
    ctl.sync("ns/web")  # the status write wakes the key again: no second event
    assert len(kube.events()) == 1
    ctl.eci_changed(True, "")
    assert ctl.queue.get(timeout=1) == "ns/web"  # queued at once on recovery
    ctl.sync("ns/web")
    assert eci.calls.count("CreateContainerGroup") == 1 and len(eci.groups) == 1


def test_a_pod_held_just_as_eci_comes_back_is_looked_at_again(world, monkeypatch):  # noqa: F811
    kube, eci, ctl = world
    kube.add("web")
    load(ctl, kube)
    # The worker read "unreachable" just before the ping thread saw ECI answer and woke the held pods.
    monkeypatch.setattr(ctl.outage, "message", lambda: "down")
    assert ctl.sync("ns/web") == 0.1
    monkeypatch.undo()
    assert ctl.sync("ns/web") is None and len(eci.groups) == 1
