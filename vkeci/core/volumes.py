"""Pod volumes as ECI volumes.

ECI serves emptyDir, NFS, flexVolume (Alibaba disk/NAS/OSS drivers) and *config file* volumes:
files whose bytes travel base64-encoded in the request. ConfigMap, Secret, downwardAPI and
projected volumes (service-account token, ``kube-root-ca.crt``, downward API) all become config
file volumes, rendered at creation time, byte for byte. What ECI cannot serve is a ``Problem``
naming the field and the supported alternative.
"""

from __future__ import annotations

import base64
import json
import posixpath
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from vkeci.core.context import Context, token_key
from vkeci.core.envvars import resource_value

DEFAULT_MODE = 0o644
MAX_VOLUMES = 20
# ECI guide "Mount a ConfigFile volume": one file at most 32 KB, all files of a volume at most 60 KB.
MAX_FILE_BYTES = 32 * 1024
MAX_VOLUME_BYTES = 60 * 1024
LARGE_DATA_FIX = (
    "keep ConfigMap/Secret files small, or serve large data from NAS (an nfs volume), "
    "the image, or an init container that downloads it into an emptyDir"
)
SUPPORTED = "emptyDir, nfs, configMap, secret, projected, downwardAPI or flexVolume"
_UNSUPPORTED_FIX = {
    "hostPath": "ECI has no host filesystem; use emptyDir for scratch space, or a cloud disk or NAS (nfs) for data",
    "persistentVolumeClaim": "vk-eci cannot attach PersistentVolumeClaims; mount NAS with an nfs volume instead",
    "csi": "vk-eci cannot run CSI drivers; use nfs (NAS) or flexVolume with an Alibaba Cloud driver",
    "ephemeral": "generic ephemeral volumes need a CSI driver; use emptyDir (sizeLimit) instead",
}


def _files(
    ctx: Context, items: dict[str, bytes], spec: Mapping[str, Any], kind: str, name: str, path: str
) -> list[tuple[str, bytes, int | None]] | None:
    """Apply ``items`` (key -> path, mode) to an object's keys; None when a listed key is missing."""
    listed = spec.get("items")
    if not listed:
        return [(key, items[key], None) for key in sorted(items)]
    files = []
    for index, item in enumerate(listed):
        key = str((item or {}).get("key") or "")
        if key not in items:
            if not spec.get("optional"):
                ctx.lack(kind, name, f"{path}.items[{index}]", key)
                return None
            continue
        mode = item.get("mode")
        files.append((str(item.get("path") or key), items[key], int(mode) if mode is not None else None))
    return files


def _check_paths(ctx: Context, files: list[tuple[str, bytes, int | None]], path: str) -> bool:
    ok = True
    seen: set[str] = set()
    for file_path, _, mode in files:
        if file_path in seen:
            ctx.problem(path, f"two sources write the same file {file_path!r}", "give the items distinct paths")
            ok = False
        seen.add(file_path)
        normal = posixpath.normpath(file_path)
        if not file_path or file_path.startswith("/") or normal.startswith("..") or normal != file_path:
            ctx.problem(path, f"file path {file_path!r} must be relative, normalised and stay inside the volume")
            ok = False
        if mode is not None and not 0 <= mode <= 0o777:
            ctx.problem(path, f"file mode {mode} is not between 0 and 0777 (511)")
            ok = False
    return ok


def _check_sizes(ctx: Context, files: list[tuple[str, bytes, int | None]], path: str) -> bool:
    ok = True
    for file_path, content, _ in files:
        if len(content) > MAX_FILE_BYTES:
            ctx.problem(
                path,
                f"file {file_path!r} is {len(content)} bytes; ECI config files are at most {MAX_FILE_BYTES}",
                LARGE_DATA_FIX,
            )
            ok = False
    total = sum(len(content) for _, content, _ in files)
    if ok and total > MAX_VOLUME_BYTES:
        ctx.problem(
            path,
            f"the files add up to {total} bytes; an ECI config file volume holds at most {MAX_VOLUME_BYTES}",
            LARGE_DATA_FIX,
        )
        ok = False
    return ok


def _config_file_volume(files: list[tuple[str, bytes, int | None]], default_mode: Any) -> dict[str, Any]:
    entries = []
    for file_path, content, mode in files:
        entry: dict[str, Any] = {"Path": file_path, "Content": base64.b64encode(content).decode("ascii")}
        if mode is not None:
            entry["Mode"] = mode
        entries.append(entry)
    volume: dict[str, Any] = {"ConfigFileToPath": entries}
    volume["DefaultMode"] = int(default_mode) if default_mode is not None else DEFAULT_MODE
    return volume


