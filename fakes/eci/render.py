"""Response bodies in the exact key spelling of the 2.1.0 SDK models (eci-openapi.md §4.2)."""

from __future__ import annotations

from typing import Any

from fakes.eci.group import Group, container_state, rfc3339, status_at, terminal_at

MAX_EVENTS = 50


def visible_events(g: Group, now: float) -> list[dict[str, Any]]:
    """Events that have happened by `now` (planned ones are stored ahead, dated in the future)."""
    return [e for e in g.events if e["ts"] <= now][-MAX_EVENTS:]


def event(g: Group, e: dict[str, Any]) -> dict[str, Any]:
    """One event in DescribeContainerGroups' `Events[]` shape."""
    return {
        "Count": e["Count"],
        "Type": e["Type"],
        "Name": f"{g.name}.{e['seq']:016x}",
        "Reason": e["Reason"],
        "Message": e["Message"],
        "FirstTimestamp": rfc3339(e["ts"]),
        "LastTimestamp": rfc3339(e.get("last", e["ts"])),
    }


def _container(g: Group, c: dict[str, Any], now: float, *, init: bool) -> dict[str, Any]:
    out = {k: v for k, v in c.items()}
    out.update(container_state(g, c, now, init=init))
    return out


def container_group(g: Group, now: float, *, with_event: bool = True) -> dict[str, Any]:
    """One item of DescribeContainerGroups' `ContainerGroups[]`."""
    s = g.spec
    status = status_at(g, now)
    end = terminal_at(g) if status in ("Succeeded", "Failed", "Expired", "ScheduleFailed") else None
    return {
        "ContainerGroupId": g.id,
        "ContainerGroupName": g.name,
        "RegionId": s["RegionId"],
        "ZoneId": g.zone,
        "Status": status,
        "Cpu": s["Cpu"],
        "Memory": s["Memory"],
        "InstanceType": s["InstanceType"],
        "SpotStrategy": s["SpotStrategy"],
        "SpotPriceLimit": s["SpotPriceLimit"],
        "IntranetIp": g.intranet_ip if status not in ("Scheduling", "ScheduleFailed") else "",
        "InternetIp": g.internet_ip if status not in ("Scheduling", "ScheduleFailed") else "",
        "Ipv6Address": "",
        "VSwitchId": g.vswitch_id,
        "SecurityGroupId": s["SecurityGroupId"],
        "VpcId": s.get("VpcId", "vpc-fake"),
        "EniInstanceId": "eni-" + g.id[4:],
        "RestartPolicy": s["RestartPolicy"],
        "CreationTime": rfc3339(g.created),
        "SucceededTime": rfc3339(end) if status == "Succeeded" else "",
        "FailedTime": rfc3339(end) if status in ("Failed", "ScheduleFailed") else "",
        "ExpiredTime": rfc3339(end) if status == "Expired" else "",
        "Discount": 10,
        "EphemeralStorage": s["EphemeralStorage"],
        "ResourceGroupId": s["ResourceGroupId"],
        "RamRoleName": s["RamRoleName"],
        "ComputeCategory": "",
        "TenantEniInstanceId": "",
        "TenantEniIp": "",
        "TenantSecurityGroupId": "",
        "TenantVSwitchId": "",
        "Tags": [dict(t) for t in s["Tags"]],
        "Events": [event(g, e) for e in visible_events(g, now)] if with_event else [],
        "Containers": [_container(g, c, now, init=False) for c in s["Containers"]],
        "InitContainers": [_container(g, c, now, init=True) for c in s["InitContainers"]],
        "Volumes": [dict(v) for v in s["Volumes"]],
        "DnsConfig": s["DnsConfig"],
        "HostAliases": s["HostAliases"],
        "EciSecurityContext": s["EciSecurityContext"],
    }


_PHASE = {
    "Scheduling": "Pending",
    "Pending": "Pending",
    "Running": "Running",
    "Restarting": "Pending",
    "Updating": "Pending",
    "Terminating": "Running",
    "Succeeded": "Succeeded",
    "Failed": "Failed",
    "Expired": "Failed",
    "ScheduleFailed": "Failed",
}


