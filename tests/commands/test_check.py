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
