"""`vkeci check`: validate configuration and credentials before running the daemon.

Each problem is printed as one line (``FAIL <what>: <why and how to fix>``); the exit code is
1 if any check failed. Nothing secret is printed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass

from vkeci.commands.run import add_config_arguments, load_config
from vkeci.config import REQUIRED, Config, ConfigError, tls_problems

# (verb, group, resource, subresource) the daemon needs, checked with SelfSubjectAccessReview.
PERMISSIONS: tuple[tuple[str, str, str, str, str, str], ...] = (
    # (verb, group, resource, subresource, namespace, name): what the daemon calls (e2e/manifests.py's
    # API_CALLS and deploy/kustomize/base/rbac.yaml say why); empty namespace/name = any.
    ("create", "", "nodes", "", "", ""),
    ("patch", "", "nodes", "", "", ""),
    ("delete", "", "nodes", "", "", ""),
    ("patch", "", "nodes", "status", "", ""),
    ("get", "", "nodes", "", "", ""),
    ("list", "", "nodes", "", "", ""),
    ("watch", "", "nodes", "", "", ""),
    ("list", "", "pods", "", "", ""),
    ("watch", "", "pods", "", "", ""),
    ("patch", "", "pods", "", "", ""),
    ("delete", "", "pods", "", "", ""),
    ("patch", "", "pods", "status", "", ""),
    ("create", "", "events", "", "", ""),
    ("patch", "", "events", "", "", ""),
    ("get", "", "configmaps", "", "", ""),
    ("get", "", "secrets", "", "", ""),
    ("get", "", "services", "", "", ""),
    ("list", "", "services", "", "", ""),
    ("create", "", "serviceaccounts", "token", "", ""),
    ("get", "coordination.k8s.io", "leases", "", "kube-node-lease", ""),
    ("create", "coordination.k8s.io", "leases", "", "kube-node-lease", ""),
    ("update", "coordination.k8s.io", "leases", "", "kube-node-lease", ""),
    # The leader Lease, in the daemon's namespace (DAEMON_NAMESPACE stands for it; see check_kube).
    ("get", "coordination.k8s.io", "leases", "", "vkeci-system", ""),
    ("create", "coordination.k8s.io", "leases", "", "vkeci-system", ""),
    ("update", "coordination.k8s.io", "leases", "", "vkeci-system", ""),
    ("get", "discovery.k8s.io", "endpointslices", "", "default", "kubernetes"),
    # The eci-profile's cluster parameters (README, "Routing pods to ECI"), watched by name.
    ("list", "", "configmaps", "", "kube-system", "eci-profile"),
    ("watch", "", "configmaps", "", "kube-system", "eci-profile"),
    # The kubelet API authenticates and authorizes the API server's requests with these.
    ("create", "authentication.k8s.io", "tokenreviews", "", "", ""),
    ("create", "authorization.k8s.io", "subjectaccessreviews", "", "", ""),
)


@dataclass(frozen=True)
class Result:
    """One check: ``ok`` or not, and a one-line explanation."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `vkeci check` (the same configuration flags as `vkeci run`)."""
    add_config_arguments(parser)
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="check an eci-profile instead (a ConfigMap manifest, or its data as a YAML mapping); offline",
    )


def check_profile(path: str) -> list[Result]:
    """The eci-profile in ``path``: one line per problem, naming its key; the keys vk-eci does not honour."""
    from pathlib import Path

    import yaml

    from vkeci.core.profile import PROFILE_NAME, ProfileError, parse_profile

    try:
        documents = [d for d in yaml.safe_load_all(Path(path).read_text()) if d is not None]
    except OSError as exc:
        return [Result("eci-profile", False, f"{path}: cannot be read ({exc.strerror})")]
    except yaml.YAMLError as exc:
        return [Result("eci-profile", False, f"{path}: not valid YAML ({str(exc).splitlines()[0]})")]
    configmaps = [d for d in documents if isinstance(d, dict) and d.get("kind") == "ConfigMap"]
    named = [d for d in configmaps if (d.get("metadata") or {}).get("name") == PROFILE_NAME]
    if named or configmaps:
        data = (named or configmaps)[0].get("data")
    elif len(documents) == 1 and isinstance(documents[0], dict):
        data = documents[0]
    else:
        return [Result("eci-profile", False, f"{path}: expected a ConfigMap manifest or a mapping of its data")]
    try:
        profile = parse_profile(data)
    except ProfileError as err:
        return [Result(f"eci-profile {problem.field}", False, str(problem)) for problem in err.problems]
    results = [Result("eci-profile", True, f"{path}: valid ({profile.summary()})")]
    results += [Result(f"eci-profile {note.field}", True, f"{note.message}: {note.fix}") for note in profile.ignored]
    return results


