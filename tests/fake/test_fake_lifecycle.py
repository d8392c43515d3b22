"""Lifecycle on the virtual clock, real containers in sandboxes, restart policies, events, retention."""

from __future__ import annotations

import base64
import ipaddress
import socket
import time

import pytest
from alibabacloud_eci20180808 import models as m
from conftest import REGION, Admin, container, create_request, describe, sdk_client, wait_for, wait_status


def _create(client, **kw) -> str:
    return client.create_container_group(create_request(**kw)).body.container_group_id


def test_scheduling_pending_running_on_the_virtual_clock(make_fake) -> None:
    f = make_fake({"scheduling_delay_s": 100.0, "pending_delay_s": 200.0})
    c = sdk_client(f)
    gid = _create(c)
    g = describe(c, gid)
    assert g.status == "Scheduling" and g.intranet_ip == ""
    assert g.containers[0].current_state.state == "Waiting"
    assert [e.reason for e in g.events] == []
    f.clock.advance(100)
    g = describe(c, gid)
    assert g.status == "Pending" and g.containers[0].current_state.state == "Waiting"
    assert "Pulling" in [e.reason for e in g.events]
    Admin(f).post("/clock", {"advance": 200})
    g = describe(c, gid)
    assert g.status == "Running" and g.containers[0].current_state.state == "Running" and g.containers[0].ready
    assert ipaddress.IPv4Address(g.intranet_ip) in ipaddress.IPv4Network("10.1.0.0/16")
    assert [e.reason for e in g.events] == ["Pulling", "Pulled", "Created", "Started"]


def test_default_delays_are_one_and_two_seconds() -> None:
    from fakes.eci.settings import Settings

    s = Settings()
    assert (s.scheduling_delay_s, s.pending_delay_s) == (1.0, 2.0)
    assert [(v.id, v.zone, v.cidr) for v in s.vswitches] == [
        ("vsw-fake-a", "cn-hangzhou-a", "10.1.0.0/16"),
        ("vsw-fake-b", "cn-hangzhou-b", "10.2.0.0/16"),
    ]


def test_real_command_succeeds(client) -> None:
    gid = _create(
        client, containers=[container("job", "busybox", command=["sh", "-c", "echo done"])], restart_policy="Never"
    )
    g = wait_status(client, gid, "Succeeded")
    st = g.containers[0].current_state
    assert (st.state, st.exit_code, st.reason) == ("Terminated", 0, "Completed")
    assert g.succeeded_time and g.containers[0].restart_count == 0


def test_real_command_fails_with_its_exit_code(client) -> None:
    gid = _create(
        client,
        containers=[container("job", "busybox", command=["sh", "-c", "echo hi; exit 3"])],
        restart_policy="Never",
    )
    g = wait_status(client, gid, "Failed")
    st = g.containers[0].current_state
    assert (st.state, st.exit_code, st.reason) == ("Terminated", 3, "Error")
    assert g.failed_time


def test_restart_policy_always_restarts_with_counts_and_previous_state(client) -> None:
    gid = _create(
        client,
        containers=[container("loop", "busybox", command=["sh", "-c", "echo run; exit 2"])],
        restart_policy="Always",
    )

    def restarted_twice():
        g = describe(client, gid)
        return g if g.containers[0].restart_count >= 2 else None

    g = wait_for(restarted_twice)
    assert g.status == "Running"
    prev = g.containers[0].previous_state
    assert (prev.state, prev.exit_code) == ("Terminated", 2)
    assert "BackOff" in [e.reason for e in g.events]
    logs = client.describe_container_log(
        m.DescribeContainerLogRequest(region_id=REGION, container_group_id=gid, container_name="loop", last_time=True)
    ).body.content
    assert logs == "run\n"


def test_restart_policy_on_failure_stops_after_success(client) -> None:
    script = "if [ -f /tmp/once ]; then echo second; exit 0; fi; touch /tmp/once; echo first; exit 1"
    gid = _create(
        client, containers=[container("job", "busybox", command=["sh", "-c", script])], restart_policy="OnFailure"
    )
    g = wait_status(client, gid, "Succeeded")
    assert g.containers[0].restart_count == 1
    assert g.containers[0].current_state.exit_code == 0


