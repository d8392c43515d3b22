"""Container environment, resolved the way a kubelet does it, for ECI's ``EnvironmentVar`` list.

Order and precedence follow the kubelet (``kubelet_pods.go makeEnvironmentVariables``): service
link variables first (lowest priority), then ``envFrom`` sources in order, then ``env`` in order,
where ``value`` strings get ``$(VAR)`` expansion against what is defined so far. The one value a
kubelet knows only after start, the pod IP, is sent as ECI's ``FieldRef.FieldPath=status.podIP``
so ECI fills it in (``hostIP`` is the pod IP on ECI, so it maps the same way).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Any

from vkeci.core.context import Context
from vkeci.core.quantity import QuantityError, parse_quantity

# ECI: 1-128 letters, digits, underscores, not starting with a digit.
ECI_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# Kubernetes (IsEnvVarName): what kubelet accepts from envFrom.
K8S_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
MAX_ENV_VALUE = 256
POD_IP_FIELDS = ("status.podIP", "status.podIPs", "status.hostIP", "status.hostIPs")


@dataclass(frozen=True)
class EnvVar:
    """One resolved variable: a literal ``value``, or ``pod_ip`` for ECI's status.podIP reference."""

    name: str
    value: str = ""
    pod_ip: bool = False

    def wire(self) -> dict[str, Any]:
        """The request's ``EnvironmentVar`` entry."""
        if self.pod_ip:
            return {"Key": self.name, "FieldRef": {"FieldPath": "status.podIP"}}
        return {"Key": self.name, "Value": self.value}


def expand(text: str, lookup: Callable[[str], str | None]) -> str:
    """Kubernetes ``$(VAR)`` expansion: known names are replaced, ``$$`` is a literal ``$``, and
    unknown references or an unclosed ``$(`` are left as written (k8s ``expansion.Expand``)."""
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            nxt = text[cursor + 1]
            if nxt == "$":
                out.append("$")
                advance = 1
            elif nxt == "(":
                close = text.find(")", cursor + 2)
                if close == -1:
                    out.append("$(")
                    advance = 1
                else:
                    name = text[cursor + 2 : close]
                    value = lookup(name)
                    out.append(value if value is not None else f"$({name})")
                    advance = close - cursor
            else:
                out.append("$" + nxt)
                advance = 1
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    out.append(text[checkpoint:])
    return "".join(out)


