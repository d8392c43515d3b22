"""Every action through the real SDK, with the default V3 signature and with signature_algorithm='v2'."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests
import websocket
from alibabacloud_eci20180808 import models as m
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_util import models as util_models
from conftest import REGION, container, create_request, describe, wait_for, wait_status


def _create(client, **kw) -> str:
    return client.create_container_group(create_request(**kw)).body.container_group_id


def test_create_and_describe_shapes(client, fake) -> None:
    gid = _create(
        client,
        name="web-1",
        containers=[
            container(
                "nginx",
                "nginx:1.25",
                cpu=1.0,
                memory=2.0,
                port=[m.CreateContainerGroupRequestContainerPort(port=80, protocol="TCP")],
                environment_var=[
                    m.CreateContainerGroupRequestContainerEnvironmentVar(key="A", value="x=y&z 世界"),
                    m.CreateContainerGroupRequestContainerEnvironmentVar(
                        key="POD_IP",
                        field_ref=m.CreateContainerGroupRequestContainerEnvironmentVarFieldRef(
                            field_path="status.podIP"
                        ),
                    ),
                ],
            )
        ],
        tag=[m.CreateContainerGroupRequestTag(key="owner", value="ci")],
        restart_policy="Never",
    )
    assert gid.startswith("eci-")
    g = wait_status(client, gid, "Running")
    assert g.container_group_name == "web-1"
    assert g.region_id == REGION and g.zone_id == "cn-hangzhou-a" and g.v_switch_id == "vsw-fake-a"
    assert g.intranet_ip.startswith("10.1.") and g.internet_ip == ""
    assert (g.cpu, g.memory) == (1.0, 2.0)
    assert g.restart_policy == "Never"
    assert [(t.key, t.value) for t in g.tags] == [("owner", "ci")]
    c = g.containers[0]
    assert (c.name, c.image, c.ready, c.restart_count) == ("nginx", "nginx:1.25", True, 0)
    assert c.current_state.state == "Running" and c.current_state.start_time.endswith("Z")
    assert next((e.key, e.value) for e in c.environment_vars) == ("A", "x=y&z 世界")
    assert c.environment_vars[1].value_from.field_ref.field_path == "status.podIP"
    assert [(p.port, p.protocol) for p in c.ports] == [(80, "TCP")]
    assert {e.reason for e in g.events} >= {"Pulling", "Pulled", "Created", "Started"}
    raw = client.describe_container_groups(m.DescribeContainerGroupsRequest(region_id=REGION)).body.to_map()
    assert (
        isinstance(raw["TotalCount"], int)
        and raw["NextToken"] == ""
        and isinstance(raw["ContainerGroups"][0]["Cpu"], float)
    )


def test_client_token_is_idempotent(client) -> None:
    a = _create(client, client_token="uid-123")
    b = _create(client, client_token="uid-123")
    c = _create(client, client_token="uid-456")
    assert a == b != c


def test_describe_filters_and_paging(client, fake) -> None:
    ids = [
        _create(client, name=f"job-{i}", tag=[m.CreateContainerGroupRequestTag(key="batch", value=str(i % 2))])
        for i in range(25)
    ]
    seen, token, pages = [], None, 0
    while True:
        body = client.describe_container_groups(
            m.DescribeContainerGroupsRequest(region_id=REGION, limit=10, next_token=token)
        ).body
        assert body.total_count == 25
        seen += [g.container_group_id for g in body.container_groups]
        pages += 1
        token = body.next_token
        if not token:
            break
    assert pages == 3 and sorted(seen) == sorted(ids)
    by_tag = client.describe_container_groups(
        m.DescribeContainerGroupsRequest(
            region_id=REGION, tag=[m.DescribeContainerGroupsRequestTag(key="batch", value="1")]
        )
    ).body
    assert by_tag.total_count == 12
    by_name = client.describe_container_groups(
        m.DescribeContainerGroupsRequest(region_id=REGION, container_group_name="job-3")
    ).body
    assert [g.container_group_id for g in by_name.container_groups] == [ids[3]]
    by_ids = client.describe_container_groups(
        m.DescribeContainerGroupsRequest(region_id=REGION, container_group_ids=json.dumps([*ids[:3], "eci-nope"]))
    ).body
    assert sorted(g.container_group_id for g in by_ids.container_groups) == sorted(ids[:3])
    wait_status(client, ids[0], "Running")
    running = client.describe_container_groups(
        m.DescribeContainerGroupsRequest(region_id=REGION, status="Running", limit=20)
    ).body
    assert running.total_count == 25
    none = client.describe_container_groups(m.DescribeContainerGroupsRequest(region_id=REGION, status="Succeeded")).body
    assert none.total_count == 0 and none.container_groups == []


@pytest.mark.parametrize(
    ("request_kw", "code"),
    [
        ({"limit": 21}, "InvalidParameter"),
        ({"container_group_ids": json.dumps([f"eci-{i}" for i in range(21)])}, "InvalidParameter"),
        ({"container_group_ids": "eci-not-json"}, "InvalidParameter"),
        ({"region_id": None}, "MissingParameter"),
        ({"region_id": "cn-beijing"}, "InvalidRegionId.NotFound"),
        ({"next_token": "garbage!"}, "InvalidParameter"),
    ],
)
def test_describe_rejects_bad_input(client, request_kw, code) -> None:
    kw = {"region_id": REGION, **request_kw}
    with pytest.raises(ClientException) as e:
        client.describe_container_groups(m.DescribeContainerGroupsRequest(**kw))
    assert e.value.code == code and e.value.status_code == 400


def test_describe_ids_as_list_shape_is_rejected(client) -> None:
    # Passing a Python list where the model says str is sent as ContainerGroupIds.1=...: the service wants JSON.
    with pytest.raises(ClientException) as e:
        client.describe_container_groups(
            m.DescribeContainerGroupsRequest(region_id=REGION, container_group_ids=["a", "b"])
        )
    assert e.value.code == "InvalidParameter" and "JSON array" in e.value.message


@pytest.mark.parametrize(
    ("kw", "code", "needle"),
    [
        ({"container_group_name": "Bad_Name"}, "InvalidParameter", "ContainerGroupName"),
        ({"container_group_name": "-x"}, "InvalidParameter", "ContainerGroupName"),
        ({"container_group_name": None}, "MissingParameter", "ContainerGroupName"),
        ({"security_group_id": None}, "MissingParameter", "SecurityGroupId"),
        ({"security_group_id": "sg-other"}, "InvalidSecurityGroupId.NotFound", "sg-other"),
        ({"v_switch_id": None}, "MissingParameter", "VSwitchId"),
        ({"v_switch_id": "vsw-fake-a,vsw-nope"}, "InvalidVSwitchId.NotFound", "vsw-nope"),
        ({"region_id": None}, "MissingParameter", "RegionId"),
        ({"spot_price_limit": 0.5}, "InvalidParameter", "SpotPriceLimit"),
        ({"spot_strategy": "SpotWithPriceLimit"}, "MissingParameter", "SpotPriceLimit"),
        ({"restart_policy": "Sometimes"}, "InvalidParameter", "RestartPolicy"),
        ({"container": [container(f"c{i}") for i in range(21)]}, "InvalidParameter", "Container"),
        (
            {"tag": [m.CreateContainerGroupRequestTag(key=f"k{i}", value="v") for i in range(21)]},
            "InvalidParameter",
            "Tag",
        ),
        ({"tag": [m.CreateContainerGroupRequestTag(key="acs:x", value="v")]}, "InvalidParameter", "Tag.1.Key"),
        (
            {"volume": [m.CreateContainerGroupRequestVolume(name=f"v{i}", type="EmptyDirVolume") for i in range(21)]},
            "InvalidParameter",
            "Volume",
        ),
        ({"container": [container(image=None)]}, "MissingParameter", "Container.1.Image"),
        ({"container": [container(arg=[str(i) for i in range(11)])]}, "InvalidParameter", "Container.1.Arg"),
        (
            {
                "container": [
                    container(
                        volume_mount=[m.CreateContainerGroupRequestContainerVolumeMount(name="nope", mount_path="/x")]
                    )
                ]
            },
            "InvalidParameter",
            "Container.1.VolumeMount.1.Name",
        ),
        (
            {
                "container": [
                    container(
                        environment_var=[m.CreateContainerGroupRequestContainerEnvironmentVar(key="1BAD", value="v")]
                    )
                ]
            },
            "InvalidParameter",
            "EnvironmentVar.1.Key",
        ),
        ({"cpu": 128.0, "memory": 4.0}, "InvalidParameter.CpuMemory", "vCPU"),
        ({"dry_run": True}, "DryRunOperation", "DryRun"),
    ],
)
def test_create_validation(client, kw, code, needle) -> None:
    with pytest.raises(ClientException) as e:
        client.create_container_group(create_request(**kw))
    assert e.value.code == code, e.value.message
    assert needle in e.value.message
    assert e.value.status_code == 400


@pytest.mark.parametrize(
    ("image", "why"),
    [
        ("nginx@sha256:deadbeef", "invalid reference format"),
        ("Docker.IO/Library/NGINX:Latest", "repository name (Library/NGINX) must be lowercase"),
        ("nginx:1.27:extra", "invalid reference format"),
        ("a" * 455, "must not be more than 255 characters"),
        ("nginx@sha256:" + "a" * 63, "invalid checksum digest length"),  # sha256 has 64 hex digits
    ],
)
def test_create_refuses_image_references_a_runtime_cannot_parse(client, admin, image, why) -> None:
    with pytest.raises(ClientException) as e:
        client.create_container_group(create_request(container=[container(image=image)]))
    assert (e.value.code, e.value.status_code) == ("InvalidParameter", 400)
    assert "Container.1.Image" in e.value.message and why in e.value.message, e.value.message
    assert admin.get("/groups")["groups"] == []  # nothing created, nothing billed


def test_create_accepts_valid_image_references(client) -> None:
    images = [
        "nginx",
        "nginx:1.27",
        "library/nginx:latest",
        "registry.example.com:5000/team/app_x.y-z:v1.0-RC",
        "localhost/app",
        "[::1]:5000/app:tag",
        "nginx:1.27@sha256:" + "0123456789abcdef" * 4,
    ]
    req = create_request(container=[container(f"c{i}", image) for i, image in enumerate(images)])
    assert client.create_container_group(req).body.container_group_id.startswith("eci-")


def test_cpu_memory_rounded_up(client) -> None:
    gid = _create(client, cpu=7.0, memory=13.0)
    g = describe(client, gid)
    assert (g.cpu, g.memory) == (8.0, 16.0)
    gid = _create(client, name="web-2", containers=[container(cpu=0.3, memory=0.5)])
    assert (describe(client, gid).cpu, describe(client, gid).memory) == (0.5, 1.0)
    gid = _create(client, name="web-3")
    assert (describe(client, gid).cpu, describe(client, gid).memory) == (2.0, 4.0)


def test_eip_gives_internet_ip(client) -> None:
    gid = _create(client, auto_create_eip=True)
    g = wait_status(client, gid, "Running")
    assert g.internet_ip and g.internet_ip.count(".") == 3


def test_status_batch_tags_and_since_second(client, fake) -> None:
    a = _create(client, name="grp-a", tag=[m.CreateContainerGroupRequestTag(key="ClusterName", value="c1")])
    _create(client, name="grp-b", tag=[m.CreateContainerGroupRequestTag(key="ClusterName", value="c2")])
    wait_status(client, a, "Running")
    body = client.describe_container_group_status(
        m.DescribeContainerGroupStatusRequest(
            region_id=REGION, tag=[m.DescribeContainerGroupStatusRequestTag(key="ClusterName", value="c1")]
        )
    ).body
    assert body.total_count == 1 and body.next_token == ""
    item = body.data[0]
    assert item.container_group_id == a and item.status == "Running"
    assert item.pod_status.phase == "Running" and item.pod_status.pod_ip.startswith("10.1.")
    assert item.pod_status.container_statuses[0].state.running.started_atstarted_at
    by_ids = client.describe_container_group_status(
        m.DescribeContainerGroupStatusRequest(region_id=REGION, container_group_ids=json.dumps([a]))
    ).body
    assert [d.container_group_id for d in by_ids.data] == [a]
    fake.clock.advance(120)
    quiet = client.describe_container_group_status(
        m.DescribeContainerGroupStatusRequest(region_id=REGION, since_second=60)
    ).body
    assert quiet.total_count == 0
    client.restart_container_group(m.RestartContainerGroupRequest(region_id=REGION, container_group_id=a))
    changed = client.describe_container_group_status(
        m.DescribeContainerGroupStatusRequest(region_id=REGION, since_second=60)
    ).body
    assert [d.container_group_id for d in changed.data] == [a]


def test_events(client) -> None:
    gid = _create(client)
    wait_status(client, gid, "Running")
    body = client.describe_container_group_events(
        m.DescribeContainerGroupEventsRequest(region_id=REGION, container_group_ids=json.dumps([gid]))
    ).body
    assert body.total_count == 1
    events = body.data[0].events
    assert [e.reason for e in events][:2] == ["Pulling", "Pulled"]
    assert all(e.type == "Normal" and e.count >= 1 and e.first_timestamp for e in events)
    assert events[0].involved_object.kind == "Pod"


def test_delete(client) -> None:
    gid = _create(client)
    client.delete_container_group(m.DeleteContainerGroupRequest(region_id=REGION, container_group_id=gid))
    body = client.describe_container_groups(
        m.DescribeContainerGroupsRequest(region_id=REGION, container_group_ids=json.dumps([gid]))
    ).body
    assert body.container_groups == []
    with pytest.raises(ClientException) as e:
        client.delete_container_group(m.DeleteContainerGroupRequest(region_id=REGION, container_group_id=gid))
    assert e.value.code == "InvalidParameter.NotFound"
    with pytest.raises(ClientException) as e:
        client.delete_container_group(m.DeleteContainerGroupRequest(region_id=REGION))
    assert e.value.code == "MissingParameter"


def test_logs_of_a_real_command(client) -> None:
    cmd = "for i in 1 2 3 4 5; do echo line-$i; done; echo oops >&2"
    gid = _create(client, containers=[container("job", "busybox", command=["sh", "-c", cmd])], restart_policy="Never")
    wait_status(client, gid, "Succeeded")

    def logs(**kw) -> str:
        return client.describe_container_log(
            m.DescribeContainerLogRequest(region_id=REGION, container_group_id=gid, container_name="job", **kw)
        ).body.content

    assert logs() == "line-1\nline-2\nline-3\nline-4\nline-5\noops\n"
    assert logs(tail=2) == "line-5\noops\n"
    assert logs(limit_bytes=7) == "line-1\n"
    stamped = logs(timestamps=True, tail=1)
    assert stamped.endswith("Z oops\n") and stamped[:4].isdigit()
    assert logs(since_seconds=3600).count("\n") == 6
    assert logs(last_time=True) == ""
    with pytest.raises(ClientException) as e:
        logs(tail=2001)
    assert e.value.code == "InvalidParameter"
    with pytest.raises(ClientException) as e:
        client.describe_container_log(
            m.DescribeContainerLogRequest(region_id=REGION, container_group_id=gid, container_name="nope")
        )
    assert "nope" in e.value.message


def test_logs_show_a_last_line_without_newline_while_the_process_runs(client) -> None:
    # Before, the fake held the unterminated line until the process exited.
    cmd = "printf 'first\\nhalf'; sleep 3; printf ' more\\n'; sleep 30"
    gid = _create(client, containers=[container("job", "busybox", command=["sh", "-c", cmd])], restart_policy="Never")
    wait_status(client, gid, "Running")

    def logs(**kw: Any) -> str:
        return client.describe_container_log(
            m.DescribeContainerLogRequest(region_id=REGION, container_group_id=gid, container_name="job", **kw)
        ).body.content

    def eventually(expected: str) -> str:
        deadline = time.monotonic() + 10
        while (content := logs()) != expected and time.monotonic() < deadline:
            time.sleep(0.1)
        return content

    assert eventually("first\nhalf") == "first\nhalf"
    assert eventually("first\nhalf more\n") == "first\nhalf more\n"
    assert logs(tail=1) == "half more\n"  # one log line, completed in place
    client.delete_container_group(m.DeleteContainerGroupRequest(region_id=REGION, container_group_id=gid))


def test_exec_sync_and_websocket(client) -> None:
    gid = _create(
        client,
        containers=[
            container(
                "app",
                environment_var=[m.CreateContainerGroupRequestContainerEnvironmentVar(key="GREETING", value="hello")],
            )
        ],
    )
    wait_status(client, gid, "Running")
    r = client.exec_container_command(
        m.ExecContainerCommandRequest(
            region_id=REGION,
            container_group_id=gid,
            container_name="app",
            command='["sh","-c","echo $GREETING"]',
            sync=True,
        )
    ).body
    assert r.sync_response == "hello\n"
    r = client.exec_container_command(
        m.ExecContainerCommandRequest(
            region_id=REGION, container_group_id=gid, container_name="app", command='["sh","-c","cat; exit 3"]'
        )
    ).body
    assert r.web_socket_uri.startswith("ws://127.0.0.1:")
    ws = websocket.create_connection(r.web_socket_uri, subprotocols=["v4.channel.k8s.io"], timeout=10)
    ws.send_binary(b"\x00ping\n")
    ws.send_binary(b"\x00")  # stdin EOF
    frames = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        op, data = ws.recv_data()
        if op == websocket.ABNF.OPCODE_CLOSE:
            break
        frames.append(data)
    ws.close()
    assert b"".join(f[1:] for f in frames if f[0] == 1) == b"ping\n"
    status = json.loads(next(f[1:] for f in frames if f[0] == 3))
    assert status["status"] == "Failure" and status["details"]["causes"][0]["message"] == "3"
    # One use only.
    with pytest.raises(websocket.WebSocketBadStatusException):
        websocket.create_connection(r.web_socket_uri, timeout=5)


def test_exec_validation(client) -> None:
    gid = _create(client)
    wait_status(client, gid, "Running")
    base = {"region_id": REGION, "container_group_id": gid, "container_name": "main"}
    for kw, needle in [
        ({"command": '["sh"]', "sync": True}, "Command"),
        ({"command": '["ls"]', "sync": True, "tty": True}, "TTY"),
        ({"command": json.dumps(["x"] * 21)}, "Command"),
        ({"command": "ls"}, "Command"),
        ({}, "Command"),
    ]:
        with pytest.raises(ClientException) as e:
            client.exec_container_command(m.ExecContainerCommandRequest(**base, **kw))
        assert needle in e.value.message


def test_metrics(client, fake) -> None:
    gid = _create(client, containers=[container(cpu=1.0, memory=2.0)])
    wait_status(client, gid, "Running")
    fake.clock.advance(600)
    body = client.describe_container_group_metric(
        m.DescribeContainerGroupMetricRequest(region_id=REGION, container_group_id=gid)
    ).body
    assert body.container_group_id == gid and len(body.records) >= 19
    rec = body.records[-1]
    assert rec.cpu.usage_nano_cores > 0 and rec.memory.working_set > 0
    assert rec.containers[0].name == "main" and rec.containers[0].cpu.usage_nano_cores > 0
    multi = client.describe_multi_container_group_metric(
        m.DescribeMultiContainerGroupMetricRequest(
            region_id=REGION, container_group_ids=json.dumps([gid]), metric_type="summary"
        )
    ).body
    assert multi.monitor_datas[0].container_group_id == gid
    assert multi.monitor_datas[0].records[0].memory.rss > 0
    with pytest.raises(ClientException):
        client.describe_container_group_metric(
            m.DescribeContainerGroupMetricRequest(region_id=REGION, container_group_id=gid, period="17")
        )


def test_steered_usage_is_what_a_rate_over_two_samples_gives(client, fake, admin) -> None:
    """What metrics-server computes: (counter2 - counter1) / (t2 - t1) is the steered rate, the counter never
    goes back when the rate changes, and the working set is the steered one; bad input names the field."""
    gid = _create(client, containers=[container("a", cpu=1.0, memory=2.0), container("b", cpu=1.0, memory=2.0)])
    wait_status(client, gid, "Running")
    fake.clock.advance(60)

    def sample() -> Any:
        body = client.describe_multi_container_group_metric(
            m.DescribeMultiContainerGroupMetricRequest(region_id=REGION, container_group_ids=json.dumps([gid]))
        ).body
        return body.monitor_datas[0].records[-1]

    admin.put(f"/groups/{gid}/usage", {"cpu": 1.5, "memory": 3 * 2**28})
    fake.clock.advance(15)
    first = sample()
    fake.clock.advance(30)
    second = sample()
    rate = (second.cpu.usage_core_nano_seconds - first.cpu.usage_core_nano_seconds) / 30
    assert rate == pytest.approx(1.5e9, rel=0.01) and second.cpu.usage_nano_cores == 1_500_000_000
    assert [c.cpu.usage_nano_cores for c in second.containers] == [750_000_000, 750_000_000]
    assert second.memory.working_set == 3 * 2**28 and second.containers[0].memory.working_set == 3 * 2**27
    admin.put(f"/groups/{gid}/usage", {"cpu": 0.1})  # down again: the counter slows, it does not drop
    fake.clock.advance(30)
    third = sample()
    assert third.cpu.usage_core_nano_seconds > second.cpu.usage_core_nano_seconds
    assert third.memory.working_set == 3 * 2**28  # memory left out: kept
    for body, needle in (({"cpu": "lots"}, "cpu must be a number"), ({}, 'give "cpu"')):
        r = requests.put(f"{fake.admin_url}/groups/{gid}/usage", json=body, timeout=10)
        assert r.status_code == 400 and needle in r.json()["error"]


def test_update_and_restart(client, fake) -> None:
    gid = _create(client, tag=[m.CreateContainerGroupRequestTag(key="a", value="1")])
    wait_status(client, gid, "Running")
    client.update_container_group(
        m.UpdateContainerGroupRequest(
            region_id=REGION,
            container_group_id=gid,
            tag=[m.UpdateContainerGroupRequestTag(key="b", value="2")],
            update_type="IncrementalUpdate",
        )
    )
    assert sorted((t.key, t.value) for t in describe(client, gid).tags) == [("a", "1"), ("b", "2")]
    client.update_container_group(
        m.UpdateContainerGroupRequest(
            region_id=REGION,
            container_group_id=gid,
            container=[m.UpdateContainerGroupRequestContainer(name="main", image="nginx:2")],
        )
    )
    g = wait_status(client, gid, "Running")
    assert g.containers[0].image == "nginx:2"
    client.restart_container_group(m.RestartContainerGroupRequest(region_id=REGION, container_group_id=gid))
    g = wait_status(client, gid, "Running")
    assert g.containers[0].restart_count == 2
    assert g.containers[0].previous_state.state == "Terminated"


def test_restart_requires_running(make_fake) -> None:
    from conftest import sdk_client

    f = make_fake({"scheduling_delay_s": 30.0})
    c = sdk_client(f)
    gid = _create(c)
    assert describe(c, gid).status == "Scheduling"
    with pytest.raises(ClientException) as e:
        c.restart_container_group(m.RestartContainerGroupRequest(region_id=REGION, container_group_id=gid))
    assert e.value.code == "IncorrectStatus"


def test_describe_regions(client) -> None:
    body = client.describe_regions(m.DescribeRegionsRequest(region_id=REGION)).body
    assert body.regions[0].region_id == REGION and body.regions[0].zones == ["cn-hangzhou-a", "cn-hangzhou-b"]


def test_unknown_and_unimplemented_actions(fake) -> None:
    from conftest import sdk_client

    for algo in (None, "v2"):
        c = sdk_client(fake, algo)
        for action, code, status in [
            ("NoSuchAction", "InvalidAction.NotFound", 404),
            ("ListUsage", "UnsupportedOperation", 400),
        ]:
            params = open_api_models.Params(
                action=action,
                version="2018-08-08",
                protocol="HTTP",
                pathname="/",
                method="POST",
                auth_type="AK",
                style="RPC",
                req_body_type="formData",
                body_type="json",
            )
            req = open_api_models.OpenApiRequest(query={"RegionId": REGION})
            with pytest.raises(ClientException) as e:
                c.call_api(params, req, util_models.RuntimeOptions())
            assert (e.value.code, e.value.status_code) == (code, status)


def test_wrong_version_rejected(fake) -> None:
    from conftest import sdk_client

    c = sdk_client(fake)
    params = open_api_models.Params(
        action="DescribeRegions",
        version="2099-01-01",
        protocol="HTTP",
        pathname="/",
        method="POST",
        auth_type="AK",
        style="RPC",
        req_body_type="formData",
        body_type="json",
    )
    with pytest.raises(ClientException) as e:
        c.call_api(params, open_api_models.OpenApiRequest(query={}), util_models.RuntimeOptions())
    assert e.value.code == "InvalidVersion"


def test_calls_are_counted(client, admin) -> None:
    admin.post("/calls/reset")
    _create(client)
    with pytest.raises(ClientException):
        client.describe_container_groups(m.DescribeContainerGroupsRequest(region_id=REGION, limit=50))
    calls = admin.get("/calls")
    assert calls["by_action"]["CreateContainerGroup"]["outcomes"] == {"OK": 1}
    assert calls["by_action"]["DescribeContainerGroups"]["outcomes"] == {"InvalidParameter": 1}
    assert calls["total"] == 2
    wait_for(lambda: True)


def test_delete_restart_update_with_client_token_are_idempotent(client) -> None:
    gid = _create(client)
    wait_status(client, gid, "Running")
    for _ in range(2):
        client.restart_container_group(
            m.RestartContainerGroupRequest(region_id=REGION, container_group_id=gid, client_token="r-1")
        )
    assert describe(client, gid).containers[0].restart_count == 1
    for _ in range(2):
        client.delete_container_group(
            m.DeleteContainerGroupRequest(region_id=REGION, container_group_id=gid, client_token="d-1")
        )
    with pytest.raises(ClientException) as e:
        client.delete_container_group(m.DeleteContainerGroupRequest(region_id=REGION, container_group_id=gid))
    assert e.value.code == "InvalidParameter.NotFound"


def _session(uri: str, send: list[bytes]) -> list[bytes]:
    ws = websocket.create_connection(uri, subprotocols=["v4.channel.k8s.io"], timeout=10)
    assert ws.subprotocol == "v4.channel.k8s.io"
    for frame in send:
        ws.send_binary(frame)
    frames = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        op, data = ws.recv_data()
        if op == websocket.ABNF.OPCODE_CLOSE:
            break
        frames.append(data)
    ws.close()
    return frames


def test_exec_tty_with_resize_in_a_running_real_container(client) -> None:
    gid = _create(
        client, containers=[container("app", "busybox", command=["sh", "-c", "echo ready > /tmp/ready; sleep 300"])]
    )
    wait_for(lambda: describe(client, gid).containers[0].current_state.state == "Running")
    r = client.exec_container_command(
        m.ExecContainerCommandRequest(
            region_id=REGION,
            container_group_id=gid,
            container_name="app",
            command='["sh","-c","read x; stty size; cat /tmp/ready; test -t 0 && echo tty"]',
            tty=True,
        )
    ).body
    frames = _session(r.web_socket_uri, [b'\x04{"Width":123,"Height":45}', b"\x00go\n"])
    out = b"".join(f[1:] for f in frames if f[0] == 1).decode()
    assert "45 123" in out and "ready" in out and "tty" in out
    assert json.loads(next(f[1:] for f in frames if f[0] == 3)) == {"metadata": {}, "status": "Success"}


def test_exec_without_stdin_and_stderr_channel(client) -> None:
    gid = _create(client)
    wait_status(client, gid, "Running")
    r = client.exec_container_command(
        m.ExecContainerCommandRequest(
            region_id=REGION,
            container_group_id=gid,
            container_name="main",
            command='["sh","-c","cat; echo out; echo err >&2"]',
            stdin=False,
        )
    ).body
    frames = _session(r.web_socket_uri, [])
    assert b"".join(f[1:] for f in frames if f[0] == 1) == b"out\n"
    assert b"".join(f[1:] for f in frames if f[0] == 2) == b"err\n"


def test_exec_token_expires(client, fake) -> None:
    gid = _create(client)
    wait_status(client, gid, "Running")
    r = client.exec_container_command(
        m.ExecContainerCommandRequest(
            region_id=REGION, container_group_id=gid, container_name="main", command='["true"]'
        )
    ).body
    fake.clock.advance(31)
    with pytest.raises(websocket.WebSocketBadStatusException):
        websocket.create_connection(r.web_socket_uri, timeout=5)


def test_async_sdk_path(fake) -> None:
    # The async client (aiohttp) escapes the query differently and adds unsigned headers; both signatures verify.
    import asyncio

    from conftest import sdk_client

    awkward = ["a b+c*d~e%f/g'h!(i)", "日本 語;&=?#", ""]

    async def run(algorithm: str | None) -> list[str]:
        c = sdk_client(fake, algorithm)
        r = await c.create_container_group_async(
            create_request(name=f"async-{algorithm or 'v3'}", containers=[container(arg=awkward)])
        )
        d = await c.describe_container_groups_async(
            m.DescribeContainerGroupsRequest(
                region_id=REGION, container_group_ids=json.dumps([r.body.container_group_id])
            )
        )
        return d.body.container_groups[0].containers[0].args

    for algorithm in (None, "v2"):
        assert asyncio.run(run(algorithm)) == awkward


def test_metrics_of_a_real_process_come_from_proc(client, fake) -> None:
    gid = _create(client, containers=[container("s", "busybox", command=["sleep", "300"], cpu=1.0, memory=2.0)])
    wait_for(lambda: (gid, "s") in fake.runner.procs)
    multi = client.describe_multi_container_group_metric(
        m.DescribeMultiContainerGroupMetricRequest(region_id=REGION, container_group_ids=json.dumps([gid]))
    ).body
    mem = multi.monitor_datas[0].records[-1].containers[0].memory
    # Synthetic figures would be 20-40 % of 2 GiB; `sleep` really uses a few hundred KiB to a few MiB.
    assert 4096 <= mem.rss < 64 * 2**20


def _config_volume(*sizes: int) -> m.CreateContainerGroupRequestVolume:
    import base64

    files = [
        m.CreateContainerGroupRequestVolumeConfigFileVolumeConfigFileToPath(
            path=f"f{i}", content=base64.b64encode(bytes([i % 256]) * size).decode()
        )
        for i, size in enumerate(sizes)
    ]
    return m.CreateContainerGroupRequestVolume(
        name="cfg",
        type="ConfigFileVolume",
        config_file_volume=m.CreateContainerGroupRequestVolumeConfigFileVolume(config_file_to_path=files),
    )


def test_config_file_volumes_up_to_the_documented_sizes_fit_in_one_request(client) -> None:
    # 2 x 30 KiB: 80 KiB of base64 in the URL, more than http.server's 64 KiB request line.
    gid = client.create_container_group(create_request(volume=[_config_volume(30 * 1024, 30 * 1024)])).body
    assert gid.container_group_id
    for sizes, message in (((32 * 1024 + 1,), "at most 32 KB"), ((25 * 1024,) * 3, "at most 60 KB in all")):
        with pytest.raises(ClientException) as e:
            client.create_container_group(create_request(name="too-big", volume=[_config_volume(*sizes)]))
        assert e.value.code == "InvalidParameter" and message in e.value.message


def test_the_admin_root_lists_its_endpoints(fake) -> None:
    # R19: the fake prints "admin API: .../_fake", and GET /_fake used to answer 404.
    import requests

    answer = requests.get(fake.admin_url, timeout=5)
    assert answer.status_code == 200
    listed = {item["endpoint"] for item in answer.json()["endpoints"]}
    assert {"GET /_fake/groups", "PUT /_fake/faults", "POST /_fake/clock"} <= listed
    for endpoint in ("GET /_fake/health", "GET /_fake/calls", "GET /_fake/clock"):
        assert requests.get(fake.url + endpoint.split(" ", 1)[1], timeout=5).status_code == 200


def test_a_client_that_resets_its_connection_leaves_no_traceback(fake, capfd) -> None:
    # A daemon killed with -9 resets its keep-alive connections; socketserver printed a traceback for each.
    import socket
    import struct

    host, port = fake.endpoint.rsplit(":", 1)
    for _ in range(3):
        sock = socket.create_connection((host, int(port)))
        sock.sendall(b"GET /?Action=Describe")  # half a request line, then a reset (SO_LINGER 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    time.sleep(0.5)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "ConnectionResetError" not in err