def test_init_containers_run_first(client) -> None:
    gid = _create(
        client,
        containers=[
            container(
                "main", "busybox", command=["sh", "-c", "cat /work/init.txt"], volume_mount=[_mount("work", "/work")]
            )
        ],
        init_container=[
            m.CreateContainerGroupRequestInitContainer(
                name="init",
                image="busybox",
                command=["sh", "-c", "echo from-init > /work/init.txt"],
                volume_mount=[m.CreateContainerGroupRequestInitContainerVolumeMount(name="work", mount_path="/work")],
            )
        ],
        volume=[m.CreateContainerGroupRequestVolume(name="work", type="EmptyDirVolume")],
        restart_policy="Never",
    )
    g = wait_status(client, gid, "Succeeded")
    assert g.init_containers[0].current_state.state == "Terminated"
    assert g.init_containers[0].current_state.exit_code == 0
    out = client.describe_container_log(
        m.DescribeContainerLogRequest(region_id=REGION, container_group_id=gid, container_name="main")
    ).body.content
    assert out == "from-init\n"


def test_failing_init_container_fails_the_group(client) -> None:
    gid = _create(
        client,
        containers=[container("main", "busybox", command=["sh", "-c", "echo never"])],
        init_container=[
            m.CreateContainerGroupRequestInitContainer(name="init", image="busybox", command=["sh", "-c", "exit 4"])
        ],
        restart_policy="Never",
    )
    g = wait_status(client, gid, "Failed")
    assert g.init_containers[0].current_state.exit_code == 4
    assert g.containers[0].current_state.state == "Waiting"


def _mount(name: str, path: str, **kw) -> m.CreateContainerGroupRequestContainerVolumeMount:
    return m.CreateContainerGroupRequestContainerVolumeMount(name=name, mount_path=path, **kw)


def test_sandbox_sees_config_files_env_and_workdir(client, fake) -> None:
    assert fake.runner.chroot, "these tests expect the chroot sandbox (running as root with unshare)"
    content = b"key=value\n\x00\xff binary tail"
    script = (
        "cat /etc/config/app.conf | od -An -c | tr -s ' ' | head -c 400; echo; "
        "echo FOO=$FOO; pwd; ls -l /etc/config/app.conf | cut -c1-10; ls /"
    )
    gid = _create(
        client,
        containers=[
            container(
                "job",
                "busybox",
                command=["sh", "-c", script],
                working_dir="/app",
                environment_var=[m.CreateContainerGroupRequestContainerEnvironmentVar(key="FOO", value="bar baz")],
                volume_mount=[_mount("cfg", "/etc/config", read_only=True)],
            )
        ],
        volume=[
            m.CreateContainerGroupRequestVolume(
                name="cfg",
                type="ConfigFileVolume",
                config_file_volume=m.CreateContainerGroupRequestVolumeConfigFileVolume(
                    config_file_to_path=[
                        m.CreateContainerGroupRequestVolumeConfigFileVolumeConfigFileToPath(
                            path="app.conf", content=base64.b64encode(content).decode(), mode=0o600
                        )
                    ]
                ),
            )
        ],
        restart_policy="Never",
    )
    wait_status(client, gid, "Succeeded")
    out = client.describe_container_log(
        m.DescribeContainerLogRequest(region_id=REGION, container_group_id=gid, container_name="job")
    ).body.content
    assert "k e y = v a l u e \\n \\0 377" in out
    assert "FOO=bar baz" in out and "\n/app\n" in out and "-rw-------" in out
    assert "home" not in out.split("\n")  # the host's / is not visible: only the sandbox skeleton
    # The file on the host side is byte-exact.
    from pathlib import Path

    assert (Path(fake.runner.group_dir(gid)) / "volumes" / "cfg" / "app.conf").read_bytes() == content


def test_sandbox_reaches_loopback_only(client, fake) -> None:
    # The fake listens on the host's loopback; the sandbox has its own network namespace with only lo.
    host, port = fake.endpoint.split(":")
    probe = f"(echo > /dev/tcp/{host}/{port}) 2>/dev/null && echo reachable || echo unreachable"
    gid = _create(
        client, containers=[container("job", "busybox", command=["bash", "-c", probe])], restart_policy="Never"
    )
    wait_status(client, gid, "Succeeded")
    out = client.describe_container_log(
        m.DescribeContainerLogRequest(region_id=REGION, container_group_id=gid, container_name="job")
    ).body.content
    assert out.startswith("unreachable")
    with socket.create_connection((host, int(port)), timeout=2):
        pass  # ...while the host itself can reach it


def test_simulated_and_real_containers_mix(client) -> None:
    gid = _create(
        client,
        containers=[container("web", "nginx"), container("job", "busybox", command=["sh", "-c", "exit 0"])],
        restart_policy="Never",
    )

    def job_done():
        g = describe(client, gid)
        return g if g.containers[1].current_state.state == "Terminated" else None

    g = wait_for(job_done)
    assert g.status == "Running"  # the simulated service keeps running
    assert g.containers[0].current_state.state == "Running"


