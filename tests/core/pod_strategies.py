"""Hypothesis strategies for realistic Pods and the objects they reference.

``scenarios()`` draws a Scenario: a Pod that uses (nearly) every field vk-eci maps, the
ConfigMaps/Secrets/tokens/Services it references (unicode and binary data included), and
daemon Defaults. Everything drawn is valid for Kubernetes *and* within ECI's limits, so a
scenario must translate without error; ``breakage()`` then adds exactly one thing ECI cannot
run, which must be rejected with a Problem naming its field.
"""

from __future__ import annotations

import base64
import json
import string
import uuid
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from vkeci.core.context import Objects, token_key
from vkeci.core.translate import Defaults

# Text without lone surrogates: the API server only ever holds valid UTF-8.
UNICODE = st.characters(exclude_categories=("Cs",))
DNS_LABEL_CHARS = string.ascii_lowercase + string.digits
SECRET_MARKER = b"s3cr3t:"


def _label(text: str) -> str:
    return text.strip("-") or "a"


def dns_label(max_size: int = 63) -> st.SearchStrategy[str]:
    """A DNS-1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])? (one draw: cheap to generate)."""
    return st.text(alphabet=DNS_LABEL_CHARS + "-", min_size=1, max_size=max_size).map(_label)


@st.composite
def dns_subdomain(draw: st.DrawFn) -> str:
    """A DNS-1123 subdomain (dots allowed, up to 253 characters): what pod names may be."""
    labels = draw(st.lists(dns_label(max_size=63), min_size=1, max_size=5))
    return ".".join(labels)[:253].rstrip(".-") or "a"


ENV_NAME = st.builds(
    str.__add__,
    st.sampled_from(string.ascii_letters + "_"),
    st.text(alphabet=string.ascii_letters + string.digits + "_", max_size=30),
)
# The apiserver's IsConfigMapKey: not ".", not "..", and no key starting with "..".
CONFIG_KEY = st.text(alphabet=string.ascii_letters + string.digits + "-._", min_size=1, max_size=40).filter(
    lambda k: k not in (".", "..") and not k.startswith("..")
)
IMAGES = st.sampled_from(
    [
        "nginx",
        "nginx:1.25",
        "busybox:latest",
        "registry.cn-hangzhou.aliyuncs.com/acs/app:v1",
        "harbor.example.com:5000/team/api@sha256:" + "a" * 64,
        "python:3.11-slim",
    ]
)
CPU = st.sampled_from(["100m", "250m", "500m", "1", "2", "1500m", "0.5"])
MEMORY = st.sampled_from(["64Mi", "128Mi", "512Mi", "1Gi", "2Gi", "1536Mi", "3G"])


@dataclass
class Scenario:
    """A pod, what it references, and daemon defaults."""

    pod: dict[str, Any]
    objects: Objects
    defaults: Defaults
    # (volume name, file path) -> the exact bytes that file must have
    files: dict[tuple[str, str], bytes] = field(default_factory=dict)
    secret_values: list[bytes] = field(default_factory=list)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@st.composite
def configmap(draw: st.DrawFn, name: str) -> dict[str, Any]:
    keys = draw(st.lists(CONFIG_KEY, min_size=1, max_size=4, unique=True))
    split = draw(st.integers(0, len(keys)))
    data = {k: draw(st.text(UNICODE, max_size=60)) for k in keys[:split]}
    binary = {k: _b64(draw(st.binary(max_size=60))) for k in keys[split:]}
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}
    if binary:
        obj["binaryData"] = binary
    return obj


@st.composite
def secret(draw: st.DrawFn, name: str) -> dict[str, Any]:
    keys = draw(st.lists(CONFIG_KEY, min_size=1, max_size=4, unique=True))
    # Some values carry a marker so tests can check they never leak into messages.
    data = {k: _b64(draw(st.sampled_from([b"", SECRET_MARKER])) + draw(st.binary(max_size=60))) for k in keys}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "Opaque", "data": data}


def items_of(obj: dict[str, Any]) -> dict[str, bytes]:
    """The bytes a kubelet would write for each key of a ConfigMap or Secret."""
    if obj["kind"] == "ConfigMap":
        out = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
        out.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        return out
    return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}


