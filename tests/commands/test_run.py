"""`vkeci run` wiring: flags, configuration errors, the kubelet API's view of the pod cache."""

import argparse
import re

import pytest

from vkeci.commands.run import add_arguments, load_config, run


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_flags_override_the_environment(monkeypatch):
    monkeypatch.setenv("ECI_REGION", "cn-beijing")
    monkeypatch.setenv("VKUBELET_NODE_NAME", "from-env")
    config = load_config(parse("--region", "cn-hangzhou", "--status-interval", "0.5"))
    assert config.region == "cn-hangzhou" and config.node_name == "from-env" and config.status_interval == 0.5


def test_timings_have_kubelet_defaults():
    args = parse()
    assert (args.lease_duration, args.lease_interval, args.node_status_interval) == (40, 10.0, 60.0)
    assert args.finished_retention == 600.0 and not args.decommission


def test_flag_defaults_come_from_the_settings():
    # Each default is written once, in config.PodSettings / NodeSettings / Config.
    from vkeci.config import Config, NodeSettings, PodSettings

    args, pods, node = parse(), PodSettings(), NodeSettings()
    assert (args.transition_status_interval, args.full_status_interval) == (
        pods.transition_interval,
        pods.full_status_interval,
    )
    assert (args.sweep_interval, args.finished_retention, args.watch_timeout) == (
        pods.sweep_interval,
        pods.finished_retention,
        pods.watch_timeout,
    )
    assert (args.lease_duration, args.lease_interval, args.node_status_interval, args.ping_interval) == (
        node.lease_duration,
        node.lease_interval,
        node.node_status_interval,
        node.ping_interval,
    )
    assert args.drain_timeout == node.drain_timeout
    assert args.lost_check_interval == pods.lost_check_interval == 10.0
    assert (args.ping_retry_interval, args.eci_unreachable_after, args.eci_refused_failures) == (
        node.ping_retry_interval,
        node.eci_unreachable_after,
        node.eci_refused_failures,
    )
    config = Config()
    assert (config.status_interval, config.resync_interval, config.workers) == (
        pods.status_interval,
        pods.resync_interval,
        pods.workers,
    )


