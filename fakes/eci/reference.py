"""Image references checked as a container runtime parses them: the distribution reference
grammar (github.com/distribution/reference, ``ParseNormalizedNamed``), which is what the kubelet
and containerd apply before pulling. The fake refuses what that grammar refuses, as ECI would
rather than creating a group that can never pull.

The fake's own copy on purpose: the fake stays independent of vk-eci (whose translator has its
own check), so a mistake in one is caught by the other.

    reference        := name [ ":" tag ] [ "@" digest ]
    name             := [domain "/"] path-component ["/" path-component]*     (at most 255 characters)
    domain           := host [":" port]     host: domain-name | "[" IPv6 "]"
    path-component   := [a-z0-9]+ (separator [a-z0-9]+)*      separator: [._] | "__" | "-"+
    tag              := [\\w][\\w.-]{0,127}
    digest           := algorithm ":" hex      (hex: 32 or more; sha256 64, sha384 96, sha512 128, lowercase)
"""

from __future__ import annotations

import re

NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_HOST = rf"(?:{_DOMAIN_NAME}|\[[a-fA-F0-9:]+\])"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_REFERENCE = re.compile(rf"({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?", re.ASCII)
_IDENTIFIER = re.compile(r"[a-f0-9]{64}", re.ASCII)
_DIGEST_HEX_LENGTH = {"sha256": 64, "sha384": 96, "sha512": 128}
_DEFAULT_DOMAIN, _LEGACY_DEFAULT_DOMAIN, _OFFICIAL_PREFIX = "docker.io", "index.docker.io", "library/"


class InvalidReference(ValueError):
    """Not an image reference; the message is the runtime's parse error."""


def _split_domain(name: str) -> tuple[str, str]:
    """Docker Hub normalisation: a first component is a registry only if it has a dot or a
    colon, is ``localhost``, or has an uppercase letter."""
    i = name.find("/")
    first = name[:i] if i >= 0 else ""
    if i == -1 or (not any(c in first for c in ".:") and first != "localhost" and first.lower() == first):
        domain, remainder = _DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, name[i + 1 :]
    if domain == _LEGACY_DEFAULT_DOMAIN:
        domain = _DEFAULT_DOMAIN
    if domain == _DEFAULT_DOMAIN and "/" not in remainder:
        remainder = _OFFICIAL_PREFIX + remainder
    return domain, remainder


def check(image: str) -> None:
    """Raise :class:`InvalidReference` unless ``image`` parses as ParseNormalizedNamed parses it."""
    if _IDENTIFIER.fullmatch(image):
        raise InvalidReference(f"invalid repository name ({image}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = _split_domain(image)
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        raise InvalidReference(f"invalid reference format: repository name ({remote}) must be lowercase")
    full = f"{domain}/{remainder}"
    match = _REFERENCE.fullmatch(full)
    if match is None:  # (never empty: the normalised name has a domain and a path)
        if _REFERENCE.fullmatch(full.lower()):
            raise InvalidReference("repository name must be lowercase")
        raise InvalidReference("invalid reference format")
    if len(match.group(1)) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    digest = match.group(3)
    if digest:
        algorithm, _, hex_part = digest.partition(":")
        expected = _DIGEST_HEX_LENGTH.get(algorithm)
        if expected is None:
            raise InvalidReference("unsupported digest algorithm")
        if len(hex_part) != expected:
            raise InvalidReference("invalid checksum digest length")
        if hex_part.lower() != hex_part:
            raise InvalidReference("invalid checksum digest format")
