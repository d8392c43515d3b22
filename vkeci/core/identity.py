"""How an ECI container group is tied to its Pod: its name, its idempotency token and its tags.

The tags are the identity that survives a daemon restart: a group belongs to pod
(namespace, name, uid) of node N of cluster C exactly when its tags say so. The UID is always
compared, so a StatefulSet pod re-created under the same name never adopts the old group.

A pod may have several groups in turn: when its group is deleted outside vk-eci, the pod's group is
created again (``core.restarts``) as attempt 1, 2, ... The attempt number is kept on the pod (the
``ATTEMPT_ANNOTATION``, written before the attempt's create is sent) and in the group's ``GroupAttempt``
tag; each attempt has its own ClientToken, so a restarted daemon repeats the create of the attempt
it finds on the pod and ECI answers with that attempt's group, never a second one. Attempt 0 (every
pod whose group was never lost) keeps the token and the tags it always had.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_TAGS = 20
MAX_TAG_VALUE = 128
MAX_TAG_KEY = 64
MAX_NAME = 128

TAG_CLUSTER = "ClusterName"
TAG_NODE = "NodeName"
TAG_NAMESPACE = "NameSpace"  # the old Go provider's spelling; kept so its groups are recognised
TAG_POD = "PodName"
TAG_POD_REST = "PodNameRest"  # pod names can be 253 chars, tag values only 128
TAG_UID = "UID"
TAG_ATTEMPT = "GroupAttempt"  # only on attempts > 0
IDENTITY_KEYS = (TAG_CLUSTER, TAG_NODE, TAG_NAMESPACE, TAG_POD, TAG_POD_REST, TAG_UID, TAG_ATTEMPT)
# The pod's current group attempt (absent: 0). vk-eci's own annotation, not one of Alibaba's.
ATTEMPT_ANNOTATION = "vk-eci.io/group-attempt"
MAX_TOKEN = 64  # ECI: ClientToken is ASCII, at most 64 characters

GROUP_NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,126}[a-z0-9])$")
_INVALID = re.compile(r"[^a-z0-9-]+")
_HASH_LEN = 10


@dataclass(frozen=True)
class PodKey:
    """The pod a container group belongs to."""

    namespace: str
    name: str
    uid: str


def pod_key(pod: Mapping[str, Any]) -> PodKey:
    """(namespace, name, uid) of a pod dict; the namespace defaults to ``default`` as kubectl does."""
    meta = pod.get("metadata") if isinstance(pod, Mapping) else None
    meta = meta if isinstance(meta, Mapping) else {}
    return PodKey(
        namespace=str(meta.get("namespace") or "default"),
        name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""),
    )


def queue_key(pod: Mapping[str, Any]) -> str:
    """``namespace/name``: the key of a pod in the controllers' work queue and pod cache."""
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name')}"


def uid_of(pod: Mapping[str, Any]) -> str:
    """The pod's UID ("" when it has none)."""
    return str((pod.get("metadata") or {}).get("uid") or "")


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def group_name(pod: Mapping[str, Any]) -> str:
    """A valid ECI ContainerGroupName for any pod: ``<namespace>-<name>-<hash>``.

    ECI wants 2-128 characters of ``[a-z0-9-]``, not starting or ending with ``-``; pod names may
    hold dots and run to 253 characters, and ``ns-name`` alone is ambiguous (``a-b``/``c`` vs
    ``a``/``b-c``). The readable part is sanitised and truncated; the hash of (namespace, name,
    uid) keeps names unique and deterministic.
    """
    key = pod_key(pod)
    suffix = _digest(key.namespace, key.name, key.uid)[:_HASH_LEN]
    readable = _INVALID.sub("-", f"{key.namespace}-{key.name}".lower()).strip("-")
    readable = re.sub(r"-{2,}", "-", readable)[: MAX_NAME - _HASH_LEN - 1].rstrip("-")
    return f"{readable}-{suffix}" if readable else f"pod-{suffix}"


