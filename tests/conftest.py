"""Shared pytest setup: the hermetic-network guard, and hypothesis profiles (CI runs more examples,
deterministically)."""

import os

import pytest
from hypothesis import HealthCheck, settings

from e2e import netns

settings.register_profile("dev", max_examples=100, deadline=None)
settings.register_profile(
    "ci", max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to run outside the private network namespace of e2e/netns.py (README, "Hermetic tests"):
    there a test could reach the machine's own addresses, other machines or the ECS metadata service."""
    found = netns.problems()
    if found:
        raise pytest.UsageError(
            "these tests must run inside the hermetic test network, and this run does not:\n  - "
            + "\n  - ".join(found)
            + f"\nFix: {netns.HOW_TO_RUN}."
        )
