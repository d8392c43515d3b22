"""Build the single-file executable (`make zipapp`, deploy/Dockerfile): shiv, then vk-eci's own launcher.

    python scripts/zipapp.py dist/vkeci.pyz

shiv packs vk-eci and its dependencies; this script replaces the archive's ``__main__.py`` with
:data:`LAUNCHER`, which runs before anything is unpacked or imported:

* The archive holds compiled extensions for one CPython minor version (pydantic-core, aiohttp,
  cryptography's abi3 aside): on another one, `check` used to die deep in an import with an ImportError.
  The launcher refuses at once, in one line naming the Python to use and how to build for this one.
* shiv unpacks the dependencies (about 120 MB) into ``~/.shiv`` unless ``SHIV_ROOT`` is set. With an
  unwritable HOME that was a FileNotFoundError traceback; the launcher falls back to a private directory
  under the system temp dir (owned by this user, mode 0700), or says how to set SHIV_ROOT.

Then it hands over to shiv's bootstrap. The shebang names the same interpreter (``pythonX.Y``), and the
last line printed says what the archive was built for.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Stdlib only, and no syntax newer than the oldest Python someone might run it with: it must get as far
# as its own message on any interpreter.
LAUNCHER = """\
# vk-eci's zipapp launcher (written by scripts/zipapp.py): check the interpreter and where to unpack,
# then hand over to shiv's bootstrap.
import os
import stat
import sys
import tempfile

BUILT_FOR = ({major}, {minor})


def _fail(message):
    sys.stderr.write("vkeci.pyz: " + message + "\\n")
    sys.exit(2)


if tuple(sys.version_info[:2]) != BUILT_FOR:
    _fail(
        "built for CPython %d.%d, and this is Python %d.%d (%s): its compiled dependencies work on no other "
        "version. Run it with python%d.%d, or build one for this Python: make clean && make zipapp PYTHON=%s"
        % (BUILT_FOR + tuple(sys.version_info[:2]) + (sys.executable,) + BUILT_FOR + (sys.executable,))
    )


def _usable(path, private):
    # A directory we can write to; a fallback under the shared temp dir must also be ours alone, or another
    # user could have planted code there for us to import.
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        info = os.lstat(path)
        if private and (
            not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077
        ):
            return False
        with tempfile.TemporaryFile(dir=path):
            pass
        return True
    except OSError:
        return False


_HOW = "set SHIV_ROOT to a writable directory for the unpacked dependencies (about 120 MB; in a pod, an emptyDir)"
if os.environ.get("SHIV_ROOT"):
    if not _usable(os.path.expanduser(os.environ["SHIV_ROOT"]), False):
        _fail("SHIV_ROOT=%s is not a writable directory: %s" % (os.environ["SHIV_ROOT"], _HOW))
elif not _usable(os.path.expanduser("~/.shiv"), False):
    _fallback = os.path.join(tempfile.gettempdir(), "vkeci-shiv-%d" % os.getuid())
    if not _usable(_fallback, True):
        _fail("neither ~/.shiv nor %s can hold the unpacked dependencies: %s" % (_fallback, _HOW))
    os.environ["SHIV_ROOT"] = _fallback

import _bootstrap  # noqa: E402  (shiv's, at the root of the archive)

_bootstrap.bootstrap()
"""


# Parts of the `kubernetes` package vk-eci never imports: it uses only the kubeconfig / in-cluster loader
# (kubernetes.config, with kubernetes.client's Configuration and ApiClient). Measured on kubernetes 37.0.2 in
# a 118.8 MB (unpacked) archive: the package is 74.0 MB of it, of which the asyncio client is 40.5 MB and the
# sync API classes 23.4 MB; the loader imports 36 kubernetes modules, none of them below these two paths.
# tests/fake/test_fake_zipapp.py runs the loader (exec plugin included) from the built archive.
DROPPED = ("site-packages/kubernetes/aio/", "site-packages/kubernetes/client/api/")


def launcher(major: int, minor: int) -> str:
    """The ``__main__.py`` of an archive built for CPython ``major.minor``."""
    return LAUNCHER.format(major=major, minor=minor)


def replace_main(built: Path, out: Path, main: str, dropped: tuple[str, ...] = ()) -> None:
    """Copy the archive ``built`` to ``out`` with ``main`` as its ``__main__.py``: the shebang and every entry
    kept but those under ``dropped``."""
    data = built.read_bytes()
    shebang = data[: data.index(b"\n") + 1] if data.startswith(b"#!") else b""
    with zipfile.ZipFile(built) as source, out.open("wb") as target:
        target.write(shebang)
        with zipfile.ZipFile(target, "w") as archive:
            for info in source.infolist():
                if info.filename.startswith(dropped):
                    continue
                body = main.encode() if info.filename == "__main__.py" else source.read(info)
                archive.writestr(info, body)
    out.chmod(0o755)


def build(out: Path) -> str:
    """Build ``out`` for the running interpreter; the line saying what was built."""
    major, minor = sys.version_info[:2]
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as scratch:
        built = Path(scratch) / out.name
        shebang = f"/usr/bin/env python{major}.{minor}"
        command = [sys.executable, "-m", "shiv", "--compressed", "-q", "-c", "vkeci", "-p", shebang]
        command += ["-o", str(built.resolve())]
        subprocess.run([*command, "."], cwd=ROOT, check=True)
        replace_main(built, out, launcher(major, minor), DROPPED)
    return (
        f"built {out} ({out.stat().st_size / 1e6:.1f} MB) for CPython {major}.{minor} on {platform.machine()} "
        f"{platform.system()}: run it with python{major}.{minor} (other versions are refused)"
    )


def main(argv: list[str]) -> int:
    """``python scripts/zipapp.py OUT``."""
    if len(argv) != 1:
        print("usage: python scripts/zipapp.py OUT", file=sys.stderr)
        return 2
    print(build(Path(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
