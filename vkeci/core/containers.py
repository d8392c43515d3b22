"""Pod containers and init containers as the request's ``Container`` / ``InitContainer`` entries.

``command`` goes to ``Command`` and ``args`` to ``Arg``, never merged (the old Go provider's
merge replaced the image ENTRYPOINT). ``$(VAR)`` references in both are expanded against the
container's environment, as a kubelet does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from vkeci.core import imageref, sizes
from vkeci.core.context import Context
from vkeci.core.envvars import EnvVar, expand
from vkeci.core.quantity import QuantityError

MAX_ARGS = 10
MAX_CONTAINERS = 20
PROBE_DEFAULTS = {
    "InitialDelaySeconds": 0,
    "PeriodSeconds": 10,
    "TimeoutSeconds": 1,
    "SuccessThreshold": 1,
    "FailureThreshold": 3,
}
_PROBE_FIELDS = {
    "initialDelaySeconds": "InitialDelaySeconds",
    "periodSeconds": "PeriodSeconds",
    "timeoutSeconds": "TimeoutSeconds",
    "successThreshold": "SuccessThreshold",
    "failureThreshold": "FailureThreshold",
}


def _number(value: Decimal) -> float:
    return float(value)


def default_pull_policy(image: str) -> str:
    """Kubernetes' default: Always for ``:latest`` or untagged images, else IfNotPresent."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    if ":" not in last or last.endswith(":latest"):
        return "Always"
    return "IfNotPresent"


def _port_number(ctx: Context, container: Mapping[str, Any], port: Any, path: str) -> int | None:
    if isinstance(port, int) and not isinstance(port, bool):
        number = port
    elif isinstance(port, str) and port.isdigit():
        number = int(port)
    elif isinstance(port, str):
        named = [p for p in container.get("ports") or [] if (p or {}).get("name") == port]
        if not named:
            ctx.problem(path, f"names port {port!r}, which the container does not declare", "use a port number")
            return None
        number = int(named[0].get("containerPort") or 0)
    else:
        ctx.problem(path, "is missing", "give a port number")
        return None
    if not 1 <= number <= 65535:
        ctx.problem(path, f"{number} is not a port between 1 and 65535")
        return None
    return number


def _probe(
    ctx: Context, container: Mapping[str, Any], probe: Mapping[str, Any], path: str, extra_delay: int = 0
) -> dict[str, Any] | None:
    result: dict[str, Any] = {}
    for source, wire in _PROBE_FIELDS.items():
        value = probe.get(source)
        result[wire] = int(value) if value is not None else PROBE_DEFAULTS[wire]
    result["InitialDelaySeconds"] += extra_delay
    if probe.get("exec"):
        result["Exec"] = {"Command": [str(c) for c in (probe["exec"].get("command") or [])]}
    elif probe.get("httpGet"):
        http = probe["httpGet"]
        port = _port_number(ctx, container, http.get("port"), f"{path}.httpGet.port")
        if port is None:
            return None
        result["HttpGet"] = {
            "Path": str(http.get("path") or "/"),
            "Port": port,
            "Scheme": str(http.get("scheme") or "HTTP"),
        }
        if http.get("host") or http.get("httpHeaders"):
            ctx.warn(f"{path}.httpGet", "host and httpHeaders are not supported by ECI probes and are ignored")
    elif probe.get("tcpSocket"):
        port = _port_number(ctx, container, probe["tcpSocket"].get("port"), f"{path}.tcpSocket.port")
        if port is None:
            return None
        result["TcpSocket"] = {"Port": port}
    elif probe.get("grpc"):
        ctx.problem(
            f"{path}.grpc",
            "gRPC probes are not supported by ECI",
            "use an exec probe running grpc_health_probe, or a tcpSocket probe",
        )
        return None
    else:
        ctx.problem(path, "has no handler", "give exec, httpGet or tcpSocket")
        return None
    return result


