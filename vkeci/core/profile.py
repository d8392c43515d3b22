"""The eci-profile: the ``kube-system/eci-profile`` ConfigMap of Alibaba's virtual node, parsed and checked.

The format is the one ACK documents ("Configure an eci-profile"): every value of the ConfigMap's
``data`` is a string; ``selectors`` holds a JSON list of
``{"name", "namespaceSelector", "objectSelector", "effect": {"annotations", "labels"}}`` with standard
Kubernetes label selectors (``matchLabels`` plus ``matchExpressions`` with ``In``, ``NotIn``, ``Exists``,
``DoesNotExist``); the cluster parameters (``vSwitchIds``, ``securityGroupId``, ``vpcId``...) change the
settings of pods created after the edit. A ConfigMap copied from an ACK cluster loads unchanged: the keys
vk-eci cannot honour are accepted and named (:data:`NOT_HONOURED` says why for each), an unknown key is
an error (most likely a typo).

Semantics (ACK's, where its documentation states them):

- A selector matches a pod when its ``namespaceSelector`` matches the labels of the pod's namespace and its
  ``objectSelector`` matches the pod's labels; an absent one does not constrain. Several labels in one
  selector are ANDed. A selector with neither is refused: it would send every pod in the cluster to ECI
  (write ``"namespaceSelector": {}`` if that is meant).
- A matching pod goes to ECI (ACK's "ECI Scheduler") and gets the effect's annotations and labels (ACK's
  "ECI Effect"); the pod's own values win, and on a key two selectors both set, the earlier one wins
  (ACK's ConfigMap documentation does not say; this order is vk-eci's choice, stated in the README). A
  label one selector adds can make another match; that one applies after it.

Pure: strings and dicts in, frozen dataclasses out, no I/O. Every problem is a
:class:`~vkeci.core.problems.Problem` that names the key (``selectors[2].objectSelector.matchExpressions[0]``)
and the fix; :class:`ProfileError` carries them all at once.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from vkeci.core.problems import Problem

PROFILE_NAMESPACE = "kube-system"
PROFILE_NAME = "eci-profile"

# ECI accepts at most 10 vSwitches in one CreateContainerGroup (ECI docs, "multi-zone creation").
MAX_VSWITCHES = 10

# Keys of ACK's eci-profile that change ECI requests outside the pod, mapped to the field of
# vkeci.core.translate.Defaults they override. vpcId is checked but not sent: ECI takes the VPC from the vSwitch.
HONOURED: dict[str, str] = {
    "vSwitchIds": "vswitches",
    "securityGroupId": "security_group",
    "resourceGroupId": "resource_group_id",
    "vpcId": "",
    "selectors": "",
}

# Keys of ACK's eci-profile that vk-eci accepts and does not act on, and why.
NOT_HONOURED: dict[str, str] = {
    "enableClusterIp": (
        "ACK makes ClusterIP Services reachable from ECI through its own network plugin; vk-eci does not "
        "program the VPC (ECI pods reach a ClusterIP only if the VPC routes the Service range)"
    ),
    "enablePrivateZone": (
        "ACK registers Services in Alibaba Cloud PrivateZone; vk-eci calls no PrivateZone API "
        "(ClusterFirst pods use the cluster DNS the daemon is configured with)"
    ),
    "enableHybridMode": "ACK's hybrid-cloud mode (ECI pods for an off-cloud cluster) has no vk-eci equivalent",
    "enableLinuxArm64Node": (
        "ACK registers a second, arm64 virtual node; a vk-eci daemon registers one node "
        "(run a second daemon for arm64 instance types)"
    ),
    "enableLogController": "ACK's SLS log-collection controller is not part of vk-eci",
    "enablePVCController": "ACK's PVC controller for ECI disks is not part of vk-eci (volumes are translated per pod)",
    "enableReuseSSLKey": "an ACK virtual-node internal; vk-eci's webhook certificate is set by `vkeci webhook --tls-*`",
    "featureGates": "ACK virtual-node feature gates (such as WaitForFirstConsumer) have no vk-eci equivalent",
    "slsMachineGroup": "ACK's SLS machine group for log collection is not part of vk-eci",
}
KNOWN_KEYS = frozenset(HONOURED) | frozenset(NOT_HONOURED)
_BOOLEAN_KEYS = frozenset(key for key in NOT_HONOURED if key.startswith("enable"))

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
_SELECTOR_KEYS = ("name", "namespaceSelector", "objectSelector", "effect")
_LABEL_SELECTOR_KEYS = ("matchLabels", "matchExpressions")
_EFFECT_KEYS = ("annotations", "labels")

# Kubernetes' qualified names (IsQualifiedName) and label values (IsValidLabelValue).
_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
_IDS = {
    "vSwitchIds": ("vsw-", "a vSwitch id such as vsw-bp1xxxx"),
    "securityGroupId": ("sg-", "a security group id such as sg-bp1xxxx"),
    "vpcId": ("vpc-", "a VPC id such as vpc-bp1xxxx"),
    "resourceGroupId": ("rg-", "a resource group id such as rg-acfmxxxx"),
}
_ID = re.compile(r"^[a-z]+-[A-Za-z0-9-]+$")


def qualified_name_problem(key: str) -> str:
    """Why ``key`` is not a valid label or annotation key ("" when it is)."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return f"the prefix {prefix!r} is not a DNS subdomain (lower case, digits, '-' and '.')"
    if not _NAME.match(name):
        return (
            "the name part must be 1-63 characters of letters, digits, '-', '_' and '.', "
            "starting and ending alphanumeric"
        )
    return ""


