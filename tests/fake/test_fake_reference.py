"""The fake's image reference checker against the distribution reference grammar's own cases."""

from __future__ import annotations

import pytest

from fakes.eci.reference import InvalidReference, check

HEX64 = "0123456789abcdef" * 4


@pytest.mark.parametrize(
    "image",
    [
        "nginx",
        "nginx:1.27",
        "docker.io/library/nginx",
        "index.docker.io/nginx:latest",
        "a/b/c/d",
        "a_b.c__d-e--f",
        "registry.example.com:5000/app",
        "localhost:5000/app:v1",
        "Registry.Example.COM/app",  # a registry host may have capitals
        "[fe80::1]:5000/app",
        f"nginx@sha256:{HEX64}",
        f"nginx:1.27@sha256:{HEX64}",
        "app:" + "t" * 128,
        "a" * 237,  # docker.io/library/ + 237 = 255
    ],
)
def test_valid(image: str) -> None:
    check(image)


@pytest.mark.parametrize(
    ("image", "error"),
    [
        ("", "invalid reference format"),
        ("nginx@sha256:deadbeef", "invalid reference format"),
        ("nginx:1.27:extra", "invalid reference format"),
        (
            "Docker.IO/Library/NGINX:Latest",
            "invalid reference format: repository name (Library/NGINX) must be lowercase",
        ),
        ("NGINX", "invalid reference format: repository name (library/NGINX) must be lowercase"),
        ("a" * 455, "repository name must not be more than 255 characters"),
        ("a" * 238, "repository name must not be more than 255 characters"),
        ("app:" + "t" * 129, "invalid reference format"),
        ("app:-tag", "invalid reference format"),
        ("-app", "invalid reference format"),
        ("app/", "invalid reference format"),
        ("app//x", "invalid reference format"),
        ("app_", "invalid reference format"),
        ("app___x", "invalid reference format"),
        ("a b", "invalid reference format"),
        (HEX64, f"invalid repository name ({HEX64}), cannot specify 64-byte hexadecimal strings"),
        ("nginx@sha256:" + "a" * 65, "invalid checksum digest length"),
        ("nginx@md5:" + "a" * 32, "unsupported digest algorithm"),
        ("nginx@sha256:" + "A" * 64, "invalid checksum digest format"),
    ],
)
def test_invalid(image: str, error: str) -> None:
    with pytest.raises(InvalidReference) as e:
        check(image)
    assert str(e.value) == error