def test_delete_kills_processes(client, fake) -> None:
    gid = _create(client, containers=[container("sleeper", "busybox", command=["sleep", "300"])])
    wait_for(lambda: describe(client, gid).containers[0].current_state.state == "Running")
    proc = fake.runner.procs[(gid, "sleeper")].popen
    client.delete_container_group(m.DeleteContainerGroupRequest(region_id=REGION, container_group_id=gid))
    assert proc.wait(timeout=5) is not None


def test_spot_reclaim_expires(client, admin) -> None:
    gid = _create(client, spot_strategy="SpotAsPriceGo")
    wait_status(client, gid, "Running")
    admin.post(f"/groups/{gid}/reclaim")
    g = describe(client, gid)
    assert g.status == "Expired" and g.expired_time
    ev = [e for e in g.events if e.reason == "SpotToBeReleased"]
    assert ev and ev[0].type == "Warning"
    assert g.containers[0].current_state.state == "Terminated"


def test_oom_kill_records_reason_and_event(client, admin) -> None:
    gid = _create(client, containers=[container("hog", "busybox", command=["sleep", "300"])], restart_policy="Never")
    wait_for(lambda: describe(client, gid).containers[0].current_state.state == "Running")
    admin.post(f"/groups/{gid}/containers/hog/kill", {"reason": "OOMKilled"})
    g = wait_status(client, gid, "Failed")
    st = g.containers[0].current_state
    assert (st.reason, st.exit_code) == ("OOMKilled", 137)
    assert any(e.reason == "OOMKilled" and e.type == "Warning" for e in g.events)


def test_terminal_groups_are_kept_for_the_retention_time(make_fake) -> None:
    f = make_fake({"terminal_retention_s": 3600.0, "terminal_keep": 1})
    c = sdk_client(f)
    a = _create(c, name="done-a", containers=[container("j", "busybox", command=["true"])], restart_policy="Never")
    wait_status(c, a, "Succeeded")
    b = _create(c, name="done-b", containers=[container("j", "busybox", command=["true"])], restart_policy="Never")
    wait_status(c, b, "Succeeded")
    live = _create(c, name="live")
    f.clock.advance(1800)
    f.tick()
    assert f.cloud.purge_terminal() == 0
    f.clock.advance(3600)
    f.cloud.purge_terminal()  # the ticker may have done it already: only the newest terminal one is kept
    ids = {
        g.container_group_id
        for g in c.describe_container_groups(m.DescribeContainerGroupsRequest(region_id=REGION)).body.container_groups
    }
    assert ids == {b, live}


@pytest.mark.parametrize("strategy", ["VSwitchOrdered", "VSwitchRandom"])
def test_no_stock_fails_over_to_the_next_zone_then_schedule_fails(client, admin, strategy) -> None:
    admin.put("/faults", {"stock": {"cn-hangzhou-a": 0, "cn-hangzhou-b": 1}})
    gid = _create(client, v_switch_id="vsw-fake-a,vsw-fake-b", schedule_strategy=strategy)
    g = wait_status(client, gid, "Running")
    assert (g.zone_id, g.v_switch_id) == ("cn-hangzhou-b", "vsw-fake-b")
    assert g.intranet_ip.startswith("10.2.")
    gid2 = _create(client, name="web-2", v_switch_id="vsw-fake-a,vsw-fake-b", schedule_strategy=strategy)
    g2 = wait_status(client, gid2, "ScheduleFailed")
    warn = [e for e in g2.events if e.reason == "NoStock"]
    assert warn and warn[0].type == "Warning" and "out of stock" in warn[0].message
    assert g2.failed_time and g2.intranet_ip == ""
    assert admin.get("/faults")["stock"] == {"cn-hangzhou-a": 0, "cn-hangzhou-b": 0}


def test_no_stock_sync_mode_raises(client, admin) -> None:
    from alibabacloud_tea_openapi.exceptions import ClientException

    admin.put("/faults", {"stock": {"cn-hangzhou-a": 0}, "stock_mode": "sync"})
    with pytest.raises(ClientException) as e:
        _create(client)
    assert (e.value.code, e.value.status_code) == ("OperationDenied.NoStock", 403)