def label_value_problem(value: str) -> str:
    """Why ``value`` is not a valid label value ("" when it is)."""
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        return "a label value is at most 63 letters, digits, '-', '_' and '.', starting and ending alphanumeric"
    return ""


@dataclass(frozen=True)
class Requirement:
    """One ``matchExpressions`` entry."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Kubernetes' semantics: NotIn and DoesNotExist hold for a label that is absent."""
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        return self.key not in labels or labels[self.key] not in self.values  # NotIn


@dataclass(frozen=True)
class LabelSelector:
    """``matchLabels`` and ``matchExpressions``, ANDed; the empty selector matches everything."""

    match_labels: tuple[tuple[str, str], ...] = ()
    expressions: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether every label and every expression holds for ``labels``."""
        return all(labels.get(k) == v for k, v in self.match_labels) and all(
            e.matches(labels) for e in self.expressions
        )


@dataclass(frozen=True)
class Effect:
    """What a matching pod gets: annotations and labels, each only where the pod has no value of its own."""

    annotations: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Selector:
    """One entry of ``selectors``."""

    name: str
    namespace_selector: LabelSelector | None = None
    object_selector: LabelSelector | None = None
    effect: Effect = field(default_factory=Effect)

    def matches(self, pod_labels: Mapping[str, str], namespace_labels: Mapping[str, str]) -> bool:
        """Whether a pod with these labels, in a namespace with those, is selected."""
        if self.namespace_selector is not None and not self.namespace_selector.matches(namespace_labels):
            return False
        return self.object_selector is None or self.object_selector.matches(pod_labels)


@dataclass(frozen=True)
class ClusterParameters:
    """The honoured cluster parameters; empty means "keep the daemon's own setting"."""

    vswitch_ids: tuple[str, ...] = ()
    security_group_id: str = ""
    vpc_id: str = ""
    resource_group_id: str = ""

    def defaults_overrides(self) -> dict[str, Any]:
        """The fields of ``vkeci.core.translate.Defaults`` this profile overrides, with their values."""
        overrides: dict[str, Any] = {}
        if self.vswitch_ids:
            overrides["vswitches"] = self.vswitch_ids
        if self.security_group_id:
            overrides["security_group"] = self.security_group_id
        if self.resource_group_id:
            overrides["resource_group_id"] = self.resource_group_id
        return overrides


@dataclass(frozen=True)
class Profile:
    """A valid eci-profile. ``ignored`` names the keys set to something vk-eci does not act on."""

    cluster: ClusterParameters = field(default_factory=ClusterParameters)
    selectors: tuple[Selector, ...] = ()
    ignored: tuple[Problem, ...] = ()
    resource_version: str = ""

    def summary(self) -> str:
        """One line for the log: what is in force."""
        parts = [f"{len(self.selectors)} selector{'s' if len(self.selectors) != 1 else ''}"]
        parts += [f"{key}={value}" for key, value in self.cluster.defaults_overrides().items()]
        if self.cluster.vpc_id:
            parts.append(f"vpc={self.cluster.vpc_id}")
        return ", ".join(parts)


EMPTY = Profile()


class ProfileError(ValueError):
    """The profile cannot be used; ``problems`` lists every reason found, each naming its key."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__(self.__str__())

    def __str__(self) -> str:
        count = len(self.problems)
        head = f"{PROFILE_NAMESPACE}/{PROFILE_NAME} is not valid ({count} problem{'s' if count != 1 else ''}):"
        return "\n".join([head, *(f"  - {problem}" for problem in self.problems)])


class ProfileSource(Protocol):
    """Where the profile in force comes from (the ConfigMap watch; a fixed profile in tests)."""

    def current(self) -> Profile:
        """The last valid profile (:data:`EMPTY` when there is none). Cheap: called once per admission."""
        ...


D = TypeVar("D")