def _object_files(
    ctx: Context, spec: Mapping[str, Any], kind: str, path: str
) -> list[tuple[str, bytes, int | None]] | None:
    name = str(spec.get("name") or spec.get("secretName") or "")
    items = ctx.configmap_items(name, path) if kind == "ConfigMap" else ctx.secret_items(name, path)
    if items is None:
        if not spec.get("optional"):
            ctx.lack(kind, name, path)
            return None
        return []
    return _files(ctx, items, spec, kind, name, path)


def _label_lines(values: Mapping[str, Any]) -> bytes:
    # The kubelet writes `key="value"` lines sorted by key, values quoted like Go's %q.
    lines = [f"{key}={json.dumps(str(values[key]), ensure_ascii=False)}" for key in sorted(values)]
    return "\n".join(lines).encode("utf-8", "surrogatepass")


def _downward_files(
    ctx: Context, pod: Mapping[str, Any], items: list[Any], path: str, pod_size: tuple[Decimal, Decimal]
) -> list[tuple[str, bytes, int | None]]:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    files = []
    for index, item in enumerate(items or []):
        item = item or {}
        item_path = f"{path}.items[{index}]"
        mode = int(item["mode"]) if item.get("mode") is not None else None
        if item.get("fieldRef"):
            field = str((item["fieldRef"] or {}).get("fieldPath") or "")
            if field == "metadata.labels":
                content = _label_lines(meta.get("labels") or {})
            elif field == "metadata.annotations":
                content = _label_lines(meta.get("annotations") or {})
            elif field in ("metadata.name", "metadata.namespace", "metadata.uid"):
                default = "default" if field == "metadata.namespace" else ""
                content = str(meta.get(field.split(".")[1]) or default).encode("utf-8", "surrogatepass")
            elif field.startswith(("metadata.labels['", "metadata.annotations['")) and field.endswith("']"):
                section, key = field[len("metadata.") :].split("['", 1)
                content = str((meta.get(section) or {}).get(key[:-2], "")).encode("utf-8", "surrogatepass")
            else:
                ctx.problem(
                    f"{item_path}.fieldRef.fieldPath",
                    f"{field!r} cannot be written to a file before the pod starts on ECI",
                    "use metadata.name, metadata.namespace, metadata.uid, metadata.labels or metadata.annotations",
                )
                continue
        elif item.get("resourceFieldRef"):
            ref = item["resourceFieldRef"] or {}
            value = resource_value(
                containers,
                str(ref.get("containerName") or ""),
                str(ref.get("resource") or ""),
                ref.get("divisor"),
                pod_size,
            )
            if value is None:
                ctx.problem(f"{item_path}.resourceFieldRef", "cannot be resolved", "name a container and a resource")
                continue
            content = value.encode()
        else:
            ctx.problem(item_path, "needs fieldRef or resourceFieldRef")
            continue
        files.append((str(item.get("path") or ""), content, mode))
    return files


def _projected_files(
    ctx: Context, pod: Mapping[str, Any], projected: Mapping[str, Any], path: str, pod_size: tuple[Decimal, Decimal]
) -> list[tuple[str, bytes, int | None]] | None:
    spec = pod.get("spec") or {}
    service_account = str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")
    files: list[tuple[str, bytes, int | None]] = []
    complete = True
    for index, source in enumerate(projected.get("sources") or []):
        source = source or {}
        source_path = f"{path}.sources[{index}]"
        if source.get("serviceAccountToken"):
            token = source["serviceAccountToken"] or {}
            key = token_key(service_account, token.get("audience"), token.get("expirationSeconds"))
            value = ctx.objects.tokens.get(key)
            if value is None:
                ctx.lack("ServiceAccountToken", service_account, f"{source_path}.serviceAccountToken")
                complete = False
                continue
            files.append((str(token.get("path") or "token"), str(value).encode("utf-8"), None))
        elif source.get("configMap") or source.get("secret"):
            kind, sub = ("ConfigMap", "configMap") if source.get("configMap") else ("Secret", "secret")
            found = _object_files(ctx, source[sub], kind, f"{source_path}.{sub}")
            if found is None:
                complete = False
                continue
            files.extend(found)
        elif source.get("downwardAPI"):
            items = (source["downwardAPI"] or {}).get("items") or []
            files.extend(_downward_files(ctx, pod, items, f"{source_path}.downwardAPI", pod_size))
        elif source.get("clusterTrustBundle") or source.get("podCertificate"):
            kind = "clusterTrustBundle" if source.get("clusterTrustBundle") else "podCertificate"
            ctx.problem(f"{source_path}.{kind}", "is not supported by vk-eci", "project a configMap holding the bundle")
        else:
            ctx.problem(
                source_path, "is an empty projection", "give serviceAccountToken, configMap, secret or downwardAPI"
            )
    return files if complete else None


