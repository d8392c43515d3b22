"""One admission: the request body in, the status code and the response body out.

The namespace of the pod comes from :class:`vkeci.controllers.namespaces.NamespaceCache` (an
AdmissionReview carries only the pod), the profile from a :class:`vkeci.core.profile.ProfileSource`.
A body that is not an AdmissionReview gets a 400 with the reason; nothing here raises.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import Counter, Histogram

from vkeci.core import admission
from vkeci.core.profile import ProfileSource
from vkeci.log import fields, get_logger

log = get_logger("webhook")

ADMISSIONS = Counter("vkeci_webhook_admissions_total", "Pod admissions by outcome", ["mode"])
LATENCY = Histogram(
    "vkeci_webhook_admission_seconds",
    "Time to answer one AdmissionReview (parse, decide, encode)",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)

NamespaceLookup = Callable[[str], Mapping[str, Any] | None]


class Admitter:
    """Answers AdmissionReviews for pods with :func:`vkeci.core.admission.review`."""

    def __init__(self, namespaces: NamespaceLookup, profile: ProfileSource, target: admission.Target) -> None:
        self.namespaces = namespaces
        self.profile = profile
        self.target = target

    def __call__(self, body: bytes) -> tuple[int, bytes]:
        """``(200, AdmissionReview)``, or ``(400, reason)`` for a body that is not one."""
        started = time.perf_counter()
        try:
            review = json.loads(body)
        except ValueError as exc:
            ADMISSIONS.labels("bad-request").inc()
            return 400, f"the body is not JSON ({exc}); expected an admission.k8s.io/v1 AdmissionReview".encode()
        try:
            namespace = self.namespaces(admission.namespace_of(review))
            answer, mutation = admission.review(review, namespace, self.profile.current(), self.target)
        except admission.AdmissionError as exc:
            ADMISSIONS.labels("bad-request").inc()
            log.warning("malformed AdmissionReview refused", extra=fields(error=str(exc)))
            return 400, str(exc).encode()
        elapsed = time.perf_counter() - started
        LATENCY.observe(elapsed)
        ADMISSIONS.labels(mutation.mode).inc()
        if mutation.mode != admission.NONE or mutation.warnings:
            request = review.get("request") or {}
            meta = (request.get("object") or {}).get("metadata") or {}
            log.debug(
                "pod admitted",
                extra=fields(
                    namespace=request.get("namespace"),
                    pod=meta.get("name") or meta.get("generateName"),
                    mode=mutation.mode,
                    reason=mutation.reason,
                    selectors=mutation.selectors,
                    warnings=mutation.warnings,
                    ms=round(elapsed * 1000, 2),
                ),
            )
        return 200, json.dumps(answer, separators=(",", ":")).encode()