@st.composite
def probe(draw: st.DrawFn, port: int | None) -> dict[str, Any]:
    kinds = ["exec"] + (["httpGet", "tcpSocket"] if port else [])
    kind = draw(st.sampled_from(kinds))
    result: dict[str, Any] = {}
    if kind == "exec":
        result["exec"] = {"command": draw(st.lists(st.text(UNICODE, min_size=1, max_size=10), min_size=1, max_size=3))}
    elif kind == "httpGet":
        result["httpGet"] = {"path": "/healthz", "port": draw(st.sampled_from([port, "main"])), "scheme": "HTTP"}
    else:
        result["tcpSocket"] = {"port": port}
    for key in ("initialDelaySeconds", "periodSeconds", "timeoutSeconds", "failureThreshold"):
        if draw(st.booleans()):
            result[key] = draw(st.integers(1, 60))
    return result


@st.composite
def container(
    draw: st.DrawFn,
    name: str,
    volumes: list[str],
    configmaps: dict[str, dict[str, Any]],
    secrets: dict[str, dict[str, Any]],
    init: bool,
) -> dict[str, Any]:
    c: dict[str, Any] = {"name": name, "image": draw(IMAGES)}
    if draw(st.booleans()):
        c["command"] = draw(st.lists(st.text(UNICODE, max_size=20), min_size=1, max_size=4))
    if draw(st.booleans()):
        c["args"] = draw(st.lists(st.text(UNICODE, max_size=20), min_size=0, max_size=10))
    if draw(st.booleans()):
        c["workingDir"] = "/" + draw(dns_label(max_size=10))
    if draw(st.booleans()):
        c["imagePullPolicy"] = draw(st.sampled_from(["Always", "IfNotPresent", "Never"]))
    port = None
    if not init and draw(st.booleans()):
        port = draw(st.integers(1, 65535))
        c["ports"] = [{"name": "main", "containerPort": port, "protocol": draw(st.sampled_from(["TCP", "UDP"]))}]
    env: list[dict[str, Any]] = []
    for env_name in draw(st.lists(ENV_NAME, max_size=5, unique=True)):
        kind = draw(st.sampled_from(["value", "field", "podip", "resource", "cm", "secret"]))
        if kind == "value":
            env.append({"name": env_name, "value": draw(st.text(UNICODE, max_size=40))})
        elif kind == "field":
            path = draw(
                st.sampled_from(
                    ["metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "metadata.labels['app']"]
                )
            )
            env.append({"name": env_name, "valueFrom": {"fieldRef": {"fieldPath": path}}})
        elif kind == "podip":
            env.append({"name": env_name, "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}})
        elif kind == "resource":
            ref = {"resource": draw(st.sampled_from(["limits.cpu", "requests.memory", "limits.memory"]))}
            if draw(st.booleans()):
                ref["divisor"] = draw(st.sampled_from(["1m", "1Mi", "1"]))
            env.append({"name": env_name, "valueFrom": {"resourceFieldRef": ref}})
        elif kind == "cm" and configmaps:
            cm_name = draw(st.sampled_from(sorted(configmaps)))
            key = draw(st.sampled_from(sorted(configmaps[cm_name]["data"] or {"missing": ""})))
            optional = key not in (configmaps[cm_name]["data"] or {})
            env.append(
                {
                    "name": env_name,
                    "valueFrom": {"configMapKeyRef": {"name": cm_name, "key": key, "optional": optional}},
                }
            )
        elif kind == "secret" and secrets:
            s_name = draw(st.sampled_from(sorted(secrets)))
            texts = sorted(k for k, v in items_of(secrets[s_name]).items() if _is_text(v))
            if texts:
                env.append(
                    {
                        "name": env_name,
                        "valueFrom": {"secretKeyRef": {"name": s_name, "key": draw(st.sampled_from(texts))}},
                    }
                )
    if env:
        c["env"] = env
    if configmaps and draw(st.booleans()):
        c["envFrom"] = [{"configMapRef": {"name": draw(st.sampled_from(sorted(configmaps)))}, "prefix": "CM_"}]
    text_secrets = sorted(n for n, obj in secrets.items() if all(_is_text(v) for v in items_of(obj).values()))
    if text_secrets and draw(st.booleans()):
        c.setdefault("envFrom", []).append({"secretRef": {"name": draw(st.sampled_from(text_secrets))}})
    if draw(st.integers(0, 5)) == 0:
        c.setdefault("envFrom", []).append({"secretRef": {"name": "never-created", "optional": True}})
    if draw(st.booleans()):
        resources: dict[str, Any] = {}
        if draw(st.booleans()):
            resources["requests"] = {"cpu": draw(CPU), "memory": draw(MEMORY)}
        if draw(st.booleans()):
            resources["limits"] = {"cpu": draw(CPU), "memory": draw(MEMORY)}
        if not init and draw(st.integers(0, 9)) == 0:
            resources.setdefault("limits", {})["nvidia.com/gpu"] = draw(st.integers(1, 2))
        c["resources"] = resources
    mounts = []
    for vol in draw(st.lists(st.sampled_from(volumes), unique=True, max_size=3)) if volumes else []:
        mount: dict[str, Any] = {"name": vol, "mountPath": f"/mnt/{vol}"}
        if draw(st.booleans()):
            mount["readOnly"] = True
        choice = draw(st.integers(0, 5))
        if choice == 0:
            mount["subPath"] = draw(dns_label(max_size=8))
        elif choice == 1:
            mount["subPathExpr"] = "$(POD_NAME_FOR_PATH)"
            c.setdefault("env", []).append(
                {"name": "POD_NAME_FOR_PATH", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
            )
        mounts.append(mount)
    if mounts:
        c["volumeMounts"] = mounts
    if draw(st.booleans()):
        sc: dict[str, Any] = {}
        if draw(st.booleans()):
            sc["capabilities"] = {
                "add": draw(st.lists(st.sampled_from(["NET_ADMIN", "SYS_TIME", "SYS_PTRACE"]), max_size=2, unique=True))
            }
        if draw(st.booleans()):
            sc["runAsUser"] = draw(st.integers(0, 65535))
        if draw(st.booleans()):
            sc["readOnlyRootFilesystem"] = draw(st.booleans())
        c["securityContext"] = sc
    if not init:
        for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
            if draw(st.integers(0, 2)) == 0:
                c[kind] = draw(probe(port))
        if draw(st.booleans()):
            c["lifecycle"] = {
                "preStop": {"exec": {"command": ["/bin/sh", "-c", "sleep 5"]}},
                **({"postStart": {"httpGet": {"path": "/started", "port": port}}} if port else {}),
            }
        for flag in ("stdin", "tty", "stdinOnce"):
            if draw(st.integers(0, 3)) == 0:
                c[flag] = draw(st.booleans())
    if draw(st.integers(0, 3)) == 0:
        c["terminationMessagePolicy"] = draw(st.sampled_from(["File", "FallbackToLogsOnError"]))
    return c


def _is_text(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


ANNOTATION_VALUES: dict[str, Any] = {
    "k8s.aliyun.com/eci-vswitch": st.sampled_from(["vsw-a", "vsw-a,vsw-b"]),
    "k8s.aliyun.com/eci-schedule-strategy": st.sampled_from(["VSwitchOrdered", "VSwitchRandom"]),
    "k8s.aliyun.com/eci-security-group": st.just("sg-1"),
    "k8s.aliyun.com/eci-use-specs": st.sampled_from(["16-32Gi", "1-2Gi,2-4Gi", "ecs.c6.xlarge", "3-5Gi,ecs.g6.large"]),
    "k8s.aliyun.com/eci-ram-role-name": st.just("AliyunECIContainerGroupRole"),
    "k8s.aliyun.com/eci-resource-group-id": st.just("rg-acfm123"),
    "k8s.aliyun.com/eci-auto-imc": st.sampled_from(["true", "false"]),
    "k8s.aliyun.com/eci-imc-id": st.just("imc-2ze1"),
    "k8s.aliyun.com/acr-instance-ids": st.sampled_from(["cri-abc", "cn-beijing:cri-def,cri-abc"]),
    "k8s.aliyun.com/plain-http-registry": st.just("harbor.example.com"),
    "k8s.aliyun.com/insecure-registry": st.just("10.0.0.5:5000,registry.local"),
    "k8s.aliyun.com/eci-extra-ephemeral-storage": st.sampled_from(["50Gi", "20G"]),
    "k8s.aliyun.com/eci-ntp-server": st.just("100.100.5.1,100.100.5.2"),
    "k8s.aliyun.com/eci-custom-tags": st.sampled_from(["env:test", "env:test,owner:alice,cost:team-1"]),
    "k8s.aliyun.com/eci-custom-hosts": st.just(json.dumps([{"host": "db.local", "ip": "10.0.0.9"}])),
    "k8s.aliyun.com/eci-custom-dnsconfig": st.just(json.dumps({"nameservers": ["1.1.1.1"], "searches": ["x.local"]})),
    "kubernetes.io/ingress-bandwidth": st.sampled_from(["10M", "1G"]),
    "kubernetes.io/egress-bandwidth": st.just("20M"),
    "k8s.aliyun.com/eci-compute-category": st.sampled_from(["economy", "general,economy"]),
    "k8s.aliyun.com/eci-enable-ipv6": st.sampled_from(["true", "false"]),
    "k8s.aliyun.com/eci-fixed-ip": st.just("true"),
    "k8s.aliyun.com/eci-core-pattern": st.just("/pod/data/dump/core"),
}


@st.composite
def annotations(draw: st.DrawFn) -> dict[str, str]:
    chosen = draw(st.lists(st.sampled_from(sorted(ANNOTATION_VALUES)), unique=True, max_size=6))
    result = {name: draw(ANNOTATION_VALUES[name]) for name in chosen}
    spot = draw(st.sampled_from(["none", "go", "limit"]))
    if spot == "go":
        result["k8s.aliyun.com/eci-spot-strategy"] = "SpotAsPriceGo"
    elif spot == "limit":
        result["k8s.aliyun.com/eci-spot-strategy"] = "SpotWithPriceLimit"
        result["k8s.aliyun.com/eci-spot-price-limit"] = draw(st.sampled_from(["0.5", "0.125", "2"]))
    if spot != "none" and draw(st.booleans()):
        result["k8s.aliyun.com/eci-spot-duration"] = draw(st.sampled_from(["0", "1"]))
        result["k8s.aliyun.com/eci-spot-fallback"] = draw(st.sampled_from(["true", "false"]))
    eip = draw(st.sampled_from(["none", "new", "existing"]))
    if eip == "new":
        result["k8s.aliyun.com/eci-with-eip"] = "true"
        result["k8s.aliyun.com/eip-bandwidth"] = draw(st.sampled_from(["5", "100"]))
        result["k8s.aliyun.com/eip-isp"] = draw(st.sampled_from(["BGP", "BGP_PRO"]))
    elif eip == "existing":
        result["k8s.aliyun.com/eci-eip-instanceid"] = "eip-bp1q"
    return result


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """A realistic pod with every mapped field in play, its referenced objects and defaults."""
    namespace = draw(dns_label(max_size=20))
    name = draw(dns_subdomain())
    uid = str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1))))
    cm_names = draw(st.lists(dns_label(max_size=12), max_size=3, unique=True))
    configmaps = {n: draw(configmap(n)) for n in cm_names}
    s_names = draw(
        st.lists(dns_label(max_size=12), max_size=3, unique=True).filter(lambda xs: not set(xs) & set(cm_names))
    )
    secrets = {n: draw(secret(n)) for n in s_names}
    service_account = draw(st.sampled_from(["default", "builder"]))
    container_names = draw(st.lists(dns_label(max_size=20), min_size=1, max_size=5, unique=True))
    volumes: list[dict[str, Any]] = []
    files: dict[tuple[str, str], bytes] = {}
    tokens = {}
    vol_names = draw(st.lists(dns_label(max_size=15), max_size=6, unique=True))
    for vol_name in vol_names:
        kind = draw(st.sampled_from(["emptyDir", "nfs", "configMap", "secret", "projected", "downwardAPI"]))
        if (kind == "configMap" and not configmaps) or (kind == "secret" and not secrets):
            kind = "emptyDir"
        if kind == "emptyDir":
            spec: dict[str, Any] = {}
            if draw(st.booleans()):
                spec["medium"] = "Memory"
            if draw(st.booleans()):
                spec["sizeLimit"] = draw(st.sampled_from(["1Gi", "500Mi"]))
            volumes.append({"name": vol_name, "emptyDir": spec})
        elif kind == "nfs":
            volumes.append({"name": vol_name, "nfs": {"server": "abc.cn-hangzhou.nas.aliyuncs.com", "path": "/share"}})
        elif kind in ("configMap", "secret"):
            pool = configmaps if kind == "configMap" else secrets
            obj_name = draw(st.sampled_from(sorted(pool)))
            data = items_of(pool[obj_name])
            source: dict[str, Any] = {"name": obj_name} if kind == "configMap" else {"secretName": obj_name}
            if draw(st.booleans()):
                source["defaultMode"] = draw(st.sampled_from([0o400, 0o644, 0o755]))
            if draw(st.booleans()):
                keys = draw(st.lists(st.sampled_from(sorted(data)), min_size=1, unique=True))
                source["items"] = [{"key": k, "path": f"sub/{k}"} for k in keys]
                for k in keys:
                    files[(vol_name, f"sub/{k}")] = data[k]
            else:
                for k, v in data.items():
                    files[(vol_name, k)] = v
            volumes.append({"name": vol_name, kind: source})
        elif kind == "projected":
            audience = draw(st.sampled_from(["", "vault"]))
            expiration = draw(st.sampled_from([3607, 7200]))
            token = "eyJ" + draw(st.text(string.ascii_letters + string.digits + "-_.", min_size=10, max_size=40))
            token = tokens.setdefault(token_key(service_account, audience, expiration), token)
            sa_source: dict[str, Any] = {"path": "token", "expirationSeconds": expiration}
            if audience:
                sa_source["audience"] = audience
            ca = "-----BEGIN CERTIFICATE-----\n" + draw(st.text(string.ascii_letters, max_size=30)) + "\n"
            projected_secret = draw(st.sampled_from(sorted(secrets))) if secrets and draw(st.booleans()) else None
            if projected_secret:
                taken = {"token", "ca.crt", "namespace", "cpu_limit"}
                if taken & set(items_of(secrets[projected_secret])):
                    projected_secret = None  # the API server refuses projections that collide
                else:
                    for k, v in items_of(secrets[projected_secret]).items():
                        files[(vol_name, k)] = v
            configmaps.setdefault(
                "kube-root-ca.crt",
                {"kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": ca}},
            )
            volumes.append(
                {
                    "name": vol_name,
                    "projected": {
                        "defaultMode": 420,
                        "sources": [
                            {"serviceAccountToken": sa_source},
                            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                            {
                                "downwardAPI": {
                                    "items": [
                                        {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}},
                                        {
                                            "path": "cpu_limit",
                                            "resourceFieldRef": {
                                                "containerName": container_names[0],
                                                "resource": "limits.cpu",
                                                "divisor": "1m",
                                            },
                                        },
                                    ]
                                }
                            },
                            *([{"secret": {"name": projected_secret}}] if projected_secret else []),
                        ],
                    },
                }
            )
            files[(vol_name, "token")] = token.encode()
            files[(vol_name, "ca.crt")] = configmaps["kube-root-ca.crt"]["data"]["ca.crt"].encode()
            files[(vol_name, "namespace")] = namespace.encode()
        else:
            volumes.append(
                {
                    "name": vol_name,
                    "downwardAPI": {
                        "items": [
                            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                        ]
                    },
                }
            )
            files[(vol_name, "name")] = name.encode()
    split = draw(st.integers(1, len(container_names)))
    app = [draw(container(n, vol_names, configmaps, secrets, init=False)) for n in container_names[:split]]
    init = [draw(container(n, vol_names, configmaps, secrets, init=True)) for n in container_names[split:]]
    spec: dict[str, Any] = {
        "nodeName": "virtual-kubelet",
        "serviceAccountName": service_account,
        "containers": app,
        "restartPolicy": draw(st.sampled_from(["Always", "OnFailure", "Never"])),
    }
    if init:
        spec["initContainers"] = init
    if volumes:
        spec["volumes"] = volumes
    if draw(st.booleans()):
        spec["dnsPolicy"] = draw(st.sampled_from(["ClusterFirst", "Default", "None"]))
        if spec["dnsPolicy"] == "None" or draw(st.booleans()):
            spec["dnsConfig"] = {
                "nameservers": ["10.96.0.10"],
                "searches": ["svc.cluster.local"],
                "options": [{"name": "ndots", "value": "2"}],
            }
    if draw(st.booleans()):
        spec["hostAliases"] = [{"ip": "10.0.0.1", "hostnames": ["a.local", "b.local"]}]
    if draw(st.booleans()):
        spec["hostname"] = draw(dns_label(max_size=30))
    if draw(st.booleans()):
        spec["securityContext"] = {"sysctls": [{"name": "net.core.somaxconn", "value": "1024"}], "runAsUser": 1000}
    for key, values in (
        ("terminationGracePeriodSeconds", st.integers(0, 600)),
        ("activeDeadlineSeconds", st.integers(1, 86400)),
    ):
        if draw(st.booleans()):
            spec[key] = draw(values)
    if draw(st.booleans()):
        spec["shareProcessNamespace"] = draw(st.booleans())
    if draw(st.booleans()):
        spec["enableServiceLinks"] = False
    secret_values = [v for s in secrets.values() for v in items_of(s).values() if v.startswith(SECRET_MARKER)]
    pull = draw(st.sampled_from(["none", "json", "cfg", "auth"]))
    if pull != "none":
        user = draw(st.text(string.ascii_letters, min_size=1, max_size=10))
        password = SECRET_MARKER.decode() + draw(st.text(string.ascii_letters + string.digits + "!@#", max_size=20))
        entry = (
            {"auth": _b64(f"{user}:{password}".encode())}
            if pull == "auth"
            else {"username": user, "password": password}
        )
        if pull == "cfg":
            body, key, kind = {"registry.example.com": entry}, ".dockercfg", "kubernetes.io/dockercfg"
        else:
            body = {"auths": {"https://registry.cn-hangzhou.aliyuncs.com/v1/": entry}}
            key, kind = ".dockerconfigjson", "kubernetes.io/dockerconfigjson"
        secrets["pull-secret"] = {
            "kind": "Secret",
            "metadata": {"name": "pull-secret"},
            "type": kind,
            "data": {key: _b64(json.dumps(body).encode())},
        }
        spec["imagePullSecrets"] = [{"name": "pull-secret"}]
        secret_values.append(password.encode())
    labels = {"app": draw(dns_label(max_size=10)), "tier": draw(st.text(UNICODE, max_size=10))}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "labels": labels,
            "annotations": draw(annotations()),
        },
        "spec": spec,
    }
    services = [
        {
            "metadata": {"name": "kubernetes", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443}]},
        },
        {
            "metadata": {"name": "web-api", "namespace": namespace},
            "spec": {"clusterIP": "10.96.3.4", "ports": [{"port": 80, "protocol": "TCP"}]},
        },
    ]
    defaults = Defaults(
        region="cn-hangzhou",
        security_group="sg-1",
        vswitches=draw(st.sampled_from([("vsw-a",), ("vsw-a", "vsw-b")])),
        cluster_name=draw(st.sampled_from(["default", "prod-cluster"])),
        node_name="virtual-kubelet",
    )
    objects = Objects(configmaps=configmaps, secrets=secrets, tokens=tokens, services=services)
    return Scenario(pod=pod, objects=objects, defaults=defaults, files=files, secret_values=secret_values)