def test_sandbox_removal_refuses_trees_with_mounts(tmp_path) -> None:
    import subprocess

    from fakes.eci.runner import safe_rmtree

    victim = tmp_path / "sandbox" / "root" / "usr"
    victim.mkdir(parents=True)
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "precious").write_text("x")
    subprocess.run(["mount", "--bind", str(keep), str(victim)], check=True)
    try:
        safe_rmtree(tmp_path / "sandbox")
        assert (keep / "precious").exists() and (victim / "precious").exists()
    finally:
        subprocess.run(["umount", str(victim)], check=True)
    safe_rmtree(tmp_path / "sandbox")
    assert not (tmp_path / "sandbox").exists() and (keep / "precious").exists()


def test_restarting_and_updating_are_visible_for_the_pending_delay(make_fake) -> None:
    f = make_fake({"scheduling_delay_s": 0.0, "pending_delay_s": 100.0})
    c = sdk_client(f)
    gid = _create(c)
    f.clock.advance(100)
    assert describe(c, gid).status == "Running"
    c.restart_container_group(m.RestartContainerGroupRequest(region_id=REGION, container_group_id=gid))
    g = describe(c, gid)
    assert g.status == "Restarting" and g.containers[0].current_state.state == "Waiting"
    f.clock.advance(100)
    assert describe(c, gid).status == "Running"
    c.update_container_group(
        m.UpdateContainerGroupRequest(
            region_id=REGION,
            container_group_id=gid,
            container=[m.UpdateContainerGroupRequestContainer(name="main", image="nginx:next")],
        )
    )
    assert describe(c, gid).status == "Updating"
    f.clock.advance(100)
    g = describe(c, gid)
    assert g.status == "Running" and g.containers[0].image == "nginx:next" and g.containers[0].restart_count == 2


def test_events_since_second(make_fake) -> None:
    f = make_fake()
    c = sdk_client(f)
    old = _create(c, name="old")
    f.clock.advance(600)
    new = _create(c, name="new")
    body = c.describe_container_group_events(
        m.DescribeContainerGroupEventsRequest(region_id=REGION, since_second=60)
    ).body
    assert [d.container_group_id for d in body.data] == [new]
    body = c.describe_container_group_events(m.DescribeContainerGroupEventsRequest(region_id=REGION)).body
    assert {d.container_group_id for d in body.data} == {old, new}


def test_active_deadline_fails_the_group_and_stops_processes(make_fake) -> None:
    f = make_fake()
    c = sdk_client(f)
    gid = _create(c, containers=[container("s", "busybox", command=["sleep", "300"])], active_deadline_seconds=60)
    wait_for(lambda: (gid, "s") in f.runner.procs)
    proc = f.runner.procs[(gid, "s")].popen
    assert describe(c, gid).status == "Running"
    f.clock.advance(61)
    g = wait_status(c, gid, "Failed")
    assert any(e.reason == "DeadlineExceeded" and e.type == "Warning" for e in g.events)
    assert proc.wait(timeout=5) is not None


def test_image_pull_errors_keep_the_group_pending(client, admin) -> None:
    admin.put("/faults", {"image_pull_errors": [r"does-not-exist"]})
    gid = _create(
        client,
        containers=[container("ok", "nginx"), container("bad", "registry.example.com/does-not-exist:1")],
    )
    g = describe(client, gid)
    assert g.status == "Pending"
    bad = g.containers[1].current_state
    assert (bad.state, bad.reason) == ("Waiting", "ImagePullBackOff") and "does-not-exist" in bad.message
    assert g.containers[0].current_state.state == "Running" and not g.containers[1].ready
    warnings = {(e.reason, e.type) for e in g.events if e.type == "Warning"}
    assert warnings == {("Failed", "Warning"), ("BackOff", "Warning")}
    st = client.describe_container_group_status(
        m.DescribeContainerGroupStatusRequest(region_id=REGION, container_group_ids=f'["{gid}"]')
    ).body.data[0]
    assert st.pod_status.phase == "Pending"
    assert st.pod_status.container_statuses[1].state.waiting.reason == "ImagePullBackOff"
    assert admin.get("/faults")["image_pull_errors"] == ["does-not-exist"]


def _probe_kw(**kw) -> dict:
    return {"period_seconds": 1, "failure_threshold": 1, **kw}


def test_readiness_exec_probe_gates_ready(client, fake) -> None:
    probe = m.CreateContainerGroupRequestContainerReadinessProbe(
        exec=m.CreateContainerGroupRequestContainerReadinessProbeExec(command=["cat", "/tmp/ready"]), **_probe_kw()
    )
    gid = _create(client, containers=[container("app", "busybox", command=["sleep", "300"], readiness_probe=probe)])
    wait_for(lambda: describe(client, gid).containers[0].current_state.state == "Running")
    fake.clock.advance(1)
    wait_for(lambda: any(e.reason == "Unhealthy" for e in describe(client, gid).events))
    assert describe(client, gid).containers[0].ready is False
    client.exec_container_command(
        m.ExecContainerCommandRequest(
            region_id=REGION, container_group_id=gid, container_name="app", command='["touch","/tmp/ready"]', sync=True
        )
    )

    def ready():
        fake.clock.advance(1)
        return describe(client, gid).containers[0].ready

    wait_for(ready, interval=0.1)


