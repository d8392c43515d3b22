"""vk-eci's image reference check (vkeci.core.imageref) against the fake ECI's independent one
(fakes/eci/reference.py): the two must agree on every generated reference (issue 12)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fakes.eci import reference as fake
from vkeci.core import imageref

BAD = [
    "nginx@sha256:deadbeef",
    "Docker.IO/Library/NGINX:Latest",
    "nginx:1.27:extra",
    "a" * 455,
    "NGINX",
    "nginx:",
    "-nginx",
    "0123456789abcdef" * 4,
]
GOOD = [
    "nginx",
    "nginx:1.27",
    "library/nginx:1.27-alpine",
    "registry.cn-hangzhou.aliyuncs.com/acs/pause:3.9",
    "localhost:5000/team/app__x-y.z:v1",
    "[::1]:5000/app",
    "Registry.Example.com/app",
    "nginx__docker.io/nginx",  # a dot, but not a host: the grammar reads it as a path component
    "nginx@sha256:" + "a" * 64,
    "nginx:1.27@sha512:" + "b" * 128,
]


@pytest.mark.parametrize("image", BAD)
def test_invalid_references_are_refused(image: str) -> None:
    with pytest.raises(imageref.InvalidImage):
        imageref.check(image)
    assert not _verdict(fake.check, image)


@pytest.mark.parametrize("image", GOOD)
def test_valid_references_pass(image: str) -> None:
    imageref.check(image)


def _verdict(check, image: str) -> bool:
    try:
        check(image)
    except ValueError:
        return False
    return True


_PIECE = st.text(alphabet="abcAZ09._-:/@[]", min_size=0, max_size=12)
_PARTS = st.sampled_from(
    [
        "nginx",
        "library/",
        "docker.io/",
        "Docker.IO/",
        "localhost:5000/",
        "[::1]/",
        "a.b.c/",
        ":1.27",
        ":",
        "@",
        "/",
        "@sha256:" + "a" * 64,
        "@sha256:deadbeef",
        "@md5:" + "a" * 32,
        "__",
        "--",
        ".",
        "-",
        "A",
        "a" * 120,
    ]
)
references = st.lists(st.one_of(_PARTS, _PIECE), min_size=1, max_size=6).map("".join)


@settings(max_examples=3000, deadline=None)
@given(references)
def test_the_translator_and_the_fake_agree_on_any_reference(image: str) -> None:
    assert _verdict(imageref.check, image) == _verdict(fake.check, image), image


@pytest.mark.parametrize("image", BAD[:4])
def test_the_translator_refuses_an_invalid_image_with_invalid_image_name(image: str) -> None:
    """Issue 12: no request (so no CreateContainerGroup), and the kubelet's waiting reason and parse error."""
    from datetime import datetime, timezone

    from vkeci.core.status import rejected_status
    from vkeci.core.translate import Defaults, Objects, Rejected, translate

    pod = {
        "metadata": {"name": "p", "namespace": "ns", "uid": "uid-1"},
        "spec": {"containers": [{"name": "web", "image": image}]},
    }
    with pytest.raises(Rejected) as info:
        translate(pod, Objects(), Defaults(region="cn-hangzhou", security_group="sg-1", vswitches=("vsw-a",)))
    (problem,) = info.value.problems
    assert problem.field == "spec.containers[0].image" and problem.waiting_reason == "InvalidImageName"
    status = rejected_status(pod, info.value, datetime(2026, 12, 2, tzinfo=timezone.utc))
    waiting = status["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "InvalidImageName"
    assert waiting["message"].startswith(f'Failed to apply default image tag "{image}": couldn\'t parse image name')
