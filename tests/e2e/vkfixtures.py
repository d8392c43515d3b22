"""Fixtures for the daemon e2e tests; test modules import them (``from vkfixtures import *``).

Kept out of conftest.py, which holds the control-plane fixtures (``cluster``, ``kubeconfig``, ``namespace``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.cluster import Cluster

__all__ = ["daemon", "daemon_factory", "fake_eci", "kube"]


@pytest.fixture
def fake_eci(tmp_path: Path) -> Iterator[Any]:
    """A fake ECI on 127.0.0.1 with near-zero lifecycle delays, stopped after the test."""
    from e2e.harness import start_fake_in_process

    fake = start_fake_in_process({"scheduling_delay_s": 0.05, "pending_delay_s": 0.1, "restart_delay_s": 0.2})
    yield fake
    fake.stop()


@pytest.fixture
def kube(kubeconfig: Path) -> Any:
    """The cluster through vk-eci's own REST client (for assertions)."""
    from e2e.harness import Kube

    return Kube(kubeconfig)


@pytest.fixture
def daemon_factory(cluster: Cluster, kubeconfig: Path, fake_eci: Any, tmp_path: Path) -> Iterator[Any]:
    """Start `vkeci run` processes (each with a unique node name by default); all stopped, their nodes deleted."""
    from e2e.harness import ACCESS_KEY_SECRET, DaemonProcess

    started: list[DaemonProcess] = []
    nodes: set[str] = set()

    def make(node: str | None = None, **kwargs: Any) -> DaemonProcess:
        name = node or f"vk-{uuid.uuid4().hex[:6]}"
        log = tmp_path / f"daemon-{name}-{len(started)}.log"
        proc = DaemonProcess(kubeconfig, fake_eci.endpoint, name, log, **kwargs).start()
        started.append(proc)
        nodes.add(name)
        return proc

    yield make
    leaked = []
    for proc in started:
        proc.stop()
        if ACCESS_KEY_SECRET in proc.log_text():
            leaked.append(proc.log_path.name)
        # Shown by pytest only when the test failed.
        print(f"---- {proc.log_path.name} (last 80 lines) ----")
        print("\n".join(proc.log_text().splitlines()[-80:]))
    for name in nodes:
        cluster.kubectl("delete", "node", name, "--ignore-not-found", "--wait=false", check=False)
    assert not leaked, f"the ECI secret appears in {leaked}"


@pytest.fixture
def daemon(daemon_factory: Any, kube: Any) -> Any:
    """One running daemon whose node is Ready."""
    from e2e.harness import wait_for

    proc = daemon_factory()
    wait_for(lambda: kube.ready(proc.node) == "True", 60, f"node {proc.node} Ready")
    return proc
