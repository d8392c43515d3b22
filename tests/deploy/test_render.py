"""The kustomize base, components and overlay, and the Helm chart, rendered with the real tools.

kubectl is the control plane's own (kustomize built in, as `kubectl apply -k` uses it), helm is built
from its Go module (e2e/helm.py); both are cached outside the repository, so these tests are marked e2e.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.manifests import (
    CHART,
    HELM_TLS_MODE,
    KUSTOMIZE,
    MODES,
    NAMESPACE,
    ROOT,
    WEBHOOK_API_CALLS,
    WEBHOOK_SERVICE_ACCOUNT,
    bound_to,
    by_kind,
    calls_for,
    grants,
    helm,
    helm_template,
    kustomize,
    one,
    rbac_grants,
    with_components,
)
from vkeci import config as vkeci_config

pytestmark = pytest.mark.e2e

# Settings the daemon reads that have no place in a cluster's config file: the in-cluster credentials
# replace the kubeconfig, the node IP comes from the downward API (VKUBELET_POD_IP) or Helm's nodeIP, and
# the serving certificate from the TLS mode (flags naming the mounted Secret's files).
NOT_IN_CONFIG_FILE = {"kubeconfig", "internal_ip", "tls_cert_file", "tls_key_file"}
KNOWN_ENV = {"VKUBELET_POD_IP", "VKUBELET_NODE_IP", "VKECI_CONFIG", "POD_NAMESPACE"}


def file_settings() -> set[str]:
    """The settings a config file in a cluster should offer: every non-secret one."""
    return {s.name for s in vkeci_config.SETTINGS if not s.secret} - NOT_IN_CONFIG_FILE


@pytest.fixture(scope="module")
def base(kubectl_bin: Path) -> list[dict[str, Any]]:
    return kustomize(kubectl_bin, KUSTOMIZE / "base")


@pytest.fixture(scope="module")
def chart(helm_bin: Path) -> list[dict[str, Any]]:
    return helm_template(helm_bin, "credentials.existingSecret=vkeci-credentials")


# ---- RBAC ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", sorted(MODES))
def test_kustomize_grants_exactly_the_table(kubectl_bin: Path, tmp_path: Path, mode: str) -> None:
    components = [m for m in MODES[mode] if m != "base"][-1:]
    objects = kustomize(kubectl_bin, with_components(tmp_path, components))
    assert rbac_grants(objects) == grants(calls_for(mode))


@pytest.mark.parametrize("mode", sorted(MODES))
def test_helm_grants_exactly_the_table(helm_bin: Path, mode: str) -> None:
    objects = helm_template(helm_bin, f"tls.mode={HELM_TLS_MODE[mode]}")
    assert rbac_grants(objects) == grants(calls_for(mode))


def test_tls_components_add_the_flags(kubectl_bin: Path, tmp_path: Path, helm_bin: Path) -> None:
    for mode, flags in (("tls-csr", ["--tls-csr"]), ("tls-csr-approve", ["--tls-csr", "--tls-csr-approve"])):
        objects = kustomize(kubectl_bin, with_components(tmp_path / mode, [mode]))
        args = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args[-len(flags) :] == flags
        helm_args = one(helm_template(helm_bin, f"tls.mode={HELM_TLS_MODE[mode]}"), "Deployment")
        assert helm_args["spec"]["template"]["spec"]["containers"][0]["args"][-len(flags) :] == flags


# ---- Helm and kustomize render the same objects ------------------------------------------------------


def _normal(obj: dict[str, Any]) -> dict[str, Any]:
    """An object without what legitimately differs between the two renderings: Helm's bookkeeping labels
    and annotations, kustomize's name hash suffixes, the config file's comments and empty values."""
    obj = copy.deepcopy(obj)
    meta = obj["metadata"]
    meta.pop("labels", None)
    meta.pop("annotations", None)
    meta["name"] = _unhash(meta["name"])
    if obj["kind"] == "Deployment":
        pod = obj["spec"]["template"]
        pod["metadata"].pop("annotations", None)
        for volume in pod["spec"].get("volumes") or []:
            if "configMap" in volume:
                volume["configMap"]["name"] = _unhash(volume["configMap"]["name"])
        for container in pod["spec"]["containers"]:
            for source in container.get("envFrom") or []:
                if "secretRef" in source:
                    source["secretRef"]["name"] = _unhash(source["secretRef"]["name"])
    if obj["kind"] == "ConfigMap":
        parsed = yaml.safe_load(obj["data"]["config.yaml"]) or {}
        obj["data"]["config.yaml"] = {k: v for k, v in parsed.items() if v not in ("", [], None)}
    return obj


def _unhash(name: str) -> str:
    return re.sub(r"-[a-z0-9]{10}$", "", name)


def _key(obj: dict[str, Any]) -> tuple[str, str, str]:
    return (obj["kind"], obj["metadata"].get("namespace", ""), _unhash(obj["metadata"]["name"]))


def _same_objects(kustomized_objects: list[dict[str, Any]], helmed_objects: list[dict[str, Any]]) -> None:
    # Helm installs into a namespace it is given (--create-namespace) instead of owning a Namespace object.
    kustomized = {_key(o): _normal(o) for o in kustomized_objects if o["kind"] != "Namespace"}
    helmed = {_key(o): _normal(o) for o in helmed_objects}
    assert sorted(helmed) == sorted(kustomized)
    for key, obj in kustomized.items():
        assert helmed[key] == obj, f"{key} differs between Helm and kustomize"


def test_helm_renders_the_same_objects_as_kustomize(base: list[dict[str, Any]], chart: list[dict[str, Any]]) -> None:
    _same_objects(base, chart)


def test_the_same_probes_env_and_security(base: list[dict[str, Any]], chart: list[dict[str, Any]]) -> None:
    # Covered by the comparison above; spelled out so a failure names the part.
    k = one(base, "Deployment")["spec"]["template"]["spec"]
    h = one(chart, "Deployment")["spec"]["template"]["spec"]
    for field in ("livenessProbe", "readinessProbe", "startupProbe", "env", "securityContext", "resources"):
        assert h["containers"][0][field] == k["containers"][0][field], field
    assert h["securityContext"] == k["securityContext"]


def test_deployment_is_hardened(base: list[dict[str, Any]]) -> None:
    deployment = one(base, "Deployment")
    # Two replicas elect a leader (issue 16): a rolling update keeps a standby, a drain one replica at a time.
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    anti = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    term = anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    pdb = next(o for o in base if o["kind"] == "PodDisruptionBudget")
    assert pdb["spec"] == {"minAvailable": 1, "selector": deployment["spec"]["selector"]}
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "vkeci"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    env = {e["name"]: e for e in container["env"]}
    assert env["VKUBELET_POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    # The probes reach the health port on the pod IP, never the kubelet API port.
    assert "--health-address=$(VKUBELET_POD_IP)" in container["args"]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] == "health"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"kubelet": 10250, "health": 10248}
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/var/cache/vkeci", "/tmp", "/etc/vkeci"} <= mounts
    pdb = one(base, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert deployment["spec"]["template"]["metadata"]["labels"] == deployment["spec"]["selector"]["matchLabels"]


def test_deployment_env_names_are_known(base: list[dict[str, Any]], helm_bin: Path) -> None:
    objects = base + helm_template(helm_bin, "nodeIP=10.1.2.3")
    for deployment in by_kind(objects, "Deployment"):
        names = {e["name"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert names <= KNOWN_ENV


# ---- settings ---------------------------------------------------------------------------------------


def test_helm_has_a_value_for_every_setting() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values["settings"]) == file_settings()
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())
    assert set(schema["properties"]["settings"]["properties"]) == file_settings()
    assert schema["properties"]["settings"]["additionalProperties"] is False


def test_kustomize_config_names_every_setting() -> None:
    text = (KUSTOMIZE / "base" / "config.yaml").read_text()
    active = set(yaml.safe_load(text))
    commented = set(re.findall(r"^# ([a-z_]+):", text, re.M))
    assert active | commented == file_settings()


def test_rendered_config_files_load_in_the_daemon(
    base: list[dict[str, Any]], helm_bin: Path, tmp_path: Path, kubectl_bin: Path
) -> None:
    everything = [
        "settings.region=cn-hangzhou",
        "settings.security_group=sg-1",
        "settings.vswitches={vsw-a,vsw-b}",
        "settings.quota_cpu=200",
        "settings.quota_pods=50",
        "settings.kubelet_port=10250",
        "settings.rate_limits=false",
        "settings.kube_qps=20",
        "settings.status_interval=2.5",
        "settings.taint_effect=NoExecute",
        "settings.cluster_dns={10.96.0.10}",
        "settings.cluster_domain=corp.local",
        "settings.api_server=192.168.0.10:6443",
        "settings.zone_id=cn-hangzhou-h",
        "settings.resource_group_id=rg-1",
    ]
    overlay = kustomize(kubectl_bin, KUSTOMIZE / "overlays" / "example")
    sources = [("base", base), ("helm", helm_template(helm_bin, *everything)), ("overlay", overlay)]
    for name, objects in sources:
        path = tmp_path / f"{name}.yaml"
        path.write_text(one(objects, "ConfigMap")["data"]["config.yaml"])
        loaded = vkeci_config.load(config_file=str(path), env={})
        assert loaded.node_name == "vkeci"
        if name == "helm":
            assert loaded.vswitches == ("vsw-a", "vsw-b")
            assert loaded.rate_limits is False and loaded.quota_pods == 50 and loaded.status_interval == 2.5
            assert (loaded.cluster_dns, loaded.cluster_domain, loaded.api_server) == (
                ("10.96.0.10",),
                "corp.local",
                "192.168.0.10:6443",
            )
            assert (loaded.zone_id, loaded.resource_group_id) == ("cn-hangzhou-h", "rg-1")


def test_helm_refuses_a_misspelt_setting(helm_bin: Path) -> None:
    result = helm(helm_bin, "template", "vkeci", str(CHART), "--set", "settings.regoin=cn-hangzhou", check=False)
    assert result.returncode != 0 and "regoin" in result.stderr


def test_helm_credentials_modes(helm_bin: Path) -> None:
    made = helm_template(helm_bin, "credentials.accessKeyId=AKID", "credentials.accessKeySecret=s3cr3t")
    secret = one(made, "Secret")
    assert secret["stringData"] == {"ECI_ACCESS_KEY": "AKID", "ECI_SECRET_KEY": "s3cr3t"}
    ref = one(made, "Deployment")["spec"]["template"]["spec"]["containers"][0]["envFrom"]
    assert ref == [{"secretRef": {"name": secret["metadata"]["name"]}}]
    chain = one(helm_template(helm_bin), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "envFrom" not in chain, "no Secret given: the Alibaba Cloud credential chain (RRSA, RAM role)"
    half = helm(helm_bin, "template", "vkeci", str(CHART), "--set", "credentials.accessKeyId=AKID", check=False)
    assert half.returncode != 0 and "accessKeySecret" in half.stderr


def test_helm_secret_tls_and_decommission(helm_bin: Path) -> None:
    bad = helm(helm_bin, "template", "vkeci", str(CHART), "--set", "tls.mode=secret", check=False)
    assert bad.returncode != 0 and "tls.secretName" in bad.stderr
    objects = helm_template(helm_bin, "tls.mode=secret", "tls.secretName=vkeci-tls")
    container = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "--tls-cert-file=/etc/vkeci/tls/tls.crt" in container["args"]
    gone = helm_template(helm_bin, "decommission=true", "credentials.existingSecret=vkeci-credentials")
    assert one(gone, "Deployment")["spec"]["replicas"] == 0
    assert one(gone, "Job")["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "run",
        "--decommission",
        "--no-kubelet-api",
    ]


def test_kustomize_decommission_component(kubectl_bin: Path, tmp_path: Path) -> None:
    objects = kustomize(kubectl_bin, with_components(tmp_path, ["decommission"]))
    assert one(objects, "Deployment")["spec"]["replicas"] == 0
    job = one(objects, "Job")["spec"]["template"]["spec"]
    config = one(objects, "ConfigMap")["metadata"]["name"]
    assert [v["configMap"]["name"] for v in job["volumes"] if "configMap" in v] == [config]


# ---- chart hygiene ----------------------------------------------------------------------------------


def test_helm_lint(helm_bin: Path) -> None:
    result = helm(helm_bin, "lint", "--strict", str(CHART), "--namespace", NAMESPACE)
    assert "0 chart(s) failed" in result.stdout, result.stdout


def test_versions_agree(base: list[dict[str, Any]]) -> None:
    found = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert found is not None
    version = found.group(1)
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["version"] == chart["appVersion"] == version
    image = one(base, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"vkeci:{version}"
    component = yaml.safe_load((KUSTOMIZE / "components" / "webhook" / "kustomization.yaml").read_text())
    assert component["images"] == [{"name": "vkeci", "newTag": version}]
    assert f"ARG VERSION={version}" in (ROOT / "deploy" / "Dockerfile").read_text()


def test_overlay_renders_image_and_credentials(kubectl_bin: Path) -> None:
    objects = kustomize(kubectl_bin, KUSTOMIZE / "overlays" / "example")
    daemon = next(o for o in by_kind(objects, "Deployment") if o["metadata"]["name"] == "vkeci")
    container = daemon["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/vkeci:0.1.0"
    secret = one(objects, "Secret")
    assert container["envFrom"] == [{"secretRef": {"name": secret["metadata"]["name"]}}]
    assert set(secret["data"]) == {"ECI_ACCESS_KEY", "ECI_SECRET_KEY"}


# ---- the admission webhook (kustomize component webhook, Helm webhook.enabled) ------------------------


@pytest.fixture(scope="module")
def webhook_kustomized(kubectl_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return kustomize(kubectl_bin, with_components(tmp_path_factory.mktemp("webhook"), ["webhook"]))


@pytest.fixture(scope="module")
def webhook_chart(helm_bin: Path) -> list[dict[str, Any]]:
    return helm_template(helm_bin, "credentials.existingSecret=vkeci-credentials", "webhook.enabled=true")


def _webhook_objects(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The webhook's own objects: its RBAC and the objects named for it, and the webhook configuration."""
    rbac = bound_to(objects, WEBHOOK_SERVICE_ACCOUNT)
    named = [o for o in objects if o["metadata"]["name"] == "vkeci-webhook" and o not in rbac]
    return rbac + named + list(by_kind(objects, "MutatingWebhookConfiguration"))


