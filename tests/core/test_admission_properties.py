"""Properties of the webhook's patch for any pod, namespace and profile.

The patch is applied with `jsonpatch` (an independent RFC 6902 implementation), so a patch that names a
missing parent, or appends to something that is not a list, fails here as it would in the API server.
"""

from __future__ import annotations

import copy
import json
import string
from typing import Any

import jsonpatch
from hypothesis import given
from hypothesis import strategies as st

from vkeci.core.admission import BURST, ECI, NONE, Target, mutate, tolerates
from vkeci.core.profile import parse_profile

KEYS = st.sampled_from(["alibabacloud.com/eci", "app", "team", "tier", "x.io/role", "type", "job", "cost-center"])
VALUES = st.sampled_from(["true", "false", "web", "data", "batch", "", "virtual-kubelet", "yes"])
LABELS = st.dictionaries(KEYS, VALUES, max_size=4)
ANNOTATIONS = st.dictionaries(
    st.sampled_from(["alibabacloud.com/burst-resource", "k8s.aliyun.com/eci-use-specs", "note", "a/b~c"]),
    st.sampled_from(["eci", "eci_only", "", "ecs.c6.large", "2-4Gi", "x"]),
    max_size=3,
)
TOLERATION = st.fixed_dictionaries(
    {},
    optional={
        "key": st.sampled_from(["", "virtual-kubelet.io/provider", "gpu"]),
        "operator": st.sampled_from(["Exists", "Equal"]),
        "value": st.sampled_from(["alibabacloud", "other", ""]),
        "effect": st.sampled_from(["", "NoSchedule", "NoExecute"]),
    },
)
TERM = st.fixed_dictionaries(
    {
        "weight": st.integers(1, 100),
        "preference": st.fixed_dictionaries(
            {
                "matchExpressions": st.lists(
                    st.fixed_dictionaries({"key": KEYS, "operator": st.just("Exists")}), max_size=1
                )
            }
        ),
    }
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The field absent (None here, dropped below), explicitly null, or present."""
    return st.one_of(st.just("absent"), st.none(), strategy)


@st.composite
def pods(draw: st.DrawFn) -> dict[str, Any]:
    metadata: dict[str, Any] = {"generateName": "p-"}
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "nginx"}]}
    fields = {
        ("metadata", "labels"): maybe(LABELS),
        ("metadata", "annotations"): maybe(ANNOTATIONS),
        ("spec", "tolerations"): maybe(st.lists(TOLERATION, max_size=3)),
        ("spec", "nodeSelector"): maybe(st.dictionaries(KEYS, VALUES, max_size=2)),
        ("spec", "nodeName"): st.sampled_from(["absent", "absent", "absent", "", "vk-1"]),
        ("spec", "affinity"): maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "nodeAffinity": maybe(
                        st.fixed_dictionaries(
                            {},
                            optional={
                                "preferredDuringSchedulingIgnoredDuringExecution": maybe(st.lists(TERM, max_size=2))
                            },
                        )
                    ),
                    "podAntiAffinity": st.just({}),
                },
            )
        ),
    }
    for (section, name), strategy in fields.items():
        value = draw(strategy)
        if value != "absent":
            (metadata if section == "metadata" else spec)[name] = value
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


SELECTOR_SETS = st.lists(
    st.fixed_dictionaries(
        {
            "objectSelector": st.fixed_dictionaries(
                {"matchLabels": st.dictionaries(KEYS, st.sampled_from(["web", "batch"]), max_size=1)}
            )
        },
        optional={
            "namespaceSelector": st.fixed_dictionaries(
                {
                    "matchExpressions": st.lists(
                        st.fixed_dictionaries({"key": KEYS, "operator": st.sampled_from(["Exists", "DoesNotExist"])}),
                        max_size=1,
                    )
                }
            ),
            "effect": st.fixed_dictionaries(
                {},
                optional={
                    "labels": st.dictionaries(
                        st.sampled_from(["tier", "job", "cost-center", "alibabacloud.com/eci"]),
                        st.sampled_from(["batch", "web", "true", "false"]),
                        max_size=2,
                    ),
                    "annotations": st.dictionaries(
                        st.sampled_from(["k8s.aliyun.com/eci-use-specs", "note", "alibabacloud.com/burst-resource"]),
                        st.sampled_from(["2-4Gi", "eci", "x"]),
                        max_size=2,
                    ),
                },
            ),
        },
    ),
    max_size=3,
)


@st.composite
def profiles(draw: st.DrawFn) -> Any:
    selectors = [dict(s, name=f"s{i}") for i, s in enumerate(draw(SELECTOR_SETS))]
    return parse_profile({"selectors": json.dumps(selectors)})


NAMESPACES = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {"metadata": st.fixed_dictionaries({"name": st.just("ns"), "labels": LABELS, "annotations": ANNOTATIONS})}
    ),
)


@given(pods(), NAMESPACES, profiles())
def test_the_patch_applies_cleanly_and_a_second_call_adds_nothing(pod: dict[str, Any], ns: Any, profile: Any) -> None:
    original = copy.deepcopy(pod)
    result = mutate(pod, ns, profile)
    assert pod == original, "mutate must not change its input"
    after = jsonpatch.apply_patch(pod, result.patch)
    again = mutate(after, ns, profile)
    assert again.patch == [], f"reinvocation added {again.patch}"
    assert again.mode == result.mode


@given(pods(), NAMESPACES, profiles())
def test_a_routed_pod_can_land_on_the_virtual_node_and_nothing_of_its_own_is_lost(
    pod: dict[str, Any], ns: Any, profile: Any
) -> None:
    result = mutate(pod, ns, profile)
    after = jsonpatch.apply_patch(pod, result.patch)
    for op in result.patch:
        assert op["op"] == "add"
    # Everything the pod had is still there with its own value (add only, never replace a member).
    for section in ("labels", "annotations"):
        for key, value in ((pod["metadata"].get(section)) or {}).items():
            assert after["metadata"][section][key] == value
    spec = after["spec"]
    if result.mode == NONE or pod["spec"].get("nodeName") or result.warnings:
        if result.mode == NONE:
            assert result.patch == []
        return
    assert any(tolerates(t, Target()) for t in spec["tolerations"])
    own = (pod["spec"].get("nodeSelector") or {}).get("type")
    if result.mode == ECI and own is None:
        assert spec["nodeSelector"]["type"] == "virtual-kubelet"
    if result.mode == BURST and own is None:
        terms = spec["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        assert Target().away_term() in terms


@given(st.text(alphabet=string.printable, max_size=200))
def test_any_selectors_text_is_a_profile_or_a_profile_error(text: str) -> None:
    from vkeci.core.profile import ProfileError

    try:
        parse_profile({"selectors": text})
    except ProfileError as err:
        assert err.problems and all(p.field.startswith("selectors") for p in err.problems)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)
REQUEST_PARTS = st.fixed_dictionaries(
    {},
    optional={
        "uid": st.one_of(st.just("u"), JSON_VALUES),
        "kind": st.one_of(st.just({"group": "", "version": "v1", "kind": "Pod"}), JSON_VALUES),
        "operation": st.one_of(st.sampled_from(["CREATE", "UPDATE"]), JSON_VALUES),
        "namespace": st.one_of(st.just("ns"), JSON_VALUES),
        "object": st.one_of(pods(), JSON_VALUES),
    },
)
REVIEWS = st.one_of(
    JSON_VALUES,
    st.fixed_dictionaries(
        {"apiVersion": st.just("admission.k8s.io/v1"), "kind": st.just("AdmissionReview")},
        optional={"request": st.one_of(REQUEST_PARTS, JSON_VALUES)},
    ),
)


@given(REVIEWS, NAMESPACES, profiles())
def test_any_body_is_answered_or_refused_with_a_reason_never_a_crash(body: Any, ns: Any, profile: Any) -> None:
    from vkeci.core.admission import AdmissionError, namespace_of, review

    namespace_of(body)
    try:
        answer, _mutation = review(body, ns, profile)
    except AdmissionError as err:
        assert str(err)
        return
    assert answer["response"]["allowed"] is True
    json.dumps(answer)
