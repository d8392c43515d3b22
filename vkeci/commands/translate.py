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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """FILE, output format and the daemon defaults that annotations override."""
    parser.add_argument(
        "file", metavar="FILE", help="YAML stream with one Pod and the objects it references (- = stdin)"
    )
    parser.add_argument("--format", choices=("json", "yaml"), default="json", help="output format (default json)")
    parser.add_argument("--region", default="cn-hangzhou", help="RegionId to put in the request")
    parser.add_argument("--security-group", default="", help="default security group id")
    parser.add_argument("--vswitch", default="", help="default vSwitch ids, comma-separated")
    parser.add_argument("--cluster-name", default="default", help="ClusterName tag")
    parser.add_argument("--node-name", default="virtual-kubelet", help="NodeName tag")
    parser.add_argument(
        "--reveal-secrets",
        action="store_true",
        help="print Secret-sourced values, Secret and token files and registry passwords instead of ***",
    )


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


def build_inputs(docs: list[Mapping[str, Any]]) -> tuple[Mapping[str, Any], Any, list[str]]:
    """(pod, Objects, notes) from the documents of FILE; placeholders stand in for what every
    cluster provides (the ``kube-root-ca.crt`` ConfigMap, service-account tokens)."""
    from vkeci.core.translate import Objects, needs

    pods = [d for d in docs if d.get("kind") == "Pod"]
    if len(pods) != 1:
        raise ValueError(f"expected exactly one Pod in the file, found {len(pods)}")
    pod = pods[0]
    configmaps = {_name(d): d for d in docs if d.get("kind") == "ConfigMap"}
    secrets = {_name(d): d for d in docs if d.get("kind") == "Secret"}
    accounts = {_name(d) for d in docs if d.get("kind") == "ServiceAccount"} | {"default"}
    notes = []
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


def run(args: argparse.Namespace) -> int:
    """Translate FILE and print the request (exit 0), or print why not (exit 2; 1 for a bad FILE)."""
    from vkeci.core.translate import Defaults, Missing, Rejected, translate

    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
        pod, objects, notes = build_inputs(_documents(text))
    except OSError as exc:
        print(f"vkeci translate: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    except Exception as exc:  # YAML errors and a stream without exactly one Pod
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"vkeci translate: {args.file}: {first}", file=sys.stderr)
        return 1
    defaults = Defaults(
        region=args.region,
        security_group=args.security_group,
        vswitches=tuple(v.strip() for v in args.vswitch.split(",") if v.strip()),
        cluster_name=args.cluster_name,
        node_name=args.node_name,
    )
    try:
        result = translate(pod, objects, defaults)
    except (Rejected, Missing) as exc:
        print(str(exc), file=sys.stderr)
        return 2
    for note in dict.fromkeys(notes):
        print(f"note: {note}", file=sys.stderr)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    request = result.request if args.reveal_secrets else _mask(result.request, pod, objects)
    if args.format == "yaml":
        import yaml

        sys.stdout.write(yaml.safe_dump(request, sort_keys=False, allow_unicode=True))
    else:
        sys.stdout.write(json.dumps(request, indent=2, ensure_ascii=False) + "\n")
    return 0
