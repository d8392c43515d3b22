"""The mutating admission webhook's decision: an AdmissionReview in, an AdmissionReview with a JSONPatch out.

What a pod gets (the rules are written in README, "Routing pods to ECI"):

- **ECI**: the toleration for the virtual node's taint and the node selector ``type=virtual-kubelet``
  (the label every vk-eci node carries). For a pod labelled ``alibabacloud.com/eci: "true"``, a pod
  annotated ``alibabacloud.com/burst-resource: eci_only``, a pod in a namespace with that label or
  annotation, or a pod one of the eci-profile's selectors matches.
- **Burst**: the toleration and a *preferred* node affinity for nodes that are not virtual, so the stock
  scheduler fills the real nodes first and spills onto ECI when they are full. For a pod (or namespace)
  annotated ``alibabacloud.com/burst-resource: eci``.
- **Nothing**: a pod labelled ``alibabacloud.com/eci: "false"`` (the pod's word beats its namespace's),
  a pod in a namespace labelled ``"false"``, and every pod no rule names.

Pod-level signals come first (label, then annotation), then the namespace's, then the selectors. A pod
already bound (``spec.nodeName``) keeps its placement; a pod that already tolerates the taint, or has its
own ``type`` node selector, keeps those. A routed pod also gets the effects of the selectors that match it,
where it has no value of its own. Each piece is added only when absent, so a second call on the patched
pod (``reinvocationPolicy: IfNeeded``) adds nothing.

Pure: dicts in, dicts out; the namespace's labels come from the caller's cache.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vkeci.core.profile import EMPTY, Profile, Selector

API_VERSION = "admission.k8s.io/v1"
ECI_LABEL = "alibabacloud.com/eci"
BURST_ANNOTATION = "alibabacloud.com/burst-resource"
BURST_VALUES = ("eci", "eci_only")

ECI = "eci"
BURST = "burst"
NONE = "none"

# Weight of the preferred affinity away from virtual nodes: the maximum, so it outweighs the scheduler's
# resource scores (a huge virtual node is always "least allocated"): NodeAffinity scores 0-100 times its
# plugin weight 2, against at most 100 each for the spread and resource plugins.
BURST_WEIGHT = 100


class AdmissionError(ValueError):
    """The request is not an AdmissionReview this webhook can answer; the server answers 400 with the message."""


@dataclass(frozen=True)
class Target:
    """The virtual node as pods must ask for it: its taint and the label that selects it.

    The defaults are vk-eci's (``vkeci.core.node.labels`` and ``taint``, ``VKUBELET_TAINT_*``).
    """

    taint_key: str = "virtual-kubelet.io/provider"
    taint_value: str = "alibabacloud"
    taint_effect: str = "NoSchedule"
    label_key: str = "type"
    label_value: str = "virtual-kubelet"

    def toleration(self) -> dict[str, str]:
        """The toleration added: ``Exists``, so a change of the taint's value does not strand pods."""
        return {"key": self.taint_key, "operator": "Exists", "effect": self.taint_effect}

    def away_term(self) -> dict[str, Any]:
        """The preferred scheduling term of burst mode: any node that is not a virtual one."""
        expression = {"key": self.label_key, "operator": "NotIn", "values": [self.label_value]}
        return {"weight": BURST_WEIGHT, "preference": {"matchExpressions": [expression]}}


@dataclass(frozen=True)
class Request:
    """The parts of an AdmissionReview request the decision uses."""

    uid: str
    operation: str
    kind: str
    namespace: str
    pod: Mapping[str, Any]


@dataclass
class Mutation:
    """The decision for one pod: the mode, why, the JSONPatch and the warnings shown to the user."""

    mode: str = NONE
    reason: str = ""
    patch: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    selectors: list[str] = field(default_factory=list)