def service_link_vars(services: Sequence[Mapping[str, Any]], namespace: str, links: bool) -> dict[str, str]:
    """The ``<SVC>_SERVICE_HOST``/``_PORT`` and Docker-link variables a kubelet injects.

    ``default/kubernetes`` is always included (in-cluster clients need it); the namespace's other
    Services only when ``enableServiceLinks`` is on. Headless and ExternalName Services have no IP
    and are skipped, as the kubelet does.
    """
    result: dict[str, str] = {}
    for svc in sorted(services, key=lambda s: str((s.get("metadata") or {}).get("name") or "")):
        meta = svc.get("metadata") or {}
        spec = svc.get("spec") or {}
        name, svc_ns = str(meta.get("name") or ""), str(meta.get("namespace") or namespace)
        ip = spec.get("clusterIP")
        if not name or not ip or ip == "None":
            continue
        master = svc_ns == "default" and name == "kubernetes"
        if not master and (not links or svc_ns != namespace):
            continue
        prefix = name.upper().replace("-", "_")
        ports = [p for p in spec.get("ports") or [] if isinstance(p, Mapping) and p.get("port")]
        result[f"{prefix}_SERVICE_HOST"] = str(ip)
        if not ports:
            continue
        result[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
        for port in ports:
            if port.get("name"):
                result[f"{prefix}_SERVICE_PORT_{str(port['name']).upper().replace('-', '_')}"] = str(port["port"])
        first = ports[0]
        proto = str(first.get("protocol") or "TCP")
        result[f"{prefix}_PORT"] = f"{proto.lower()}://{ip}:{first['port']}"
        for port in ports:
            proto = str(port.get("protocol") or "TCP")
            base = f"{prefix}_PORT_{port['port']}_{proto.upper()}"
            result[base] = f"{proto.lower()}://{ip}:{port['port']}"
            result[f"{base}_PROTO"] = proto.lower()
            result[f"{base}_PORT"] = str(port["port"])
            result[f"{base}_ADDR"] = str(ip)
    return result


def api_server_vars(address: str) -> dict[str, str]:
    """The ``KUBERNETES_SERVICE_*``/``KUBERNETES_PORT*`` variables pointing at ``host:port``."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        host, port = address, "443"
    host = host.strip("[]")
    url = f"tcp://{host}:{port}" if ":" not in host else f"tcp://[{host}]:{port}"
    return {
        "KUBERNETES_SERVICE_HOST": host,
        "KUBERNETES_SERVICE_PORT": port,
        "KUBERNETES_SERVICE_PORT_HTTPS": port,
        "KUBERNETES_PORT": url,
        f"KUBERNETES_PORT_{port}_TCP": url,
        f"KUBERNETES_PORT_{port}_TCP_PROTO": "tcp",
        f"KUBERNETES_PORT_{port}_TCP_PORT": port,
        f"KUBERNETES_PORT_{port}_TCP_ADDR": host,
    }


def _field_value(pod: Mapping[str, Any], field_path: str) -> str | None:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace") or "default",
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName") or spec.get("serviceAccount"),
    }
    if field_path in simple:
        return str(simple[field_path] or "")
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']*)'\]", field_path)
    if match:
        values = meta.get(match.group(1)) or {}
        return str(values.get(match.group(2), ""))
    return None


RESOURCE_DIVISOR_DEFAULT = {"cpu": "1", "memory": "1", "ephemeral-storage": "1"}


def resource_value(
    containers: Sequence[Mapping[str, Any]],
    container_name: str,
    resource: str,
    divisor: Any,
    pod_size: tuple[Decimal, Decimal],
) -> str | None:
    """A ``resourceFieldRef`` value as the kubelet computes it (ceil of value / divisor).

    An unset limit falls back to what the container can use, which on ECI is the whole instance
    (``pod_size``: the vCPUs and GiB the group is created with), as a kubelet falls back to node
    allocatable. Returns None when the reference cannot be resolved.
    """
    section, _, name = resource.partition(".")
    if section not in ("limits", "requests") or name not in ("cpu", "memory", "ephemeral-storage"):
        return None
    container = next((c for c in containers if c.get("name") == container_name), None)
    if container is None:
        return None
    resources = container.get("resources") or {}
    raw = (resources.get(section) or {}).get(name)
    if raw is None and section == "requests":
        raw = (resources.get("limits") or {}).get(name)
    try:
        if raw is not None:
            amount = parse_quantity(raw)
        elif name == "cpu":
            amount = pod_size[0] if section == "limits" else Decimal(0)
        elif name == "memory":
            amount = pod_size[1] * 2**30 if section == "limits" else Decimal(0)
        else:
            amount = Decimal(30 * 2**30) if section == "limits" else Decimal(0)
        div = parse_quantity(divisor if divisor not in (None, "") else RESOURCE_DIVISOR_DEFAULT[name])
    except QuantityError:
        return None
    if div <= 0:
        return None
    return str(int((amount / div).to_integral_value(rounding=ROUND_CEILING)))


def resolve(
    ctx: Context,
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    path: str,
    service_vars: Mapping[str, str],
    pod_size: tuple[Decimal, Decimal],
) -> list[EnvVar]:
    """All environment variables of one container, in kubelet precedence order."""
    spec = pod.get("spec") or {}
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    env: dict[str, EnvVar] = {}
    for name, value in service_vars.items():
        env[name] = EnvVar(name, value)

    for index, source in enumerate(container.get("envFrom") or []):
        _env_from(ctx, env, source or {}, f"{path}.envFrom[{index}]")

    def lookup(name: str) -> str | None:
        found = env.get(name)
        if found is None or found.pod_ip:
            return None
        return found.value

    for index, item in enumerate(container.get("env") or []):
        item = item or {}
        item_path = f"{path}.env[{index}]"
        name = str(item.get("name") or "")
        if not ECI_ENV_NAME.match(name):
            ctx.problem(
                f"{item_path}.name",
                f"{name!r} is not a name ECI accepts",
                "rename it: ECI allows 1-128 letters, digits and underscores, not starting with a digit",
            )
            continue
        source = item.get("valueFrom")
        if not source:
            value = expand(str(item.get("value") or ""), lookup)
            env[name] = EnvVar(name, value)
            continue
        resolved = _value_from(ctx, pod, containers, container, source, f"{item_path}.valueFrom", name, pod_size)
        if resolved is not None:
            env.pop(name, None)  # keep kubelet's "last definition wins" and place it last
            env[name] = resolved
    result = list(env.values())
    for var in result:
        if not var.pod_ip and len(var.value) > MAX_ENV_VALUE:
            ctx.problem(
                f"{path}.env",
                f"the value of {var.name} is {len(var.value)} characters; ECI allows at most {MAX_ENV_VALUE}",
                "mount the value as a file from a ConfigMap or Secret volume instead",
            )
    return result


def _env_from(ctx: Context, env: dict[str, EnvVar], source: Mapping[str, Any], path: str) -> None:
    prefix = str(source.get("prefix") or "")
    if source.get("configMapRef"):
        ref, kind = source["configMapRef"], "ConfigMap"
        items = ctx.configmap_items(str(ref.get("name") or ""), path, binary=False)
        sub = "configMapRef"
    elif source.get("secretRef"):
        ref, kind = source["secretRef"], "Secret"
        items = ctx.secret_items(str(ref.get("name") or ""), path)
        sub = "secretRef"
    else:
        ctx.problem(path, "needs configMapRef or secretRef", "name the ConfigMap or Secret to import")
        return
    name = str(ref.get("name") or "")
    if items is None:
        if not ref.get("optional"):
            ctx.lack(kind, name, f"{path}.{sub}")
        return
    skipped = []
    for key in sorted(items):
        var = prefix + key
        if not K8S_ENV_NAME.match(var) or not ECI_ENV_NAME.match(var):
            skipped.append(var)
            continue
        text = _text(ctx, items[key], f"{path}.{sub}", kind, name, key)
        if text is not None:
            env.pop(var, None)
            env[var] = EnvVar(var, text)
    if skipped:
        ctx.warn(
            f"{path}.{sub}",
            f"skipped keys of {kind} {name!r} that are not valid environment variable names on ECI: "
            + ", ".join(repr(s) for s in skipped[:10]),
            "ECI allows letters, digits and underscores; rename the keys or mount them as files",
        )


def _text(ctx: Context, value: bytes, path: str, kind: str, name: str, key: str) -> str | None:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        ctx.problem(path, f"key {key!r} of {kind} {name!r} is not UTF-8 text", "mount binary data as a file instead")
        return None


def _value_from(
    ctx: Context,
    pod: Mapping[str, Any],
    containers: Sequence[Mapping[str, Any]],
    container: Mapping[str, Any],
    source: Mapping[str, Any],
    path: str,
    name: str,
    pod_size: tuple[Decimal, Decimal],
) -> EnvVar | None:
    if source.get("fieldRef"):
        field_path = str((source["fieldRef"] or {}).get("fieldPath") or "")
        if field_path in POD_IP_FIELDS:
            return EnvVar(name, pod_ip=True)
        value = _field_value(pod, field_path)
        if value is None:
            ctx.problem(f"{path}.fieldRef.fieldPath", f"{field_path!r} is not a field a kubelet can provide")
            return None
        return EnvVar(name, value)
    if source.get("resourceFieldRef"):
        ref = source["resourceFieldRef"] or {}
        container_name = str(ref.get("containerName") or container.get("name") or "")
        value = resource_value(containers, container_name, str(ref.get("resource") or ""), ref.get("divisor"), pod_size)
        if value is None:
            ctx.problem(
                f"{path}.resourceFieldRef",
                "cannot be resolved",
                "use resource limits.cpu, limits.memory, requests.cpu or requests.memory of a container in this pod",
            )
            return None
        return EnvVar(name, value)
    for sub, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
        ref = source.get(sub)
        if not ref:
            continue
        obj_name, key = str(ref.get("name") or ""), str(ref.get("key") or "")
        items = ctx.configmap_items(obj_name, path, False) if kind == "ConfigMap" else ctx.secret_items(obj_name, path)
        if items is None or key not in items:
            if not ref.get("optional"):
                ctx.lack(kind, obj_name, f"{path}.{sub}", key if items is not None else None)
            return None
        text = _text(ctx, items[key], f"{path}.{sub}", kind, obj_name, key)
        return EnvVar(name, text) if text is not None else None
    ctx.problem(path, "has no source", "use fieldRef, resourceFieldRef, configMapKeyRef or secretKeyRef")
    return None
