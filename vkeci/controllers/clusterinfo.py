"""What the cluster tells the daemon at start when the settings leave it open: the cluster DNS (the
``kube-system/kube-dns`` Service's ClusterIP) and where ECI pods reach the API server (the ``kubernetes``
EndpointSlice in ``default``: the API servers' own addresses, not the ClusterIP, which the VPC may not route).

Read once at start; a setting given explicitly always wins. Each outcome is logged once, saying which
value is used and where it came from.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

from vkeci.clients.kube import KubeError
from vkeci.config import Config
from vkeci.controllers.ports import KubeApi
from vkeci.log import fields, get_logger

log = get_logger("daemon")

KUBE_DNS = "/api/v1/namespaces/kube-system/services/kube-dns"
KUBERNETES_ENDPOINTS = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes"


def _get(kube: KubeApi, path: str) -> dict[str, Any] | None:
    try:
        return kube.get(path)
    except KubeError as err:
        if not err.not_found:
            log.warning("cannot read a cluster default", extra=fields(path=path, error=str(err)))
        return None


def cluster_dns(kube: KubeApi) -> tuple[str, ...]:
    """The kube-dns Service's ClusterIP(s), or () when there is none."""
    service = _get(kube, KUBE_DNS) or {}
    spec = service.get("spec") or {}
    ips = [str(ip) for ip in (spec.get("clusterIPs") or [spec.get("clusterIP")]) if ip and ip != "None"]
    return tuple(ips)


def api_server(kube: KubeApi) -> str:
    """``host:port`` of the first ready API server endpoint in the ``kubernetes`` EndpointSlice, or ""."""
    slice_ = _get(kube, KUBERNETES_ENDPOINTS) or {}
    ports = [p for p in slice_.get("ports") or [] if p.get("port")]
    port = next((p["port"] for p in ports if p.get("name") == "https"), ports[0]["port"] if ports else None)
    for endpoint in slice_.get("endpoints") or []:
        if (endpoint.get("conditions") or {}).get("ready") is False:
            continue
        for address in endpoint.get("addresses") or []:
            if port:
                host = f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
                return f"{host}:{port}"
    return ""


def with_cluster_defaults(config: Config, kube: KubeApi) -> Config:
    """``config`` with ``cluster_dns`` and ``api_server`` filled in from the cluster where they are unset."""
    changes: dict[str, Any] = {}
    if config.cluster_dns:
        log.info("cluster DNS from the settings", extra=fields(cluster_dns=",".join(config.cluster_dns)))
    else:
        found = cluster_dns(kube)
        if found:
            changes["cluster_dns"] = found
            log.info("cluster DNS from the kube-system/kube-dns Service", extra=fields(cluster_dns=",".join(found)))
        else:
            log.warning(
                "cluster DNS is not configured: no cluster_dns setting and no kube-system/kube-dns Service; "
                "ClusterFirst pods get the VPC's DNS (set CLUSTER_DNS / --cluster-dns)"
            )
    if config.api_server:
        log.info("API server for ECI pods from the settings", extra=fields(api_server=config.api_server))
    else:
        address = api_server(kube)
        if address:
            changes["api_server"] = address
            log.info("API server for ECI pods from the default/kubernetes endpoints", extra=fields(api_server=address))
        else:
            log.warning(
                "API server for ECI pods unknown (no default/kubernetes endpoints readable); they get the "
                "kubernetes Service's ClusterIP (set API_SERVER / --api-server)"
            )
    return dataclasses.replace(config, **changes) if changes else config