def test_bad_configuration_is_one_line_and_exit_2(monkeypatch, capsys):
    placed(monkeypatch)
    monkeypatch.setenv("VKUBELET_NODE_IP", "10.0.0.1")
    assert run(parse("--workers", "0")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--workers" in err


def test_missing_region_is_reported(monkeypatch, capsys):
    monkeypatch.delenv("ECI_REGION", raising=False)
    assert run(parse()) == 2
    assert "ECI_REGION is not set" in capsys.readouterr().err


def placed(monkeypatch) -> None:
    """Everything `run` requires but the InternalIP."""
    monkeypatch.setenv("ECI_REGION", "cn-hangzhou")
    monkeypatch.setenv("ECI_SECURITY_GROUP", "sg-1")
    monkeypatch.setenv("ECI_VSWITCH", "vsw-a")
    monkeypatch.setenv("VKECI_CONFIG", "")


def test_missing_node_ip_outside_a_pod_is_one_line_naming_both_settings(monkeypatch, capsys):
    placed(monkeypatch)
    monkeypatch.delenv("VKUBELET_NODE_IP", raising=False)
    monkeypatch.delenv("VKUBELET_POD_IP", raising=False)
    assert run(parse()) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "VKUBELET_NODE_IP" in err and "VKUBELET_POD_IP" in err and "--internal-ip" in err


def test_run_refuses_to_start_without_what_check_requires_and_lists_it_all_at_once(monkeypatch, capsys):
    # R1, R2: region alone used to start a node whose every pod failed for want of a vSwitch.
    for name in ("ECI_SECURITY_GROUP", "ECI_VSWITCH", "VKUBELET_NODE_IP", "VKUBELET_POD_IP"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ECI_REGION", "cn-hangzhou")
    monkeypatch.setenv("VKECI_CONFIG", "")
    assert run(parse()) == 2
    err = capsys.readouterr().err
    assert err.startswith("vkeci run: 3 problems in the configuration:")
    for needed in ("ECI_SECURITY_GROUP is not set", "ECI_VSWITCH is not set", "VKUBELET_NODE_IP"):
        assert needed in err


def test_every_bad_value_is_reported_in_one_run(monkeypatch, capsys):
    placed(monkeypatch)
    monkeypatch.setenv("VKUBELET_NODE_IP", "10.0.0.1")
    monkeypatch.setenv("KUBELET_PORT", "99999")
    assert run(parse("--workers", "0", "--log-format", "xml")) == 2
    err = capsys.readouterr().err
    assert "3 problems" in err and "--workers = '0'" in err and "--log-format = 'xml'" in err
    assert "KUBELET_PORT = '99999'" in err


def test_node_ip_wins_over_the_pod_ip_and_loopback_is_taken_when_given(monkeypatch):
    monkeypatch.setenv("VKECI_CONFIG", "")
    monkeypatch.setenv("VKUBELET_POD_IP", "10.0.0.7")
    assert load_config(parse()).internal_ip == "10.0.0.7"
    monkeypatch.setenv("VKUBELET_NODE_IP", "127.0.0.1")
    assert load_config(parse()).internal_ip == "127.0.0.1"


def test_a_node_ip_that_is_no_ip_is_refused(monkeypatch):
    from vkeci.config import ConfigError

    monkeypatch.setenv("VKECI_CONFIG", "")
    monkeypatch.setenv("VKUBELET_NODE_IP", "node-1.local")
    with pytest.raises(
        ConfigError, match=re.escape("VKUBELET_NODE_IP = 'node-1.local' is invalid: expected an IP address")
    ):
        load_config(parse())


def test_health_flags_default_to_the_settings():
    from vkeci.config import HealthSettings

    args = parse()
    assert (args.health_address, args.health_port) == (HealthSettings.address, HealthSettings.port)
    assert (HealthSettings.address, HealthSettings.port) == ("127.0.0.1", 10248)
    assert parse("--health-port", "0").health_port == 0


def test_eci_limits_flag():
    args = parse("--eci-limit", "CreateContainerGroup=500", "--eci-limit", "DeleteContainerGroup=60")
    assert dict(args.eci_limit) == {"CreateContainerGroup": 500, "DeleteContainerGroup": 60}
    with pytest.raises(SystemExit):
        parse("--eci-limit", "CreateContainerGroup=lots")


def test_run_sets_the_daemons_gc_thresholds_even_when_kubernetes_is_unreachable(monkeypatch, tmp_path):
    import gc
    import signal

    from vkeci.commands.run import GC_THRESHOLDS

    before = gc.get_threshold()
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    placed(monkeypatch)
    monkeypatch.setenv("VKUBELET_NODE_IP", "127.0.0.1")
    try:
        code = run(parse("--kubeconfig", str(tmp_path / "missing"), "--no-kubelet-api", "--health-port", "0"))
        assert gc.get_threshold() == GC_THRESHOLDS
    finally:
        gc.set_threshold(*before)
        for signum, handler in handlers.items():  # run() installs its own: give pytest its handlers back
            signal.signal(signum, handler)
    assert code == 1  # the kubeconfig is missing: one error, no traceback, exit 1


def test_the_stop_message_claims_a_registration_only_when_there_was_one():
    # R17
    from vkeci.commands.run import stop_message

    assert "stays registered" in stop_message(True)
    assert "before the node was registered" in stop_message(False) and "stays" not in stop_message(False)


def test_bad_values_and_missing_settings_come_in_one_message_without_derived_ones(monkeypatch, capsys):
    placed(monkeypatch)
    monkeypatch.delenv("ECI_SECURITY_GROUP", raising=False)
    monkeypatch.setenv("VKUBELET_NODE_IP", "not-an-ip")
    assert run(parse("--kubelet-port", "0")) == 2
    err = capsys.readouterr().err
    assert "3 problems" in err and "--kubelet-port = '0'" in err and "ECI_SECURITY_GROUP is not set" in err
    assert "VKUBELET_NODE_IP = 'not-an-ip' is invalid" in err
    assert "InternalIP is not set" not in err  # follows from the bad value: not a second problem