def with_overrides(defaults: D, cluster: ClusterParameters) -> D:
    """``defaults`` (a ``vkeci.core.translate.Defaults``) with the profile's cluster parameters in force."""
    overrides = cluster.defaults_overrides()
    return dataclasses.replace(defaults, **overrides) if overrides else defaults  # type: ignore[type-var]


class _Problems:
    def __init__(self) -> None:
        self.found: list[Problem] = []

    def add(self, where: str, message: str, fix: str = "") -> None:
        self.found.append(Problem(where, message, fix))


def _unknown_keys(problems: _Problems, where: str, value: Mapping[str, Any], known: tuple[str, ...]) -> None:
    for key in value:
        if key not in known:
            problems.add(f"{where}.{key}", "unknown key", f"the keys allowed here are {', '.join(known)}")


def _string_map(problems: _Problems, where: str, value: Any, *, label_values: bool) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        problems.add(where, f"expected an object of string keys and values, got {_kind(value)}")
        return ()
    items: list[tuple[str, str]] = []
    for key, item in value.items():
        key_problem = qualified_name_problem(str(key))
        if key_problem:
            problems.add(f"{where}[{key!r}]", f"{key!r} is not a valid key: {key_problem}")
            continue
        if not isinstance(item, str):
            problems.add(f"{where}[{key!r}]", f"the value must be a string, got {_kind(item)}", 'quote it: "true"')
            continue
        if label_values:
            value_problem = label_value_problem(item)
            if value_problem:
                problems.add(f"{where}[{key!r}]", f"{item!r} is not a valid label value: {value_problem}")
                continue
        items.append((str(key), item))
    return tuple(items)


def _requirement(problems: _Problems, where: str, value: Any) -> Requirement | None:
    if not isinstance(value, Mapping):
        problems.add(where, f"expected an object with key, operator and values, got {_kind(value)}")
        return None
    _unknown_keys(problems, where, value, ("key", "operator", "values"))
    key, operator, values = value.get("key"), value.get("operator"), value.get("values")
    count = len(problems.found)
    if not isinstance(key, str) or qualified_name_problem(key):
        problems.add(f"{where}.key", f"{key!r} is not a label key", "give the label key the expression tests")
    if operator not in OPERATORS:
        problems.add(f"{where}.operator", f"{operator!r} is not an operator", f"use one of {', '.join(OPERATORS)}")
    elif operator in ("In", "NotIn"):
        if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            problems.add(f"{where}.values", f"{operator} needs a non-empty list of strings", '["a", "b"]')
    elif values:
        problems.add(f"{where}.values", f"{operator} takes no values", "remove values")
    if len(problems.found) != count:
        return None
    return Requirement(str(key), str(operator), tuple(values or ()) if operator in ("In", "NotIn") else ())


def _label_selector(problems: _Problems, where: str, value: Any) -> LabelSelector | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        problems.add(where, f"expected a label selector object (matchLabels, matchExpressions), got {_kind(value)}")
        return None
    _unknown_keys(problems, where, value, _LABEL_SELECTOR_KEYS)
    labels = _string_map(problems, f"{where}.matchLabels", value.get("matchLabels"), label_values=True)
    expressions: list[Requirement] = []
    raw = value.get("matchExpressions")
    if raw is not None and not isinstance(raw, list):
        problems.add(f"{where}.matchExpressions", f"expected a list, got {_kind(raw)}")
    for index, item in enumerate(raw if isinstance(raw, list) else []):
        requirement = _requirement(problems, f"{where}.matchExpressions[{index}]", item)
        if requirement is not None:
            expressions.append(requirement)
    return LabelSelector(labels, tuple(expressions))


def _selector(problems: _Problems, index: int, value: Any, names: set[str]) -> Selector | None:
    where = f"selectors[{index}]"
    if not isinstance(value, Mapping):
        problems.add(
            where, f"expected an object with name, namespaceSelector, objectSelector, effect; got {_kind(value)}"
        )
        return None
    name = value.get("name")
    if isinstance(name, str) and name.strip():
        where = f"selectors[{index}] ({name})"
        if name in names:
            problems.add(f"{where}.name", f"a second selector is named {name!r}", "give every selector its own name")
        names.add(name)
    else:
        problems.add(f"{where}.name", "is required and must be a non-empty string", '"name": "gpu-jobs"')
    _unknown_keys(problems, where, value, _SELECTOR_KEYS)
    namespace_selector = _label_selector(problems, f"{where}.namespaceSelector", value.get("namespaceSelector"))
    object_selector = _label_selector(problems, f"{where}.objectSelector", value.get("objectSelector"))
    if value.get("namespaceSelector") is None and value.get("objectSelector") is None:
        problems.add(
            where,
            "has neither namespaceSelector nor objectSelector, so it would send every pod of the cluster to ECI",
            'add one; write "namespaceSelector": {} if every pod is really meant',
        )
    raw_effect = value.get("effect")
    effect = Effect()
    if raw_effect is not None:
        if not isinstance(raw_effect, Mapping):
            problems.add(f"{where}.effect", f"expected an object with annotations and labels, got {_kind(raw_effect)}")
        else:
            _unknown_keys(problems, f"{where}.effect", raw_effect, _EFFECT_KEYS)
            effect = Effect(
                annotations=_string_map(
                    problems, f"{where}.effect.annotations", raw_effect.get("annotations"), label_values=False
                ),
                labels=_string_map(problems, f"{where}.effect.labels", raw_effect.get("labels"), label_values=True),
            )
    return Selector(str(name or ""), namespace_selector, object_selector, effect)


