"""What the daemon writes back onto a pod besides its status: Alibaba's ``k8s.aliyun.com/*``
annotations, the summary of a group it keeps, the image-drift warning, whether a status
write would change anything, and the verdict that tells whether someone else wrote over a status.
Pure functions of the pod and the described group.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vkeci import __version__
from vkeci.core.annotations import PREFIX

JSON = dict[str, Any]
_VOLATILE = ("lastProbeTime", "lastHeartbeatTime")
_GROUP_ID = "eci-instance-id"
GROUP_ID_ANNOTATION = PREFIX + _GROUP_ID  # on a pod once its group was described: the pod has had a group


def _same_condition(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return all(old.get(k) == v for k, v in new.items() if k not in _VOLATILE)


Verdict = tuple[str, str]


def verdict(status: Mapping[str, Any]) -> Verdict:
    """A status's phase and Ready condition: what other writers change (the node lifecycle controller sets
    Ready=False on every pod of a NotReady node). Kept per group instead of the whole status: 4.1 KB of
    Python objects per pod, 20 MB at 5,000 pods, against a shared tuple."""
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    return str(status.get("phase") or ""), str((ready or {}).get("status") or "")


def status_changed(current: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether writing ``new`` would change ``current`` (conditions compared by type)."""
    for key, value in new.items():
        if key == "conditions":
            have = {c.get("type"): c for c in current.get("conditions") or []}
            for cond in value or []:
                old = have.get(cond.get("type"))
                if old is None or not _same_condition(old, cond):
                    return True
        elif current.get(key) != value:
            return True
    return False


_IP_LISTS = ("podIPs", "hostIPs")  # lists the strategic merge patch merges by "ip"


def with_stale_ips_deleted(current: Mapping[str, Any], new: Mapping[str, Any]) -> JSON:
    """``new`` as a strategic-merge status patch that replaces ``podIPs``/``hostIPs`` rather than
    merging them: they merge by ``ip``, so a group recreated with another address would otherwise
    leave the pod with two IPs of one family, which the API server refuses (422)."""
    patch = dict(new)
    for key in _IP_LISTS:
        wanted = new.get(key)
        if not isinstance(wanted, list):
            continue
        keep = {str(item.get("ip")) for item in wanted if isinstance(item, Mapping)}
        stale = [
            {"ip": item["ip"], "$patch": "delete"}
            for item in current.get(key) or []
            if isinstance(item, Mapping) and item.get("ip") and str(item["ip"]) not in keep
        ]
        if stale:
            patch[key] = [*wanted, *stale]
    return patch


def image_drift(pod: Mapping[str, Any], group: Mapping[str, Any]) -> str:
    """Why the running group no longer matches the pod's images ("" when it does).

    A container image edited on a running pod is not applied to the ECI group; the user is told
    instead of the pod silently diverging from what runs.
    """
    running = {str(c.get("Name")): str(c.get("Image")) for c in group.get("Containers") or [] if c.get("Image")}
    changed = []
    for index, container in enumerate((pod.get("spec") or {}).get("containers") or []):
        name, image = str(container.get("name")), str(container.get("image"))
        if name in running and running[name] != image:
            changed.append(f"spec.containers[{index}].image is {image!r} but ECI runs {running[name]!r}")
    if not changed:
        return ""
    return (
        "; ".join(changed)
        + ": ECI container groups cannot change images in place; delete the pod (its controller re-creates it)"
    )


_SUMMARY_FIELDS = (
    "ContainerGroupId",
    "Status",
    "Cpu",
    "Memory",
    "InstanceType",
    "ZoneId",
    "VSwitchId",
    "SecurityGroupId",
)


def group_summary(group: Mapping[str, Any]) -> JSON:
    """What the daemon keeps of a described group: what ``write_back_annotations``, ``image_drift`` and
    the state checks read (1.7 KB instead of 13.5 KB per pod in BENCHMARKS.md, #6)."""
    summary = {k: group[k] for k in _SUMMARY_FIELDS if k in group}
    summary["Containers"] = [{"Name": c.get("Name"), "Image": c.get("Image")} for c in group.get("Containers") or []]
    return summary


def write_back_annotations(group: Mapping[str, Any], *, group_id: str, request_id: str, token: str) -> dict[str, str]:
    """The ``k8s.aliyun.com/*`` annotations Alibaba's virtual node writes on a scheduled pod
    (``token``: the group's ClientToken, the pod UID for every pod whose group was never lost)."""
    cpu, memory = group.get("Cpu"), group.get("Memory")
    spec = group.get("InstanceType") or (f"{float(cpu):.1f}-{float(memory):.1f}Gi" if cpu and memory else "")
    values = {
        _GROUP_ID: group_id,
        "eci-request-id": request_id,
        "eci-instance-spec": spec,
        "eci-instance-zone": group.get("ZoneId") or "",
        "eci-instance-cpu": str(cpu or ""),
        "eci-instance-mem": f"{memory}Gi" if memory else "",
        "eci-vswitch": group.get("VSwitchId") or "",
        "eci-security-group": group.get("SecurityGroupId") or "",
        "eci-client-token": token,
        "vk-version": __version__,
    }
    return {PREFIX + k: str(v) for k, v in values.items() if v}


def missing_annotations(pod: Mapping[str, Any], wanted: Mapping[str, str]) -> dict[str, str]:
    """``wanted`` if the pod does not carry all of it yet ({} when it does)."""
    have = (pod.get("metadata") or {}).get("annotations") or {}
    return dict(wanted) if any(have.get(k) != v for k, v in wanted.items()) else {}
