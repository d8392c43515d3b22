"""What the daemon writes back onto a pod besides its status (vkeci.core.writeback)."""

from vkeci import __version__
from vkeci.core.writeback import (
    group_summary,
    image_drift,
    missing_annotations,
    status_changed,
    with_stale_ips_deleted,
    write_back_annotations,
)


def test_status_changed_compares_conditions_by_type():
    current = {"phase": "Running", "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready"}]}
    assert not status_changed(current, {"phase": "Running", "conditions": [{"type": "Ready"}]})
    assert status_changed(current, {"conditions": [{"type": "Ready", "status": "True"}]})
    assert status_changed(current, {"phase": "Succeeded"})


def test_a_group_summary_keeps_only_what_is_read_later():
    group = {
        "ContainerGroupId": "eci-1",
        "Status": "Running",
        "Events": [{}],
        "Containers": [{"Name": "a", "Image": "i", "CurrentState": {}}],
    }
    assert group_summary(group) == {
        "ContainerGroupId": "eci-1",
        "Status": "Running",
        "Containers": [{"Name": "a", "Image": "i"}],
    }


def test_write_back_annotations_are_alibabas_and_skip_what_is_unknown():
    group = {"Cpu": 2, "Memory": 4, "ZoneId": "cn-hangzhou-h", "VSwitchId": "vsw-1"}
    wanted = write_back_annotations(group, group_id="eci-1", request_id="", token="u-1")
    assert wanted == {
        "k8s.aliyun.com/eci-instance-id": "eci-1",
        "k8s.aliyun.com/eci-instance-spec": "2.0-4.0Gi",
        "k8s.aliyun.com/eci-instance-zone": "cn-hangzhou-h",
        "k8s.aliyun.com/eci-instance-cpu": "2",
        "k8s.aliyun.com/eci-instance-mem": "4Gi",
        "k8s.aliyun.com/eci-vswitch": "vsw-1",
        "k8s.aliyun.com/eci-client-token": "u-1",
        "k8s.aliyun.com/vk-version": __version__,
    }
    pod = {"metadata": {"annotations": dict(wanted)}}
    assert missing_annotations(pod, wanted) == {}
    assert missing_annotations({"metadata": {}}, wanted) == wanted


def test_image_drift_names_the_container_and_the_fix():
    pod = {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}
    assert image_drift(pod, {"Containers": [{"Name": "web", "Image": "nginx:2"}]}) == ""
    drift = image_drift(pod, {"Containers": [{"Name": "web", "Image": "nginx:1"}]})
    assert "spec.containers[0].image" in drift and "delete the pod" in drift


def test_a_new_address_replaces_the_old_one_in_the_status_patch():
    """podIPs/hostIPs merge by ip: a recreated group's new address alone would leave two IPs (422 from the API)."""
    current = {"podIP": "10.1.0.10", "podIPs": [{"ip": "10.1.0.10"}], "hostIPs": [{"ip": "10.1.0.10"}]}
    new = {"podIP": "10.1.0.11", "podIPs": [{"ip": "10.1.0.11"}], "hostIPs": [{"ip": "10.1.0.11"}], "phase": "Running"}
    patch = with_stale_ips_deleted(current, new)
    assert patch["podIPs"] == [{"ip": "10.1.0.11"}, {"ip": "10.1.0.10", "$patch": "delete"}]
    assert patch["hostIPs"] == [{"ip": "10.1.0.11"}, {"ip": "10.1.0.10", "$patch": "delete"}]
    assert patch["podIP"] == "10.1.0.11" and patch["phase"] == "Running"
    assert with_stale_ips_deleted(new, new) == new


def test_the_verdict_is_the_phase_and_the_ready_condition():
    from vkeci.core.writeback import verdict

    running = {
        "phase": "Running",
        "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
    }
    assert verdict(running) == ("Running", "True")
    marked = {**running, "conditions": [{"type": "Ready", "status": "False", "reason": "NodeNotReady"}]}
    assert verdict(marked) == ("Running", "False") != verdict(running)
    assert verdict({}) == ("", "")
