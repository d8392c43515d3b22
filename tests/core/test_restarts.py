"""A group deleted outside vk-eci: restart or fail (restartPolicy), the kubelet's back-off, the attempt's identity."""

from __future__ import annotations

from typing import Any

import pytest

from vkeci.core import identity
from vkeci.core.restarts import BACKOFF_RESET, next_restart, restarts_after_loss


def test_back_off_is_the_kubelets_immediate_then_10s_doubling_to_5_minutes():
    """pkg/kubelet (v1.35.4) doBackOff with flowcontrol.NewBackOff(10s, 300s): no back-off in force restarts at
    once, then each restart waits the period, which doubles up to 300 s."""
    state, delays, at = None, [], 0.0
    for _ in range(8):
        delay, state = next_restart(state, at)
        delays.append(delay)
        at += delay + 1  # the new group is lost again a second after it was created
    assert delays == [0, 10, 20, 40, 80, 160, 300, 300]


def test_back_off_resets_after_10_minutes_running():
    delay, state = next_restart(None, 0.0)
    delay, state = next_restart(state, 5.0)
    assert delay == 10
    restarted = state.updated
    assert next_restart(state, restarted + BACKOFF_RESET)[0] == 20, "not yet 10 minutes"
    assert next_restart(state, restarted + BACKOFF_RESET + 1)[0] == 0


def pod(policy: str | None, *codes: int | None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    statuses = [
        {"name": f"c{i}", "state": {"terminated": {"exitCode": c}} if c is not None else {}}
        for i, c in enumerate(codes)
    ]
    spec = {"restartPolicy": policy} if policy else {}
    meta = {"name": "web", "namespace": "ns", "uid": "0b6e1c4e-8d0a-4f6e-9c55-5a1f7f0e2a11"}
    if annotations:
        meta["annotations"] = annotations
    return {"metadata": meta, "spec": spec, "status": {"containerStatuses": statuses}}


@pytest.mark.parametrize(
    ("policy", "codes", "restarts"),
    [
        (None, (0,), True),
        ("Always", (0, 0), True),
        ("OnFailure", (None,), True),
        ("OnFailure", (0, 1), True),
        ("OnFailure", (0, 0), False),
        ("Never", (None,), False),
    ],
)
def test_restart_policy_decides_whether_a_lost_group_is_recreated(policy, codes, restarts):
    assert restarts_after_loss(pod(policy, *codes)) is restarts


def test_attempt_zero_keeps_todays_token_and_tags():
    """Running daemons and adopted groups are unaffected: no annotation, no tag, the UID as ClientToken."""
    plain = pod("Always")
    uid = plain["metadata"]["uid"]
    assert identity.client_token(plain) == uid == identity.client_token(plain, 0)
    assert identity.TAG_ATTEMPT not in {t["Key"] for t in identity.identity_tags(plain, "c", "n")}


def test_each_attempt_has_its_own_token_and_tag():
    later = pod("Always", annotations={identity.ATTEMPT_ANNOTATION: "3"})
    uid = later["metadata"]["uid"]
    assert identity.attempt_of(later) == 3
    assert identity.client_token(later) == f"{uid}-3" and identity.client_token(later, 4) == f"{uid}-4"
    tags = identity.identity_tags(later, "c", "n")
    assert identity.tag_map(tags)[identity.TAG_ATTEMPT] == "3" and identity.attempt_from_tags(tags) == 3
    long_uid = pod("Always", annotations={identity.ATTEMPT_ANNOTATION: "12"})
    long_uid["metadata"]["uid"] = "u" * 64
    token = identity.client_token(long_uid)
    assert len(token) <= 64 and token.isascii() and token != identity.client_token(long_uid, 11)


@pytest.mark.parametrize("value", ["", "-1", "x", "1.5", "9" * 20])
def test_a_bad_attempt_annotation_counts_as_attempt_zero(value):
    assert identity.attempt_of(pod("Always", annotations={identity.ATTEMPT_ANNOTATION: value})) == 0
