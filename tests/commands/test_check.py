"""`vkeci check`: one line per problem, secrets never shown."""

import argparse

import responses

from vkeci.commands.check import PERMISSIONS, Result, check_config, check_kube, run
from vkeci.config import Config, Secret

HOST = "https://api.test:6443"


def test_config_problems_name_the_setting():
    results = check_config(Config(region="cn-hangzhou"))
    failed = {r.name: r.detail for r in results if not r.ok}
    assert set(failed) == {"config security_group", "config vswitches"}
    assert "ECI_SECURITY_GROUP" in failed["config security_group"]
    assert Result("x", False, "why").line() == "FAIL x: why"


@responses.activate
def test_kube_permissions_are_checked_one_by_one(tmp_path):
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
        f"clusters: [{{name: c, cluster: {{server: '{HOST}', insecure-skip-tls-verify: true}}}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
    )
    responses.get(HOST + "/version", json={"gitVersion": "v1.35.4"})
    answers = [{"status": {"allowed": i != 2}} for i in range(len(PERMISSIONS))]
    for answer in answers:
        responses.post(HOST + "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", json=answer)
    results = check_kube(Config(kubeconfig=str(kubeconfig)))
    assert results[0].ok and "v1.35.4" in results[0].detail
    denied = [r for r in results if not r.ok]
    assert len(denied) == 1 and denied[0].name == "permission delete nodes"
    named = [r.name for r in results if "in default" in r.name or "in kube-node-lease" in r.name]
    assert "permission get endpointslices kubernetes in default" in named
    assert "permission update leases in kube-node-lease" in named


def test_run_never_prints_secrets(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.setenv("ECI_SECRET_KEY", "super-secret-value")
    monkeypatch.setenv("ECI_ACCESS_KEY", "AKID")
    args = argparse.Namespace(config_file=None)
    lines: list[str] = []
    code = run(args, out=lines.append)
    assert code == 1
    text = "\n".join(lines) + capsys.readouterr().err
    assert "super-secret-value" not in text
    assert all(line.startswith(("ok  ", "FAIL")) for line in lines)
    assert Secret("x").reveal() == "x"


def test_check_profile_reads_a_configmap_manifest_and_names_each_problem(tmp_path):
    import argparse

    from vkeci.commands.check import run

    good = tmp_path / "good.yaml"
    good.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: eci-profile, namespace: kube-system}\n"
        'data:\n  vSwitchIds: "vsw-a,vsw-b"\n  enableClusterIp: "true"\n  selectors: ""\n'
    )
    lines: list[str] = []
    assert run(argparse.Namespace(profile=str(good)), out=lines.append) == 0
    assert lines[0].startswith("ok   eci-profile: ") and "vswitches=('vsw-a', 'vsw-b')" in lines[0]
    assert lines[1].startswith("ok   eci-profile enableClusterIp: set to 'true' and not honoured")

    bad = tmp_path / "bad.yaml"
    bad.write_text('securityGroupId: "sg-a,sg-b"\nselectors: "[{]"\nvswitchIds: x\n')
    lines.clear()
    assert run(argparse.Namespace(profile=str(bad)), out=lines.append) == 1
    assert [line.split(":")[0] for line in lines] == [
        "FAIL eci-profile vswitchIds",
        "FAIL eci-profile securityGroupId",
        "FAIL eci-profile selectors",
    ]


def test_no_credentials_is_one_line_naming_every_source_and_no_sdk_traceback(tmp_path):
    # R4: the chain's failure used to read "no answer from the ECI endpoint (CredentialException)" after three
    # SDK tracebacks. A fresh interpreter with an empty HOME: the chain reads its settings when imported.
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "ECI_", "VKECI_"))}
    env.update(
        HOME=str(tmp_path),
        ALIBABA_CLOUD_ECS_METADATA_DISABLED="true",
        ECI_REGION="cn-hangzhou",
        ECI_ENDPOINT="127.0.0.1:1",
        ECI_PROTOCOL="http",
        KUBECONFIG=str(tmp_path / "missing"),
    )
    result = subprocess.run(
        [sys.executable, "-m", "vkeci", "check"], env=env, capture_output=True, text=True, timeout=60
    )
    eci = [line for line in result.stdout.splitlines() if line.startswith("FAIL ECI:")]
    assert len(eci) == 1, result.stdout
    assert "NoCredentials: no Alibaba Cloud credentials found; tried: the environment" in eci[0]
    for source in ("ECI_ACCESS_KEY", "ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ROLE_ARN", "ECS RAM role"):
        assert source in eci[0]
    assert "NoResponse" not in eci[0]
    assert "Traceback" not in result.stdout + result.stderr


def test_the_sdk_logger_goes_through_ours_without_a_traceback():
    import io
    import logging

    from vkeci import log as logmod

    stream = io.StringIO()
    logmod.setup("info", "text", stream=stream)
    sdk = logging.getLogger("credentials")
    sdk.addHandler(logging.StreamHandler(stream))  # what the SDK's modules do when imported
    logmod.adopt_sdk_loggers()
    try:
        raise RuntimeError("metadata said 404")
    except RuntimeError:
        sdk.warning("refresh failed", exc_info=True)
    sdk.info("chatter")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and "refresh failed" in lines[0]
    assert 'error="RuntimeError: metadata said 404"' in lines[0]


def test_the_eci_line_checks_the_region_against_ecis_answer():
    # R5: region cn-nowhere used to pass the ECI line and fail only at the dry-run placement.
    from dataclasses import replace

    from fakes.eci.server import FakeECI
    from vkeci.commands.check import check_eci

    with FakeECI.start(access_key_id="AK", access_key_secret="SK") as fake:
        config = Config(
            region="cn-hangzhou",
            access_key_id=Secret("AK"),
            access_key_secret=Secret("SK"),
            eci_endpoint=fake.endpoint,
            eci_protocol="http",
        )
        assert check_eci(config).ok
        wrong = check_eci(replace(config, region="cn-nowhere"))
    assert not wrong.ok
    assert "region 'cn-nowhere' is not one of its ECI regions (cn-hangzhou)" in wrong.detail
    assert "ECI_REGION" in wrong.detail
