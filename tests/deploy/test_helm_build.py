"""e2e/helm.py: the cache layout and the lock, without building (the real build runs in the render tests)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from e2e import helm
from e2e.build import GoCommand, build_lock


def test_cached_helm_is_reused_and_keyed_by_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VKECI_CACHE_DIR", str(tmp_path))
    assert helm.HELM.dir() == tmp_path / f"helm-{helm.HELM_VERSION}"
    binary = helm.HELM.dir() / "helm"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)

    def no_build(*args: object) -> None:
        raise AssertionError("a cached helm must not be built again")

    monkeypatch.setattr(GoCommand, "_build", no_build)
    assert helm.ensure_helm(progress=lambda _: None) == binary


def test_a_second_builder_waits_for_the_first(tmp_path: Path) -> None:
    target = tmp_path / "helm-vX"
    waited = threading.Event()
    inside = threading.Event()
    release = threading.Event()

    def first() -> None:
        with build_lock(target, "helm", lambda _: None):
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=first)
    thread.start()
    assert inside.wait(10)
    second_done = threading.Event()

    def second() -> None:
        with build_lock(target, "helm", lambda _: waited.set()):
            second_done.set()

    other = threading.Thread(target=second)
    other.start()
    assert waited.wait(10), "the second caller was told another process is building"
    assert not second_done.is_set()
    release.set()
    thread.join(10)
    other.join(10)
    assert second_done.is_set()
