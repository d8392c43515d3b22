"""Pod -> ECI CreateContainerGroup request: a pure function over plain dicts.

``pod_to_request(pod, objects, defaults)`` returns the request as the dict that
``CreateContainerGroupRequest.to_map()`` produces (OpenAPI names). The daemon sends it with
``CreateContainerGroupRequest().from_map(d)``. ``needs(pod)`` says which ConfigMaps, Secrets,
tokens and Services to fetch first. The only exceptions are ``Rejected`` (never runnable as
written) and ``Missing`` (a referenced object is not there yet).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from vkeci.core import annotations as ann
from vkeci.core import containers, envvars, identity, sizes, volumes
from vkeci.core.context import Context, Objects, TokenKey, token_key
from vkeci.core.problems import Missing, MissingRef, Problem, Rejected, TranslationError

if TYPE_CHECKING:
    from vkeci.config import Config

__all__ = [
    "Defaults",
    "Missing",
    "MissingRef",
    "Needs",
    "Objects",
    "Problem",
    "Rejected",
    "Translation",
    "TranslationError",
    "needs",
    "pod_to_request",
    "token_key",
    "translate",
]

# Node agents (kube-proxy, CNI, log shippers) make no sense on ECI. The daemon does not fail their pods
# (the DaemonSet controller would re-create them in a loop): they stay Pending with this reason, visibly.
DAEMONSET_REASON = "DaemonSetPodNotSupported"
DAEMONSET_PROBLEM = "DaemonSet pods are not run on the ECI virtual node (node agents cannot work there)"
DAEMONSET_FIX = (
    "add a nodeAffinity excluding type=virtual-kubelet to the DaemonSet to keep it off this node, "
    "or run the agent as a sidecar container in the pods that need it"
)
DAEMONSET_MESSAGE = f"{DAEMONSET_PROBLEM}; they stay Pending. {DAEMONSET_FIX[0].upper()}{DAEMONSET_FIX[1:]}"


def daemonset_owner(pod: Mapping[str, Any]) -> int | None:
    """The index of the pod's controlling DaemonSet owner reference, None when no DaemonSet controls it.

    Only the controller counts, as for ``kubectl drain --ignore-daemonsets``: a DaemonSet that merely
    appears among the owners does not make the pod a node agent."""
    for index, owner in enumerate((pod.get("metadata") or {}).get("ownerReferences") or []):
        if isinstance(owner, Mapping) and owner.get("kind") == "DaemonSet" and owner.get("controller"):
            return index
    return None


def is_daemonset_pod(pod: Mapping[str, Any]) -> bool:
    """Whether a DaemonSet controls the pod (they land here because they tolerate every taint)."""
    return daemonset_owner(pod) is not None


@dataclass(frozen=True)
class Defaults:
    """Daemon-level settings; pod annotations override them."""

    region: str = ""
    security_group: str = ""
    vswitches: tuple[str, ...] = ()
    schedule_strategy: str = "VSwitchOrdered"
    cluster_name: str = "default"
    node_name: str = "virtual-kubelet"
    zone_id: str = ""
    resource_group_id: str = ""
    # Cluster DNS for dnsPolicy ClusterFirst (the kube-dns Service IP); empty = ECI's VPC DNS.
    cluster_dns: tuple[str, ...] = ()
    cluster_domain: str = "cluster.local"
    # Where ECI pods reach the API server when the `kubernetes` Service's ClusterIP is not routable
    # from the VPC ("host:port"); replaces the KUBERNETES_SERVICE_* variables in-cluster clients use.
    api_server: str = ""

    @classmethod
    def from_config(cls, config: Config) -> Defaults:
        """The defaults a ``vkeci.config.Config`` sets (an empty name keeps the default name)."""
        return cls(
            region=config.region,
            security_group=config.security_group,
            vswitches=tuple(config.vswitches),
            schedule_strategy=config.schedule_strategy or cls.schedule_strategy,
            cluster_name=config.cluster_name or cls.cluster_name,
            node_name=config.node_name or cls.node_name,
            zone_id=config.zone_id,
            resource_group_id=config.resource_group_id,
            cluster_dns=tuple(config.cluster_dns),
            cluster_domain=config.cluster_domain or cls.cluster_domain,
            api_server=config.api_server,
        )


@dataclass(frozen=True)
class Needs:
    """What the daemon must fetch before translating a pod.

    ``configmaps``/``secrets`` are names in the pod's namespace (imagePullSecrets included);
    ``tokens`` are ``(serviceAccountName, audience, expirationSeconds)`` keys to request with the
    TokenRequest API; ``service_links`` says whether the namespace's Services are needed for the
    service-link variables (``default/kubernetes`` is always wanted for in-cluster clients).
    """

    configmaps: frozenset[str] = frozenset()
    secrets: frozenset[str] = frozenset()
    tokens: frozenset[TokenKey] = frozenset()
    service_links: bool = True


@dataclass(frozen=True)
class Translation:
    """A successful translation: the request plus what the user should be warned about."""

    request: dict[str, Any]
    warnings: tuple[Problem, ...] = ()
    options: ann.PodOptions = field(default_factory=ann.PodOptions)
    # What the user may not expect but need not fix, such as a size rounded up to ECI's spec table.
    notes: tuple[str, ...] = ()


def _all_containers(spec: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    found: list[tuple[str, Mapping[str, Any]]] = []
    for section in ("initContainers", "containers"):
        for index, item in enumerate(spec.get(section) or []):
            if isinstance(item, Mapping):
                found.append((f"spec.{section}[{index}]", item))
    return found


def needs(pod: Mapping[str, Any]) -> Needs:
    """The ConfigMaps, Secrets, tokens and Services the pod references."""
    spec = pod.get("spec") or {}
    configmaps: set[str] = set()
    secrets: set[str] = set()
    tokens: set[TokenKey] = set()
    service_account = str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")
    for _, container in _all_containers(spec):
        for source in container.get("envFrom") or []:
            source = source or {}
            if (source.get("configMapRef") or {}).get("name"):
                configmaps.add(str(source["configMapRef"]["name"]))
            if (source.get("secretRef") or {}).get("name"):
                secrets.add(str(source["secretRef"]["name"]))
        for item in container.get("env") or []:
            value_from = (item or {}).get("valueFrom") or {}
            if (value_from.get("configMapKeyRef") or {}).get("name"):
                configmaps.add(str(value_from["configMapKeyRef"]["name"]))
            if (value_from.get("secretKeyRef") or {}).get("name"):
                secrets.add(str(value_from["secretKeyRef"]["name"]))
    for vol in spec.get("volumes") or []:
        vol = vol or {}
        if (vol.get("configMap") or {}).get("name"):
            configmaps.add(str(vol["configMap"]["name"]))
        if (vol.get("secret") or {}).get("secretName"):
            secrets.add(str(vol["secret"]["secretName"]))
        for source in (vol.get("projected") or {}).get("sources") or []:
            source = source or {}
            if (source.get("configMap") or {}).get("name"):
                configmaps.add(str(source["configMap"]["name"]))
            if (source.get("secret") or {}).get("name"):
                secrets.add(str(source["secret"]["name"]))
            token = source.get("serviceAccountToken")
            if token:
                tokens.add(token_key(service_account, token.get("audience"), token.get("expirationSeconds")))
    for ref in spec.get("imagePullSecrets") or []:
        if (ref or {}).get("name"):
            secrets.add(str(ref["name"]))
    return Needs(
        configmaps=frozenset(configmaps),
        secrets=frozenset(secrets),
        tokens=frozenset(tokens),
        service_links=spec.get("enableServiceLinks", True) is not False,
    )


def _pod_ref(pod: Mapping[str, Any]) -> str:
    key = identity.pod_key(pod)
    return f"{key.namespace}/{key.name}"


def pod_to_request(pod: Mapping[str, Any], objects: Objects, defaults: Defaults) -> dict[str, Any]:
    """The CreateContainerGroup request for ``pod``, in ``to_map()`` form.

    Raises ``Rejected`` when the pod can never run on ECI as written, ``Missing`` when a
    referenced object is not there yet, and nothing else.
    """
    return translate(pod, objects, defaults).request


def translate(pod: Mapping[str, Any], objects: Objects, defaults: Defaults) -> Translation:
    """Like ``pod_to_request``, also returning warnings (for Warning events) and the parsed annotations."""
    try:
        return _translate(pod, objects, defaults)
    except TranslationError:
        raise
    except (TypeError, ValueError, AttributeError, KeyError, ArithmeticError) as exc:
        # A structurally malformed object (a list where a mapping belongs...). The API server
        # never hands us one; a hand-written manifest might. Report it, never crash the daemon.
        raise Rejected(
            [
                Problem(
                    "(pod)",
                    f"malformed pod or referenced object ({type(exc).__name__})",
                    "check it with kubectl apply --dry-run=server",
                )
            ],
            _pod_ref(pod) if isinstance(pod, Mapping) else "",
        ) from None


def _translate(pod: Mapping[str, Any], objects: Objects, defaults: Defaults) -> Translation:
    if not isinstance(pod, Mapping):
        raise Rejected([Problem("(pod)", "is not an object", "pass a Pod manifest")])
    ctx = Context(objects)
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    key = identity.pod_key(pod)
    if not key.name:
        ctx.problem("metadata.name", "missing", "give the pod a name")
    _check_pod_level(ctx, pod)
    options = ann.parse(meta.get("annotations") or {})
    ctx.problems.extend(options.problems)
    ctx.warnings.extend(options.warnings)

    app = [c for c in spec.get("containers") or [] if isinstance(c, Mapping)]
    init = [c for c in spec.get("initContainers") or [] if isinstance(c, Mapping)]
    if not app:
        ctx.problem("spec.containers", "the pod has no containers", "add at least one container")
    if len(app) + len(init) > containers.MAX_CONTAINERS:
        ctx.problem(
            "spec.containers",
            f"{len(app) + len(init)} containers (init included); ECI allows at most {containers.MAX_CONTAINERS}",
            "split the pod",
        )

    request: dict[str, Any] = {}
    size = _size(ctx, pod, app, init, options, request)

    volume_list = []
    vols = [v for v in spec.get("volumes") or [] if isinstance(v, Mapping)]
    for index, vol in enumerate(vols):
        converted = volumes.volume(ctx, pod, vol, f"spec.volumes[{index}]", size)
        if converted is not None:
            volume_list.append(converted)
    if len(vols) > volumes.MAX_VOLUMES:
        ctx.problem(
            "spec.volumes",
            f"{len(vols)} volumes; ECI allows at most {volumes.MAX_VOLUMES}",
            "combine ConfigMaps/Secrets into one projected volume",
        )
    volume_names = {str(v.get("name") or "") for v in vols}

    service_vars = envvars.service_link_vars(
        objects.services, key.namespace, spec.get("enableServiceLinks", True) is not False
    )
    if defaults.api_server:
        kept = {k: v for k, v in service_vars.items() if not k.startswith("KUBERNETES_")}
        service_vars = {**kept, **envvars.api_server_vars(defaults.api_server)}
    for section, items, is_init in (("initContainers", init, True), ("containers", app, False)):
        converted_list = []
        for index, container in enumerate(items):
            path = f"spec.{section}[{index}]"
            env = envvars.resolve(ctx, pod, container, path, service_vars, size)
            converted_list.append(containers.container(ctx, pod, container, path, env, volume_names, is_init))
        if converted_list:
            request["InitContainer" if is_init else "Container"] = converted_list
    _check_fits(ctx, request)
    _pod_fields(ctx, pod, request, defaults, options)
    if volume_list:
        request["Volume"] = volume_list
    credentials = _registry_credentials(ctx, spec)
    if credentials:
        request["ImageRegistryCredential"] = credentials
    request["ContainerGroupName"] = identity.group_name(pod)
    request["ClientToken"] = identity.client_token(pod)
    request["Tag"] = identity.tags(pod, defaults.cluster_name, defaults.node_name, options.user_tags)

    if ctx.problems:
        raise Rejected(ctx.problems, _pod_ref(pod))
    if ctx.missing:
        raise Missing(ctx.missing, _pod_ref(pod))
    return Translation(request=request, warnings=tuple(ctx.warnings), options=options, notes=tuple(ctx.notes))


def _check_pod_level(ctx: Context, pod: Mapping[str, Any]) -> None:
    spec = pod.get("spec") or {}
    if spec.get("hostNetwork"):
        ctx.problem(
            "spec.hostNetwork",
            "host networking is not supported on ECI (each pod has its own IP in the VPC)",
            "remove hostNetwork and expose the pod with a Service of type LoadBalancer",
        )
    for flag in ("hostPID", "hostIPC"):
        if spec.get(flag):
            ctx.problem(f"spec.{flag}", "ECI pods have no host to share with", f"remove {flag}")
    owner = daemonset_owner(pod)
    if owner is not None:
        ctx.problem(f"metadata.ownerReferences[{owner}]", DAEMONSET_PROBLEM, DAEMONSET_FIX)
    if spec.get("ephemeralContainers"):
        ctx.warn("spec.ephemeralContainers", "ECI cannot add containers to a running pod; ignored")


def _size(
    ctx: Context,
    pod: Mapping[str, Any],
    app: list[Mapping[str, Any]],
    init: list[Mapping[str, Any]],
    options: ann.PodOptions,
    request: dict[str, Any],
) -> tuple[Decimal, Decimal]:
    """Set Cpu/Memory or InstanceType on ``request``; return the (vCPU, GiB) the pod is sized for."""
    by_path = {}
    gpus = 0
    for path, container in _all_containers(pod.get("spec") or {}):
        try:
            by_path[path] = sizes.container_size(container)
            gpus += by_path[path].gpu
        except sizes.QuantityError as exc:
            ctx.problem(f"{path}.resources", str(exc), "use quantities like 500m, 2, 512Mi or 4Gi (whole GPUs)")
    app_sizes = [
        by_path[p] for p, c in _all_containers(pod.get("spec") or {}) if p in by_path and "spec.containers" in p
    ]
    init_sizes = [
        by_path[p] for p, c in _all_containers(pod.get("spec") or {}) if p in by_path and "initContainers" in p
    ]
    try:
        size = sizes.pod_size(app_sizes, init_sizes)
    except sizes.SizeError as exc:
        ctx.problem(
            "spec.containers[*].resources",
            str(exc),
            f"lower the limits/requests, or name a larger ECS type in {ann.USE_SPECS}",
        )
        size = sizes.DEFAULT_SIZE
    chosen = options.use_specs
    if chosen:
        spec_sizes = [sizes.parse_spec(s) for s in chosen]
        if len(chosen) == 1 and spec_sizes[0] is not None:
            size = spec_sizes[0]
            request["Cpu"], request["Memory"] = float(size[0]), float(size[1])
        else:
            request["InstanceType"] = ",".join(chosen)
            first = next((s for s in spec_sizes if s is not None), None)
            size = first or size
    else:
        request["Cpu"], request["Memory"] = float(size[0]), float(size[1])
        _note_rounding(ctx, sizes.requested(app_sizes, init_sizes), size)
    if gpus and not any(s.startswith("ecs.") for s in chosen) and not options.gpu_type:
        ctx.warn(
            "spec.containers[*].resources.limits['nvidia.com/gpu']",
            "ECI needs a GPU instance type to run GPU containers",
            f'set {ann.USE_SPECS}: "ecs.gn6i-c4g1.xlarge" (or another GPU-accelerated ECS type)',
        )
    return size


def _note_rounding(ctx: Context, asked: tuple[Decimal | None, Decimal | None], size: tuple[Decimal, Decimal]) -> None:
    """Say so when ECI's spec table makes the group bigger than the containers ask (it is billed as such)."""
    cpu, memory = asked
    if cpu is None and memory is None:
        return
    wanted = " / ".join(
        part for part in (f"{sizes.fmt(cpu)} vCPU" if cpu else "", f"{sizes.fmt(memory)} GiB" if memory else "") if part
    )
    if (cpu is not None and cpu != size[0]) or (memory is not None and memory != size[1]):
        ctx.notes.append(
            f"spec.containers[*].resources: {wanted} rounded up to {sizes.fmt(size[0])}-{sizes.fmt(size[1])}Gi, "
            "the smallest size in ECI's spec table that holds it (billed as that size)"
        )