def test_webhook_renders_the_same_from_kustomize_and_helm(
    webhook_kustomized: list[dict[str, Any]], webhook_chart: list[dict[str, Any]]
) -> None:
    # Everything, the daemon's objects included: enabling the webhook changes none of them.
    _same_objects(webhook_kustomized, webhook_chart)
    kinds = sorted(o["kind"] for o in _webhook_objects(webhook_kustomized))
    assert kinds == sorted(
        [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "Role",
            "RoleBinding",
            "RoleBinding",
            "Service",
            "Deployment",
            "MutatingWebhookConfiguration",
        ]
    )


def test_webhook_is_off_by_default_in_helm(chart: list[dict[str, Any]]) -> None:
    assert not _webhook_objects(chart)


@pytest.mark.parametrize("source", ["kustomize", "helm"])
def test_webhook_grants_exactly_its_table(
    webhook_kustomized: list[dict[str, Any]], webhook_chart: list[dict[str, Any]], source: str
) -> None:
    objects = webhook_kustomized if source == "kustomize" else webhook_chart
    assert rbac_grants(bound_to(objects, WEBHOOK_SERVICE_ACCOUNT), WEBHOOK_SERVICE_ACCOUNT) == grants(WEBHOOK_API_CALLS)
    # The daemon's grants do not change with the webhook on.
    assert rbac_grants(bound_to(objects, "vkeci")) == grants(calls_for("base"))


