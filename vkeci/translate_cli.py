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
        "--reveal-secrets", action="store_true", help="print registry passwords instead of masking them"
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
    from vkeci.translate import Objects, needs

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


def _mask(request: dict[str, Any]) -> dict[str, Any]:
    credentials = request.get("ImageRegistryCredential")
    if credentials:
        request = {**request, "ImageRegistryCredential": [{**c, "Password": MASK} for c in credentials]}
    return request


def run(args: argparse.Namespace) -> int:
    """Translate FILE and print the request (exit 0), or print why not (exit 2; 1 for a bad FILE)."""
    from vkeci.translate import Defaults, Missing, Rejected, translate

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
    request = result.request if args.reveal_secrets else _mask(result.request)
    if args.format == "yaml":
        import yaml

        sys.stdout.write(yaml.safe_dump(request, sort_keys=False, allow_unicode=True))
    else:
        sys.stdout.write(json.dumps(request, indent=2, ensure_ascii=False) + "\n")
    return 0