def _check_fits(ctx: Context, request: dict[str, Any]) -> None:
    """With an explicit size (eci-use-specs), the containers' limits must fit in it."""
    if "Cpu" not in request:
        return
    for wire, unit in (("Cpu", "vCPU"), ("Memory", "GiB")):
        app = sum((Decimal(str(c.get(wire, 0))) for c in request.get("Container", [])), Decimal(0))
        init = max((Decimal(str(c.get(wire, 0))) for c in request.get("InitContainer", [])), default=Decimal(0))
        needed = max(app, init)
        if needed > Decimal(str(request[wire])):
            ctx.problem(
                ann.field_path(ann.USE_SPECS),
                f"the instance has {sizes.fmt(Decimal(str(request[wire])))} {unit} but the containers' limits "
                f"add up to {sizes.fmt(needed)} {unit}",
                "choose a larger spec or lower the containers' limits",
            )


def _pod_fields(
    ctx: Context, pod: Mapping[str, Any], request: dict[str, Any], defaults: Defaults, options: ann.PodOptions
) -> None:
    spec = pod.get("spec") or {}
    meta = pod.get("metadata") or {}
    if defaults.region:
        request["RegionId"] = defaults.region
    if defaults.security_group:
        request["SecurityGroupId"] = defaults.security_group
    if defaults.vswitches:
        request["VSwitchId"] = ",".join(defaults.vswitches)
        if len(defaults.vswitches) > 1:
            request["ScheduleStrategy"] = defaults.schedule_strategy
    if defaults.zone_id:
        request["ZoneId"] = defaults.zone_id
    if defaults.resource_group_id:
        request["ResourceGroupId"] = defaults.resource_group_id
    request.update(options.request)

    restart = str(spec.get("restartPolicy") or "Always")
    if restart not in ("Always", "OnFailure", "Never"):
        ctx.problem("spec.restartPolicy", f"{restart!r} is not valid", "use Always, OnFailure or Never")
    request["RestartPolicy"] = restart
    for source, wire in (
        ("terminationGracePeriodSeconds", "TerminationGracePeriodSeconds"),
        ("activeDeadlineSeconds", "ActiveDeadlineSeconds"),
    ):
        if spec.get(source) is not None:
            request[wire] = int(spec[source])
    if spec.get("shareProcessNamespace") is not None:
        request["ShareProcessNamespace"] = bool(spec["shareProcessNamespace"])
    hostname = str(spec.get("hostname") or meta.get("name") or "")[:63].rstrip("-.")
    if hostname:
        request["HostName"] = hostname
    sysctls = [
        {"Name": str(s.get("name") or ""), "Value": str(s.get("value") or "")}
        for s in (spec.get("securityContext") or {}).get("sysctls") or []
        if isinstance(s, Mapping)
    ]
    if sysctls:
        request["SecurityContext"] = {"Sysctl": sysctls}
    aliases = [
        {"Ip": str(a.get("ip") or ""), "Hostname": [str(h) for h in a.get("hostnames") or []]}
        for a in spec.get("hostAliases") or []
        if isinstance(a, Mapping)
    ]
    aliases += options.host_aliases
    if aliases:
        request["HostAliase"] = aliases
    _dns(ctx, pod, request, defaults, options)


