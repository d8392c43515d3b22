"""`vkeci translate FILE`: show the CreateContainerGroup request vk-eci would send for a pod.

FILE is a YAML stream (``-`` for stdin) with one Pod and the ConfigMaps, Secrets and
ServiceAccounts it references. The request is printed as the JSON object of OpenAPI parameter
names that ``CreateContainerGroupRequest.to_map()`` produces. A pod ECI cannot run prints every
problem on stderr and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MASK = "***"
CLUSTER_PROVIDED_CONFIGMAP = "kube-root-ca.crt"
PLACEHOLDER_CA = "-----BEGIN CERTIFICATE-----\n(the cluster CA certificate goes here)\n-----END CERTIFICATE-----\n"


# The settings that shape a request: `translate` reads them as `run` does (flags, environment, --config).
REQUEST_SETTINGS = (
    "region",
    "security_group",
    "vswitches",
    "schedule_strategy",
    "cluster_name",
    "node_name",
    "zone_id",
    "resource_group_id",
    "cluster_dns",
    "cluster_domain",
    "api_server",
)
# Workloads whose pod template is translated: kind -> (path of the template, kind of the pod's controller).
WORKLOADS: dict[str, tuple[tuple[str, ...], str]] = {
    "Deployment": (("spec", "template"), "ReplicaSet"),
    "ReplicaSet": (("spec", "template"), "ReplicaSet"),
    "StatefulSet": (("spec", "template"), "StatefulSet"),
    "Job": (("spec", "template"), "Job"),
    "CronJob": (("spec", "jobTemplate", "spec", "template"), "Job"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """FILE, output format and the daemon settings that shape a request (annotations override them)."""
    from vkeci.commands.run import add_config_arguments

    parser.add_argument(
        "file",
        metavar="FILE",
        help="YAML stream with one Pod, or one Deployment/StatefulSet/Job/CronJob/ReplicaSet, and the objects "
        "it references (- = stdin)",
    )
    parser.add_argument("--format", choices=("json", "yaml"), default="json", help="output format (default json)")
    parser.add_argument(
        "--reveal-secrets",
        action="store_true",
        help="print Secret-sourced values, Secret and token files and registry passwords instead of ***",
    )
    add_config_arguments(parser, REQUEST_SETTINGS)


def _documents(text: str) -> list[Mapping[str, Any]]:
    import yaml

    docs: list[Mapping[str, Any]] = []
    for doc in yaml.safe_load_all(text):
        if isinstance(doc, Mapping) and doc.get("kind") == "List":
            docs.extend(item for item in doc.get("items") or [] if isinstance(item, Mapping))
        elif isinstance(doc, Mapping):
            docs.append(doc)
    return docs


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


class Refused(ValueError):
    """FILE holds something vk-eci never runs on ECI (a DaemonSet): exit 2, like a rejected pod."""


def _the_pod(docs: list[Mapping[str, Any]]) -> tuple[Mapping[str, Any], list[str]]:
    """The one Pod of FILE, or the pod the one workload's template makes (with a note saying so)."""
    from vkeci.core.translate import DAEMONSET_MESSAGE

    pods = [d for d in docs if d.get("kind") == "Pod"]
    if len(pods) == 1:
        return pods[0], []
    if pods:
        raise ValueError(f"expected one Pod in the file, found {len(pods)}: put each in its own file")
    workloads = [d for d in docs if d.get("kind") in WORKLOADS]
    daemonsets = [d for d in docs if d.get("kind") == "DaemonSet"]
    if daemonsets and not workloads:
        raise Refused(f"DaemonSet {_name(daemonsets[0])}: {DAEMONSET_MESSAGE}")
    if len(workloads) != 1:
        found = ", ".join(f"{d.get('kind')} {_name(d)}".strip() for d in docs) or "nothing"
        raise ValueError(
            f"expected one Pod or one {'/'.join(WORKLOADS)} in the file, found {found}: put one workload in each file"
        )
    workload = workloads[0]
    kind, name = str(workload.get("kind")), _name(workload) or "unnamed"
    path, owner_kind = WORKLOADS[kind]
    template: Any = workload
    for key in path:
        template = template.get(key) if isinstance(template, Mapping) else None
    if not isinstance(template, Mapping) or not isinstance(template.get("spec"), Mapping):
        raise ValueError(f"{kind} {name} has no pod template at {'.'.join(path)}")
    meta = dict(template.get("metadata") or {})
    # A StatefulSet's first pod is <name>-0; the others get a generated suffix, which ECI's group name shows.
    pod_name = f"{name}-0" if kind == "StatefulSet" else f"{name}-xxxxx"
    meta["name"] = pod_name
    meta["namespace"] = (workload.get("metadata") or {}).get("namespace") or meta.get("namespace") or "default"
    meta["ownerReferences"] = [{"kind": owner_kind, "name": name, "controller": True}]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template["spec"]}
    return pod, [f"translated the pod template of {kind} {name} (as pod {pod_name})"]