@pytest.mark.parametrize("source", ["kustomize", "helm"])
def test_webhook_configuration_never_blocks_pod_creation(
    webhook_kustomized: list[dict[str, Any]], webhook_chart: list[dict[str, Any]], source: str
) -> None:
    objects = webhook_kustomized if source == "kustomize" else webhook_chart
    (webhook,) = one(objects, "MutatingWebhookConfiguration")["webhooks"]
    assert webhook["failurePolicy"] == "Ignore"
    assert webhook["sideEffects"] == "None"
    assert webhook["reinvocationPolicy"] == "IfNeeded"
    assert webhook["timeoutSeconds"] == 3
    assert webhook["admissionReviewVersions"] == ["v1"]
    assert webhook["namespaceSelector"] == {
        "matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", NAMESPACE]}
        ]
    }
    service = [o for o in by_kind(objects, "Service") if o["metadata"]["name"] == "vkeci-webhook"]
    assert webhook["clientConfig"]["service"] == {
        "name": service[0]["metadata"]["name"],
        "namespace": NAMESPACE,
        "path": "/mutate-pods",
        "port": 443,
    }


def daemon_image(objects: list[dict[str, Any]]) -> str:
    """The daemon's image in a rendering."""
    daemon = next(o for o in by_kind(objects, "Deployment") if o["metadata"]["name"] == "vkeci")
    image: str = daemon["spec"]["template"]["spec"]["containers"][0]["image"]
    return image


