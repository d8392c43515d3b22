"""Fixtures for end-to-end tests against the real local control plane (see e2e/cluster.py).

- ``cluster`` (session): a running ``e2e.cluster.Cluster`` in a temporary directory, stopped at the end.
  The first use builds the control-plane binary if the cache has none (tens of minutes, progress shown).
  If it cannot be built or started, every e2e test fails with that error: nothing is skipped.
- ``kubeconfig`` (session): path of the cluster's admin kubeconfig.
- ``namespace`` (function): a fresh namespace, deleted after the test.

Every test under tests/e2e/ is marked ``e2e`` automatically.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.cluster import Cluster

_HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before `-m` deselection looks at the markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[Cluster]:
    """A running control plane shared by the whole session."""
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")

    def progress(message: str) -> None:
        # A cold build runs for many minutes: show its progress even though pytest captures output.
        if capture is not None:
            with capture.global_and_fixture_disabled():
                print(message, flush=True)
        else:
            print(message, flush=True)

    c = Cluster(tmp_path_factory.mktemp("cluster"), progress=progress, die_with_parent=True)
    try:
        c.up()
    except BaseException:
        c.down()  # a half-started control plane must not outlive the run either
        raise
    yield c
    c.down()
    left = [s.name for s in c.status() if s.state == "running"]
    assert not left, f"control plane processes still running after down(): {left}"


@pytest.fixture(scope="session")
def kubeconfig(cluster: Cluster) -> Path:
    """Admin kubeconfig of the session's cluster."""
    return cluster.kubeconfig


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace for one test; deleted (without waiting) afterwards."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)