def _lifecycle(
    ctx: Context, container: Mapping[str, Any], prefix: str, handler: Mapping[str, Any], path: str
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if handler.get("exec"):
        result[f"{prefix}Exec"] = [str(c) for c in (handler["exec"].get("command") or [])]
    elif handler.get("httpGet"):
        http = handler["httpGet"]
        port = _port_number(ctx, container, http.get("port"), f"{path}.httpGet.port")
        if port is not None:
            result[f"{prefix}HttpGetPort"] = port
        result[f"{prefix}HttpGetPath"] = str(http.get("path") or "/")
        result[f"{prefix}HttpGetScheme"] = str(http.get("scheme") or "HTTP")
        if http.get("host"):
            result[f"{prefix}HttpGetHost"] = str(http["host"])
        headers = [
            {"Name": str(h.get("name") or ""), "Value": str(h.get("value") or "")}
            for h in http.get("httpHeaders") or []
        ]
        if headers:
            result[f"{prefix}HttpGetHttpHeader"] = headers
    elif handler.get("tcpSocket"):
        tcp = handler["tcpSocket"]
        port = _port_number(ctx, container, tcp.get("port"), f"{path}.tcpSocket.port")
        if port is not None:
            result[f"{prefix}TcpSocketPort"] = port
        if tcp.get("host"):
            result[f"{prefix}TcpSocketHost"] = str(tcp["host"])
    elif handler.get("sleep"):
        seconds = int((handler["sleep"] or {}).get("seconds") or 0)
        result[f"{prefix}Exec"] = ["sleep", str(seconds)]
        ctx.warn(f"{path}.sleep", "ECI has no sleep hook; it runs `sleep` in the container, which needs that binary")
    else:
        ctx.problem(path, "has no handler", "give exec, httpGet or tcpSocket")
    return result


def _security_context(
    ctx: Context, pod: Mapping[str, Any], container: Mapping[str, Any], path: str, init: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(SecurityContext object, top-level SecurityContext* fields) for one container."""
    sc = container.get("securityContext") or {}
    pod_sc = (pod.get("spec") or {}).get("securityContext") or {}
    if sc.get("privileged"):
        ctx.problem(
            f"{path}.securityContext.privileged",
            "privileged containers are not supported on ECI",
            "grant only what the container needs with securityContext.capabilities.add",
        )
    nested: dict[str, Any] = {}
    flat: dict[str, Any] = {}
    add = [str(c) for c in ((sc.get("capabilities") or {}).get("add") or [])]
    if add:
        nested["Capability"] = {"Add": add}
    if (sc.get("capabilities") or {}).get("drop"):
        ctx.warn(f"{path}.securityContext.capabilities.drop", "ECI cannot drop capabilities; ignored")
    if sc.get("readOnlyRootFilesystem") is not None:
        nested["ReadOnlyRootFilesystem"] = bool(sc["readOnlyRootFilesystem"])
    run_as_user = sc.get("runAsUser", pod_sc.get("runAsUser"))
    if run_as_user is not None:
        nested["RunAsUser"] = int(run_as_user)
    if not init:
        run_as_group = sc.get("runAsGroup", pod_sc.get("runAsGroup"))
        if run_as_group is not None:
            flat["SecurityContextRunAsGroup"] = int(run_as_group)
        non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        if non_root is not None:
            flat["SecurityContextRunAsNonRoot"] = bool(non_root)
    return nested, flat


def _mounts(
    ctx: Context, container: Mapping[str, Any], path: str, volume_names: set[str], env: dict[str, str]
) -> list[dict[str, Any]]:
    mounts = []
    for index, mount in enumerate(container.get("volumeMounts") or []):
        mount = mount or {}
        mount_path = f"{path}.volumeMounts[{index}]"
        name = str(mount.get("name") or "")
        if name not in volume_names:
            ctx.problem(f"{mount_path}.name", f"no volume named {name!r} in spec.volumes")
            continue
        entry: dict[str, Any] = {"Name": name, "MountPath": str(mount.get("mountPath") or "")}
        if not entry["MountPath"].startswith("/"):
            ctx.problem(f"{mount_path}.mountPath", "must be an absolute path")
            continue
        entry["ReadOnly"] = bool(mount.get("readOnly", False))
        sub_path = mount.get("subPath")
        if mount.get("subPathExpr"):
            sub_path = expand(str(mount["subPathExpr"]), env.get)
        if sub_path:
            entry["SubPath"] = str(sub_path)
        if mount.get("mountPropagation"):
            entry["MountPropagation"] = str(mount["mountPropagation"])
        mounts.append(entry)
    return mounts


def container(
    ctx: Context,
    pod: Mapping[str, Any],
    spec: Mapping[str, Any],
    path: str,
    env: Sequence[EnvVar],
    volume_names: set[str],
    init: bool,
) -> dict[str, Any]:
    """One container (or init container) as its request entry."""
    name = str(spec.get("name") or "")
    image = str(spec.get("image") or "")
    if not name:
        ctx.problem(f"{path}.name", "missing", "give the container a name")
    if not image:
        ctx.problem(f"{path}.image", "missing", "give the container an image")
    else:
        try:
            imageref.check(image)
        except imageref.InvalidImage as err:
            ctx.problem(
                f"{path}.image",
                f'Failed to apply default image tag "{image}": couldn\'t parse image name "{image}": {err}',
                "give a valid image reference, e.g. registry/repository:tag (lowercase repository)",
                waiting_reason="InvalidImageName",
            )
    result: dict[str, Any] = {"Name": name, "Image": image}
    values = {var.name: var.value for var in env if not var.pod_ip}
    command = [expand(str(c), values.get) for c in spec.get("command") or []]
    args = [expand(str(a), values.get) for a in spec.get("args") or []]
    if command:
        result["Command"] = command
    if args:
        result["Arg"] = args
    if len(args) > MAX_ARGS:
        ctx.problem(
            f"{path}.args",
            f"has {len(args)} entries; ECI accepts at most {MAX_ARGS}",
            'join arguments, e.g. command: ["sh", "-c"] with one args string, or read them from a config file',
        )
    if spec.get("workingDir"):
        result["WorkingDir"] = str(spec["workingDir"])
    result["ImagePullPolicy"] = str(spec.get("imagePullPolicy") or default_pull_policy(image))
    if result["ImagePullPolicy"] not in ("Always", "IfNotPresent", "Never"):
        ctx.problem(
            f"{path}.imagePullPolicy",
            f"{result['ImagePullPolicy']!r} is not valid",
            "use Always, IfNotPresent or Never",
        )
    ports = []
    for index, port in enumerate(spec.get("ports") or []):
        port = port or {}
        number = port.get("containerPort")
        protocol = str(port.get("protocol") or "TCP")
        if protocol not in ("TCP", "UDP"):
            ctx.problem(f"{path}.ports[{index}].protocol", f"{protocol} is not supported on ECI", "use TCP or UDP")
            continue
        if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= 65535:
            ctx.problem(f"{path}.ports[{index}].containerPort", f"{number!r} is not a port between 1 and 65535")
            continue
        if port.get("hostPort") and port.get("hostPort") != number:
            ctx.warn(f"{path}.ports[{index}].hostPort", "ignored: an ECI pod has its own IP; use containerPort")
        ports.append({"Port": number, "Protocol": protocol})
    if ports:
        result["Port"] = ports
    if env:
        result["EnvironmentVar"] = [var.wire() for var in env]
    mounts = _mounts(ctx, spec, path, volume_names, values)
    if mounts:
        result["VolumeMount"] = mounts
    try:
        size = sizes.container_size(spec)
    except QuantityError:
        size = sizes.ContainerSize(None, None)  # already reported when the pod was sized
    limits = (spec.get("resources") or {}).get("limits") or {}
    # Only limits cap a container on ECI; requests size the whole group (see sizes.pod_size).
    if size.cpu is not None and "cpu" in limits:
        result["Cpu"] = _number(size.cpu)
    if size.memory is not None and "memory" in limits:
        result["Memory"] = _number(size.memory)
    if size.gpu:
        result["Gpu"] = size.gpu
    nested, flat = _security_context(ctx, pod, spec, path, init)
    if nested:
        result["SecurityContext"] = nested
    if spec.get("terminationMessagePath") and spec["terminationMessagePath"] != "/dev/termination-log":
        result["TerminationMessagePath"] = str(spec["terminationMessagePath"])
    if spec.get("terminationMessagePolicy") == "FallbackToLogsOnError":
        result["TerminationMessagePolicy"] = "FallbackToLogsOnError"
    if init:
        if spec.get("restartPolicy") == "Always":
            ctx.problem(
                f"{path}.restartPolicy",
                "sidecar init containers (restartPolicy: Always) are not supported on ECI",
                "move the sidecar to spec.containers",
            )
        for extra in ("livenessProbe", "readinessProbe", "startupProbe", "lifecycle"):
            if spec.get(extra):
                ctx.warn(f"{path}.{extra}", "ECI init containers have no probes or hooks; ignored")
        return result
    result.update(flat)
    startup = spec.get("startupProbe")
    delay = 0
    if startup:
        # ECI has no startup probe: hold liveness off for as long as startup would have allowed.
        delay = int(startup.get("failureThreshold") or 3) * int(startup.get("periodSeconds") or 10)
        delay += int(startup.get("initialDelaySeconds") or 0)
        ctx.warn(
            f"{path}.startupProbe",
            f"ECI has no startup probes; the liveness probe waits {delay}s more instead",
        )
    for source, wire in (("livenessProbe", "LivenessProbe"), ("readinessProbe", "ReadinessProbe")):
        if spec.get(source):
            probe = _probe(ctx, spec, spec[source], f"{path}.{source}", delay if source == "livenessProbe" else 0)
            if probe is not None:
                result[wire] = probe
    lifecycle = spec.get("lifecycle") or {}
    for source, prefix in (("postStart", "LifecyclePostStartHandler"), ("preStop", "LifecyclePreStopHandler")):
        if lifecycle.get(source):
            result.update(_lifecycle(ctx, spec, prefix, lifecycle[source], f"{path}.lifecycle.{source}"))
    for flag, wire in (("stdin", "Stdin"), ("stdinOnce", "StdinOnce"), ("tty", "Tty")):
        if spec.get(flag) is not None:
            result[wire] = bool(spec[flag])
    return result