def parse_request(review: Any) -> Request:
    """The request of an ``admission.k8s.io/v1`` AdmissionReview; raises :class:`AdmissionError`."""
    if not isinstance(review, Mapping):
        raise AdmissionError(f"expected a JSON AdmissionReview object, got {type(review).__name__}")
    if review.get("apiVersion") != API_VERSION or review.get("kind") != "AdmissionReview":
        raise AdmissionError(
            f"expected apiVersion {API_VERSION} kind AdmissionReview, got apiVersion "
            f"{review.get('apiVersion')!r} kind {review.get('kind')!r} "
            "(set admissionReviewVersions: [v1] in the MutatingWebhookConfiguration)"
        )
    request = review.get("request")
    if not isinstance(request, Mapping):
        raise AdmissionError("the AdmissionReview has no request object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise AdmissionError("request.uid is missing: the response must echo it")
    raw_kind = request.get("kind")
    kind: Mapping[str, Any] = raw_kind if isinstance(raw_kind, Mapping) else {}
    operation = str(request.get("operation") or "")
    pod = request.get("object")
    # A kind of another API group is named with it ("example.com/Pod"), so only core pods read as "Pod".
    kind_name = "/".join(str(part) for part in (kind.get("group"), kind.get("kind")) if part)
    if kind_name == "Pod" and operation == "CREATE" and not isinstance(pod, Mapping):
        raise AdmissionError("request.object is missing or not an object: a pod CREATE carries the pod")
    return Request(
        uid=uid,
        operation=operation,
        kind=kind_name,
        namespace=str(request.get("namespace") or ""),
        pod=pod if isinstance(pod, Mapping) else {},
    )


def _strings(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, str)}


def _meta(obj: Any) -> Mapping[str, Any]:
    # Any JSON may stand where an object should (a garbled review's `object`): no metadata then.
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    return meta if isinstance(meta, Mapping) else {}


def decide(
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    namespace_labels: Mapping[str, str],
    namespace_annotations: Mapping[str, str],
    selected: bool,
) -> tuple[str, str]:
    """The mode (:data:`ECI`, :data:`BURST` or :data:`NONE`) and the rule that chose it."""
    for where, own_labels, own_annotations in (
        ("pod", labels, annotations),
        ("namespace", namespace_labels, namespace_annotations),
    ):
        label = own_labels.get(ECI_LABEL)
        if label == "true":
            return ECI, f"{where} label {ECI_LABEL}=true"
        if label == "false":
            return NONE, f"{where} label {ECI_LABEL}=false"
        burst = own_annotations.get(BURST_ANNOTATION)
        if burst == "eci_only":
            return ECI, f"{where} annotation {BURST_ANNOTATION}=eci_only"
        if burst == "eci":
            return BURST, f"{where} annotation {BURST_ANNOTATION}=eci"
    if selected:
        return ECI, "eci-profile selector"
    return NONE, ""


def tolerates(toleration: Any, target: Target) -> bool:
    """Kubernetes' ToleratesTaint for the virtual node's taint."""
    if not isinstance(toleration, Mapping):
        return False
    effect = toleration.get("effect") or ""
    if effect and effect != target.taint_effect:
        return False
    key = toleration.get("key") or ""
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return not key or key == target.taint_key
    return key == target.taint_key and (toleration.get("value") or "") == target.taint_value


def _clone(value: Any) -> Any:
    """A copy of a JSON value (copy.deepcopy does the same at several times the cost)."""
    if isinstance(value, dict):
        return {key: _clone(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_clone(item) for item in value]
    return value


def _pointer(parts: tuple[str, ...]) -> str:
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in parts)


class _Malformed(Exception):
    def __init__(self, path: tuple[str, ...], expected: str) -> None:
        super().__init__(f"{'.'.join(path)} is not {expected}")