def _dns(
    ctx: Context, pod: Mapping[str, Any], request: dict[str, Any], defaults: Defaults, options: ann.PodOptions
) -> None:
    spec = pod.get("spec") or {}
    policy = str(spec.get("dnsPolicy") or "ClusterFirst")
    config: dict[str, Any] = {}
    if spec.get("dnsConfig"):
        try:
            config = ann.dns_config(spec["dnsConfig"], ValueError())
        except ValueError:
            ctx.problem("spec.dnsConfig", "malformed", "give nameservers and searches as lists of strings")
    if options.dns_config:
        for wire, values in options.dns_config.items():
            config[wire] = [*config.get(wire, []), *values]
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet") and defaults.cluster_dns:
        namespace = identity.pod_key(pod).namespace
        domain = defaults.cluster_domain
        config = {
            "NameServer": [*defaults.cluster_dns, *config.get("NameServer", [])],
            "Search": [f"{namespace}.svc.{domain}", f"svc.{domain}", domain, *config.get("Search", [])],
            "Option": [{"Name": "ndots", "Value": "5"}, *config.get("Option", [])],
        }
        policy = "None"
    if policy == "None":
        request["DnsPolicy"] = "None"
    elif policy == "Default":
        request["DnsPolicy"] = "Default"
    elif policy not in ("ClusterFirst", "ClusterFirstWithHostNet"):
        ctx.problem("spec.dnsPolicy", f"{policy!r} is not valid", "use ClusterFirst, Default or None")
    if config:
        request["DnsConfig"] = config