def volume(
    ctx: Context, pod: Mapping[str, Any], vol: Mapping[str, Any], path: str, pod_size: tuple[Decimal, Decimal]
) -> dict[str, Any] | None:
    """One pod volume as the request's ``Volume`` entry (None after recording why it cannot be)."""
    name = str(vol.get("name") or "")
    if not name:
        ctx.problem(f"{path}.name", "missing", "give the volume a name")
        return None
    result: dict[str, Any] = {"Name": name}
    if "emptyDir" in vol:
        empty = vol.get("emptyDir") or {}
        medium = str(empty.get("medium") or "")
        if medium not in ("", "Memory"):
            ctx.problem(f"{path}.emptyDir.medium", f"{medium!r} is not supported on ECI", 'use "" (disk) or "Memory"')
            return None
        config: dict[str, Any] = {}
        if medium:
            config["Medium"] = medium
        if empty.get("sizeLimit") is not None:
            config["SizeLimit"] = str(empty["sizeLimit"])
        return {**result, "Type": "EmptyDirVolume", "EmptyDirVolume": config}
    if vol.get("nfs"):
        nfs = vol["nfs"]
        if not nfs.get("server") or not nfs.get("path"):
            ctx.problem(f"{path}.nfs", "needs server and path", "e.g. server: xxx.nas.aliyuncs.com, path: /")
            return None
        config = {"Server": str(nfs["server"]), "Path": str(nfs["path"]), "ReadOnly": bool(nfs.get("readOnly", False))}
        return {**result, "Type": "NFSVolume", "NFSVolume": config}
    if vol.get("flexVolume"):
        flex = vol["flexVolume"]
        config = {"Driver": str(flex.get("driver") or "")}
        if flex.get("fsType"):
            config["FsType"] = str(flex["fsType"])
        if flex.get("options"):
            config["Options"] = json.dumps(flex["options"], sort_keys=True)
        if flex.get("secretRef"):
            ctx.problem(f"{path}.flexVolume.secretRef", "is not supported on ECI", "pass credentials in options")
            return None
        return {**result, "Type": "FlexVolume", "FlexVolume": config}
    files: list[tuple[str, bytes, int | None]] | None
    if "configMap" in vol or "secret" in vol:
        kind, sub = ("ConfigMap", "configMap") if "configMap" in vol else ("Secret", "secret")
        spec = vol.get(sub) or {}
        files = _object_files(ctx, spec, kind, f"{path}.{sub}")
        default_mode = spec.get("defaultMode")
        files_path = f"{path}.{sub}"
    elif "projected" in vol:
        spec = vol.get("projected") or {}
        files = _projected_files(ctx, pod, spec, f"{path}.projected", pod_size)
        default_mode = spec.get("defaultMode")
        files_path = f"{path}.projected"
    elif "downwardAPI" in vol:
        spec = vol.get("downwardAPI") or {}
        files = _downward_files(ctx, pod, spec.get("items") or [], f"{path}.downwardAPI", pod_size)
        default_mode = spec.get("defaultMode")
        files_path = f"{path}.downwardAPI"
    else:
        kind_name = next((k for k in vol if k != "name"), "")
        fix = _UNSUPPORTED_FIX.get(kind_name, f"ECI volumes supported by vk-eci: {SUPPORTED}")
        field = f"{path}.{kind_name}" if kind_name else path
        ctx.problem(field, f"{kind_name or 'a volume with no source'} volumes are not supported on ECI", fix)
        return None
    if files is None:
        return None
    if not _check_paths(ctx, files, files_path) or not _check_sizes(ctx, files, files_path):
        return None
    if default_mode is not None and not 0 <= int(default_mode) <= 0o777:
        ctx.problem(f"{files_path}.defaultMode", f"{default_mode} is not between 0 and 0777 (511)")
        return None
    if not files:
        # An empty (or optional and absent) source is an empty directory, as on a kubelet;
        # an empty config file volume would be refused by ECI while the mount still names it.
        return {**result, "Type": "EmptyDirVolume", "EmptyDirVolume": {}}
    return {**result, "Type": "ConfigFileVolume", "ConfigFileVolume": _config_file_volume(files, default_mode)}
