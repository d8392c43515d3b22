"""Real-world manifests (tests/data/manifests) through the translation and `vkeci translate`."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from vkeci.cli import main
from vkeci.commands.translate import _documents, build_inputs
from vkeci.core.translate import Defaults, Missing, Rejected, translate

MANIFESTS = Path(__file__).resolve().parents[1] / "data" / "manifests"
DEFAULTS = Defaults(region="cn-hangzhou", security_group="sg-default", vswitches=("vsw-a",), cluster_name="prod")


def load(name: str) -> tuple[dict[str, Any], Any]:
    pod, objects, _ = build_inputs(_documents((MANIFESTS / name).read_text()))
    return dict(pod), objects


def files(request: dict[str, Any], volume: str) -> dict[str, bytes]:
    found = next(v for v in request["Volume"] if v["Name"] == volume)
    return {f["Path"]: base64.b64decode(f["Content"]) for f in found["ConfigFileVolume"]["ConfigFileToPath"]}


def test_nginx_deployment_pod_with_projected_token_volume() -> None:
    pod, objects = load("nginx-deployment-pod.yaml")
    result = translate(pod, objects, DEFAULTS)
    request = result.request
    (container,) = request["Container"]
    assert container["Image"] == "nginx:1.25.3" and "Command" not in container and "Arg" not in container
    assert container["Port"] == [{"Port": 80, "Protocol": "TCP"}]
    assert container["ReadinessProbe"]["HttpGet"] == {"Path": "/", "Port": 80, "Scheme": "HTTP"}
    assert container["LivenessProbe"]["TcpSocket"] == {"Port": 80}
    assert container["Cpu"] == 0.5 and container["Memory"] == 0.5
    assert (request["Cpu"], request["Memory"]) == (0.5, 1.0), "0.5 vCPU / 0.5 GiB rounds up to 0.5 / 1"
    token_files = files(request, "kube-api-access-8k2lz")
    assert set(token_files) == {"token", "ca.crt", "namespace"}
    assert token_files["namespace"] == b"default"
    assert token_files["ca.crt"].startswith(b"-----BEGIN CERTIFICATE-----\nMIIBdzCC")
    assert request["TerminationGracePeriodSeconds"] == 30
    assert request["ContainerGroupName"].startswith("default-nginx-deployment-7c5ddbdf54-x2v9k-")
    assert request["ClientToken"] == "4d3c2b1a-0f9e-4d8c-b7a6-5f4e3d2c1b0a"
    assert {t["Key"]: t["Value"] for t in request["Tag"]}["ClusterName"] == "prod"


def test_job_with_configmap_and_secret_volumes_and_env() -> None:
    pod, objects = load("job-with-config.yaml")
    request = translate(pod, objects, DEFAULTS).request
    assert request["RestartPolicy"] == "Never" and request["ActiveDeadlineSeconds"] == 3600
    (init,) = request["InitContainer"]
    assert init["Command"] == ["sh", "-c"] and init["Arg"] == ["cp /config/report.tmpl /work/ && echo fetched"]
    (main_container,) = request["Container"]
    assert main_container["Command"] == ["/app/report"]
    assert main_container["Arg"][3] == "postgres.batch.svc.cluster.local:5432", "$(DB_HOST) is expanded in args"
    env = {e["Key"]: e.get("Value", e.get("FieldRef")) for e in main_container["EnvironmentVar"]}
    assert env["DB_PASSWORD"] == "s3cr3t-password-1"
    assert env["POD_IP"] == {"FieldPath": "status.podIP"}
    assert env["MEMORY_LIMIT_MI"] == "2048"
    assert env["REPORT_LOG_LEVEL"] == "info" and "REPORT_logo.png" not in env
    config = files(request, "config")
    assert config["report.tmpl"] == "Quarterly report — Überblick 四半期\n{{ .Total }}".encode()
    assert config["assets/logo.png"][:8] == b"\x89PNG\r\n\x1a\n"
    modes = {
        f["Path"]: f.get("Mode")
        for v in request["Volume"]
        if v["Name"] == "config"
        for f in v["ConfigFileVolume"]["ConfigFileToPath"]
    }
    assert modes["assets/logo.png"] == 0o444
    secrets = files(request, "secrets")
    assert secrets["tls.key"] == bytes(range(10)), "binary secret bytes survive, lengths not a multiple of 3"
    assert next(v for v in request["Volume"] if v["Name"] == "secrets")["ConfigFileVolume"]["DefaultMode"] == 0o400
    assert next(v for v in request["Volume"] if v["Name"] == "work")["EmptyDirVolume"] == {"SizeLimit": "5Gi"}


def test_spot_pod_with_eip_and_annotations() -> None:
    pod, objects = load("spot-eip.yaml")
    request = translate(pod, objects, DEFAULTS).request
    assert request["SpotStrategy"] == "SpotWithPriceLimit" and request["SpotPriceLimit"] == 0.25
    assert request["SpotDuration"] == 0
    assert request["AutoCreateEip"] is True and request["EipBandwidth"] == 20 and request["EipISP"] == "BGP"
    assert request["VSwitchId"] == "vsw-zone-h,vsw-zone-i" and request["ScheduleStrategy"] == "VSwitchRandom"
    assert request["InstanceType"] == "2-4Gi,4-8Gi"
    assert request["RestartPolicy"] == "OnFailure"
    tags = {t["Key"]: t["Value"] for t in request["Tag"]}
    assert tags["team"] == "data" and tags["cost-center"] == "cc42" and tags["UID"]


def test_gpu_pod() -> None:
    pod, objects = load("gpu.yaml")
    result = translate(pod, objects, DEFAULTS)
    request = result.request
    assert request["InstanceType"] == "ecs.gn6i-c4g1.xlarge,ecs.gn6v-c8g1.2xlarge"
    assert "Cpu" not in request and "Memory" not in request
    assert request["Container"][0]["Gpu"] == 1
    assert request["EphemeralStorage"] == 50 and request["AutoMatchImageCache"] is True
    assert request["ImageRegistryCredential"] == [
        {"Server": "nvcr.io", "UserName": "$oauthtoken", "Password": "s3cr3t-ngc-key"}
    ], "the auth field of a dockerconfigjson is decoded"
    assert not result.warnings


def test_hostpath_pod_is_rejected_with_every_reason_and_alternative() -> None:
    pod, objects = load("hostpath-rejected.yaml")
    with pytest.raises(Rejected) as info:
        translate(pod, objects, DEFAULTS)
    fields = {p.field for p in info.value.problems}
    assert fields == {"spec.volumes[0].hostPath", "spec.hostNetwork", "spec.containers[0].securityContext.privileged"}
    text = str(info.value)
    assert "emptyDir" in text and "LoadBalancer" in text and "capabilities" in text
    assert text.startswith("pod ops/log-shipper cannot run on ECI (3 problems):")


def test_missing_secret_is_missing_not_rejected() -> None:
    pod, objects = load("job-with-config.yaml")
    objects = type(objects)(configmaps=objects.configmaps, secrets={}, tokens=objects.tokens)
    with pytest.raises(Missing) as info:
        translate(pod, objects, DEFAULTS)
    assert {ref.name for ref in info.value.refs} == {"report-secrets"}
    assert "s3cr3t" not in str(info.value)


@pytest.mark.parametrize("name", ["nginx-deployment-pod.yaml", "job-with-config.yaml", "spot-eip.yaml", "gpu.yaml"])
def test_cli_prints_the_request_as_json(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["translate", str(MANIFESTS / name), "--region", "cn-hangzhou", "--security-group", "sg-1"]
    assert main([*argv, "--vswitches", "vsw-a"]) == 0
    out, err = capsys.readouterr()
    request = json.loads(out)
    assert request["RegionId"] == "cn-hangzhou" and request["Container"]
    assert "s3cr3t-ngc-key" not in out, "registry passwords are masked unless --reveal-secrets"
    assert "Traceback" not in err


def test_cli_yaml_output_and_reveal(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["translate", str(MANIFESTS / "gpu.yaml"), "--format", "yaml", "--reveal-secrets"]) == 0
    out, _ = capsys.readouterr()
    assert yaml.safe_load(out)["ImageRegistryCredential"][0]["Password"] == "s3cr3t-ngc-key"


def test_cli_rejected_pod_exits_2_with_errors_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["translate", str(MANIFESTS / "hostpath-rejected.yaml")]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "spec.volumes[0].hostPath" in err and "spec.hostNetwork" in err


def test_cli_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["translate", str(tmp_path / "nope.yaml")]) == 1
    bad = tmp_path / "two.yaml"
    bad.write_text("kind: ConfigMap\nmetadata: {name: a}\n")
    assert main(["translate", str(bad)]) == 1
    assert "expected one Pod or one Deployment/ReplicaSet/StatefulSet/Job/CronJob" in capsys.readouterr().err


def test_cli_masks_secret_values_unless_asked(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["translate", str(MANIFESTS / "job-with-config.yaml")]) == 0
    masked = json.loads(capsys.readouterr().out)
    env = {e["Key"]: e.get("Value") for e in masked["Container"][0]["EnvironmentVar"]}
    assert env["DB_PASSWORD"] == "***" and env["REPORT_LOG_LEVEL"] == "info"
    secret_files = next(v for v in masked["Volume"] if v["Name"] == "secrets")["ConfigFileVolume"]["ConfigFileToPath"]
    assert {f["Content"] for f in secret_files} == {"***"}
    config_files = next(v for v in masked["Volume"] if v["Name"] == "config")["ConfigFileVolume"]["ConfigFileToPath"]
    assert "***" not in {f["Content"] for f in config_files}
    assert main(["translate", str(MANIFESTS / "nginx-deployment-pod.yaml")]) == 0
    token_volume = json.loads(capsys.readouterr().out)["Volume"][0]["ConfigFileVolume"]["ConfigFileToPath"]
    assert [f["Content"] == "***" for f in token_volume] == [True, False, False]
    assert main(["translate", str(MANIFESTS / "job-with-config.yaml"), "--reveal-secrets"]) == 0
    assert "s3cr3t-password-1" in capsys.readouterr().out


@pytest.fixture
def no_daemon_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing from the developer's environment: what a test sets is all `translate` sees."""
    import os

    for name in list(os.environ):
        if name.startswith(("ECI_", "VKECI_")):
            monkeypatch.delenv(name)