def _registry_server(server: str) -> str:
    text = server.strip()
    for scheme in ("https://", "http://"):
        if text.startswith(scheme):
            text = text[len(scheme) :]
    return text.split("/", 1)[0]


def _registry_credentials(ctx: Context, spec: Mapping[str, Any]) -> list[dict[str, str]]:
    """imagePullSecrets (dockercfg and dockerconfigjson, ``auth`` included) as ImageRegistryCredential.

    As on a kubelet, a pull secret that is missing or unusable is a warning, not an error: the
    image may well be public.
    """
    result: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for index, ref in enumerate(spec.get("imagePullSecrets") or []):
        name = str((ref or {}).get("name") or "")
        path = f"spec.imagePullSecrets[{index}]"
        items = ctx.secret_items(name, path)
        if items is None:
            ctx.warn(path, f"image pull Secret {name!r} not found; pulling without it")
            continue
        if ".dockerconfigjson" in items:
            raw, nested = items[".dockerconfigjson"], True
        elif ".dockercfg" in items:
            raw, nested = items[".dockercfg"], False
        else:
            ctx.warn(path, f"Secret {name!r} has neither .dockerconfigjson nor .dockercfg; ignored")
            continue
        try:
            data = json.loads(raw.decode("utf-8"))
            auths = data.get("auths", {}) if nested else data
            if not isinstance(auths, Mapping):
                raise ValueError("auths")
        except (ValueError, UnicodeDecodeError, AttributeError):
            ctx.warn(path, f"Secret {name!r} does not hold valid docker config JSON; ignored")
            continue
        for server, entry in auths.items():
            user, password = _docker_auth(entry)
            if not user or password is None:
                ctx.warn(path, f"Secret {name!r}: no username/password for registry {server!r}; ignored")
                continue
            host = _registry_server(str(server))
            if (host, user) in seen:
                continue
            seen.add((host, user))
            result.append({"Server": host, "UserName": user, "Password": password})
    return result


def _docker_auth(entry: Any) -> tuple[str, str | None]:
    if not isinstance(entry, Mapping):
        return "", None
    user, password = entry.get("username"), entry.get("password")
    if (not user or password is None) and entry.get("auth"):
        try:
            decoded = base64.b64decode(str(entry["auth"]), validate=True).decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return "", None
        user, sep, password = decoded.partition(":")
        if not sep:
            return "", None
    return str(user or ""), (str(password) if password is not None else None)