def test_liveness_probe_failure_restarts_the_container(client, fake) -> None:
    probe = m.CreateContainerGroupRequestContainerLivenessProbe(
        exec=m.CreateContainerGroupRequestContainerLivenessProbeExec(command=["false"]), **_probe_kw()
    )
    gid = _create(client, containers=[container("app", "busybox", command=["sleep", "300"], liveness_probe=probe)])
    wait_for(lambda: describe(client, gid).containers[0].current_state.state == "Running")

    def restarted():
        fake.clock.advance(1)
        g = describe(client, gid)
        return g if g.containers[0].restart_count >= 1 else None

    g = wait_for(restarted, interval=0.1)
    assert g.containers[0].previous_state.exit_code == 137
    reasons = {e.reason for e in g.events}
    assert {"Unhealthy", "Killing"} <= reasons


def test_tcp_and_http_probes_reach_the_containers_loopback(client, fake) -> None:
    server = ["python3", "-u", "-m", "http.server", "8080", "--bind", "127.0.0.1"]
    tcp = m.CreateContainerGroupRequestContainerReadinessProbe(
        tcp_socket=m.CreateContainerGroupRequestContainerReadinessProbeTcpSocket(port=8080), **_probe_kw()
    )
    http = m.CreateContainerGroupRequestContainerLivenessProbe(
        http_get=m.CreateContainerGroupRequestContainerLivenessProbeHttpGet(path="/", port=8080),
        period_seconds=1,
        initial_delay_seconds=5,  # the server needs a moment to start listening, like in a real pod
        failure_threshold=3,
    )
    gid = _create(
        client,
        containers=[
            container("web", "python", command=server, working_dir="/tmp", readiness_probe=tcp, liveness_probe=http)
        ],
    )

    def serving() -> bool:
        log = m.DescribeContainerLogRequest(region_id=REGION, container_group_id=gid, container_name="web")
        return "Serving HTTP" in client.describe_container_log(log).body.content

    # Let the server come up in real time before the virtual clock races ahead (Python starts slowly under load).
    wait_for(serving, timeout=30, interval=0.1)

    def ready():
        fake.clock.advance(1)
        return describe(client, gid).containers[0].ready

    wait_for(ready, timeout=20, interval=0.2)
    for _ in range(10):  # ten more liveness periods pass: the HTTP probe keeps succeeding
        fake.clock.advance(1)
        time.sleep(0.05)
    g = describe(client, gid)
    assert g.containers[0].restart_count == 0 and g.containers[0].ready
    assert g.containers[0].current_state.state == "Running"


def test_http_probe_to_a_closed_port_fails(client, fake) -> None:
    http = m.CreateContainerGroupRequestContainerLivenessProbe(
        http_get=m.CreateContainerGroupRequestContainerLivenessProbeHttpGet(path="/healthz", port=9999), **_probe_kw()
    )
    gid = _create(client, containers=[container("app", "busybox", command=["sleep", "300"], liveness_probe=http)])

    def restarted():
        fake.clock.advance(1)
        return describe(client, gid).containers[0].restart_count >= 1

    wait_for(restarted, interval=0.1)


def test_sandbox_hosts_file_has_the_pod_and_host_aliases(client) -> None:
    gid = _create(
        client,
        name="hosty",
        containers=[container("job", "busybox", command=["sh", "-c", "cat /etc/hosts; echo HOSTNAME=$HOSTNAME"])],
        host_aliase=[m.CreateContainerGroupRequestHostAliase(ip="10.9.9.9", hostname=["db.local", "cache.local"])],
        restart_policy="Never",
    )
    g = wait_status(client, gid, "Succeeded")
    out = client.describe_container_log(
        m.DescribeContainerLogRequest(region_id=REGION, container_group_id=gid, container_name="job")
    ).body.content
    assert f"{g.intranet_ip}\thosty" in out and "10.9.9.9\tdb.local cache.local" in out and "HOSTNAME=hosty" in out
    assert [(h.ip, h.hostnames) for h in g.host_aliases] == [("10.9.9.9", ["db.local", "cache.local"])]
