"""Is a container image a valid reference? The distribution reference grammar
(github.com/distribution/reference ``ParseNormalizedNamed``), which the kubelet applies before it
pulls: an image it refuses never gets a (billed) ECI group; the pod shows ``InvalidImageName``
with the parse error, as on a kubelet (issue 12).

    reference       := name [":" tag] ["@" digest]
    name            := [domain "/"] component ("/" component)*          at most 255 characters
    component       := [a-z0-9]+ (("." | "_" | "__" | "-"+) [a-z0-9]+)*
    domain          := (label ("." label)* | "[" ipv6 "]") [":" port]
    tag             := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest          := algorithm ":" hex    sha256: 64, sha384: 96, sha512: 128 lowercase hex

Docker Hub short names are normalised first: a first part is a registry only when it has a dot
or a colon, is ``localhost``, or has an uppercase letter.
"""

from __future__ import annotations

import re

MAX_NAME = 255
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*", re.ASCII)
_LABEL = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?", re.ASCII)
_IPV6 = re.compile(r"\[[a-fA-F0-9:]+\]", re.ASCII)
_PORT = re.compile(r"[0-9]+", re.ASCII)
_TAG = re.compile(r"\w[\w.-]{0,127}", re.ASCII)
_ALGORITHM = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*", re.ASCII)
_HEX = re.compile(r"[0-9a-fA-F]{32,}", re.ASCII)
_IMAGE_ID = re.compile(r"[a-f0-9]{64}", re.ASCII)
_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
INVALID = "invalid reference format"


class InvalidImage(ValueError):
    """Not an image reference; the message is the parse error a kubelet shows."""


def _domain_ok(domain: str) -> bool:
    host, port = domain, None
    if not domain.startswith("["):
        host, _, port = domain.partition(":") if ":" in domain else (domain, "", None)
    elif "]:" in domain:
        host, port = domain.split("]:", 1)
        host += "]"
    if port is not None and not _PORT.fullmatch(port):
        return False
    if host.startswith("["):
        return bool(_IPV6.fullmatch(host))
    return all(_LABEL.fullmatch(label) for label in host.split("."))


def _normalise(image: str) -> tuple[str, str]:
    """(domain, rest) with Docker Hub's defaults applied."""
    first, slash, rest = image.partition("/")
    if not slash or ("." not in first and ":" not in first and first != "localhost" and first == first.lower()):
        domain, rest = "docker.io", image
    else:
        domain = "docker.io" if first == "index.docker.io" else first
    if domain == "docker.io" and "/" not in rest:
        rest = "library/" + rest
    return domain, rest


def check(image: str) -> None:
    """Raise :class:`InvalidImage` unless ``image`` parses as a normalised image reference."""
    if _IMAGE_ID.fullmatch(image):
        raise InvalidImage(f"invalid repository name ({image}), cannot specify 64-byte hexadecimal strings")
    domain, rest = _normalise(image)
    repository = rest.split(":", 1)[0]
    if repository != repository.lower():
        raise InvalidImage(f"invalid reference format: repository name ({repository}) must be lowercase")
    rest, at, digest = rest.partition("@")
    path, tag = rest, None
    if ":" in rest.rsplit("/", 1)[-1]:
        path, tag = rest.rsplit(":", 1)
    # A first part that was taken for a registry (it has a dot) but is not a host name, such as
    # ``nginx__docker.io``, is a path component to the grammar: Go's Parse matches the whole name.
    registry_ok = _domain_ok(domain) or bool(_COMPONENT.fullmatch(domain))
    if not (registry_ok and all(_COMPONENT.fullmatch(c) for c in path.split("/"))):
        raise InvalidImage(INVALID)
    if tag is not None and not _TAG.fullmatch(tag):
        raise InvalidImage(INVALID)
    if at:
        algorithm, colon, hex_part = digest.partition(":")
        if not (colon and _ALGORITHM.fullmatch(algorithm) and _HEX.fullmatch(hex_part)):
            raise InvalidImage(INVALID)
    if len(domain) + 1 + len(path) > MAX_NAME:
        raise InvalidImage(f"repository name must not be more than {MAX_NAME} characters")
    if at:
        algorithm, _, hex_part = digest.partition(":")
        if algorithm not in _HEX_LENGTHS:
            raise InvalidImage("unsupported digest algorithm")
        if len(hex_part) != _HEX_LENGTHS[algorithm]:
            raise InvalidImage("invalid checksum digest length")
        if hex_part != hex_part.lower():
            raise InvalidImage("invalid checksum digest format")
