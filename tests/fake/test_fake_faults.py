"""Fault injection (latency, errors, throttling, rate limits, dropped replies), persistence, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from alibabacloud_eci20180808 import models as m
from alibabacloud_tea_openapi.exceptions import ClientException, ServerException, ThrottlingException
from conftest import AK, REGION, SK, Admin, create_request, describe, sdk_client, wait_status
from darabonba.exceptions import UnretryableException

ROOT = Path(__file__).resolve().parents[2]


def _describe(client) -> None:
    client.describe_container_groups(m.DescribeContainerGroupsRequest(region_id=REGION))


def test_latency_per_action(client, admin) -> None:
    admin.put("/faults", {"latency": {"DescribeContainerGroups": 1.0}})
    t0 = time.monotonic()
    _describe(client)
    assert time.monotonic() - t0 >= 1.0
    t0 = time.monotonic()
    client.describe_regions(m.DescribeRegionsRequest())
    assert time.monotonic() - t0 < 1.0  # other actions are not delayed


@pytest.mark.parametrize(
    ("code", "status", "exc"),
    [
        ("ServiceUnavailable", 503, ServerException),
        ("InternalError", 500, ServerException),
        ("Forbidden.RAM", 403, ClientException),
    ],
)
def test_injected_errors_raise_the_sdk_exception_classes(client, admin, code, status, exc) -> None:
    admin.put(
        "/faults", {"errors": [{"action": "DescribeContainerGroups", "code": code, "status": status, "times": 2}]}
    )
    for _ in range(2):
        with pytest.raises(exc) as e:
            _describe(client)
        assert (e.value.code, e.value.status_code) == (code, status)
        assert not isinstance(e.value, ThrottlingException)
    _describe(client)  # `times` used up
    client.describe_regions(m.DescribeRegionsRequest())  # other actions unaffected
    calls = admin.get("/calls")["by_action"]["DescribeContainerGroups"]["outcomes"]
    assert calls == {code: 2, "OK": 1}


def test_throttling_user_with_retry_after(client, admin) -> None:
    admin.put("/faults", {"errors": [{"code": "Throttling.User", "retry_after_ms": 1500, "times": 1}]})
    with pytest.raises(ThrottlingException) as e:
        _describe(client)
    assert e.value.code == "Throttling.User" and e.value.retry_after == 1500 and e.value.status_code == 400


def test_error_rate_is_a_probability(client, admin) -> None:
    admin.put("/faults", {"seed": 7, "errors": [{"code": "ServiceUnavailable", "rate": 0.5}]})
    outcomes = []
    for _ in range(60):
        try:
            _describe(client)
            outcomes.append("ok")
        except ServerException:
            outcomes.append("err")
    assert 10 < outcomes.count("err") < 50


def test_rate_limits_use_the_documented_defaults(client, admin) -> None:
    view = admin.put("/faults", {"rate_limits": {"enabled": True}})
    assert view["rate_limits"]["per_minute"]["CreateContainerGroup"] == 1000
    assert view["rate_limits"]["per_minute"]["DescribeContainerGroups"] == 2000
    admin.put("/faults", {"rate_limits": {"enabled": True, "per_minute": {"DescribeContainerGroups": 3}}})
    for _ in range(3):
        _describe(client)
    with pytest.raises(ThrottlingException) as e:
        _describe(client)
    assert e.value.code == "Throttling.User" and 0 < e.value.retry_after <= 60000
    client.describe_regions(m.DescribeRegionsRequest())


def test_rate_limits_off_by_default(fake) -> None:
    assert fake.faults.view()["rate_limits"]["enabled"] is False


def test_dropped_response_after_effect_needs_idempotent_retry(client, admin) -> None:
    admin.put("/faults", {"drop_response": {"CreateContainerGroup": 1.0}})
    req = create_request(client_token="pod-uid-1")
    with pytest.raises(UnretryableException):
        client.create_container_group(req)
    groups = admin.get("/groups")["groups"]
    assert len(groups) == 1  # the action took effect
    admin.put("/faults", {"drop_response": {}})
    gid = client.create_container_group(req).body.container_group_id
    assert gid == groups[0]["ContainerGroupId"]
    assert admin.get("/calls")["by_action"]["CreateContainerGroup"]["outcomes"] == {"Dropped": 1, "OK": 1}


def test_faults_from_the_config_file(make_fake) -> None:
    f = make_fake({"faults": {"errors": [{"code": "ServiceUnavailable", "times": 1}]}})
    c = sdk_client(f)
    with pytest.raises(ServerException):
        _describe(c)
    _describe(c)


def test_bad_fault_spec_is_a_clear_400(admin) -> None:
    r = requests.put(admin.base + "/faults", json={"errors": [{"rate": 2}]}, timeout=5)
    assert r.status_code == 400 and "errors[0]" in r.json()["error"]
    r = requests.put(admin.base + "/faults", json={"latncy": {}}, timeout=5)
    assert r.status_code == 400 and "latncy" in r.json()["error"]


def test_admin_groups_create_delete_and_health(client, admin) -> None:
    assert admin.get("/health")["ok"] is True
    orphan = admin.post(
        "/groups",
        {"ContainerGroupName": "orphan-1", "Tag": [{"Key": "ClusterName", "Value": "old"}], "Status": "Running"},
    )
    g = describe(client, orphan["ContainerGroupId"])
    assert g.status == "Running" and [(t.key, t.value) for t in g.tags] == [("ClusterName", "old")]
    full = admin.get(f"/groups/{orphan['ContainerGroupId']}")
    assert full["Fake"]["RealContainers"] == [] and full["Events"]
    admin.delete(f"/groups/{orphan['ContainerGroupId']}")
    assert admin.get("/groups")["groups"] == []
    r = requests.get(admin.base + "/groups/eci-nope", timeout=5)
    assert r.status_code == 400 and r.json()["code"] == "InvalidParameter.NotFound"
    assert requests.get(admin.base + "/nothing", timeout=5).status_code == 404


def test_state_file_keeps_groups_across_restart(make_fake, tmp_path) -> None:
    state = str(tmp_path / "state.json")
    f1 = make_fake(state_file=state)
    c1 = sdk_client(f1)
    gid = c1.create_container_group(create_request(client_token="tok-a")).body.container_group_id
    job = c1.create_container_group(
        create_request(
            name="job-1",
            containers=[
                m.CreateContainerGroupRequestContainer(name="j", image="busybox", command=["sh", "-c", "exit 5"])
            ],
            restart_policy="Never",
        )
    ).body.container_group_id
    wait_status(c1, job, "Failed")
    f1.stop()
    f2 = make_fake(state_file=state)
    c2 = sdk_client(f2)
    g = describe(c2, gid)
    assert g.status == "Running" and g.container_group_name == "web-1"
    assert describe(c2, job).containers[0].current_state.exit_code == 5
    assert c2.create_container_group(create_request(client_token="tok-a")).body.container_group_id == gid
    new = c2.create_container_group(create_request(name="web-2")).body.container_group_id
    assert describe(c2, new).intranet_ip != g.intranet_ip


def test_running_process_is_restarted_after_a_fake_restart(make_fake, tmp_path) -> None:
    state = str(tmp_path / "state.json")
    f1 = make_fake(state_file=state)
    c1 = sdk_client(f1)
    gid = c1.create_container_group(
        create_request(
            containers=[m.CreateContainerGroupRequestContainer(name="s", image="busybox", command=["sleep", "300"])]
        )
    ).body.container_group_id
    wait_status(c1, gid, "Running")
    for _ in range(200):
        if (gid, "s") in f1.runner.procs:
            break
        time.sleep(0.02)
    f1.stop()
    f2 = make_fake(state_file=state)
    c2 = sdk_client(f2)
    for _ in range(200):
        g = describe(c2, gid)
        if g.containers[0].restart_count == 1 and g.containers[0].current_state.state == "Running":
            break
        time.sleep(0.02)
    assert g.containers[0].restart_count == 1
    assert g.containers[0].previous_state.exit_code == 137


def _start_cli(args: list[str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, *args, "--port", "0", "--access-key-id", AK, "--access-key-secret", SK],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, line


@pytest.mark.parametrize("entry", [["-m", "vkeci", "fake-eci"], ["-m", "fakes.eci"], ["vkeci.py", "fake-eci"]])
def test_cli_prints_the_endpoint_first_and_serves(entry) -> None:
    proc, line = _start_cli(entry)
    try:
        assert line.startswith("ECI endpoint: http://127.0.0.1:"), line
        endpoint = line.strip().split("http://", 1)[1]

        class _F:
            pass

        f = _F()
        f.endpoint = endpoint  # type: ignore[attr-defined]
        c = sdk_client(f)  # type: ignore[arg-type]
        body = c.describe_regions(m.DescribeRegionsRequest()).body
        assert body.regions[0].region_id == "cn-hangzhou"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_cli_rejects_a_bad_config(tmp_path) -> None:
    cfg = tmp_path / "fake.yaml"
    cfg.write_text("scheduling_delay_s: soon\n")
    out = subprocess.run(
        [sys.executable, "-m", "fakes.eci", "--port", "0", "--config", str(cfg)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2 and "scheduling_delay_s" in out.stderr


def test_cli_config_file(tmp_path) -> None:
    cfg = tmp_path / "fake.yaml"
    cfg.write_text(
        json.dumps(
            {
                "region": "ap-southeast-1",
                "security_groups": ["sg-x"],
                "vswitches": [{"id": "vsw-x", "zone": "ap-southeast-1a", "cidr": "192.168.0.0/24"}],
                "faults": {"latency": {"*": 0}},
            }
        )
    )
    proc, line = _start_cli(["-m", "fakes.eci", "--config", str(cfg)])
    try:
        admin = Admin.__new__(Admin)
        admin.base = line.strip().split(" ", 2)[2] + "/_fake"
        assert admin.get("/health")["ok"]
        r = admin.post("/groups", {"RegionId": "ap-southeast-1", "SecurityGroupId": "sg-x", "VSwitchId": "vsw-x"})
        assert admin.get(f"/groups/{r['ContainerGroupId']}")["IntranetIp"] == ""  # still Scheduling (1 s default)
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0


def test_env_var_names_for_cli_defaults() -> None:
    env = dict(os.environ, FAKE_ECI_ACCESS_KEY_ID="env-ak", FAKE_ECI_ACCESS_KEY_SECRET="env-sk")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fakes.eci", "--port", "0"], cwd=ROOT, stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        endpoint = proc.stdout.readline().strip().split("http://", 1)[1]

        class _F:
            pass

        f = _F()
        f.endpoint = endpoint  # type: ignore[attr-defined]
        assert sdk_client(f, ak="env-ak", sk="env-sk").describe_regions(m.DescribeRegionsRequest()).status_code == 200  # type: ignore[arg-type]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_stopped_fake_answers_nothing(make_fake) -> None:
    f = make_fake()
    c = sdk_client(f)
    c.describe_regions(m.DescribeRegionsRequest())  # opens a keep-alive connection
    f.stop()
    with pytest.raises(UnretryableException):
        c.describe_regions(m.DescribeRegionsRequest())


def test_admin_forced_terminal_status_applies_to_simulated_containers(client, admin) -> None:
    gid = admin.post("/groups", {"ContainerGroupName": "done-1", "Status": "Succeeded"})["ContainerGroupId"]
    g = describe(client, gid)
    assert g.status == "Succeeded" and g.containers[0].current_state.state == "Terminated"
    assert g.containers[0].current_state.exit_code == 0


def test_cli_log_requests(tmp_path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fakes.eci",
            "--port",
            "0",
            "--access-key-id",
            AK,
            "--access-key-secret",
            SK,
            "--log-requests",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        endpoint = proc.stdout.readline().strip().split("http://", 1)[1]

        class _F:
            pass

        f = _F()
        f.endpoint = endpoint  # type: ignore[attr-defined]
        sdk_client(f).describe_regions(m.DescribeRegionsRequest())  # type: ignore[arg-type]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert "fake-eci: DescribeRegions -> 200 OK" in err
    assert SK not in err


def test_offline_refuses_connections_keeps_the_groups_and_comes_back_on_the_same_port(fake, admin) -> None:
    import socket

    client = sdk_client(fake)
    gid = client.create_container_group(create_request()).body.container_group_id
    fake.go_offline()
    with pytest.raises(ConnectionRefusedError), socket.create_connection((fake.host, fake.port), timeout=2):
        pass
    with pytest.raises(UnretryableException, match="refused"):
        _describe(client)
    fake.come_online()
    assert describe(client, gid).container_group_id == gid
    assert admin.get("/health")["ok"]