def test_webhook_deployment_serves_its_service(
    webhook_kustomized: list[dict[str, Any]], webhook_chart: list[dict[str, Any]]
) -> None:
    for objects in (webhook_kustomized, webhook_chart):
        deployment = next(o for o in by_kind(objects, "Deployment") if o["metadata"]["name"] == "vkeci-webhook")
        service = next(o for o in by_kind(objects, "Service") if o["metadata"]["name"] == "vkeci-webhook")
        pod = deployment["spec"]["template"]
        assert deployment["spec"]["replicas"] == 2
        assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
        assert pod["metadata"]["labels"] == deployment["spec"]["selector"]["matchLabels"]
        assert pod["spec"]["serviceAccountName"] == WEBHOOK_SERVICE_ACCOUNT
        (container,) = pod["spec"]["containers"]
        assert container["readinessProbe"] == {"httpGet": {"path": "/healthz", "port": "https", "scheme": "HTTPS"}}
        assert container["image"] == daemon_image(objects)
        # The names it keeps up to date are the ones its RBAC grants.
        assert "--webhook-configuration=vkeci" in container["args"]
        assert "--tls-secret=$(POD_NAMESPACE)/vkeci-webhook-tls" in container["args"]
        assert "--service=vkeci-webhook.$(POD_NAMESPACE)" in container["args"]
        # The daemon's hardening.
        daemon = next(o for o in by_kind(objects, "Deployment") if o["metadata"]["name"] == "vkeci")
        assert pod["spec"]["securityContext"] == daemon["spec"]["template"]["spec"]["securityContext"]
        assert container["securityContext"] == daemon["spec"]["template"]["spec"]["containers"][0]["securityContext"]


