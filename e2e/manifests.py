"""The deploy/ manifests for the tests: what the daemon asks of the Kubernetes API as one table, and
helpers that render the kustomize base and the Helm chart with the real tools.

``API_CALLS`` is the single list the tests hold the manifests to: the kustomize ClusterRole and Roles
(and the Helm chart's) must grant exactly these rules (tests/deploy/test_render.py), every Kubernetes API
path fragment in the daemon's code must be claimed by one of them (tests/deploy/test_rbac.py), and every
request the daemon makes with that identity must be covered (tests/e2e/test_deploy_identity.py). The
reason for each rule is written once, in deploy/kustomize/base/rbac.yaml and the tls-csr components.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
KUSTOMIZE = DEPLOY / "kustomize"
CHART = DEPLOY / "helm" / "vkeci"
NAMESPACE = "vkeci-system"
CLUSTER = "*"  # the scope of a ClusterRole's rule

# The serving-certificate modes that add rules: kustomize components, Helm's tls.mode.
MODES = {"base": (), "tls-csr": ("base", "tls-csr"), "tls-csr-approve": ("base", "tls-csr", "tls-csr-approve")}
HELM_TLS_MODE = {"base": "selfSigned", "tls-csr": "csr", "tls-csr-approve": "csrApprove"}


@dataclass(frozen=True)
class ApiCall:
    """One RBAC grant the daemon needs: verbs on a resource, where in the code, and in which mode."""

    verbs: tuple[str, ...]
    group: str
    resource: str  # with the subresource: "pods/status"
    fragments: tuple[str, ...]  # string constants of the daemon's code that build this request's path
    scope: str = CLUSTER  # or the namespace of a Role
    names: tuple[str, ...] = ()  # resourceNames
    mode: str = "base"
    # Issue 14 plans this call, the code does not make it yet: the test fails once it does (drop the flag).
    planned: bool = False


API_CALLS: tuple[ApiCall, ...] = (
    ApiCall(("list", "watch"), "", "pods", ("/api/v1/pods",)),
    ApiCall(("patch", "delete"), "", "pods", ("/api/v1/namespaces/", "/pods")),
    ApiCall(("patch",), "", "pods/status", ("/pods",)),
    ApiCall(("create", "patch"), "", "events", ("/events",)),
    ApiCall(("create", "get", "list", "watch", "patch", "delete"), "", "nodes", ("/api/v1/nodes", "/api/v1/nodes/")),
    ApiCall(("patch",), "", "nodes/status", ("/status",)),
    ApiCall(("get",), "", "configmaps", ("/configmaps/",)),
    ApiCall(("get",), "", "secrets", ("/secrets/",)),
    ApiCall(
        ("get", "list"),
        "",
        "services",
        (
            "/api/v1/namespaces/default/services/kubernetes",
            "/services",
            "/api/v1/namespaces/kube-system/services/kube-dns",
        ),
    ),
    ApiCall(("create",), "", "serviceaccounts/token", ("/serviceaccounts/", "/token")),
    ApiCall(("create",), "authentication.k8s.io", "tokenreviews", ("/apis/authentication.k8s.io/v1/tokenreviews",)),
    ApiCall(
        ("create",),
        "authorization.k8s.io",
        "subjectaccessreviews",
        ("/apis/authorization.k8s.io/v1/subjectaccessreviews",),
    ),
    ApiCall(
        ("get", "create", "update"),
        "coordination.k8s.io",
        "leases",
        ("/apis/coordination.k8s.io/v1/namespaces/", "/leases"),
        scope="kube-node-lease",
    ),
    # The leader Lease vkeci-<node> (controllers/leader.py), in the daemon's own namespace.
    ApiCall(
        ("get", "create", "update"),
        "coordination.k8s.io",
        "leases",
        ("/apis/coordination.k8s.io/v1/namespaces/", "/leases"),
        scope=NAMESPACE,
    ),
    ApiCall(("list", "watch"), "", "configmaps", ("/configmaps",), scope="kube-system", names=("eci-profile",)),
    ApiCall(
        ("get",),
        "discovery.k8s.io",
        "endpointslices",
        ("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes",),
        scope="default",
        names=("kubernetes",),
    ),
    ApiCall(
        ("create", "get"),
        "certificates.k8s.io",
        "certificatesigningrequests",
        ("/apis/certificates.k8s.io/v1/certificatesigningrequests",),
        mode="tls-csr",
    ),
    ApiCall(
        ("update",),
        "certificates.k8s.io",
        "certificatesigningrequests/approval",
        ("/approval",),
        mode="tls-csr-approve",
    ),
    # Not a request: the CertificateApproval admission plugin checks it on the approval update above.
    ApiCall(
        ("approve",),
        "certificates.k8s.io",
        "signers",
        (),
        names=("kubernetes.io/kubelet-serving",),
        mode="tls-csr-approve",
    ),
)

# String constants in vkeci/ that look like paths but are no Kubernetes API request of the daemon's.
NOT_API_CALLS = {
    # `vkeci check` only: every authenticated user may create a SelfSubjectAccessReview (system:basic-user).
    "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
    "/version",  # `vkeci check`; readable by everyone (system:public-info-viewer)
    # A file, not a request: the daemon's namespace, where its leader Lease lives (config.leader_settings).
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace",
    # The health endpoint's routes (controllers.health; the probes call the daemon on them).
    "/readyz",
    # The kubelet API's own routes (the API server calls the daemon on them).
    "/healthz",
    "/healthz/",
    "/configz",
    "/logs",
    "/metrics",
    "/metrics/",
    "/metrics/resource",
    "/metrics/resource/",
    "/pods/",
    "/runningpods",
    "/runningpods/",
    "/stats",
    "/stats/summary",
    "/stats/summary/",
    # Files.
    "/dev/termination-log",
    "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
}

# HTTP method of a request -> the RBAC verbs it can need (GET is get, list or watch).
METHOD_VERBS = {
    "GET": {"get", "list", "watch"},
    "POST": {"create"},
    "PUT": {"update"},
    "PATCH": {"patch"},
    "DELETE": {"delete"},
}

Grant = tuple[str, str, str, str, tuple[str, ...]]  # (scope, group, resource, verb, resourceNames)


def grants(calls: Iterable[ApiCall]) -> set[Grant]:
    """The table as a set of single grants."""
    return {(c.scope, c.group, c.resource, v, c.names) for c in calls for v in c.verbs}


def calls_for(mode: str) -> list[ApiCall]:
    """The table's calls a serving-certificate mode needs ("base", "tls-csr", "tls-csr-approve")."""
    wanted = {"base", *MODES[mode]}
    return [c for c in API_CALLS if c.mode in wanted]