def parse_selectors(text: str) -> tuple[Selector, ...]:
    """The ``selectors`` value (a JSON list; empty text means none). Raises :class:`ProfileError`."""
    problems = _Problems()
    selectors = _parse_selectors(problems, text)
    if problems.found:
        raise ProfileError(problems.found)
    return selectors


def _parse_selectors(problems: _Problems, text: str) -> tuple[Selector, ...]:
    if not text.strip():
        return ()
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        problems.add(
            "selectors",
            f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})",
            "the value is a JSON list of selectors; YAML and # comments are not allowed inside it",
        )
        return ()
    if not isinstance(raw, list):
        problems.add("selectors", f"expected a JSON list of selectors, got {_kind(raw)}", "wrap it in [ ]")
        return ()
    names: set[str] = set()
    selectors = [_selector(problems, index, item, names) for index, item in enumerate(raw)]
    return tuple(s for s in selectors if s is not None)


def _ids(problems: _Problems, key: str, text: str, *, many: bool) -> tuple[str, ...]:
    prefix, example = _IDS[key]
    items = [item.strip() for item in text.split(",")] if many else [text.strip()]
    items = [item for item in items if item]
    if not many and "," in text:
        problems.add(key, f"{text!r} names more than one id", f"give exactly one: {example}")
        return ()
    bad = [item for item in items if not (item.startswith(prefix) and _ID.match(item))]
    if bad:
        problems.add(key, f"{bad[0]!r} is not {example}", f"ids of this kind start with {prefix!r}")
        return ()
    if len(set(items)) != len(items):
        problems.add(key, "lists the same id twice", "list each vSwitch once")
        return ()
    if len(items) > MAX_VSWITCHES:
        problems.add(
            key, f"lists {len(items)} vSwitches; ECI takes at most {MAX_VSWITCHES}", "keep one or two per zone"
        )
        return ()
    return tuple(items)


def parse_profile(data: Mapping[str, Any] | None, resource_version: str = "") -> Profile:
    """A :class:`Profile` from a ConfigMap's ``data``; raises :class:`ProfileError` listing every problem.

    ``None`` or an empty mapping is the empty profile (nothing overrides the daemon's settings).
    """
    problems = _Problems()
    data = data or {}
    if not isinstance(data, Mapping):
        raise ProfileError([Problem("data", f"expected a mapping of strings, got {_kind(data)}")])
    ignored: list[Problem] = []
    values: dict[str, str] = {}
    for key, value in data.items():
        if key not in KNOWN_KEYS:
            problems.add(
                str(key),
                "unknown key",
                f"the keys of an eci-profile are {', '.join(sorted(KNOWN_KEYS))} (check the spelling)",
            )
            continue
        if not isinstance(value, str):
            problems.add(str(key), f"ConfigMap data values are strings, got {_kind(value)}", 'quote it: "false"')
            continue
        values[key] = value
    for key, value in values.items():
        if key in _BOOLEAN_KEYS and value.strip().lower() not in ("true", "false", ""):
            problems.add(key, f"{value!r} is not a boolean", 'write "true" or "false"')
        elif key in NOT_HONOURED and value.strip() and value.strip().lower() != "false":
            ignored.append(Problem(key, f"set to {value.strip()!r} and not honoured", NOT_HONOURED[key]))
    cluster = ClusterParameters(
        vswitch_ids=_ids(problems, "vSwitchIds", values.get("vSwitchIds", ""), many=True),
        security_group_id="".join(_ids(problems, "securityGroupId", values.get("securityGroupId", ""), many=False)),
        vpc_id="".join(_ids(problems, "vpcId", values.get("vpcId", ""), many=False)),
        resource_group_id="".join(_ids(problems, "resourceGroupId", values.get("resourceGroupId", ""), many=False)),
    )
    selectors = _parse_selectors(problems, values.get("selectors", ""))
    if problems.found:
        raise ProfileError(problems.found)
    return Profile(cluster, selectors, tuple(ignored), resource_version)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number"}.get(
        type(value), type(value).__name__
    )