def _k8s_state(cur: dict[str, Any]) -> dict[str, Any]:
    if cur["State"] == "Running":
        return {"Running": {"StartedAtstartedAt": cur["StartTime"]}}
    if cur["State"] == "Terminated":
        return {
            "Terminated": {
                "ContainerID": "",
                "ExitCode": cur["ExitCode"],
                "FinishedAt": cur["FinishTime"],
                "Message": cur["Message"],
                "Reason": cur["Reason"],
                "Signal": cur["Signal"],
                "StartedAt": cur["StartTime"],
            }
        }
    if cur["State"] == "Waiting":
        return {"Waiting": {"Message": cur["Message"], "Reason": cur["Reason"]}}
    return {}


def status_item(g: Group, now: float) -> dict[str, Any]:
    """One item of DescribeContainerGroupStatus' `Data[]` (odd key spellings are the SDK model's)."""
    status = status_at(g, now)
    statuses = []
    for c in g.spec["Containers"]:
        st = container_state(g, c, now, init=False)
        statuses.append(
            {
                "Image": c["Image"],
                "ImageID": "",
                "Name": c["Name"],
                "Ready": st["Ready"],
                "RestartCount": st["RestartCount"],
                "Started": st["CurrentState"]["State"] == "Running",
                "State": _k8s_state(st["CurrentState"]),
                "LastState": _k8s_state(st["PreviousState"]) if st["PreviousState"].get("State") else {},
            }
        )
    scheduled = status not in ("Scheduling", "ScheduleFailed")
    ip = g.intranet_ip if scheduled else ""
    ready = status == "Running" and all(s["Ready"] for s in statuses)
    ts = rfc3339(g.running_at if now >= g.running_at else g.created)
    conditions = [
        {"type": "PodScheduled", "status": str(scheduled), "lastTransitionTime": ts, "Reason": "", "Message": ""},
        {"type": "Ready", "status": str(ready), "lastTransitionTime": ts, "Reason": "", "Message": ""},
    ]
    return {
        "ContainerGroupId": g.id,
        "Name": g.name,
        "Namespace": next((t["Value"] for t in g.spec["Tags"] if t["Key"] in ("Namespace", "NameSpace")), ""),
        "Annotations": "",
        "uuid": next((t["Value"] for t in g.spec["Tags"] if t["Key"] in ("UID", "Uid")), ""),
        "Status": status,
        "PodStatus": {
            "Phase": _PHASE.get(status, "Unknown"),
            "HostIp": ip,
            "PodIp": ip,
            "PodIps": [{"Ip": ip}] if ip else [],
            "QosClass": "Guaranteed",
            "StartTime": rfc3339(g.running_at) if now >= g.running_at else "",
            "Conditions": conditions,
            "ContainerStatuses": statuses,
        },
    }


def events_item(g: Group, now: float) -> dict[str, Any]:
    """One item of DescribeContainerGroupEvents' `Data[]`."""
    ns = next((t["Value"] for t in g.spec["Tags"] if t["Key"] in ("Namespace", "NameSpace")), "")
    uid = next((t["Value"] for t in g.spec["Tags"] if t["Key"] in ("UID", "Uid")), "")
    return {
        "ContainerGroupId": g.id,
        "Name": g.name,
        "Namespace": ns,
        "Annotations": "",
        "uuid": uid,
        "Events": [
            {
                "Count": e["Count"],
                "Type": e["Type"],
                "Reason": e["Reason"],
                "Message": e["Message"],
                "FirstTimestamp": rfc3339(e["ts"]),
                "LastTimestamp": rfc3339(e.get("last", e["ts"])),
                "Metadata": {"Name": f"{g.name}.{e['seq']:016x}", "Namespace": ns},
                "ReportingComponent": "",
                "ReportingInstance": "",
                "Source": {"Component": "eci", "Host": ""},
                "involvedObject": {"ApiVersion": "v1", "Kind": "Pod", "Name": g.name, "Namespace": ns, "Uid": uid},
            }
            for e in visible_events(g, now)
        ],
    }