def test_cli_reads_the_same_configuration_as_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], no_daemon_env: None
) -> None:
    # R10: translate read neither the environment nor --config, defaulted to cn-hangzhou and said nothing.
    config = tmp_path / "vkeci.yaml"
    config.write_text("region: cn-shanghai\nvswitches: [vsw-a, vsw-b]\ncluster_name: prod\n")
    monkeypatch.setenv("ECI_SECURITY_GROUP", "sg-env")
    assert main(["translate", str(MANIFESTS / "nginx-deployment-pod.yaml"), "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    request = json.loads(out)
    assert (request["RegionId"], request["SecurityGroupId"], request["VSwitchId"]) == (
        "cn-shanghai",
        "sg-env",
        "vsw-a,vsw-b",
    )
    assert {"Key": "ClusterName", "Value": "prod"} in request["Tag"]
    assert "warning: the request has no" not in err


def test_cli_warns_when_the_request_has_no_placement(capsys: pytest.CaptureFixture[str], no_daemon_env: None) -> None:
    assert main(["translate", str(MANIFESTS / "nginx-deployment-pod.yaml")]) == 0
    err = capsys.readouterr().err
    for wire, env in (
        ("RegionId", "ECI_REGION"),
        ("SecurityGroupId", "ECI_SECURITY_GROUP"),
        ("VSwitchId", "ECI_VSWITCH"),
    ):
        assert f"warning: the request has no {wire}, which ECI requires: set {env}" in err


WORKLOAD_SPEC = {"containers": [{"name": "app", "image": "nginx:1.27"}]}


@pytest.mark.parametrize(
    ("kind", "body", "pod_name"),
    [
        ("Deployment", {"template": {"metadata": {"labels": {"app": "w"}}, "spec": WORKLOAD_SPEC}}, "w-xxxxx"),
        ("ReplicaSet", {"template": {"spec": WORKLOAD_SPEC}}, "w-xxxxx"),
        ("StatefulSet", {"template": {"spec": WORKLOAD_SPEC}}, "w-0"),
        ("Job", {"template": {"spec": {**WORKLOAD_SPEC, "restartPolicy": "Never"}}}, "w-xxxxx"),
        (
            "CronJob",
            {"jobTemplate": {"spec": {"template": {"spec": {**WORKLOAD_SPEC, "restartPolicy": "Never"}}}}},
            "w-xxxxx",
        ),
    ],
)
def test_cli_translates_a_workloads_pod_template(
    kind: str, body: dict, pod_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_daemon_env: None
) -> None:
    # R11: a Job used to get "expected exactly one Pod in the file, found 0".
    path = tmp_path / "w.yaml"
    path.write_text(
        yaml.safe_dump(
            {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "w", "namespace": "team"}, "spec": body}
        )
    )
    assert main(["translate", str(path), "--region", "cn-hangzhou"]) == 0
    out, err = capsys.readouterr()
    request = json.loads(out)
    assert request["Container"][0]["Image"] == "nginx:1.27" and request["HostName"] == pod_name
    assert f"note: translated the pod template of {kind} w (as pod {pod_name})" in err


def test_cli_refuses_a_daemonset_and_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ds.yaml"
    path.write_text(
        yaml.safe_dump(
            {"kind": "DaemonSet", "metadata": {"name": "agent"}, "spec": {"template": {"spec": WORKLOAD_SPEC}}}
        )
    )
    assert main(["translate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "DaemonSet agent: DaemonSet pods are not run on the ECI virtual node" in err and "nodeAffinity" in err
