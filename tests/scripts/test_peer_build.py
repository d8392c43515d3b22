"""e2e/peer_build.py without building anything: cache keys, the patch we keep, and the errors an admin reads.

Building the peer itself (a Go build of virtual-kubelet from the module proxy) is `make peer-build`'s job.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from e2e import peer_build


def test_the_patch_is_our_small_diff_of_three_files() -> None:
    text = peer_build.VK_PATCH.read_text()
    files = re.findall(r"^\+\+\+ b/(\S+)$", text, flags=re.M)
    assert files == [
        "cmd/virtual-kubelet/internal/provider/mock/mock.go",
        "node/nodeutil/client.go",
        "node/podcontroller.go",
    ]
    changed = [line for line in text.splitlines() if re.match(r"^[+-](?![+-])", line)]
    assert len(changed) <= 40, "the patch should stay a few lines: the peer at its ceiling, not rewritten"
    header = text.split("\n--- a/", 1)[0]
    assert "concurrent map writes" in header and "QPS" in header  # it says why


def test_cache_directories_are_keyed_by_what_builds_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VKECI_CACHE_DIR", str(tmp_path / "cache"))
    peer, floor = peer_build.peer_dir(), peer_build.floor_dir()
    assert peer.parent == tmp_path / "cache" and peer.name.startswith(f"vk-peer-{peer_build.VK_VERSION}-")
    assert floor.name.startswith("vk-floor-")
    patch = tmp_path / "other.patch"
    patch.write_text(peer_build.VK_PATCH.read_text() + "\n")
    monkeypatch.setattr(peer_build, "VK_PATCH", patch)
    assert peer_build.peer_dir() != peer  # a changed patch builds afresh
    floor_src = tmp_path / "floor"
    floor_src.mkdir()
    (floor_src / "main.go").write_text("package main\n")
    (floor_src / "README").write_text("not a build input\n")
    monkeypatch.setattr(peer_build, "FLOOR_DIR", floor_src)
    before = peer_build.floor_dir()
    (floor_src / "README").write_text("changed\n")
    assert peer_build.floor_dir() == before
    (floor_src / "main.go").write_text("package main\n\nfunc main() {}\n")
    assert peer_build.floor_dir() != before


def test_a_missing_go_toolchain_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VKECI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no `go` here
    with pytest.raises(peer_build.BuildError, match=r"Go toolchain is not installed.*make bench-peer"):
        peer_build.ensure_peer(progress=lambda _: None)
    assert not (peer_build.peer_dir() / "virtual-kubelet").exists()


def test_a_patch_that_does_not_apply_fails_as_a_whole(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "node").mkdir(parents=True)
    (src / "node" / "podcontroller.go").write_text("package node\n")
    with pytest.raises(peer_build.BuildError, match=r"virtual-kubelet-v1\.13\.0\.patch does not apply"):
        peer_build.apply_patch(src)
    assert (src / "node" / "podcontroller.go").read_text() == "package node\n"
