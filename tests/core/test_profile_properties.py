"""Properties of the eci-profile parser: any valid selector list loads, and matches as Kubernetes does."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from vkeci.core.profile import parse_profile

KEYS = st.sampled_from(["app", "team", "tier", "example.com/role", "alibabacloud.com/eci"])
VALUES = st.sampled_from(["a", "b", "web", "batch", "true", ""])
EXPRESSION = st.one_of(
    st.fixed_dictionaries(
        {"key": KEYS, "operator": st.sampled_from(["In", "NotIn"]), "values": st.lists(VALUES, min_size=1, max_size=3)}
    ),
    st.fixed_dictionaries({"key": KEYS, "operator": st.sampled_from(["Exists", "DoesNotExist"])}),
)
LABEL_SELECTOR = st.fixed_dictionaries(
    {},
    optional={
        "matchLabels": st.dictionaries(KEYS, VALUES, max_size=2),
        "matchExpressions": st.lists(EXPRESSION, max_size=3),
    },
)
SELECTOR = st.one_of(
    st.fixed_dictionaries({"objectSelector": LABEL_SELECTOR}, optional={"namespaceSelector": LABEL_SELECTOR}),
    st.fixed_dictionaries({"namespaceSelector": LABEL_SELECTOR}),
)
LABELS = st.dictionaries(KEYS, VALUES, max_size=4)


def reference(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Kubernetes' LabelSelector semantics, written out directly (labels.Selector in apimachinery)."""
    if selector is None:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


@given(st.lists(SELECTOR, max_size=4), LABELS, LABELS)
def test_valid_selectors_load_and_match_like_kubernetes(
    raw: list[dict[str, Any]], pod_labels: dict[str, str], namespace_labels: dict[str, str]
) -> None:
    named = [dict(selector, name=f"s{index}") for index, selector in enumerate(raw)]
    profile = parse_profile({"selectors": json.dumps(named)})
    assert [s.name for s in profile.selectors] == [s["name"] for s in named]
    for parsed, source in zip(profile.selectors, named, strict=True):
        expected = reference(source.get("namespaceSelector"), namespace_labels) and reference(
            source.get("objectSelector"), pod_labels
        )
        assert parsed.matches(pod_labels, namespace_labels) is expected
