"""Unit tests of the pieces: annotations, sizing, environment, volumes, identity."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vkeci.core import annotations as ann
from vkeci.core import identity, sizes
from vkeci.core.envvars import expand, service_link_vars
from vkeci.core.translate import Defaults, Missing, Objects, Rejected, needs, translate

DEFAULTS = Defaults(region="cn-hangzhou", security_group="sg-1", vswitches=("vsw-a", "vsw-b"))


def pod(**spec: Any) -> dict[str, Any]:
    annotations = spec.pop("annotations", {})
    base: dict[str, Any] = {"containers": [{"name": "app", "image": "nginx:1.25"}]}
    base.update(spec)
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "uid-1", "annotations": annotations}, "spec": base}


def request(**spec: Any) -> dict[str, Any]:
    return translate(pod(**spec), Objects(), DEFAULTS).request


# ---- annotations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotation", "value", "wire", "expected"),
    [
        (ann.VSWITCH, "vsw-1, vsw-2", "VSwitchId", "vsw-1,vsw-2"),
        (ann.SCHEDULE_STRATEGY, "VSwitchRandom", "ScheduleStrategy", "VSwitchRandom"),
        (ann.SECURITY_GROUP, "sg-9", "SecurityGroupId", "sg-9"),
        (ann.RAM_ROLE, "AliyunECIContainerGroupRole", "RamRoleName", "AliyunECIContainerGroupRole"),
        (ann.RESOURCE_GROUP, "rg-aek2", "ResourceGroupId", "rg-aek2"),
        (ann.AUTO_IMC, "true", "AutoMatchImageCache", True),
        (ann.AUTO_IMC_OLD, "true", "AutoMatchImageCache", True),
        (ann.IMC_ID, "imc-1", "ImageSnapshotId", "imc-1"),
        (ann.IMC_ID_OLD, "imc-2", "ImageSnapshotId", "imc-2"),
        (
            ann.ACR_INSTANCES,
            "cri-a,cn-beijing:cri-b",
            "AcrRegistryInfo",
            [{"InstanceId": "cri-a"}, {"InstanceId": "cri-b", "RegionId": "cn-beijing"}],
        ),
        (ann.PLAIN_HTTP_REGISTRY, "harbor.local:5000", "PlainHttpRegistry", "harbor.local:5000"),
        (ann.INSECURE_REGISTRY, "a.local,b.local", "InsecureRegistry", "a.local,b.local"),
        (ann.EPHEMERAL_STORAGE, "50Gi", "EphemeralStorage", 50),
        (ann.EPHEMERAL_STORAGE, "20G", "EphemeralStorage", 19),
        (ann.NTP_SERVER, "100.100.5.1,100.100.5.2", "NtpServer", ["100.100.5.1", "100.100.5.2"]),
        (ann.EIP_INSTANCE, "eip-1", "EipInstanceId", "eip-1"),
        (ann.INGRESS_BANDWIDTH, "10M", "IngressBandwidth", 10_000_000),
        (ann.EGRESS_BANDWIDTH, "1G", "EgressBandwidth", 1_000_000_000),
        (ann.CORE_PATTERN, "/pod/data/dump/core", "CorePattern", "/pod/data/dump/core"),
        (ann.COMPUTE_CATEGORY, "economy,general", "ComputeCategory", ["economy", "general"]),
        (ann.GPU_DRIVER_VERSION, "tesla=525.85.12", "GpuDriverVersion", "tesla=525.85.12"),
        (ann.CPU_OPTION_CORE, "2", "CpuOptionsCore", 2),
        (ann.CPU_OPTION_HT, "1", "CpuOptionsThreadsPerCore", 1),
        (ann.ENABLE_IPV6, "true", "Ipv6AddressCount", 1),
        (ann.PRIVATE_IP, "192.168.1.20", "PrivateIpAddress", "192.168.1.20"),
        (ann.FIXED_IP, "true", "FixedIp", "true"),
        (ann.FIXED_IP_RETAIN_HOUR, "48", "FixedIpRetainHour", 48),
    ],
)
def test_annotation_to_request_field(annotation: str, value: str, wire: str, expected: Any) -> None:
    assert request(annotations={annotation: value})[wire] == expected


def test_annotations_override_daemon_defaults() -> None:
    sent = request(annotations={ann.VSWITCH: "vsw-z", ann.SECURITY_GROUP: "sg-z"})
    assert sent["VSwitchId"] == "vsw-z" and sent["SecurityGroupId"] == "sg-z"
    plain = request()
    assert plain["VSwitchId"] == "vsw-a,vsw-b" and plain["ScheduleStrategy"] == "VSwitchOrdered"


def test_spot_eip_and_tags_annotations() -> None:
    sent = request(
        annotations={
            ann.SPOT_STRATEGY: "SpotAsPriceGo",
            ann.SPOT_DURATION: "0",
            ann.SPOT_FALLBACK: "true",
            ann.WITH_EIP: "true",
            ann.EIP_BANDWIDTH: "50",
            ann.EIP_ISP: "BGP_PRO",
            ann.EIP_PACKAGE: "cbwp-1",
            ann.CUSTOM_TAGS: "env:test, owner:alice",
            ann.CUSTOM_HOSTS: '[{"host":"db.local","ip":"10.0.0.9"},{"host":["a","b"],"ip":"10.0.0.8"}]',
            ann.CUSTOM_DNS: '{"nameservers":["1.1.1.1"],"options":[{"name":"ndots","value":"2"}]}',
        }
    )
    assert sent["SpotStrategy"] == "SpotAsPriceGo" and sent["SpotDuration"] == 0 and sent["StrictSpot"] is False
    assert sent["AutoCreateEip"] is True and sent["EipBandwidth"] == 50 and sent["EipISP"] == "BGP_PRO"
    assert sent["EipCommonBandwidthPackage"] == "cbwp-1"
    assert {"Key": "owner", "Value": "alice"} in sent["Tag"]
    assert sent["HostAliase"] == [
        {"Ip": "10.0.0.9", "Hostname": ["db.local"]},
        {"Ip": "10.0.0.8", "Hostname": ["a", "b"]},
    ]
    assert sent["DnsConfig"] == {"NameServer": ["1.1.1.1"], "Option": [{"Name": "ndots", "Value": "2"}]}


@pytest.mark.parametrize(
    ("values", "annotation", "hint"),
    [
        ({ann.SPOT_STRATEGY: "Cheapest"}, ann.SPOT_STRATEGY, "SpotAsPriceGo"),
        ({ann.SPOT_STRATEGY: "SpotWithPriceLimit"}, ann.SPOT_PRICE_LIMIT, "price"),
        ({ann.SPOT_STRATEGY: "SpotWithPriceLimit", ann.SPOT_PRICE_LIMIT: "0.1234"}, ann.SPOT_PRICE_LIMIT, "3 decimals"),
        ({ann.SPOT_PRICE_LIMIT: "0.5"}, ann.SPOT_PRICE_LIMIT, "SpotWithPriceLimit"),
        ({ann.SPOT_DURATION: "1"}, ann.SPOT_DURATION, "spot"),
        ({ann.USE_SPECS: "2C4G"}, ann.USE_SPECS, "2-4Gi"),
        ({ann.USE_SPECS: "100-1000Gi"}, ann.USE_SPECS, "64 vCPU"),
        ({ann.VSWITCH: ",".join(f"vsw-{i}" for i in range(11))}, ann.VSWITCH, "at most 10"),
        ({ann.SECURITY_GROUP: "sg 1"}, ann.SECURITY_GROUP, "sg id"),
        ({ann.WITH_EIP: "yes"}, ann.WITH_EIP, '"true" or "false"'),
        ({ann.WITH_EIP: "true", ann.EIP_INSTANCE: "eip-1"}, ann.EIP_INSTANCE, "either"),
        ({ann.EIP_BANDWIDTH: "10"}, ann.EIP_BANDWIDTH, "new EIP"),
        ({ann.CUSTOM_TAGS: "a:1,b:2,c:3,d:4"}, ann.CUSTOM_TAGS, "at most 3"),
        ({ann.CUSTOM_TAGS: "UID:x"}, ann.CUSTOM_TAGS, "reserved"),
        ({ann.CUSTOM_TAGS: "k:acs:y"}, ann.CUSTOM_TAGS, "acs:"),
        ({ann.CUSTOM_TAGS: "aliyun-x:1"}, ann.CUSTOM_TAGS, "aliyun"),
        ({ann.CUSTOM_TAGS: "novalue"}, ann.CUSTOM_TAGS, "key:value"),
        ({ann.CUSTOM_HOSTS: "db.local=10.0.0.1"}, ann.CUSTOM_HOSTS, "JSON"),
        ({ann.CUSTOM_DNS: '{"servers": []}'}, ann.CUSTOM_DNS, "nameservers"),
        ({ann.EPHEMERAL_STORAGE: "lots"}, ann.EPHEMERAL_STORAGE, "50Gi"),
        ({ann.INGRESS_BANDWIDTH: "fast"}, ann.INGRESS_BANDWIDTH, "10M"),
        ({ann.ACR_INSTANCES: "registry-1"}, ann.ACR_INSTANCES, "cri-"),
        ({ann.FAIL_STRATEGY: "retry"}, ann.FAIL_STRATEGY, "fail-back"),
        ({ann.CORE_PATTERN: "|/bin/dump"}, ann.CORE_PATTERN, "absolute path"),
        ({ann.COMPUTE_CATEGORY: "cheap"}, ann.COMPUTE_CATEGORY, "economy"),
        ({ann.PRIVATE_IP: "10.0.0.300"}, ann.PRIVATE_IP, "IPv4"),
        ({ann.GPU_DRIVER_VERSION: "525"}, ann.GPU_DRIVER_VERSION, "tesla="),
    ],
)
def test_malformed_annotation_names_itself_and_the_expected_form(
    values: dict[str, str], annotation: str, hint: str
) -> None:
    with pytest.raises(Rejected) as info:
        request(annotations=values)
    problem = next(p for p in info.value.problems if annotation in p.field)
    assert problem.field == f"metadata.annotations['{annotation}']"
    assert hint in str(problem)


def test_fail_strategy_and_fail_on_create_error_reach_the_daemon() -> None:
    result = translate(
        pod(annotations={ann.FAIL_STRATEGY: "fail-fast", ann.FAIL_ON_CREATE_ERR: "true"}), Objects(), DEFAULTS
    )
    assert result.options.fail_strategy == "fail-fast" and result.options.fail_on_create_error is True


def test_current_annotation_name_wins_over_legacy() -> None:
    assert request(annotations={ann.IMC_ID_OLD: "imc-old", ann.IMC_ID: "imc-new"})["ImageSnapshotId"] == "imc-new"


# ---- sizing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cpu", "memory", "expected"),
    [
        ("7", "13", ("8", "16")),
        ("0.1", "0.1", ("0.25", "0.5")),
        ("2", "3", ("2", "4")),
        ("3", "1", ("4", "2")),
        ("52", "90", ("52", "96")),
    ],
)
def test_round_up_to_supported_spec(cpu: str, memory: str, expected: tuple[str, str]) -> None:
    assert sizes.round_up(Decimal(cpu), Decimal(memory)) == (Decimal(expected[0]), Decimal(expected[1]))


@given(
    st.decimals(min_value=Decimal("0.001"), max_value=64, places=3),
    st.decimals(min_value=Decimal("0.001"), max_value=512, places=3),
)
def test_round_up_is_the_smallest_cover(cpu: Decimal, memory: Decimal) -> None:
    got = sizes.round_up(cpu, memory)
    assert got in sizes.ALL_SPECS and got[0] >= cpu and got[1] >= memory
    assert not any(c >= cpu and m >= memory and (c, m) < got for c, m in sizes.ALL_SPECS)


def test_pod_size_rules() -> None:
    assert request()["Cpu"] == 2.0 and request()["Memory"] == 4.0, "nothing set: 2 vCPU / 4 GiB"
    limits_win = request(
        containers=[
            {
                "name": "a",
                "image": "x",
                "resources": {"requests": {"cpu": "4"}, "limits": {"cpu": "1", "memory": "2Gi"}},
            }
        ]
    )
    assert (limits_win["Cpu"], limits_win["Memory"]) == (1.0, 2.0)
    summed = request(
        containers=[
            {"name": "a", "image": "x", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}},
            {"name": "b", "image": "x", "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}},
        ],
        initContainers=[{"name": "i", "image": "x", "resources": {"limits": {"cpu": "4", "memory": "1Gi"}}}],
    )
    assert (summed["Cpu"], summed["Memory"]) == (4.0, 4.0), "max(largest init, sum of app containers), rounded up"
    assert "Cpu" not in summed["Container"][0], "requests alone do not cap a container"
    specs_win = request(annotations={ann.USE_SPECS: "1-2Gi"})
    assert (specs_win["Cpu"], specs_win["Memory"]) == (1.0, 2.0)


def test_too_big_pod_is_rejected_with_alternative() -> None:
    with pytest.raises(Rejected) as info:
        request(containers=[{"name": "a", "image": "x", "resources": {"limits": {"cpu": "96"}}}])
    assert "eci-use-specs" in str(info.value)


# ---- environment ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)", "1"),
        ("$(A)-$(B)", "1-two"),
        ("$$(A)", "$(A)"),
        ("$(MISSING)", "$(MISSING)"),
        ("$(A", "$(A"),
        ("a$", "a$"),
        ("$x", "$x"),
        ("$$$(A)", "$1"),
        ("", ""),
    ],
)
def test_expand_follows_kubernetes(text: str, expected: str) -> None:
    assert expand(text, {"A": "1", "B": "two"}.get) == expected


def test_env_sources_precedence_and_pod_ip() -> None:
    objects = Objects(
        configmaps={"cfg": {"data": {"MODE": "fast", "bad.key": "x"}, "binaryData": {"BLOB": "AAE="}}},
        secrets={"s": {"data": {"token": "czNjcjN0"}}},
        services=[
            {
                "metadata": {"name": "kubernetes", "namespace": "default"},
                "spec": {"clusterIP": "10.0.0.1", "ports": [{"port": 443, "name": "https"}]},
            },
            {
                "metadata": {"name": "redis-master", "namespace": "ns"},
                "spec": {"clusterIP": "10.0.0.2", "ports": [{"port": 6379}]},
            },
            {"metadata": {"name": "headless", "namespace": "ns"}, "spec": {"clusterIP": "None"}},
        ],
    )
    container = {
        "name": "app",
        "image": "x",
        "envFrom": [{"configMapRef": {"name": "cfg"}}],
        "env": [
            {"name": "MODE", "value": "slow-$(MODE)"},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "token"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
            {"name": "URL", "value": "http://$(IP):80"},
        ],
        "command": ["run", "$(MODE)"],
    }
    result = translate(pod(containers=[container]), objects, DEFAULTS)
    env = {e["Key"]: e for e in result.request["Container"][0]["EnvironmentVar"]}
    assert env["MODE"]["Value"] == "slow-fast"
    assert env["TOKEN"]["Value"] == "s3cr3t"
    assert env["IP"] == {"Key": "IP", "FieldRef": {"FieldPath": "status.podIP"}}
    assert env["HOST_IP"]["FieldRef"] == {"FieldPath": "status.podIP"}, "hostIP is the pod IP on ECI"
    assert env["URL"]["Value"] == "http://$(IP):80", "the pod IP is unknown before start; left for ECI"
    assert "BLOB" not in env, "envFrom reads ConfigMap data only, like a kubelet"
    assert env["KUBERNETES_SERVICE_HOST"]["Value"] == "10.0.0.1"
    assert env["REDIS_MASTER_SERVICE_PORT"]["Value"] == "6379"
    assert env["REDIS_MASTER_PORT_6379_TCP_ADDR"]["Value"] == "10.0.0.2"
    assert not any(k.startswith("HEADLESS") for k in env)
    assert result.request["Container"][0]["Command"] == ["run", "slow-fast"]
    assert any("bad.key" in w.message for w in result.warnings)


def test_service_links_off_keeps_only_the_master_service() -> None:
    services = [
        {
            "metadata": {"name": "kubernetes", "namespace": "default"},
            "spec": {"clusterIP": "10.0.0.1", "ports": [{"port": 443}]},
        },
        {"metadata": {"name": "web", "namespace": "ns"}, "spec": {"clusterIP": "10.0.0.2", "ports": [{"port": 80}]}},
    ]
    names = service_link_vars(services, "ns", links=False)
    assert "KUBERNETES_SERVICE_HOST" in names and not any(k.startswith("WEB_") for k in names)


def test_env_value_too_long_and_bad_names_are_rejected() -> None:
    with pytest.raises(Rejected) as info:
        request(
            containers=[
                {
                    "name": "a",
                    "image": "x",
                    "env": [{"name": "BIG", "value": "x" * 257}, {"name": "my-var", "value": "1"}],
                }
            ]
        )
    text = str(info.value)
    assert "BIG" in text and "256" in text and "spec.containers[0].env[1].name" in text


def test_missing_env_key_is_missing_with_key() -> None:
    objects = Objects(configmaps={"cfg": {"data": {}}})
    container = {
        "name": "a",
        "image": "x",
        "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}],
    }
    with pytest.raises(Missing) as info:
        translate(pod(containers=[container]), objects, DEFAULTS)
    (ref,) = info.value.refs
    assert (ref.kind, ref.name, ref.key) == ("ConfigMap", "cfg", "k")
    container["env"][0]["valueFrom"]["configMapKeyRef"]["optional"] = True
    assert "EnvironmentVar" not in translate(pod(containers=[container]), objects, DEFAULTS).request["Container"][0]


def test_resource_field_ref_falls_back_to_the_instance_size() -> None:
    container = {
        "name": "a",
        "image": "x",
        "env": [{"name": "CPUS", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}],
    }
    env = request(containers=[container])["Container"][0]["EnvironmentVar"]
    assert env == [{"Key": "CPUS", "Value": "2"}]


# ---- volumes, containers, pod fields -------------------------------------------------------------


def test_optional_missing_or_empty_sources_become_empty_dirs() -> None:
    volumes = [
        {"name": "a", "configMap": {"name": "absent", "optional": True}},
        {"name": "b", "configMap": {"name": "empty"}},
    ]
    sent = translate(pod(volumes=volumes), Objects(configmaps={"empty": {"data": {}}}), DEFAULTS).request
    assert [v["Type"] for v in sent["Volume"]] == ["EmptyDirVolume", "EmptyDirVolume"]


@pytest.mark.parametrize(
    ("volume", "field"),
    [
        ({"name": "v", "hostPath": {"path": "/"}}, "spec.volumes[0].hostPath"),
        ({"name": "v", "persistentVolumeClaim": {"claimName": "c"}}, "spec.volumes[0].persistentVolumeClaim"),
        ({"name": "v", "csi": {"driver": "x"}}, "spec.volumes[0].csi"),
        ({"name": "v", "iscsi": {}}, "spec.volumes[0].iscsi"),
        ({"name": "v", "emptyDir": {"medium": "HugePages"}}, "spec.volumes[0].emptyDir.medium"),
        (
            {"name": "v", "configMap": {"name": "c", "items": [{"key": "k", "path": "../etc/passwd"}]}},
            "spec.volumes[0].configMap",
        ),
    ],
)
def test_unsupported_volumes_name_the_field(volume: dict[str, Any], field: str) -> None:
    objects = Objects(configmaps={"c": {"data": {"k": "v"}}})
    with pytest.raises(Rejected) as info:
        translate(pod(volumes=[volume]), objects, DEFAULTS)
    assert field in {p.field for p in info.value.problems}


def test_container_details() -> None:
    container = {
        "name": "app",
        "image": "nginx",
        "ports": [{"name": "http", "containerPort": 8080}],
        "startupProbe": {"httpGet": {"port": "http"}, "failureThreshold": 30, "periodSeconds": 10},
        "livenessProbe": {"httpGet": {"port": "http", "path": "/live"}, "initialDelaySeconds": 5},
        "lifecycle": {
            "preStop": {"exec": {"command": ["nginx", "-s", "quit"]}},
            "postStart": {"tcpSocket": {"port": 8080}},
        },
        "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}, "readOnlyRootFilesystem": True},
        "stdin": True,
        "tty": True,
        "volumeMounts": [{"name": "data", "mountPath": "/data", "subPath": "app", "readOnly": True}],
    }
    result = translate(
        pod(containers=[container], volumes=[{"name": "data", "emptyDir": {}}], securityContext={"runAsUser": 1000}),
        Objects(),
        DEFAULTS,
    )
    sent = result.request["Container"][0]
    assert sent["ImagePullPolicy"] == "Always", "untagged image: Kubernetes' default"
    assert sent["LivenessProbe"]["InitialDelaySeconds"] == 305, "startup probe budget delays liveness"
    assert sent["LivenessProbe"]["HttpGet"]["Port"] == 8080
    assert sent["LifecyclePreStopHandlerExec"] == ["nginx", "-s", "quit"]
    assert sent["LifecyclePostStartHandlerTcpSocketPort"] == 8080
    assert sent["SecurityContext"] == {
        "Capability": {"Add": ["NET_ADMIN"]},
        "ReadOnlyRootFilesystem": True,
        "RunAsUser": 1000,
    }
    assert sent["Stdin"] is True and sent["Tty"] is True
    assert sent["VolumeMount"] == [{"Name": "data", "MountPath": "/data", "ReadOnly": True, "SubPath": "app"}]
    assert any("startupProbe" in w.field for w in result.warnings)


def test_grpc_probe_and_sidecar_init_are_rejected() -> None:
    with pytest.raises(Rejected) as info:
        request(
            containers=[{"name": "a", "image": "x", "readinessProbe": {"grpc": {"port": 9000}}}],
            initContainers=[{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}],
        )
    fields = {p.field for p in info.value.problems}
    assert fields == {"spec.containers[0].readinessProbe.grpc", "spec.initContainers[0].restartPolicy"}


def test_daemonset_pods_are_rejected() -> None:
    p = pod()
    p["metadata"]["ownerReferences"] = [{"kind": "DaemonSet", "name": "ds", "controller": True}]
    with pytest.raises(Rejected) as info:
        translate(p, Objects(), DEFAULTS)
    assert "sidecar" in str(info.value)


def test_pod_level_fields() -> None:
    sent = request(
        restartPolicy="OnFailure",
        dnsPolicy="None",
        dnsConfig={"nameservers": ["10.96.0.10"], "searches": ["ns.svc.cluster.local"]},
        hostAliases=[{"ip": "10.0.0.1", "hostnames": ["a"]}],
        hostname="web-0",
        securityContext={"sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]},
        terminationGracePeriodSeconds=60,
        activeDeadlineSeconds=600,
        shareProcessNamespace=True,
    )
    assert sent["RestartPolicy"] == "OnFailure" and sent["DnsPolicy"] == "None"
    assert sent["DnsConfig"] == {"NameServer": ["10.96.0.10"], "Search": ["ns.svc.cluster.local"]}
    assert sent["HostAliase"] == [{"Ip": "10.0.0.1", "Hostname": ["a"]}] and sent["HostName"] == "web-0"
    assert sent["SecurityContext"] == {"Sysctl": [{"Name": "net.core.somaxconn", "Value": "1024"}]}
    assert (sent["TerminationGracePeriodSeconds"], sent["ActiveDeadlineSeconds"], sent["ShareProcessNamespace"]) == (
        60,
        600,
        True,
    )


def test_cluster_first_dns_uses_cluster_dns_when_configured() -> None:
    defaults = Defaults(region="cn-hangzhou", cluster_dns=("10.96.0.10",))
    sent = translate(pod(), Objects(), defaults).request
    assert sent["DnsPolicy"] == "None"
    assert sent["DnsConfig"]["NameServer"] == ["10.96.0.10"]
    assert sent["DnsConfig"]["Search"][0] == "ns.svc.cluster.local"


def test_image_pull_secrets_dockercfg_and_missing() -> None:
    import base64
    import json

    cfg = base64.b64encode(
        json.dumps({"https://reg.example.com/v1/": {"username": "u", "password": "s3cr3t"}}).encode()
    ).decode()
    objects = Objects(secrets={"old": {"type": "kubernetes.io/dockercfg", "data": {".dockercfg": cfg}}})
    result = translate(pod(imagePullSecrets=[{"name": "old"}, {"name": "gone"}]), objects, DEFAULTS)
    assert result.request["ImageRegistryCredential"] == [
        {"Server": "reg.example.com", "UserName": "u", "Password": "s3cr3t"}
    ]
    assert any("gone" in w.message for w in result.warnings), "a missing pull secret is a warning, as on a kubelet"
    assert "s3cr3t" not in " ".join(str(w) for w in result.warnings)


def test_needs() -> None:
    p = pod(
        containers=[
            {
                "name": "a",
                "image": "x",
                "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s1", "key": "k"}}}],
                "envFrom": [{"configMapRef": {"name": "c1"}}],
            }
        ],
        volumes=[
            {
                "name": "v",
                "projected": {
                    "sources": [
                        {"serviceAccountToken": {"audience": "vault", "expirationSeconds": 600}},
                        {"secret": {"name": "s2"}},
                    ]
                },
            },
            {"name": "w", "configMap": {"name": "c2"}},
        ],
        imagePullSecrets=[{"name": "pull"}],
        serviceAccountName="builder",
        enableServiceLinks=False,
    )
    wanted = needs(p)
    assert wanted.configmaps == {"c1", "c2"} and wanted.secrets == {"s1", "s2", "pull"}
    assert wanted.tokens == {("builder", "vault", 600)} and wanted.service_links is False


# ---- identity ------------------------------------------------------------------------------------


def test_identity_for_long_and_dotted_names() -> None:
    name = "a." * 120 + "z"
    p = {"metadata": {"namespace": "team-x", "name": name, "uid": "u"}}
    group = identity.group_name(p)
    assert identity.GROUP_NAME_PATTERN.match(group) and len(group) <= 128
    tags = identity.tags(p, "c", "n", [("env", "x")])
    assert identity.pod_key_from_tags(tags) == identity.PodKey("team-x", name, "u")
    assert identity.pod_key_from_tags({t["Key"]: t["Value"] for t in tags}) == identity.PodKey("team-x", name, "u")
    assert identity.owned_by(tags, "c", "n") and not identity.owned_by(tags, "c", "other")
    assert identity.pod_key_from_tags([{"Key": "owner", "Value": "x"}]) is None


def test_user_tags_never_exceed_twenty_or_replace_identity() -> None:
    p = {"metadata": {"namespace": "ns", "name": "p", "uid": "u"}}
    tags = identity.tags(p, "c", "n", [("UID", "evil"), *[(f"k{i}", "v") for i in range(30)]])
    assert len(tags) == 20
    assert {t["Key"]: t["Value"] for t in tags}["UID"] == "u"


def test_fractional_gpu_is_rejected_once() -> None:
    with pytest.raises(Rejected) as info:
        request(containers=[{"name": "a", "image": "x", "resources": {"limits": {"nvidia.com/gpu": "0.5"}}}])
    assert len(info.value.problems) == 1 and "whole number" in str(info.value)


def test_projected_sources_writing_the_same_file_are_rejected() -> None:
    volume = {"name": "v", "projected": {"sources": [{"configMap": {"name": "a"}}, {"configMap": {"name": "b"}}]}}
    objects = Objects(configmaps={"a": {"data": {"x": "1"}}, "b": {"data": {"x": "2"}}})
    with pytest.raises(Rejected) as info:
        translate(pod(volumes=[volume]), objects, DEFAULTS)
    assert "same file 'x'" in str(info.value)


def test_use_specs_smaller_than_the_limits_is_rejected() -> None:
    container = {"name": "a", "image": "x", "resources": {"limits": {"cpu": "2", "memory": "1Gi"}}}
    with pytest.raises(Rejected) as info:
        request(containers=[container], annotations={ann.USE_SPECS: "1-2Gi"})
    assert "add up to 2 vCPU" in str(info.value)


def test_config_files_beyond_ecis_size_limits_are_rejected() -> None:
    big = {"name": "v", "configMap": {"name": "big"}}
    objects = Objects(
        configmaps={
            "big": {"data": {"a": "x" * (32 * 1024 + 1)}},
            "many": {"data": {str(i): "y" * 20000 for i in range(4)}},
        }
    )
    with pytest.raises(Rejected) as info:
        translate(pod(volumes=[big]), objects, DEFAULTS)
    assert "at most 32768" in str(info.value) and "nfs" in str(info.value)
    with pytest.raises(Rejected) as info:
        translate(pod(volumes=[{"name": "v", "configMap": {"name": "many"}}]), objects, DEFAULTS)
    assert "add up to 80000 bytes" in str(info.value)
    fits = {"name": "v", "configMap": {"name": "many", "items": [{"key": "0", "path": "0"}, {"key": "1", "path": "1"}]}}
    assert translate(pod(volumes=[fits]), objects, DEFAULTS).request["Volume"][0]["Type"] == "ConfigFileVolume"


def test_ipv6_false_sends_nothing() -> None:
    assert "Ipv6AddressCount" not in request(annotations={ann.ENABLE_IPV6: "false"})


def test_defaults_from_config() -> None:
    from vkeci.config import Config

    config = Config(
        region="cn-beijing", security_group="sg-x", vswitches=("vsw-1", "vsw-2"), cluster_name="c1", node_name="vk-1"
    )
    defaults = Defaults.from_config(config)
    assert (defaults.region, defaults.security_group, defaults.vswitches) == ("cn-beijing", "sg-x", ("vsw-1", "vsw-2"))
    assert (defaults.cluster_name, defaults.node_name, defaults.schedule_strategy) == ("c1", "vk-1", "VSwitchOrdered")
    sent = translate(pod(), Objects(), defaults).request
    assert {t["Key"]: t["Value"] for t in sent["Tag"]}["NodeName"] == "vk-1"


def test_the_settings_that_could_never_be_set_reach_the_translation() -> None:
    # cluster_dns, cluster_domain, api_server, zone_id and resource_group_id used to be read with getattr
    # from a Config that had no such fields: always the default. They are Config fields now (env and file).
    from vkeci.config import load

    env = {
        "CLUSTER_DNS": "10.96.0.10",
        "CLUSTER_DOMAIN": "corp.local",
        "API_SERVER": "10.0.0.1:6443",
        "ECI_ZONE_ID": "cn-hangzhou-h",
        "ECI_RESOURCE_GROUP_ID": "rg-1",
    }
    defaults = Defaults.from_config(load(env=env))
    assert defaults.cluster_dns == ("10.96.0.10",) and defaults.cluster_domain == "corp.local"
    assert (defaults.api_server, defaults.zone_id, defaults.resource_group_id) == (
        "10.0.0.1:6443",
        "cn-hangzhou-h",
        "rg-1",
    )
    assert Defaults.from_config(load(env={})) == Defaults()


def test_nfs_flex_and_downward_volumes() -> None:
    p = pod(
        volumes=[
            {"name": "nas", "nfs": {"server": "x.nas.aliyuncs.com", "path": "/data", "readOnly": True}},
            {
                "name": "oss",
                "flexVolume": {"driver": "alicloud/oss", "options": {"bucket": "b", "url": "oss.example.com"}},
            },
            {
                "name": "info",
                "downwardAPI": {
                    "defaultMode": 0o444,
                    "items": [
                        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
                        {"path": "app", "fieldRef": {"fieldPath": "metadata.labels['app']"}},
                        {"path": "uid", "fieldRef": {"fieldPath": "metadata.uid"}},
                        {
                            "path": "mem",
                            "resourceFieldRef": {"containerName": "app", "resource": "limits.memory", "divisor": "1Mi"},
                        },
                    ],
                },
            },
        ]
    )
    p["metadata"]["labels"] = {"app": "web", "tier": 'fr"ont'}
    p["metadata"]["annotations"] = {"note": "héllo"}
    sent = translate(p, Objects(), DEFAULTS).request
    nas, oss, info = sent["Volume"]
    assert nas["NFSVolume"] == {"Server": "x.nas.aliyuncs.com", "Path": "/data", "ReadOnly": True}
    assert oss["FlexVolume"] == {"Driver": "alicloud/oss", "Options": '{"bucket": "b", "url": "oss.example.com"}'}
    import base64

    content = {f["Path"]: base64.b64decode(f["Content"]).decode() for f in info["ConfigFileVolume"]["ConfigFileToPath"]}
    assert content["labels"] == 'app="web"\ntier="fr\\"ont"'
    assert content["annotations"] == 'note="héllo"'
    assert content["app"] == "web" and content["uid"] == "uid-1"
    assert content["mem"] == "4096", "no memory limit: the whole 4 GiB instance"
    assert info["ConfigFileVolume"]["DefaultMode"] == 0o444


@pytest.mark.parametrize(
    ("volume", "field"),
    [
        ({"name": "v", "nfs": {"server": "x"}}, "spec.volumes[0].nfs"),
        (
            {"name": "v", "flexVolume": {"driver": "d", "secretRef": {"name": "s"}}},
            "spec.volumes[0].flexVolume.secretRef",
        ),
        (
            {"name": "v", "downwardAPI": {"items": [{"path": "ip", "fieldRef": {"fieldPath": "status.podIP"}}]}},
            "spec.volumes[0].downwardAPI.items[0].fieldRef.fieldPath",
        ),
        ({"name": "v", "secret": {"secretName": "bad"}}, "spec.volumes[0].secret"),
        ({"name": "v", "configMap": {"name": "c", "defaultMode": 0o1777}}, "spec.volumes[0].configMap.defaultMode"),
        ({"name": "", "emptyDir": {}}, "spec.volumes[0].name"),
    ],
)
def test_more_volume_problems(volume: dict[str, Any], field: str) -> None:
    objects = Objects(configmaps={"c": {"data": {"k": "v"}}}, secrets={"bad": {"data": {"k": "not base64!"}}})
    with pytest.raises(Rejected) as info:
        translate(pod(volumes=[volume]), objects, DEFAULTS)
    assert field in {p.field for p in info.value.problems}
    assert "not base64!" not in str(info.value)


def test_secret_string_data_and_unusable_pull_secrets() -> None:
    import base64

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    objects = Objects(
        secrets={
            "plain": {"stringData": {"a.txt": "from stringData"}},
            "opaque": {"type": "Opaque", "data": {"x": b64("y")}},
            "broken": {"data": {".dockerconfigjson": b64("{not json")}},
            "nouser": {"data": {".dockerconfigjson": b64('{"auths": {"r.io": {"auth": "' + b64("nocolon") + '"}}}')}},
        }
    )
    p = pod(
        volumes=[{"name": "v", "secret": {"secretName": "plain"}}],
        imagePullSecrets=[{"name": n} for n in ("opaque", "broken", "nouser")],
    )
    result = translate(p, objects, DEFAULTS)
    assert "ImageRegistryCredential" not in result.request
    assert len(result.warnings) == 3
    content = result.request["Volume"][0]["ConfigFileVolume"]["ConfigFileToPath"][0]
    assert base64.b64decode(content["Content"]) == b"from stringData"


def test_probe_and_lifecycle_variants() -> None:
    container = {
        "name": "app",
        "image": "x:1",
        "ports": [{"containerPort": 80, "name": "web"}, {"containerPort": 81, "hostPort": 9000}],
        "readinessProbe": {"httpGet": {"port": 80, "host": "1.2.3.4", "httpHeaders": [{"name": "X", "value": "1"}]}},
        "livenessProbe": {"tcpSocket": {"port": "missing-name"}},
        "lifecycle": {
            "postStart": {
                "httpGet": {
                    "port": "web",
                    "path": "/up",
                    "host": "localhost",
                    "httpHeaders": [{"name": "A", "value": "b"}],
                }
            },
            "preStop": {"sleep": {"seconds": 5}},
        },
        "securityContext": {"capabilities": {"drop": ["ALL"]}, "runAsGroup": 3000, "runAsNonRoot": True},
    }
    with pytest.raises(Rejected) as info:
        request(containers=[container])
    assert {p.field for p in info.value.problems} == {"spec.containers[0].livenessProbe.tcpSocket.port"}
    del container["livenessProbe"]
    result = translate(pod(containers=[container]), Objects(), DEFAULTS)
    sent = result.request["Container"][0]
    assert (
        sent["LifecyclePostStartHandlerHttpGetPort"] == 80
        and sent["LifecyclePostStartHandlerHttpGetHost"] == "localhost"
    )
    assert sent["LifecyclePostStartHandlerHttpGetHttpHeader"] == [{"Name": "A", "Value": "b"}]
    assert sent["LifecyclePreStopHandlerExec"] == ["sleep", "5"]
    assert sent["SecurityContextRunAsGroup"] == 3000 and sent["SecurityContextRunAsNonRoot"] is True
    warned = {w.field for w in result.warnings}
    assert {
        "spec.containers[0].readinessProbe.httpGet",
        "spec.containers[0].lifecycle.preStop.sleep",
        "spec.containers[0].securityContext.capabilities.drop",
        "spec.containers[0].ports[1].hostPort",
    } <= warned


def test_api_server_override_replaces_the_cluster_ip() -> None:
    services = [
        {
            "metadata": {"name": "kubernetes", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.1", "ports": [{"port": 443}]},
        }
    ]
    defaults = Defaults(region="cn-hangzhou", api_server="192.168.0.10:6443")
    sent = translate(pod(), Objects(services=services), defaults).request
    env = {e["Key"]: e["Value"] for e in sent["Container"][0]["EnvironmentVar"]}
    assert env["KUBERNETES_SERVICE_HOST"] == "192.168.0.10" and env["KUBERNETES_SERVICE_PORT"] == "6443"
    assert env["KUBERNETES_PORT"] == "tcp://192.168.0.10:6443"
    assert "KUBERNETES_PORT_443_TCP" not in env, "no variable points at the unreachable ClusterIP"


# ---- what the admin is told about annotations and sizes (admin review R12-R14) ------------------


def test_an_unknown_aliyun_annotation_is_a_warning_with_the_closest_key() -> None:
    # R12: `eci-usespecs: 8-16Gi` used to run on the default 2 vCPU / 4 GiB without a word.
    result = translate(pod(annotations={"k8s.aliyun.com/eci-usespecs": "8-16Gi"}), Objects(), DEFAULTS)
    [warning] = result.warnings
    assert warning.field == "metadata.annotations['k8s.aliyun.com/eci-usespecs']"
    assert (
        warning.message == "unknown annotation; ignored" and warning.fix == "did you mean k8s.aliyun.com/eci-use-specs?"
    )
    nothing_close = translate(pod(annotations={"k8s.aliyun.com/frobnicate": "1"}), Objects(), DEFAULTS)
    assert "README" in nothing_close.warnings[0].fix


def test_documented_annotations_vk_eci_does_not_honour_are_named_as_not_supported() -> None:
    result = translate(pod(annotations={"k8s.aliyun.com/eci-instance-family": "ecs.c6"}), Objects(), DEFAULTS)
    [warning] = result.warnings
    assert warning.message == "not supported by vk-eci yet; ignored" and ann.USE_SPECS in warning.fix


def test_written_back_and_other_prefixes_are_no_warning() -> None:
    from vkeci.core.writeback import write_back_annotations

    back = write_back_annotations({"Cpu": 2, "Memory": 4, "ZoneId": "z"}, group_id="eci-1", request_id="r", token="u")
    assert set(back) <= ann.WRITTEN_BACK | ann.SUPPORTED
    other = {"example.com/eci-usespecs": "x", "kubernetes.io/egress-bandwidth": "10M"}
    assert not translate(pod(annotations={**back, **other}), Objects(), DEFAULTS).warnings


def test_a_value_that_fails_to_parse_causes_no_second_derived_problem() -> None:
    # R13: a wrong-case strategy also gave "spot-duration only applies to spot instances".
    annotations = {
        "k8s.aliyun.com/eci-spot-strategy": "spotAsPriceGo",
        "k8s.aliyun.com/eci-spot-duration": "0",
        "k8s.aliyun.com/eci-spot-price-limit": "0.5",
    }
    with pytest.raises(Rejected) as info:
        translate(pod(annotations=annotations), Objects(), DEFAULTS)
    [problem] = info.value.problems
    assert "eci-spot-strategy" in problem.field and "did you mean SpotAsPriceGo?" in problem.message
    eip = {"k8s.aliyun.com/eci-with-eip": "yes", "k8s.aliyun.com/eip-bandwidth": "10"}
    with pytest.raises(Rejected) as info:
        translate(pod(annotations=eip), Objects(), DEFAULTS)
    assert [p.field for p in info.value.problems] == ["metadata.annotations['k8s.aliyun.com/eci-with-eip']"]


def test_a_size_rounded_up_to_the_spec_table_is_a_note() -> None:
    # R14: limits of 1 vCPU / 1 GiB became a 1-2Gi group with no word until the write-back.
    small = pod(containers=[{"name": "a", "image": "nginx", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}])
    result = translate(small, Objects(), DEFAULTS)
    assert (result.request["Cpu"], result.request["Memory"]) == (1.0, 2.0)
    assert result.notes == (
        "spec.containers[*].resources: 1 vCPU / 1 GiB rounded up to 1-2Gi, the smallest size in ECI's spec table "
        "that holds it (billed as that size)",
    )
    assert not result.warnings  # a note, not a Warning event
    exact = pod(containers=[{"name": "a", "image": "nginx", "resources": {"limits": {"cpu": "2", "memory": "4Gi"}}}])
    assert translate(exact, Objects(), DEFAULTS).notes == ()
