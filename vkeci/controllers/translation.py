"""The translation seam of the controllers (``ports.PodTranslator``): the pure core plus the I/O it needs.

``ReferenceFetcher`` reads what a pod references (ConfigMaps, Secrets, service-account tokens,
Services) on demand, through a short TTL cache (no cluster-wide Secret cache): a burst of replicas
of one Deployment costs one read per object, not one per pod. ``Translation`` hands those objects
and the daemon's defaults to ``vkeci.core.translate`` and ``vkeci.core.status``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

from vkeci.clients.kube import KubeError
from vkeci.config import Config
from vkeci.controllers.ports import KubeApi
from vkeci.core import status, translate
from vkeci.core.context import Objects
from vkeci.core.problems import Missing, Problem, Rejected
from vkeci.core.profile import ProfileSource, with_overrides

JSON = dict[str, Any]


class ReferenceFetcher:
    """The objects a pod references, read from the API server through a ``ttl``-second cache."""

    def __init__(self, kube: KubeApi, ttl: float = 5.0) -> None:
        self.kube = kube
        self.ttl = ttl
        self._cache: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def _cached(self, key: str, load: Callable[[], Any]) -> Any:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit and now - hit[0] < self.ttl:
                return hit[1]
        value = load()
        with self._lock:
            if len(self._cache) > 10000:
                self._cache.clear()
            self._cache[key] = (now, value)
        return value

    def _get(self, path: str) -> JSON | None:
        try:
            return self.kube.get(path)
        except KubeError as err:
            if err.not_found:
                return None
            raise

    def _token(self, pod: JSON, namespace: str, key: tuple[str, str, int]) -> str | None:
        account, audience, seconds = key
        meta = pod.get("metadata") or {}
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": [audience] if audience else [],
                "expirationSeconds": seconds,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta.get("name"), "uid": meta.get("uid")},
            },
        }
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token"
        try:
            answer = self.kube.post(path, body)
        except KubeError as err:
            if err.not_found:
                return None
            raise
        return str((answer.get("status") or {}).get("token") or "") or None

    def objects(self, pod: JSON) -> Objects:
        """Fetch the ConfigMaps, Secrets, tokens and Services the pod references."""
        needs = translate.needs(pod)
        ns = str((pod.get("metadata") or {}).get("namespace") or "default")
        base = f"/api/v1/namespaces/{ns}"
        configmaps = {}
        for name in needs.configmaps:
            obj = self._cached(f"cm/{ns}/{name}", partial(self._get, f"{base}/configmaps/{name}"))
            if obj is not None:
                configmaps[name] = obj
        secrets = {}
        for name in needs.secrets:
            obj = self._cached(f"secret/{ns}/{name}", partial(self._get, f"{base}/secrets/{name}"))
            if obj is not None:
                secrets[name] = obj
        tokens = {}
        for key in needs.tokens:
            token = self._token(pod, ns, key)
            if token:
                tokens[key] = token
        services: list[JSON] = []
        kubernetes = self._cached(
            "svc/default/kubernetes", lambda: self._get("/api/v1/namespaces/default/services/kubernetes")
        )
        if needs.service_links:
            listed = self._cached(f"svc/{ns}", lambda: self.kube.get(f"{base}/services").get("items") or [])
            services.extend(listed)
        if kubernetes is not None and not any(
            (s.get("metadata") or {}).get("uid") == (kubernetes.get("metadata") or {}).get("uid") for s in services
        ):
            services.append(kubernetes)
        return Objects(configmaps=configmaps, secrets=secrets, tokens=tokens, services=services)


# The daemon found no cluster DNS at start (no setting, no kube-system/kube-dns Service).
NO_CLUSTER_DNS = Problem(
    "spec.dnsPolicy",
    "ClusterFirst, but cluster DNS is not configured (no cluster_dns setting and no kube-system/kube-dns "
    "Service): the pod gets the VPC's DNS and cannot resolve Services",
    "set cluster_dns (CLUSTER_DNS, --cluster-dns) to the cluster DNS Service's IP and restart vk-eci",
)


class Translation:
    """``ports.PodTranslator`` over the pure core, with the daemon's defaults and a ReferenceFetcher.

    ``profile``: the eci-profile in force; its cluster parameters (vSwitchIds, securityGroupId,
    resourceGroupId) override the daemon's settings for every pod translated after an edit, and the
    pod's own annotations still override both.
    """

    def __init__(
        self, config: Config, kube: KubeApi, ttl: float = 5.0, *, profile: ProfileSource | None = None
    ) -> None:
        self.defaults = translate.Defaults.from_config(config)
        self.references = ReferenceFetcher(kube, ttl)
        self.profile = profile

    def request(self, pod: JSON) -> tuple[JSON, list[Any]]:
        """The CreateContainerGroup request map and the warnings (raises Rejected / Missing)."""
        defaults = self.defaults
        if self.profile is not None:
            defaults = with_overrides(defaults, self.profile.current().cluster)
        translation = translate.translate(pod, self.references.objects(pod), defaults)
        warnings: list[Any] = list(translation.warnings)
        policy = str((pod.get("spec") or {}).get("dnsPolicy") or "ClusterFirst")
        if not defaults.cluster_dns and policy in ("ClusterFirst", "ClusterFirstWithHostNet"):
            warnings.append(NO_CLUSTER_DNS)  # posted once per pod, as a TranslationWarning event
        return dict(translation.request), warnings

    def pod_status(self, pod: JSON, group: JSON, now: datetime) -> JSON:
        return dict(status.pod_status(pod, group, now))

    def missing_group_status(self, pod: JSON, now: datetime, group_id: str) -> JSON:
        return dict(status.missing_group_status(pod, now, group_id))

    def restart_status(self, pod: JSON, group_id: str, attempt: int, delay: float, now: datetime) -> JSON:
        return dict(status.restart_status(pod, group_id, attempt, delay, now))

    def rejected_status(self, pod: JSON, err: Rejected, now: datetime) -> JSON:
        return dict(status.rejected_status(pod, err.problems, now))

    def waiting_status(self, pod: JSON, err: Missing, now: datetime) -> JSON:
        return dict(status.missing_status(pod, err, now))

    def problem_status(self, pod: JSON, reason: str, message: str, now: datetime, *, fail: bool = False) -> JSON:
        """Pending (or Failed) with every container waiting and a pod-level reason/message."""
        result = dict(status.pending_status(pod, now, reason=reason, message=message))
        if fail:
            result["phase"] = "Failed"
        return result

    def events(self, pod: JSON, group: JSON, now: datetime) -> list[JSON]:
        return list(status.kube_events(pod, group, now))
