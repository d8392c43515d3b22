"""core/v1 Events about a pod, as the kubelet of this node reports them: the one Event builder.

Both kinds of Event go through :func:`pod_event`: the daemon's own (ProviderCreateFailed,
FailedMount, NotFound...) and ECI's, translated by :func:`kube_events`. Pure: the caller passes
the time and, for the daemon's own events, the random part of the name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from vkeci.core.times import Now, timestamp

JSON = dict[str, Any]
MAX_MESSAGE = 1000  # the daemon's own messages can quote a whole ECI error; a kubelet's stay short


def pod_event(
    pod: Mapping[str, Any],
    *,
    name: str,
    kind: str,
    reason: str,
    message: str,
    node: str,
    first: str,
    last: str,
    count: int = 1,
    field_path: str | None = None,
) -> JSON:
    """A core/v1 Event named ``name`` involving ``pod`` (and its container at ``field_path``),
    reported by the kubelet of ``node``; ``first``/``last`` are metav1.Time strings."""
    meta = pod.get("metadata") or {}
    namespace = str(meta.get("namespace") or "default")
    involved: JSON = {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": str(meta.get("name") or ""),
        "namespace": namespace,
        "uid": str(meta.get("uid") or ""),
    }
    if field_path:
        involved["fieldPath"] = field_path
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "involvedObject": involved,
        "type": kind,
        "reason": reason,
        "message": message,
        "source": {"component": "kubelet", "host": node},
        "reportingComponent": "kubelet",
        "reportingInstance": node,
        "firstTimestamp": first,
        "lastTimestamp": last,
        "count": count,
    }


def daemon_event(
    pod: Mapping[str, Any], kind: str, reason: str, message: str, node: str, now: Now, suffix: str
) -> JSON:
    """One of the daemon's own Events about the pod; ``suffix`` (random, from the caller) makes its name unique."""
    meta = pod.get("metadata") or {}
    stamp = timestamp(now)
    return pod_event(
        pod,
        name=f"{meta.get('name')}.{suffix}",
        kind=kind,
        reason=reason,
        message=message[:MAX_MESSAGE],
        node=node,
        first=stamp,
        last=stamp,
    )


def event_name(pod: Mapping[str, Any], event: Mapping[str, Any]) -> str:
    """A deterministic Event name for one ECI event: the same ECI event (whatever its count) always
    gets the same name, so the daemon creates it once and then patches ``count``/``lastTimestamp``."""
    meta = pod.get("metadata") or {}
    key = "\x00".join(
        str(x)
        for x in (
            meta.get("uid") or "",
            event.get("Name") or "",
            event.get("Reason") or "",
            event.get("Type") or "",
            event.get("FirstTimestamp") or "",
            event.get("Message") or "",
        )
    )
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    base = str(meta.get("name") or "pod")[: 253 - 17]
    return f"{base}.{digest}"
