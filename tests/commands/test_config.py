import pytest

from vkeci.config import Config, ConfigError, Secret, load, public_view


def test_defaults_when_nothing_is_set():
    config = load(env={})
    assert config == Config()
    assert config.taint_key == "virtual-kubelet.io/provider"
    assert config.kubelet_port == 10250


def test_go_provider_environment_names_are_accepted():
    env = {
        "ECI_REGION": "cn-shanghai",
        "ECI_ACCESS_KEY": "AKID",
        "ECI_SECRET_KEY": "very-secret",
        "ECI_SECURITY_GROUP": "sg-1",
        "ECI_VSWITCH": "vsw-a, vsw-b,,",
        "ECI_CLUSTER_NAME": "prod",
        "ECI_QUOTA_CPU": "500",
        "ECI_QUOTA_MEMORY": "2Ti",
        "ECI_QUOTA_POD": "300",
        "KUBELET_PORT": "10260",
        "VKUBELET_TAINT_KEY": "k",
        "VKUBELET_TAINT_VALUE": "v",
        "VKUBELET_TAINT_EFFECT": "NoExecute",
        "DEFAULT_NODE_NAME": "vk-eci-1",
        "ECI_ENDPOINT": "127.0.0.1:8080",
        "ECI_PROTOCOL": "http",
    }
    config = load(env=env)
    assert config.region == "cn-shanghai"
    assert config.vswitches == ("vsw-a", "vsw-b")
    assert config.quota_pods == 300 and config.kubelet_port == 10260
    assert config.taint_effect == "NoExecute" and config.node_name == "vk-eci-1"
    assert config.access_key_secret is not None and config.access_key_secret.reveal() == "very-secret"
    assert config.endpoint() == "127.0.0.1:8080" and config.eci_protocol == "http"


def test_any_region_is_accepted_without_a_whitelist():
    assert load(env={"ECI_REGION": "xx-newregion-9"}).endpoint() == "eci.xx-newregion-9.aliyuncs.com"


def test_flags_override_env_override_file(tmp_path):
    path = tmp_path / "vkeci.yaml"
    path.write_text("region: from-file\ncluster_name: file-cluster\nnode_name: file-node\nvswitches: [a, b]\n")
    config = load(
        flags={"region": "from-flag", "node_name": None},
        env={"ECI_REGION": "from-env", "ECI_CLUSTER_NAME": "env-cluster"},
        config_file=str(path),
    )
    assert config.region == "from-flag"
    assert config.cluster_name == "env-cluster"
    assert config.node_name == "file-node"
    assert config.vswitches == ("a", "b")


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"ECI_QUOTA_CPU": "lots"}, ["ECI_QUOTA_CPU", "'lots'", "CPU quantity"]),
        ({"KUBELET_PORT": "70000"}, ["KUBELET_PORT", "'70000'", "between 1 and 65535"]),
        ({"VKUBELET_TAINT_EFFECT": "Never"}, ["VKUBELET_TAINT_EFFECT", "NoSchedule"]),
        ({"ECI_ENDPOINT": "http://x:1"}, ["ECI_ENDPOINT", "without a scheme"]),
        ({"DEFAULT_NODE_NAME": "Bad_Name"}, ["DEFAULT_NODE_NAME", "DNS-1123"]),
    ],
)
def test_invalid_values_fail_with_one_line_naming_setting_value_and_expectation(env, names):
    with pytest.raises(ConfigError) as info:
        load(env=env)
    message = str(info.value)
    assert "\n" not in message
    for name in names:
        assert name in message


def test_secret_never_appears_in_errors_reprs_or_public_view():
    config = load(env={"ECI_ACCESS_KEY": "AKID-123", "ECI_SECRET_KEY": "s3cr3t-value"})
    assert "s3cr3t-value" not in repr(config)
    assert "s3cr3t-value" not in str(public_view(config))
    assert public_view(config)["access_key_secret"] == "set"
    assert repr(Secret("x")) == "Secret('***')"