def build_inputs(docs: list[Mapping[str, Any]]) -> tuple[Mapping[str, Any], Any, list[str]]:
    """(pod, Objects, notes) from the documents of FILE; placeholders stand in for what every
    cluster provides (the ``kube-root-ca.crt`` ConfigMap, service-account tokens)."""
    from vkeci.core.translate import Objects, needs

    pod, notes = _the_pod(docs)
    configmaps = {_name(d): d for d in docs if d.get("kind") == "ConfigMap"}
    secrets = {_name(d): d for d in docs if d.get("kind") == "Secret"}
    accounts = {_name(d) for d in docs if d.get("kind") == "ServiceAccount"} | {"default"}
    wanted = needs(pod)
    if CLUSTER_PROVIDED_CONFIGMAP in wanted.configmaps and CLUSTER_PROVIDED_CONFIGMAP not in configmaps:
        configmaps[CLUSTER_PROVIDED_CONFIGMAP] = {"data": {"ca.crt": PLACEHOLDER_CA}}
        notes.append(f"ConfigMap {CLUSTER_PROVIDED_CONFIGMAP} is a placeholder (every namespace has the real one)")
    tokens = {}
    for key in sorted(wanted.tokens):
        account, audience, seconds = key
        if account in accounts:
            tokens[key] = f"<token of serviceaccount {account}, audience {audience or '(api server)'}, {seconds}s>"
            notes.append(f"the {account} service-account token is a placeholder (the daemon requests a real one)")
    return pod, Objects(configmaps=configmaps, secrets=secrets, tokens=tokens), notes


def _secret_env(container: Mapping[str, Any], objects: Any) -> set[str]:
    names = set()
    for item in container.get("env") or []:
        if ((item or {}).get("valueFrom") or {}).get("secretKeyRef"):
            names.add(str(item.get("name")))
    for source in container.get("envFrom") or []:
        ref = (source or {}).get("secretRef")
        if ref:
            secret = objects.secrets.get(str(ref.get("name") or "")) or {}
            keys = {*(secret.get("data") or {}), *(secret.get("stringData") or {})}
            names |= {str(source.get("prefix") or "") + str(k) for k in keys}
    return names


def _secret_files(volume: Mapping[str, Any], objects: Any) -> set[str] | None:
    """Paths in a volume that hold Secret data or a token; None means every file."""
    if "secret" in volume:
        return None
    paths: set[str] = set()
    for source in (volume.get("projected") or {}).get("sources") or []:
        source = source or {}
        if source.get("serviceAccountToken"):
            paths.add(str(source["serviceAccountToken"].get("path") or "token"))
        if source.get("secret"):
            spec = source["secret"]
            if spec.get("items"):
                paths |= {str(i.get("path") or i.get("key")) for i in spec["items"]}
            else:
                secret = objects.secrets.get(str(spec.get("name") or "")) or {}
                paths |= {str(k) for k in (*(secret.get("data") or {}), *(secret.get("stringData") or {}))}
    return paths


def _mask(request: dict[str, Any], pod: Mapping[str, Any], objects: Any) -> dict[str, Any]:
    """Hide registry passwords, Secret-sourced variables and Secret/token file contents."""
    request = json.loads(json.dumps(request))
    for credential in request.get("ImageRegistryCredential") or []:
        credential["Password"] = MASK
    spec = pod.get("spec") or {}
    for section, wire in (("initContainers", "InitContainer"), ("containers", "Container")):
        for source, sent in zip(spec.get(section) or [], request.get(wire) or [], strict=False):
            hidden = _secret_env(source, objects)
            for var in sent.get("EnvironmentVar") or []:
                if var.get("Key") in hidden and "Value" in var:
                    var["Value"] = MASK
    volumes = {str(v.get("name")): v for v in spec.get("volumes") or [] if isinstance(v, Mapping)}
    for volume in request.get("Volume") or []:
        files = (volume.get("ConfigFileVolume") or {}).get("ConfigFileToPath") or []
        hidden_paths = _secret_files(volumes.get(volume.get("Name"), {}), objects)
        for item in files:
            if hidden_paths is None or item.get("Path") in hidden_paths:
                item["Content"] = MASK
    return request


def placement_warnings(request: Mapping[str, Any]) -> list[str]:
    """What ECI would refuse the request for that the configuration, not the pod, should give."""
    from vkeci.config import setting

    warnings = []
    for wire, name, flag, annotation in (
        ("RegionId", "region", "--region", ""),
        ("SecurityGroupId", "security_group", "--security-group", "k8s.aliyun.com/eci-security-group"),
        ("VSwitchId", "vswitches", "--vswitches", "k8s.aliyun.com/eci-vswitch"),
    ):
        if not request.get(wire):
            where = f"{setting(name).env[0]} ({flag}, or `{name}:` in --config)"
            also = f", or the pod annotation {annotation}" if annotation else ""
            warnings.append(f"the request has no {wire}, which ECI requires: set {where}{also}")
    return warnings


def run(args: argparse.Namespace) -> int:
    """Translate FILE and print the request (exit 0), or print why not (exit 2; 1 for a bad FILE)."""
    from vkeci.commands.run import load_config
    from vkeci.config import ConfigError
    from vkeci.core.translate import Defaults, Missing, Rejected, translate

    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
        pod, objects, notes = build_inputs(_documents(text))
    except OSError as exc:
        print(f"vkeci translate: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    except Refused as exc:
        print(f"vkeci translate: {args.file}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # YAML errors and a stream without exactly one Pod or workload
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"vkeci translate: {args.file}: {first}", file=sys.stderr)
        return 1
    try:
        config = load_config(args)
    except ConfigError as err:
        print(f"vkeci translate: {err}", file=sys.stderr)
        return 2
    try:
        result = translate(pod, objects, Defaults.from_config(config))
    except (Rejected, Missing) as exc:
        print(str(exc), file=sys.stderr)
        return 2
    for note in dict.fromkeys([*notes, *result.notes]):
        print(f"note: {note}", file=sys.stderr)
    for warning in [*map(str, result.warnings), *placement_warnings(result.request)]:
        print(f"warning: {warning}", file=sys.stderr)
    request = result.request if args.reveal_secrets else _mask(result.request, pod, objects)
    if args.format == "yaml":
        import yaml

        sys.stdout.write(yaml.safe_dump(request, sort_keys=False, allow_unicode=True))
    else:
        sys.stdout.write(json.dumps(request, indent=2, ensure_ascii=False) + "\n")
    return 0