def bound_to(objects: Iterable[dict[str, Any]], service_account: str) -> list[dict[str, Any]]:
    """The bindings whose subject is the ServiceAccount, and the roles they bind (other objects dropped)."""
    objects = list(objects)
    bindings = [
        o
        for o in objects
        if o["kind"] in ("ClusterRoleBinding", "RoleBinding")
        and any(s.get("name") == service_account for s in o.get("subjects") or [])
    ]
    refs = {(b["roleRef"]["kind"], b["roleRef"]["name"], b["metadata"].get("namespace", CLUSTER)) for b in bindings}
    roles = [
        o
        for o in objects
        if o["kind"] in ("ClusterRole", "Role")
        and (o["kind"], o["metadata"]["name"], o["metadata"].get("namespace", CLUSTER)) in refs
    ]
    return bindings + roles


def rbac_grants(objects: Iterable[dict[str, Any]], service_account: str = "vkeci") -> set[Grant]:
    """The grants the rendered ClusterRoles and Roles give, checked to be bound to the ServiceAccount."""
    objects = list(objects)
    bound = set()
    for obj in objects:
        if obj["kind"] in ("ClusterRoleBinding", "RoleBinding"):
            subjects = obj.get("subjects") or []
            assert subjects == [{"kind": "ServiceAccount", "name": service_account, "namespace": NAMESPACE}], obj
            scope = CLUSTER if obj["kind"] == "ClusterRoleBinding" else obj["metadata"]["namespace"]
            bound.add((obj["roleRef"]["kind"], obj["roleRef"]["name"], scope))
    result: set[Grant] = set()
    for obj in objects:
        if obj["kind"] not in ("ClusterRole", "Role"):
            continue
        scope = CLUSTER if obj["kind"] == "ClusterRole" else obj["metadata"]["namespace"]
        assert (obj["kind"], obj["metadata"]["name"], scope) in bound, f"{obj['kind']} {obj['metadata']} is not bound"
        for rule in obj.get("rules") or []:
            names = tuple(rule.get("resourceNames") or ())
            for group in rule.get("apiGroups") or []:
                for resource in rule.get("resources") or []:
                    for verb in rule.get("verbs") or []:
                        result.add((scope, group, resource, verb, names))
    return result