class _Patcher:
    """Builds a JSONPatch against ``doc`` and applies each operation to it, so later ones see earlier ones."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.ops: list[dict[str, Any]] = []

    def _parent(self, path: tuple[str, ...]) -> tuple[dict[str, Any], tuple[str, ...]] | None:
        node = self.doc
        for index, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                return node, path[: index + 1]  # the first missing (or null) container
            if not isinstance(child, dict):
                raise _Malformed(path[: index + 1], "an object")
            node = child
        return None

    def set_member(self, path: tuple[str, ...], value: Any) -> None:
        """``doc[path] = value``, creating the objects above it."""
        missing = self._parent(path)
        if missing is not None:
            node, prefix = missing
            nested = value
            for part in reversed(path[len(prefix) :]):
                nested = {part: nested}
            self.ops.append({"op": "add", "path": _pointer(prefix), "value": _clone(nested)})
            node[prefix[-1]] = nested
            return
        node = self.get(path[:-1])
        self.ops.append({"op": "add", "path": _pointer(path), "value": _clone(value)})
        node[path[-1]] = value

    def append(self, path: tuple[str, ...], item: Any) -> None:
        """Append ``item`` to the list at ``path``, creating it (and the objects above it)."""
        current = self.get(path)
        if current is None:
            self.set_member(path, [item])
            return
        if not isinstance(current, list):
            raise _Malformed(path, "a list")
        self.ops.append({"op": "add", "path": _pointer((*path, "-")), "value": _clone(item)})
        current.append(item)

    def get(self, path: tuple[str, ...]) -> Any:
        node: Any = self.doc
        for part in path:
            if not isinstance(node, dict):
                return None
            node = node.get(part)
        return node


def _effects(
    selectors: tuple[Selector, ...], labels: dict[str, str], annotations: dict[str, str], ns_labels: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """Labels and annotations the matching selectors add, to a fixed point: a label one selector adds can
    make another match, and a second webhook call must find nothing left to add."""
    added_labels: dict[str, str] = {}
    added_annotations: dict[str, str] = {}
    matched: list[str] = []
    changed = True
    while changed:
        changed = False
        for selector in selectors:
            if not selector.matches(labels, ns_labels):
                continue
            if selector.name not in matched:
                matched.append(selector.name)
            for key, value in selector.effect.labels:
                if key not in labels:
                    labels[key] = added_labels[key] = value
                    changed = True
            for key, value in selector.effect.annotations:
                if key not in annotations:
                    annotations[key] = added_annotations[key] = value
                    changed = True
    return added_labels, added_annotations, matched


def mutate(
    pod: Mapping[str, Any],
    namespace: Mapping[str, Any] | None,
    profile: Profile = EMPTY,
    target: Target | None = None,
) -> Mutation:
    """The decision and the JSONPatch for one pod being created; ``namespace`` is its Namespace object."""
    target = target or Target()
    meta = _meta(pod)
    labels = _strings(meta.get("labels"))
    annotations = _strings(meta.get("annotations"))
    ns_meta = _meta(namespace)
    ns_labels = _strings(ns_meta.get("labels"))
    ns_annotations = _strings(ns_meta.get("annotations"))
    result = Mutation()
    for where, value in (("pod", labels.get(ECI_LABEL)), ("namespace", ns_labels.get(ECI_LABEL))):
        if value is not None and value not in ("true", "false"):
            result.warnings.append(f'{where} label {ECI_LABEL}={value!r} ignored: use "true" or "false"')
    for where, value in (
        ("pod", annotations.get(BURST_ANNOTATION)),
        ("namespace", ns_annotations.get(BURST_ANNOTATION)),
    ):
        if value is not None and value not in BURST_VALUES:
            result.warnings.append(f'{where} annotation {BURST_ANNOTATION}={value!r} ignored: use "eci" or "eci_only"')

    effected_labels, effected_annotations = dict(labels), dict(annotations)
    added_labels, added_annotations, matched = _effects(
        profile.selectors, effected_labels, effected_annotations, ns_labels
    )
    mode, reason = decide(effected_labels, effected_annotations, ns_labels, ns_annotations, bool(matched))
    result.mode, result.reason = mode, reason
    if mode == NONE:
        return result
    result.selectors = matched
    patcher = _Patcher(_working_copy(pod))
    try:
        for key, value in added_labels.items():
            patcher.set_member(("metadata", "labels", key), value)
        for key, value in added_annotations.items():
            patcher.set_member(("metadata", "annotations", key), value)
        _route(patcher, mode, target, result)
    except _Malformed as exc:
        result.patch = []
        result.warnings.append(f"vk-eci left the pod unchanged: {exc}")
        return result
    result.patch = patcher.ops
    return result


# The only parts of a pod the patch touches or reads; the rest (containers, volumes) is never copied. A deep
# copy of the whole pod was 75% of an admission's time: 0.72 ms per admission of a 2.7 KB pod before, 0.24-0.37
# ms after (this and _clone, in-process, 10 selectors, load average 8 on 2 cores).
_TOUCHED = (("metadata", ("labels", "annotations")), ("spec", ("nodeName", "tolerations", "nodeSelector", "affinity")))


def _working_copy(pod: Mapping[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for section, keys in _TOUCHED:
        if section not in pod:
            continue
        value = pod[section]
        doc[section] = {k: _clone(value[k]) for k in keys if k in value} if isinstance(value, Mapping) else value
    return doc


def _route(patcher: _Patcher, mode: str, target: Target, result: Mutation) -> None:
    if patcher.get(("spec", "nodeName")):
        return  # already bound: the scheduler is out of the picture and so are we
    tolerations = patcher.get(("spec", "tolerations"))
    if not (isinstance(tolerations, list) and any(tolerates(t, target) for t in tolerations)):
        patcher.append(("spec", "tolerations"), target.toleration())
    selector = patcher.get(("spec", "nodeSelector"))
    own = selector.get(target.label_key) if isinstance(selector, dict) else None
    if own is not None:
        if own != target.label_value:
            result.warnings.append(
                f"the pod's nodeSelector {target.label_key}={own!r} keeps it off the virtual node "
                f"({target.label_key}={target.label_value}); vk-eci left it as is"
            )
        return  # the pod chose its nodes itself
    if mode == ECI:
        patcher.set_member(("spec", "nodeSelector", target.label_key), target.label_value)
        return
    preferred = ("spec", "affinity", "nodeAffinity", "preferredDuringSchedulingIgnoredDuringExecution")
    terms = patcher.get(preferred)
    if not (isinstance(terms, list) and target.away_term() in terms):
        patcher.append(preferred, target.away_term())


def response(uid: str, mutation: Mutation) -> dict[str, Any]:
    """The AdmissionReview answering ``uid``: always allowed; the patch (base64 JSON) when there is one."""
    answer: dict[str, Any] = {"uid": uid, "allowed": True}
    if mutation.patch:
        answer["patchType"] = "JSONPatch"
        answer["patch"] = base64.b64encode(json.dumps(mutation.patch, separators=(",", ":")).encode()).decode()
    if mutation.warnings:
        answer["warnings"] = list(mutation.warnings)
    return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": answer}


def review(
    body: Any,
    namespace: Mapping[str, Any] | None,
    profile: Profile = EMPTY,
    target: Target | None = None,
) -> tuple[dict[str, Any], Mutation]:
    """Answer one AdmissionReview (raises :class:`AdmissionError` for one that is malformed).

    Only pod CREATEs are mutated; anything else is allowed unchanged.
    """
    request = parse_request(body)
    if request.kind != "Pod" or request.operation != "CREATE":
        mutation = Mutation(reason=f"{request.operation} of {request.kind or 'an unknown kind'} is not mutated")
        return response(request.uid, mutation), mutation
    mutation = mutate(request.pod, namespace, profile, target)
    return response(request.uid, mutation), mutation


def namespace_of(body: Any) -> str:
    """The namespace an AdmissionReview's pod is created in ("" if it does not say), before parsing it fully."""
    request = body.get("request") if isinstance(body, Mapping) else None
    if not isinstance(request, Mapping):
        return ""
    return str(request.get("namespace") or _meta(request.get("object")).get("namespace") or "")