# One thing ECI cannot run, and the field the Problem must name.
BREAKAGES: list[tuple[str, Any, str]] = [
    (
        "hostPath",
        lambda pod: (
            pod["spec"].setdefault("volumes", []).append({"name": "host-logs", "hostPath": {"path": "/var/log"}})
        ),
        ".hostPath",
    ),
    (
        "pvc",
        lambda pod: (
            pod["spec"]
            .setdefault("volumes", [])
            .append({"name": "data-pvc", "persistentVolumeClaim": {"claimName": "data"}})
        ),
        ".persistentVolumeClaim",
    ),
    ("hostNetwork", lambda pod: pod["spec"].update(hostNetwork=True), "spec.hostNetwork"),
    (
        "privileged",
        lambda pod: pod["spec"]["containers"][0].update(securityContext={"privileged": True}),
        "spec.containers[0].securityContext.privileged",
    ),
    (
        "spot",
        lambda pod: pod["metadata"]["annotations"].update({"k8s.aliyun.com/eci-spot-strategy": "Cheap"}),
        "metadata.annotations['k8s.aliyun.com/eci-spot-strategy']",
    ),
    (
        "specs",
        lambda pod: pod["metadata"]["annotations"].update({"k8s.aliyun.com/eci-use-specs": "lots"}),
        "metadata.annotations['k8s.aliyun.com/eci-use-specs']",
    ),
    (
        "eip-bw",
        lambda pod: pod["metadata"]["annotations"].update(
            {"k8s.aliyun.com/eci-with-eip": "true", "k8s.aliyun.com/eip-bandwidth": "fast"}
        ),
        "metadata.annotations['k8s.aliyun.com/eip-bandwidth']",
    ),
    (
        "sctp",
        lambda pod: pod["spec"]["containers"][0].update(ports=[{"containerPort": 9, "protocol": "SCTP"}]),
        "spec.containers[0].ports[0].protocol",
    ),
    (
        "envname",
        lambda pod: pod["spec"]["containers"][0].setdefault("env", []).append({"name": "my.var", "value": "x"}),
        ".name",
    ),
    (
        "huge",
        lambda pod: pod["spec"]["containers"][0].update(resources={"limits": {"cpu": "100", "memory": "1Gi"}}),
        "resources",
    ),
]


def breakage() -> st.SearchStrategy[tuple[str, Any, str]]:
    """One of BREAKAGES."""
    return st.sampled_from(BREAKAGES)