def attempt_of(pod: Mapping[str, Any]) -> int:
    """The pod's group attempt from its ``ATTEMPT_ANNOTATION`` (0 when absent or not a number >= 0)."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    return _attempt(annotations.get(ATTEMPT_ANNOTATION))


def attempt_from_tags(group_tags: Iterable[Mapping[str, Any]] | Mapping[str, Any]) -> int:
    """The attempt a group was created for, from its ``GroupAttempt`` tag (0 without one)."""
    return _attempt(tag_map(group_tags).get(TAG_ATTEMPT))


def _attempt(value: Any) -> int:
    text = str(value or "").strip()
    return int(text) if text.isdigit() and len(text) <= 9 else 0


def client_token(pod: Mapping[str, Any], attempt: int | None = None) -> str:
    """The ClientToken for CreateContainerGroup: the pod UID, so a retried create never duplicates.

    ECI wants ASCII of at most 64 characters; a UID that is not (or a pod without one, as in
    ``vkeci translate`` on a bare manifest) gets a hash of the pod's identity instead. Attempt N > 0
    (``attempt``, by default the pod's ``ATTEMPT_ANNOTATION``) appends ``-N``: ECI remembers a token
    for a day, so the token of a deleted group would not create a new one.
    """
    key = pod_key(pod)
    if key.uid and key.uid.isascii() and len(key.uid) <= MAX_TOKEN and key.uid.isprintable():
        base = key.uid
    else:
        base = _digest(key.namespace, key.name, key.uid)[:32]
    number = attempt_of(pod) if attempt is None else attempt
    if number <= 0:
        return base
    token = f"{base}-{number}"
    return token if len(token) <= MAX_TOKEN else _digest(base, str(number))[:32]


def identity_tags(pod: Mapping[str, Any], cluster_name: str, node_name: str) -> list[dict[str, str]]:
    """The tags that identify the pod's group, in the ``{"Key", "Value"}`` form of the request."""
    key = pod_key(pod)
    tags = [
        {"Key": TAG_CLUSTER, "Value": cluster_name[:MAX_TAG_VALUE]},
        {"Key": TAG_NODE, "Value": node_name[:MAX_TAG_VALUE]},
        {"Key": TAG_NAMESPACE, "Value": key.namespace[:MAX_TAG_VALUE]},
        {"Key": TAG_POD, "Value": key.name[:MAX_TAG_VALUE]},
    ]
    if len(key.name) > MAX_TAG_VALUE:
        tags.append({"Key": TAG_POD_REST, "Value": key.name[MAX_TAG_VALUE:]})
    tags.append({"Key": TAG_UID, "Value": key.uid[:MAX_TAG_VALUE]})
    attempt = attempt_of(pod)
    if attempt > 0:
        tags.append({"Key": TAG_ATTEMPT, "Value": str(attempt)})
    return tags


def tags(
    pod: Mapping[str, Any],
    cluster_name: str,
    node_name: str,
    user_tags: Iterable[tuple[str, str]] = (),
) -> list[dict[str, str]]:
    """Identity tags followed by user tags (from ``k8s.aliyun.com/eci-custom-tags``).

    User tags never replace an identity tag and the total stays within ECI's 20. The annotation
    parser already limits user tags to 3 and rejects reserved keys, so nothing is dropped in
    practice; the guard is here so the limit holds whatever the caller passes.
    """
    result = identity_tags(pod, cluster_name, node_name)
    taken = {tag["Key"] for tag in result}
    for tag_key, value in user_tags:
        if len(result) >= MAX_TAGS:
            break
        if tag_key in taken:
            continue
        taken.add(tag_key)
        result.append({"Key": tag_key, "Value": value})
    return result


def tag_map(group_tags: Iterable[Mapping[str, Any]] | Mapping[str, Any]) -> dict[str, str]:
    """A group's tags (``Tags`` of DescribeContainerGroups, a list of ``{"Key", "Value"}``, or a dict) as a dict."""
    if isinstance(group_tags, Mapping):
        return {str(k): str(v) for k, v in group_tags.items()}
    return {str(tag.get("Key")): str(tag.get("Value") or "") for tag in group_tags if tag.get("Key") is not None}


def pod_key_from_tags(group_tags: Iterable[Mapping[str, Any]] | Mapping[str, Any]) -> PodKey | None:
    """Read (namespace, name, uid) back from a group's tags (``Tags`` of DescribeContainerGroups,
    a list of ``{"Key", "Value"}``, or a plain dict). ``None`` when the group is not a vk-eci pod."""
    values = tag_map(group_tags)
    if not all(values.get(k) for k in (TAG_NAMESPACE, TAG_POD, TAG_UID)):
        return None
    return PodKey(
        namespace=values[TAG_NAMESPACE],
        name=values[TAG_POD] + values.get(TAG_POD_REST, ""),
        uid=values[TAG_UID],
    )


def owned_by(group_tags: Iterable[Mapping[str, Any]] | Mapping[str, Any], cluster_name: str, node_name: str) -> bool:
    """Whether a group carries this daemon's cluster and node tags."""
    values = tag_map(group_tags)
    return values.get(TAG_CLUSTER) == cluster_name[:MAX_TAG_VALUE] and values.get(TAG_NODE) == node_name[:MAX_TAG_VALUE]


def selector_tags(cluster_name: str, node_name: str) -> list[dict[str, str]]:
    """Tag filters for Describe calls that list this node's groups server-side."""
    return [
        {"Key": TAG_CLUSTER, "Value": cluster_name[:MAX_TAG_VALUE]},
        {"Key": TAG_NODE, "Value": node_name[:MAX_TAG_VALUE]},
    ]
