"""The pure half of the fault run (scripts/fault_run.py): duplicates, orphans, flips, fault counts, evictions
and the report. Hand-made samples; nothing runs a cluster here."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import fault_run


def _group(gid: str, uid: str, attempt: str | None = None) -> dict:
    tags = [{"Key": "UID", "Value": uid}, {"Key": "NodeName", "Value": "vk"}]
    if attempt is not None:
        tags.append({"Key": "GroupAttempt", "Value": attempt})
    return {"ContainerGroupId": gid, "Tags": tags, "Status": "Running"}


def test_two_live_groups_of_one_uid_and_attempt_are_a_duplicate() -> None:
    groups = [_group("eci-1", "u1"), _group("eci-2", "u1", "0"), _group("eci-3", "u2")]
    assert fault_run.duplicate_groups(groups) == {"u1/0": ["eci-1", "eci-2"]}


def test_a_new_attempt_of_the_same_pod_is_no_duplicate() -> None:
    groups = [_group("eci-1", "u1"), _group("eci-2", "u1", "1")]
    assert fault_run.duplicate_groups(groups) == {}


def test_orphans_are_groups_without_their_pod() -> None:
    groups = [_group("eci-1", "u1"), _group("eci-2", "u2")]
    assert fault_run.orphan_groups(groups, ["u2"]) == ["eci-1"]


def test_flips_count_transitions_not_samples() -> None:
    assert fault_run.flips([]) == 0
    assert fault_run.flips(["True", "True", "False", "False", "True", "Unknown"]) == 3


def test_fault_counts_sum_every_outcome_but_ok_over_actions() -> None:
    calls = {
        "total": 20,
        "by_action": {
            "CreateContainerGroup": {"total": 10, "outcomes": {"OK": 6, "Dropped": 3, "Throttling.User": 1}},
            "DescribeContainerGroups": {"total": 10, "outcomes": {"OK": 8, "Dropped": 1, "ServiceUnavailable": 1}},
        },
    }
    assert fault_run.fault_counts(calls) == {"Dropped": 4, "ServiceUnavailable": 1, "Throttling.User": 1}


def test_evicted_pods_by_condition_or_event() -> None:
    pods = [
        {"metadata": {"name": "a"}, "status": {"conditions": [{"type": "DisruptionTarget", "status": "True"}]}},
        {"metadata": {"name": "b"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}},
    ]
    events = [
        {
            "reason": "TaintManagerEviction",
            "message": "Marking for deletion Pod ns/c",
            "involvedObject": {"kind": "Pod", "name": "c"},
        },
        {
            "reason": "TaintManagerEviction",
            "message": "Cancelling deletion of Pod ns/d",
            "involvedObject": {"kind": "Pod", "name": "d"},
        },
        {"reason": "Scheduled", "involvedObject": {"kind": "Pod", "name": "b"}},
    ]
    assert fault_run.evicted(pods, events) == ["a", "c"]
    assert fault_run.evictions_cancelled(events) == 1


def test_the_error_rules_keep_their_share_of_all_calls() -> None:
    spec = fault_run.faults_spec(drop=0.2, errors=0.1, throttle=0.05, seed=1)
    throttle, unavailable, internal = (rule["rate"] for rule in spec["errors"])
    # The first matching rule wins: each later rule only sees what the earlier ones let through.
    shares = [throttle, (1 - throttle) * unavailable, (1 - throttle) * (1 - unavailable) * internal]
    assert [round(s, 6) for s in shares] == [0.05, 0.05, 0.05]
    assert spec["drop_response"] == {"*": 0.2} and spec["rate_limits"] == {"enabled": True}


def test_back_after_finds_the_first_ready_after_each_kill() -> None:
    log = (
        "2026-12-03T06:00:00.000Z INFO node: node Ready changed ready=true why=x\n"
        "2026-12-03T06:00:20.500Z INFO node: node Ready changed ready=true why=x\n"
    )
    start = 1796277600.0  # 2026-12-03T06:00:00Z
    assert fault_run.back_after([start + 5, start + 30], log) == [15.5, None]


def test_the_report_names_each_figure() -> None:
    raw = {
        "replicas": 3,
        "pod_uids": ["u1", "u2", "u3", "u4"],
        "kills": ["ramp at 1 Running, 1 groups"],
        "back_after": [17.2],
        "unasked_exits": 0,
        "faults": {"Dropped": 5, "InvalidParameter.NotFound": 2},
        "calls_total": 50,
        "duplicates": {},
        "groups_of": {"u1": ["eci-1"], "u2": ["eci-2", "eci-5"]},
        "orphans": [],
        "failed": {},
        "evicted": [],
        "evictions_cancelled": 0,
        "secrets": [],
        "ready_states": ["True", "False", "True"],
        "max_running": 3,
        "t_running": 42.0,
        "t_zero": None,
        "left": {},
        "load": {"min": 1.0, "max": 4.5},
        "notes": [],
    }
    summary = fault_run.summarize(raw)
    assert summary["pods_created"] == 4 and summary["kills"] == 1 and summary["node_ready_flips"] == 2
    assert summary["groups_seen"] == 3 and summary["pods_with_several_groups"] == {"u2": ["eci-2", "eci-5"]}
    table = fault_run.markdown(summary)
    assert "| groups seen / pods with more than one | 3 / 1 |" in table
    assert "| pods created (distinct UIDs) | 4 |" in table
    assert "| ECI calls / faults injected | 50 / Dropped 5 |" in table
    assert "| other error replies (ECI's own) | InvalidParameter.NotFound 2 |" in table
    assert "| node Ready again after each kill | 17 s |" in table
    assert "| time to 3 Running | 42 s |" in table and "| time to 0 pods and 0 groups | not reached |" in table
