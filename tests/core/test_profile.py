"""The eci-profile parser: ACK's documented format loads; every problem names its key and the fix."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from vkeci.core.profile import (
    EMPTY,
    NOT_HONOURED,
    ClusterParameters,
    LabelSelector,
    ProfileError,
    Requirement,
    parse_profile,
    parse_selectors,
    with_overrides,
)

# The data of the ConfigMap ACK shows in "Configure an eci-profile" (ids shortened), selectors from its
# ImageCache example: a profile copied from an ACK cluster must load unchanged.
ACK_SAMPLE = {
    "enableClusterIp": "true",
    "enableHybridMode": "false",
    "enableLinuxArm64Node": "false",
    "enableLogController": "false",
    "enablePVCController": "false",
    "enablePrivateZone": "false",
    "enableReuseSSLKey": "false",
    "featureGates": "WaitForFirstConsumer=false",
    "securityGroupId": "sg-2zeeyaaxlkq9sppl",
    "selectors": json.dumps(
        [
            {
                "name": "demo",
                "namespaceSelector": {"matchLabels": {"app": "nginx"}},
                "objectSelector": {"matchLabels": {"type": "test"}},
                "effect": {"annotations": {"k8s.aliyun.com/eci-auto-imc": "true"}},
            }
        ]
    ),
    "slsMachineGroup": "k8s-group-cxxxx",
    "vSwitchIds": "vsw-2ze23nqzig8inprou,vsw-2ze94pjtfuj9vaymf",
    "vpcId": "vpc-2zeghwzptn5zii0w7",
}


def problems_of(data: dict[str, object]) -> list[str]:
    with pytest.raises(ProfileError) as info:
        parse_profile(data)
    return [str(p) for p in info.value.problems]


def test_the_documented_ack_profile_loads_and_names_what_is_not_honoured() -> None:
    profile = parse_profile(ACK_SAMPLE, "42")
    assert profile.cluster == ClusterParameters(
        vswitch_ids=("vsw-2ze23nqzig8inprou", "vsw-2ze94pjtfuj9vaymf"),
        security_group_id="sg-2zeeyaaxlkq9sppl",
        vpc_id="vpc-2zeghwzptn5zii0w7",
    )
    assert [s.name for s in profile.selectors] == ["demo"]
    assert profile.selectors[0].effect.annotations == (("k8s.aliyun.com/eci-auto-imc", "true"),)
    # "false" values are what ACK does without them: only the keys set to something else are reported.
    assert sorted(p.field for p in profile.ignored) == ["enableClusterIp", "featureGates", "slsMachineGroup"]
    assert all(p.fix == NOT_HONOURED[p.field] for p in profile.ignored)
    assert profile.resource_version == "42"


def test_empty_data_and_empty_selectors_are_the_empty_profile() -> None:
    assert parse_profile(None) == EMPTY
    assert parse_profile({}) == EMPTY
    assert parse_profile({"selectors": "", "vSwitchIds": "", "securityGroupId": " "}) == EMPTY


def test_cluster_parameters_override_exactly_the_defaults_they_set() -> None:
    @dataclass(frozen=True)
    class Defaults:
        security_group: str = "sg-daemon"
        vswitches: tuple[str, ...] = ("vsw-daemon",)
        resource_group_id: str = ""

    profile = parse_profile({"vSwitchIds": " vsw-a , vsw-b ", "resourceGroupId": "rg-acfm1"})
    assert with_overrides(Defaults(), profile.cluster) == Defaults("sg-daemon", ("vsw-a", "vsw-b"), "rg-acfm1")
    assert with_overrides(Defaults(), EMPTY.cluster) == Defaults()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"vSwitchId": "vsw-a"}, "vSwitchId: unknown key; the keys of an eci-profile are"),
        ({"vSwitchIds": "vsw-a,subnet-b"}, "vSwitchIds: 'subnet-b' is not a vSwitch id"),
        ({"vSwitchIds": "vsw-a,vsw-a"}, "vSwitchIds: lists the same id twice"),
        ({"vSwitchIds": ",".join(f"vsw-{i}" for i in range(11))}, "ECI takes at most 10"),
        ({"securityGroupId": "sg-a,sg-b"}, "securityGroupId: 'sg-a,sg-b' names more than one id"),
        ({"vpcId": "vsw-a"}, "vpcId: 'vsw-a' is not a VPC id"),
        ({"resourceGroupId": "group1"}, "resourceGroupId: 'group1' is not a resource group id"),
        ({"enableClusterIp": "yes"}, "enableClusterIp: 'yes' is not a boolean"),
        ({"selectors": "[{"}, "selectors: not valid JSON (Expecting property name"),
        ({"selectors": '{"name": "a"}'}, "selectors: expected a JSON list of selectors, got an object"),
        ({"selectors": "[3]"}, "selectors[0]: expected an object"),
        ({"selectors": '[{"objectSelector": {}}]'}, "selectors[0].name: is required"),
        ({"selectors": '[{"name": "a"}]'}, "selectors[0] (a): has neither namespaceSelector nor objectSelector"),
        (
            {"selectors": '[{"name": "a", "objectSelector": {}}, {"name": "a", "objectSelector": {}}]'},
            "selectors[1] (a).name: a second selector is named 'a'",
        ),
        ({"selectors": '[{"name": "a", "podSelector": {}}]'}, "selectors[0] (a).podSelector: unknown key"),
        (
            {"selectors": '[{"name": "a", "objectSelector": {"matchLabel": {"x": "y"}}}]'},
            "selectors[0] (a).objectSelector.matchLabel: unknown key",
        ),
        (
            {"selectors": '[{"name": "a", "objectSelector": {"matchLabels": {"x": 1}}}]'},
            "selectors[0] (a).objectSelector.matchLabels['x']: the value must be a string, got a number",
        ),
        (
            {"selectors": '[{"name": "a", "objectSelector": {"matchLabels": {"x": "not ok"}}}]'},
            "'not ok' is not a valid label value",
        ),
        (
            {"selectors": '[{"name": "a", "objectSelector": {"matchLabels": {"Bad_Prefix/x": "y"}}}]'},
            "'Bad_Prefix/x' is not a valid key: the prefix 'Bad_Prefix' is not a DNS subdomain",
        ),
        (
            {"selectors": '[{"name": "a", "objectSelector": {"matchExpressions": [{"key": "x", "operator": "in"}]}}]'},
            "matchExpressions[0].operator: 'in' is not an operator; use one of In, NotIn, Exists, DoesNotExist",
        ),
        (
            {"selectors": '[{"name": "a", "objectSelector": {"matchExpressions": [{"key": "x", "operator": "In"}]}}]'},
            "matchExpressions[0].values: In needs a non-empty list of strings",
        ),
        (
            {
                "selectors": '[{"name": "a", "objectSelector": {"matchExpressions": '
                '[{"key": "x", "operator": "Exists", "values": ["y"]}]}}]'
            },
            "matchExpressions[0].values: Exists takes no values",
        ),
        (
            {"selectors": '[{"name": "a", "objectSelector": {}, "effect": {"annotation": {}}}]'},
            "selectors[0] (a).effect.annotation: unknown key",
        ),
        (
            {"selectors": '[{"name": "a", "objectSelector": {}, "effect": {"labels": {"x": "a b"}}}]'},
            "selectors[0] (a).effect.labels['x']: 'a b' is not a valid label value",
        ),
    ],
)
def test_each_problem_names_its_key(data: dict[str, object], expected: str) -> None:
    found = problems_of(data)
    assert any(expected in line for line in found), found


def test_every_problem_is_reported_at_once() -> None:
    found = problems_of({"vSwitchIds": "x", "securityGroupId": "y", "nope": "1", "selectors": "[1, 2]"})
    assert len(found) == 5, found
    message = str(ProfileError([]))
    assert message.startswith("kube-system/eci-profile is not valid")


def test_annotation_values_need_not_be_label_values() -> None:
    selectors = parse_selectors(
        '[{"name": "a", "objectSelector": {}, "effect": {"annotations": {"k8s.aliyun.com/eci-use-specs": '
        '"ecs.c6.large, 2-4Gi"}}}]'
    )
    assert selectors[0].effect.annotations == (("k8s.aliyun.com/eci-use-specs", "ecs.c6.large, 2-4Gi"),)


@pytest.mark.parametrize(
    ("operator", "values", "labels", "expected"),
    [
        ("In", ("a", "b"), {"k": "a"}, True),
        ("In", ("a",), {"k": "c"}, False),
        ("In", ("a",), {}, False),
        ("NotIn", ("a",), {"k": "c"}, True),
        ("NotIn", ("a",), {"k": "a"}, False),
        ("NotIn", ("a",), {}, True),  # Kubernetes: NotIn holds for a missing label
        ("Exists", (), {"k": ""}, True),
        ("Exists", (), {}, False),
        ("DoesNotExist", (), {}, True),
        ("DoesNotExist", (), {"k": "a"}, False),
    ],
)
def test_expressions_follow_kubernetes_semantics(
    operator: str, values: tuple[str, ...], labels: dict[str, str], expected: bool
) -> None:
    assert Requirement("k", operator, values).matches(labels) is expected


def test_match_labels_and_expressions_are_anded_and_the_empty_selector_matches_all() -> None:
    selector = LabelSelector((("app", "web"),), (Requirement("tier", "In", ("front",)),))
    assert selector.matches({"app": "web", "tier": "front"})
    assert not selector.matches({"app": "web"})
    assert not selector.matches({"tier": "front"})
    assert LabelSelector().matches({})


def test_a_selector_needs_both_its_namespace_and_its_object_selector() -> None:
    (selector,) = parse_selectors(
        '[{"name": "a", "namespaceSelector": {"matchLabels": {"team": "x"}},'
        ' "objectSelector": {"matchLabels": {"app": "y"}}}]'
    )
    assert selector.matches({"app": "y"}, {"team": "x"})
    assert not selector.matches({"app": "y"}, {"team": "z"})
    assert not selector.matches({"app": "z"}, {"team": "x"})
    (only_namespace,) = parse_selectors('[{"name": "b", "namespaceSelector": {}}]')
    assert only_namespace.matches({}, {})
