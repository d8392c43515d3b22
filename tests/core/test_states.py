"""THE table of ECI states: every state maps to a phase, and terminal/settled follow from it."""

from datetime import datetime, timezone

import pytest

from vkeci.core import status
from vkeci.core.status import ECI_STATES, PHASES, TERMINAL, group_settled, group_terminal

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
# What every documented state must mean; a new state in the table must be added here too.
EXPECTED = {
    "Scheduling": ("Pending", False, False),
    "Pending": ("Pending", False, False),
    "Running": ("Running", False, True),
    "Restarting": ("Pending", False, False),
    "Updating": ("Pending", False, False),
    "Terminating": ("Running", False, False),
    "Succeeded": ("Succeeded", True, True),
    "Failed": ("Failed", True, True),
    "Expired": ("Failed", True, True),
    "ScheduleFailed": ("Failed", True, True),
    "StartingFailed": ("Failed", True, True),
    "WatingForDel": ("Failed", True, True),
}


def test_every_state_is_covered():
    assert set(ECI_STATES) == set(EXPECTED)


@pytest.mark.parametrize("state", ECI_STATES)
def test_terminal_and_settled_follow_from_the_phase(state):
    phase, terminal, settled = EXPECTED[state]
    assert PHASES[state] == phase
    assert group_terminal(state) is terminal
    assert group_settled(state) is settled
    assert group_terminal(state) == (PHASES[state] in TERMINAL)


@pytest.mark.parametrize("state", ECI_STATES)
def test_the_status_mapper_agrees_with_the_table(state):
    pod = {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
        "spec": {"containers": [{"name": "c", "image": "i"}], "restartPolicy": "Never"},
        "status": {"phase": "Pending"},
    }
    group = {"ContainerGroupId": "eci-1", "Status": state, "Containers": [{"Name": "c"}]}
    phase = status.pod_status(pod, group, NOW)["phase"]
    if group_terminal(state):
        assert phase in TERMINAL
    else:
        assert phase not in TERMINAL


def test_an_unknown_state_is_neither_terminal_nor_settled():
    assert not group_terminal("SomethingNew") and not group_settled("SomethingNew")
