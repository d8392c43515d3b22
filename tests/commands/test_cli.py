import subprocess
import sys

from vkeci import __version__
from vkeci.cli import main


def test_version(capsys):
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == f"vkeci {__version__}"


def test_launcher_and_module_behave_like_the_console_script():
    for argv in ([sys.executable, "vkeci.py", "version"], [sys.executable, "-m", "vkeci", "version"]):
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        assert out.strip() == f"vkeci {__version__}"


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().err


def test_only_the_chosen_commands_module_is_imported():
    code = "import sys; from vkeci.cli import main; main(['version']); print(sorted(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "vkeci.commands.run" not in out and "vkeci.commands.check" not in out and "vkeci.daemon" not in out


def _help(command: str, capsys) -> str:
    import pytest

    with pytest.raises(SystemExit):
        main([command, "--help"])
    return " ".join(capsys.readouterr().out.split())  # argparse wraps lines


def test_every_setting_but_the_secrets_has_one_flag_in_run_and_check_with_its_env_and_default(capsys):
    # R7, R9: the README says flags override the environment; quota_*, taint_* and schedule_strategy had none.
    from vkeci.config import SETTINGS, Config, default

    for command in ("run", "check"):
        text = _help(command, capsys)
        for setting in SETTINGS:
            flag = "--" + setting.name.replace("_", "-")
            if setting.secret:  # a flag would show it in `ps`: environment or file only
                assert flag not in text
                continue
            assert f"{flag} " in text, (command, flag)
            assert "$" + setting.env[0] in text, (command, setting.env[0])
            value = default(Config, setting.name)
            if value not in ("", (), None):
                shown = ",".join(value) if isinstance(value, tuple) else str(value).lower() if value is True else value
                assert f"default {shown}" in text, (command, setting.name)


def test_no_prefix_matching_of_flags(capsys):
    # R8: `--lease` was "ambiguous option", and `--region-x` style prefixes silently matched.
    import pytest

    with pytest.raises(SystemExit):
        main(["run", "--lease", "5"])
    assert "unrecognized arguments: --lease" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["check", "--regio", "cn-hangzhou"])


def test_the_go_providers_tls_variables_are_aliases(monkeypatch, tmp_path):
    # R20: APISERVER_CERT_LOCATION / APISERVER_KEY_LOCATION (Go provider, azure-aci) were ignored.
    import pytest

    from vkeci.commands.check import check_config
    from vkeci.config import ConfigError, load, require_for_run
    from vkeci.kubelet.tls import SelfSignedIssuer

    pair = SelfSignedIssuer("vk", ["10.0.0.1"]).issue()
    (tmp_path / "tls.crt").write_bytes(pair.cert_pem)
    (tmp_path / "tls.key").write_bytes(pair.key_pem)
    env = {
        "ECI_REGION": "cn-hangzhou",
        "ECI_SECURITY_GROUP": "sg-1",
        "ECI_VSWITCH": "vsw-a",
        "VKUBELET_NODE_IP": "10.0.0.1",
        "APISERVER_CERT_LOCATION": str(tmp_path / "tls.crt"),
        "APISERVER_KEY_LOCATION": str(tmp_path / "tls.key"),
    }
    config = load(env=env)
    assert (config.tls_cert_file, config.tls_key_file) == (
        env["APISERVER_CERT_LOCATION"],
        env["APISERVER_KEY_LOCATION"],
    )
    require_for_run(config)
    assert [r.ok for r in check_config(config) if r.name == "config tls"] == [True]
    half = load(env={**env, "APISERVER_KEY_LOCATION": ""})
    with pytest.raises(ConfigError, match=r"APISERVER_CERT_LOCATION .* is set but APISERVER_KEY_LOCATION"):
        require_for_run(half)
    unreadable = load(env={**env, "APISERVER_CERT_LOCATION": str(tmp_path / "nope.crt")})
    [tls] = [r for r in check_config(unreadable) if r.name == "config tls"]
    assert not tls.ok and "nope.crt" in tls.detail