def check_config(config: Config) -> list[Result]:
    """Settings the daemon cannot run without (``vkeci run`` refuses to start without them too)."""
    results = []
    for name in REQUIRED:
        try:
            config.require(name)
            results.append(Result(f"config {name}", True, "set"))
        except ConfigError as err:
            results.append(Result(f"config {name}", False, str(err)))
    results += [Result("config tls", False, problem) for problem in tls_problems(config)]
    if config.tls_cert_file and config.tls_key_file:
        from vkeci.kubelet.tls import FileIssuer, TlsError

        try:
            FileIssuer(config.tls_cert_file, config.tls_key_file).issue()
            results.append(Result("config tls", True, f"{config.tls_cert_file} is a readable PEM certificate"))
        except TlsError as err:
            results.append(Result("config tls", False, str(err)))
    if not (config.access_key_id and config.access_key_secret):
        results.append(
            Result("config credentials", True, "no AccessKey configured; using the Alibaba Cloud default chain")
        )
    return results


def check_eci(config: Config) -> Result:
    """One authenticated ECI call (DescribeRegions) and the region's presence in its answer."""
    from vkeci.clients.eci import EciClient, EciError

    try:
        provider = EciClient.from_config(config)
        regions = provider.region_ids()
    except EciError as err:
        return Result("ECI", False, f"{config.endpoint()}: {err}")
    except Exception as err:  # credential chain errors come in many types
        return Result("ECI", False, f"{config.endpoint()}: cannot build a client ({type(err).__name__}: {err})")
    if config.region not in regions:
        offered = ", ".join(sorted(regions)) or "none"
        return Result(
            "ECI",
            False,
            f"{config.endpoint()} answers, but region {config.region!r} is not one of its ECI regions ({offered}): "
            "set ECI_REGION (flag --region) to one of them",
        )
    return Result("ECI", True, f"{config.endpoint()} answers with these credentials (region {config.region})")


def check_placement(config: Config) -> Result:
    """A DryRun CreateContainerGroup with the configured vSwitches and security group: ECI checks that
    they exist and belong together, and creates nothing."""
    from vkeci.clients.eci import EciClient, EciError

    request = {
        "ContainerGroupName": "vkeci-check",
        "SecurityGroupId": config.security_group,
        "VSwitchId": ",".join(config.vswitches),
        "Container": [{"Name": "check", "Image": "busybox", "Cpu": 0.25, "Memory": 0.5}],
        "Cpu": 0.25,
        "Memory": 0.5,
    }
    what = f"vSwitches {','.join(config.vswitches)} with security group {config.security_group}"
    try:
        EciClient.from_config(config).dry_run(request)
    except EciError as err:
        return Result("ECI placement", False, f"{what}: {err}")
    return Result("ECI placement", True, f"{what}: a dry-run create is accepted")


DAEMON_NAMESPACE = "vkeci-system"  # the manifests' namespace; asked for as the configured leader namespace


def check_kube(config: Config) -> list[Result]:
    """API server reachable, and every permission the daemon needs granted."""
    from vkeci.clients.kube import KubeClient, KubeError, load_credentials

    try:
        kube = KubeClient(load_credentials(config.kubeconfig), timeout=10)
        version = kube.get("/version")
    except KubeError as err:
        return [Result("Kubernetes", False, str(err))]
    results = [Result("Kubernetes", True, f"{kube.credentials.host} answers (version {version.get('gitVersion')})")]
    import socket

    from vkeci.config import ConfigError, leader_settings

    try:
        leader_namespace = leader_settings(config, socket.gethostname(), "check").namespace
    except ConfigError:
        leader_namespace = DAEMON_NAMESPACE  # check_config reports the timings
    for verb, group, resource, sub, namespace, name in PERMISSIONS:
        namespace = leader_namespace if namespace == DAEMON_NAMESPACE else namespace
        attributes = {"verb": verb, "group": group, "resource": resource, "subresource": sub}
        attributes.update({"namespace": namespace} if namespace else {})
        attributes.update({"name": name} if name else {})
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes},
        }
        where = (f" {name}" if name else "") + (f" in {namespace}" if namespace else "")
        what = f"{verb} {resource}{'/' + sub if sub else ''}{where}"
        try:
            allowed = kube.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", review)
        except KubeError as err:
            results.append(Result(f"permission {what}", False, str(err)))
            continue
        ok = bool((allowed.get("status") or {}).get("allowed"))
        detail = "allowed" if ok else "denied: grant it in the ClusterRole bound to the daemon's identity"
        results.append(Result(f"permission {what}", ok, detail))
    return results


def run(args: argparse.Namespace, out: Callable[[str], None] = print) -> int:
    """Entry point of `vkeci check`."""
    if getattr(args, "profile", None):
        results = check_profile(args.profile)
        for result in results:
            out(result.line())
        failed = [r for r in results if not r.ok]
        print(f"{len(failed)} problem(s) found" if failed else "the eci-profile is valid", file=sys.stderr)
        return 1 if failed else 0
    try:
        config = load_config(args)
    except ConfigError as err:
        for problem in err.problems:
            out(Result("config", False, problem).line())
        print(f"{len(err.problems)} problem(s) found", file=sys.stderr)
        return 1
    results = check_config(config)
    if config.region:
        results.append(check_eci(config))
        if results[-1].ok and config.security_group and config.vswitches:
            results.append(check_placement(config))
    results += check_kube(config)
    for result in results:
        out(result.line())
    failed = [r for r in results if not r.ok]
    print(f"{len(failed)} problem(s) found" if failed else "all checks passed", file=sys.stderr)
    return 1 if failed else 0