def test_bad_file_is_reported_with_its_path(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("regoin: cn-hangzhou\n")
    with pytest.raises(ConfigError, match="unknown setting 'regoin'"):
        load(env={}, config_file=str(path))
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load(env={}, config_file=str(path))


def test_require_names_the_environment_variable():
    with pytest.raises(ConfigError, match="ECI_SECURITY_GROUP is not set"):
        load(env={}).require("security_group")


def test_translation_settings_are_flags_env_and_yaml_keys(tmp_path):
    from vkeci.commands.run import CONFIG_FLAGS

    names = {"cluster_dns", "cluster_domain", "api_server", "zone_id", "resource_group_id"}
    assert names <= {name for name, _ in CONFIG_FLAGS}
    path = tmp_path / "config.yaml"
    path.write_text("cluster_dns: [10.96.0.10, 10.96.0.11]\napi_server: 10.0.0.1:6443\nzone_id: cn-hangzhou-h\n")
    config = load(config_file=str(path), env={"CLUSTER_DOMAIN": "corp.local", "ECI_RESOURCE_GROUP_ID": "rg-1"})
    assert config.cluster_dns == ("10.96.0.10", "10.96.0.11") and config.api_server == "10.0.0.1:6443"
    assert (config.zone_id, config.cluster_domain, config.resource_group_id) == ("cn-hangzhou-h", "corp.local", "rg-1")
    assert load(env={}).cluster_domain == "cluster.local"


@pytest.mark.parametrize(
    ("env", "shown"),
    [
        ({"CLUSTER_DNS": "10.96.0.10,kube-dns"}, "CLUSTER_DNS = '10.96.0.10,kube-dns' is invalid: expected a comma"),
        ({"API_SERVER": "10.0.0.1"}, "API_SERVER = '10.0.0.1' is invalid: expected host:port"),
        ({"API_SERVER": "https://10.0.0.1:6443"}, "API_SERVER = 'https://10.0.0.1:6443' is invalid"),
    ],
)
def test_bad_translation_settings_are_one_line_naming_the_setting_and_the_fix(env, shown):
    with pytest.raises(ConfigError) as err:
        load(env=env)
    assert str(err.value).startswith(shown) and "\n" not in str(err.value)


def test_all_bad_values_are_reported_at_once_one_line_each():
    # R2: a bad value used to stop at the first one.
    env = {"ECI_QUOTA_POD": "many", "KUBELET_PORT": "0", "VKECI_LOG_LEVEL": "loud"}
    with pytest.raises(ConfigError) as info:
        load(env=env, flags={"workers": "-1"})
    assert len(info.value.problems) == 4
    assert str(info.value).startswith("4 problems in the configuration:")
    for source in ("ECI_QUOTA_POD", "KUBELET_PORT", "VKECI_LOG_LEVEL", "--workers"):
        assert sum(problem.startswith(source) for problem in info.value.problems) == 1


def test_an_unknown_file_key_gets_the_closest_setting(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("regoin: cn-hangzhou\nvswitch: vsw-a\n")
    with pytest.raises(ConfigError) as info:
        load(env={}, config_file=str(path))
    assert "did you mean 'region'?" in info.value.problems[0]
    assert "did you mean 'vswitches'?" in info.value.problems[1]


def test_the_readme_names_every_setting_and_states_the_codes_defaults():
    # Admin review R7/R9: the README said --transition-status-interval defaults to 0.5 s; the code says 0.25.
    import argparse
    import re
    from pathlib import Path

    from vkeci.commands.run import add_arguments
    from vkeci.config import SETTINGS, default

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for setting in SETTINGS:
        assert f"`{setting.name}`" in readme or f"`{setting.env[0]}`" in readme, setting.name
    rows = [line.split(" | ") for line in readme.splitlines() if line.startswith("| `") and line.count(" | ") >= 3]
    checked = 0
    for cells in rows:
        names = re.findall(r"`([a-z_]+)`", cells[0])
        shown = [part.strip() for part in cells[2].split(" / ")]
        if not names or len(names) != len(shown) or any(n not in {s.name for s in SETTINGS} for n in names):
            continue
        for name, text in zip(names, shown, strict=True):
            literal = re.fullmatch(r"`([^`]*)`", text)
            if literal:
                value = default(Config, name)
                assert literal.group(1) == (str(value).lower() if isinstance(value, bool) else str(value)), name
                checked += 1
    assert checked >= 8, "the configuration table changed shape: update this test"
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    flags = {a.option_strings[0]: a.default for a in parser._actions if a.option_strings}
    for flag, seconds in re.findall(r"`(--[a-z-]+)` \(([0-9.]+) s\)", readme):
        assert float(seconds) == float(flags[flag]), flag
    for env, value in re.findall(r"`(VKECI_[A-Z_]+)` \((?:default )?([0-9.]+)(?: s)?\)", readme):
        [setting] = [s for s in SETTINGS if env in s.env]
        assert float(value) == float(default(Config, setting.name)), env