# `vkeci webhook` runs as its own ServiceAccount with its own RBAC (deploy/kustomize/components/webhook,
# the chart's webhook.enabled); its requests are not the daemon's.
WEBHOOK_SERVICE_ACCOUNT = "vkeci-webhook"
# What the webhook's ServiceAccount is granted, with the release named vkeci (the reason for each rule is in
# deploy/kustomize/components/webhook/webhook.yaml). Held to the kustomize component and the chart by
# tests/deploy/test_render.py.
WEBHOOK_API_CALLS: tuple[ApiCall, ...] = (
    ApiCall(("get", "list", "watch"), "", "namespaces", ()),
    ApiCall(("get", "update"), "admissionregistration.k8s.io", "mutatingwebhookconfigurations", (), names=("vkeci",)),
    ApiCall(("list", "watch"), "", "configmaps", (), scope="kube-system", names=("eci-profile",)),
    ApiCall(("create",), "", "events", (), scope="kube-system"),
    ApiCall(("create",), "", "secrets", (), scope=NAMESPACE),
    ApiCall(("get", "update"), "", "secrets", (), scope=NAMESPACE, names=("vkeci-webhook-tls",)),
)
WEBHOOK_ONLY = ("vkeci/webhook/", "vkeci/commands/webhook.py", "vkeci/controllers/namespaces.py")


def path_fragments(package: Path = ROOT / "vkeci") -> dict[str, set[str]]:
    """Every string constant (f-string parts included) in the daemon's modules that starts like an absolute
    path or holds an API prefix, with the files it is in. Docstrings and the webhook's modules are left out."""
    found: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        if str(path.relative_to(ROOT)).startswith(WEBHOOK_ONLY):
            continue
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                text = node.value
                if re.match(r"^/[A-Za-z]", text) or "/api/" in text or "/apis/" in text:
                    found.setdefault(text, set()).add(str(path.relative_to(ROOT)))
    return found


def load_all(text: str) -> list[dict[str, Any]]:
    """The objects of a multi-document YAML stream (empty documents dropped)."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def kustomize(kubectl: Path, directory: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize DIR``: kubectl's built-in kustomize, as `kubectl apply -k` uses it."""
    result = subprocess.run([str(kubectl), "kustomize", str(directory)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    return load_all(result.stdout)


def with_components(tmp: Path, components: Iterable[str]) -> Path:
    """A kustomization of the base plus the named components (as an overlay would list them)."""
    tmp.mkdir(parents=True, exist_ok=True)
    body = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        # kustomize takes only relative paths.
        "resources": [os.path.relpath(KUSTOMIZE / "base", tmp)],
        "components": [os.path.relpath(KUSTOMIZE / "components" / name, tmp) for name in components],
    }
    (tmp / "kustomization.yaml").write_text(yaml.safe_dump(body))
    return tmp


def helm(helm_bin: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run helm with no repository configuration or cache of the user's (a private HOME for helm)."""
    home = ROOT / ".pytest_cache" / "helm-home"
    env = {
        "PATH": "/usr/bin:/bin",
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    result = subprocess.run([str(helm_bin), *args], capture_output=True, text=True, timeout=120, env=env)
    if check:
        assert result.returncode == 0, f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
    return result


def helm_template(helm_bin: Path, *sets: str, release: str = "vkeci") -> list[dict[str, Any]]:
    """``helm template`` of the chart in the vkeci-system namespace, with ``--set`` values."""
    args = ["template", release, str(CHART), "--namespace", NAMESPACE]
    for item in sets:
        args += ["--set", item]
    return load_all(helm(helm_bin, *args).stdout)


def by_kind(objects: Iterable[dict[str, Any]], kind: str) -> Iterator[dict[str, Any]]:
    """The objects of one kind."""
    return (o for o in objects if o.get("kind") == kind)


def one(objects: Iterable[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The only object of a kind."""
    found = list(by_kind(objects, kind))
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]