def test_helm_webhook_follows_the_release_name_and_values(helm_bin: Path) -> None:
    objects = helm_template(
        helm_bin,
        "webhook.enabled=true",
        "webhook.replicas=3",
        "webhook.timeoutSeconds=5",
        "webhook.failurePolicy=Fail",
        "webhook.excludedNamespaces={kube-system,monitoring}",
        "image.repository=registry.example.com/vkeci",
        "image.tag=0.2.0",
        release="eci",
    )
    (webhook,) = one(objects, "MutatingWebhookConfiguration")["webhooks"]
    assert webhook["failurePolicy"] == "Fail" and webhook["timeoutSeconds"] == 5
    assert webhook["namespaceSelector"]["matchExpressions"][0]["values"] == ["kube-system", "monitoring", NAMESPACE]
    assert webhook["clientConfig"]["service"]["name"] == "eci-vkeci-webhook"
    deployment = next(o for o in by_kind(objects, "Deployment") if o["metadata"]["name"] == "eci-vkeci-webhook")
    assert deployment["spec"]["replicas"] == 3
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/vkeci:0.2.0"
    assert "--webhook-configuration=eci-vkeci" in container["args"]
    assert "--tls-secret=$(POD_NAMESPACE)/eci-vkeci-webhook-tls" in container["args"]
    assert "--service=eci-vkeci-webhook.$(POD_NAMESPACE)" in container["args"]
    granted = rbac_grants(bound_to(objects, "eci-vkeci-webhook"), "eci-vkeci-webhook")
    names = {g[4] for g in granted if g[4]}
    assert names == {("eci-vkeci",), ("eci-vkeci-webhook-tls",), ("eci-profile",)}  # eci-profile: ACK's fixed name


def test_helm_refuses_a_blocking_or_unknown_failure_policy(helm_bin: Path) -> None:
    result = helm(
        helm_bin,
        "template",
        "vkeci",
        str(CHART),
        "--set",
        "webhook.enabled=true",
        "--set",
        "webhook.failurePolicy=No",
        check=False,
    )
    assert result.returncode != 0 and "failurePolicy" in result.stderr


def test_helm_lint_with_the_webhook(helm_bin: Path) -> None:
    result = helm(helm_bin, "lint", "--strict", str(CHART), "--namespace", NAMESPACE, "--set", "webhook.enabled=true")
    assert "0 chart(s) failed" in result.stdout, result.stdout


def test_overlay_enables_the_webhook_with_its_image(kubectl_bin: Path) -> None:
    objects = kustomize(kubectl_bin, KUSTOMIZE / "overlays" / "example")
    images = {
        o["metadata"]["name"]: o["spec"]["template"]["spec"]["containers"][0]["image"]
        for o in by_kind(objects, "Deployment")
    }
    assert images == {"vkeci": "registry.example.com/vkeci:0.1.0", "vkeci-webhook": "registry.example.com/vkeci:0.1.0"}
    assert one(objects, "MutatingWebhookConfiguration")["metadata"]["name"] == "vkeci"
