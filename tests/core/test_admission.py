"""The webhook's decision on example pods: label, namespace label, opt-out, burst, selectors, bad requests."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import jsonpatch
import pytest

from vkeci.core import admission
from vkeci.core.admission import BURST, ECI, NONE, AdmissionError, Target, mutate, review
from vkeci.core.profile import parse_profile

TOLERATION = {"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}
AWAY = {
    "weight": 100,
    "preference": {"matchExpressions": [{"key": "type", "operator": "NotIn", "values": ["virtual-kubelet"]}]},
}


def pod(labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"generateName": "web-", "namespace": "apps"}
    if labels is not None:
        meta["labels"] = labels
    if annotations is not None:
        meta["annotations"] = annotations
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"containers": [{"name": "c", "image": "nginx"}], **spec},
    }


def namespace(labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "apps", "labels": labels or {}, "annotations": annotations or {}}}


def patched(
    original: dict[str, Any], ns: dict[str, Any] | None = None, profile_data: dict[str, str] | None = None
) -> dict[str, Any]:
    profile = parse_profile(profile_data or {})
    result = mutate(original, ns, profile)
    after = jsonpatch.apply_patch(original, result.patch)
    assert mutate(after, ns, profile).patch == [], "a second call must add nothing"
    return dict(after)


def test_a_labelled_pod_gets_the_toleration_and_the_node_selector() -> None:
    after = patched(pod({"alibabacloud.com/eci": "true"}))
    assert after["spec"]["tolerations"] == [TOLERATION]
    assert after["spec"]["nodeSelector"] == {"type": "virtual-kubelet"}


def test_a_pod_in_a_labelled_namespace_is_routed_and_its_own_false_wins() -> None:
    ns = namespace({"alibabacloud.com/eci": "true"})
    assert patched(pod(), ns)["spec"]["nodeSelector"] == {"type": "virtual-kubelet"}
    opted_out = pod({"alibabacloud.com/eci": "false"})
    assert mutate(opted_out, ns).mode == NONE
    assert mutate(opted_out, ns).patch == []
    # ...and the pod's "true" wins over a namespace that says "false".
    assert mutate(pod({"alibabacloud.com/eci": "true"}), namespace({"alibabacloud.com/eci": "false"})).mode == ECI


def test_unlabelled_pods_are_left_alone() -> None:
    result = mutate(pod({"app": "web"}), namespace({"team": "a"}))
    assert (result.mode, result.patch, result.warnings) == (NONE, [], [])


def test_a_pod_that_already_targets_the_node_is_left_as_it_is() -> None:
    existing = pod(
        {"alibabacloud.com/eci": "true"},
        tolerations=[{"key": "virtual-kubelet.io/provider", "operator": "Equal", "value": "alibabacloud"}],
        nodeSelector={"type": "virtual-kubelet", "kubernetes.io/hostname": "vk-1"},
    )
    assert mutate(existing, None).patch == []
    bound = pod({"alibabacloud.com/eci": "true"}, nodeName="vk-1")
    assert mutate(bound, None).patch == []


def test_an_existing_toleration_and_node_selector_are_extended_not_replaced() -> None:
    after = patched(
        pod(
            {"alibabacloud.com/eci": "true"},
            tolerations=[{"key": "gpu", "operator": "Exists"}],
            nodeSelector={"disk": "ssd"},
        )
    )
    assert after["spec"]["tolerations"] == [{"key": "gpu", "operator": "Exists"}, TOLERATION]
    assert after["spec"]["nodeSelector"] == {"disk": "ssd", "type": "virtual-kubelet"}


def test_a_conflicting_node_selector_is_kept_with_a_warning() -> None:
    result = mutate(pod({"alibabacloud.com/eci": "true"}, nodeSelector={"type": "gpu"}), None)
    assert result.mode == ECI
    assert any("keeps it off the virtual node" in w for w in result.warnings)
    assert all(op["path"] != "/spec/nodeSelector/type" for op in result.patch)


@pytest.mark.parametrize("where", ["pod", "namespace"])
def test_burst_mode_tolerates_and_prefers_real_nodes(where: str) -> None:
    annotation = {"alibabacloud.com/burst-resource": "eci"}
    subject = pod(annotations=annotation) if where == "pod" else pod()
    ns = namespace(annotations=annotation) if where == "namespace" else None
    assert mutate(subject, ns).mode == BURST
    after = patched(subject, ns)
    assert after["spec"]["tolerations"] == [TOLERATION]
    assert "nodeSelector" not in after["spec"]
    assert after["spec"]["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"] == [AWAY]


def test_burst_keeps_the_pods_own_affinity() -> None:
    own = {"weight": 5, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}}
    required = {"nodeSelectorTerms": [{"matchExpressions": [{"key": "arch", "operator": "In", "values": ["amd64"]}]}]}
    subject = pod(
        annotations={"alibabacloud.com/burst-resource": "eci"},
        affinity={
            "nodeAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [own],
                "requiredDuringSchedulingIgnoredDuringExecution": required,
            }
        },
    )
    node_affinity = patched(subject)["spec"]["affinity"]["nodeAffinity"]
    assert node_affinity["preferredDuringSchedulingIgnoredDuringExecution"] == [own, AWAY]
    assert node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] == required


def test_eci_only_means_the_same_as_the_label() -> None:
    after = patched(pod(annotations={"alibabacloud.com/burst-resource": "eci_only"}))
    assert after["spec"]["nodeSelector"] == {"type": "virtual-kubelet"}
    assert "affinity" not in after["spec"]


def test_unknown_values_are_ignored_with_a_warning() -> None:
    result = mutate(pod({"alibabacloud.com/eci": "yes"}, {"alibabacloud.com/burst-resource": "ecs"}), None)
    assert result.mode == NONE
    assert len(result.warnings) == 2
    assert 'use "true" or "false"' in result.warnings[0]


SELECTORS = {
    "selectors": json.dumps(
        [
            {
                "name": "batch",
                "namespaceSelector": {"matchLabels": {"team": "data"}},
                "objectSelector": {"matchExpressions": [{"key": "job", "operator": "Exists"}]},
                "effect": {
                    "annotations": {
                        "k8s.aliyun.com/eci-use-specs": "ecs.c6.large",
                        "k8s.aliyun.com/eci-spot-strategy": "SpotAsPriceGo",
                    },
                    "labels": {"cost-center": "batch"},
                },
            },
            {
                "name": "later",
                "namespaceSelector": {"matchLabels": {"team": "data"}},
                "effect": {"annotations": {"k8s.aliyun.com/eci-use-specs": "ecs.g6.large"}},
            },
        ]
    )
}


def test_a_matching_selector_routes_the_pod_and_adds_its_effect_where_the_pod_has_no_value() -> None:
    ns = namespace({"team": "data"})
    subject = pod({"job": "nightly"}, {"k8s.aliyun.com/eci-spot-strategy": "SpotWithPriceLimit"})
    after = patched(subject, ns, SELECTORS)
    assert after["metadata"]["annotations"] == {
        "k8s.aliyun.com/eci-spot-strategy": "SpotWithPriceLimit",  # the pod's own value wins
        "k8s.aliyun.com/eci-use-specs": "ecs.c6.large",  # the first selector wins over the second
    }
    assert after["metadata"]["labels"] == {"job": "nightly", "cost-center": "batch"}
    assert after["spec"]["nodeSelector"] == {"type": "virtual-kubelet"}
    assert mutate(subject, ns, parse_profile(SELECTORS)).selectors == ["batch", "later"]


def test_selectors_do_not_touch_pods_that_opted_out_or_do_not_match() -> None:
    profile = parse_profile(SELECTORS)
    assert mutate(pod({"job": "x", "alibabacloud.com/eci": "false"}), namespace({"team": "data"}), profile).patch == []
    assert mutate(pod({"job": "x"}), namespace({"team": "web"}), profile).patch == []


def test_a_label_one_selector_adds_can_make_another_match_in_the_same_call() -> None:
    data = {
        "selectors": json.dumps(
            [
                {
                    "name": "second",
                    "objectSelector": {"matchLabels": {"tier": "batch"}},
                    "effect": {"annotations": {"a": "1"}},
                },
                {
                    "name": "first",
                    "objectSelector": {"matchLabels": {"app": "x"}},
                    "effect": {"labels": {"tier": "batch"}},
                },
            ]
        )
    }
    after = patched(pod({"app": "x"}), None, data)
    assert after["metadata"]["annotations"] == {"a": "1"}


def test_a_malformed_pod_is_left_unchanged_with_a_warning() -> None:
    broken = pod({"alibabacloud.com/eci": "true"}, tolerations={"key": "x"})
    result = mutate(broken, None)
    assert result.patch == []
    assert result.warnings == ["vk-eci left the pod unchanged: spec.tolerations is not a list"]


def test_keys_with_slashes_and_tildes_are_escaped_in_the_patch() -> None:
    data = {"selectors": json.dumps([{"name": "a", "objectSelector": {}, "effect": {"annotations": {"x.io/a": "1"}}}])}
    result = mutate(pod({"app": "x"}, {"other": "y"}), None, parse_profile(data))
    assert result.patch[0]["path"] == "/metadata/annotations/x.io~1a"
    assert admission._pointer(("a~b", "c/d")) == "/a~0b/c~1d"


def test_a_custom_taint_and_label_are_used() -> None:
    target = Target(taint_key="eci", taint_value="yes", taint_effect="NoExecute", label_key="pool", label_value="eci")
    result = mutate(pod({"alibabacloud.com/eci": "true"}), None, target=target)
    after = jsonpatch.apply_patch(pod({"alibabacloud.com/eci": "true"}), result.patch)
    assert after["spec"]["tolerations"] == [{"key": "eci", "operator": "Exists", "effect": "NoExecute"}]
    assert after["spec"]["nodeSelector"] == {"pool": "eci"}


def admission_review(obj: dict[str, Any] | None, operation: str = "CREATE", kind: str = "Pod") -> dict[str, Any]:
    request: dict[str, Any] = {
        "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
        "kind": {"group": "", "version": "v1", "kind": kind},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": "apps",
        "operation": operation,
    }
    if obj is not None:
        request["object"] = obj
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def test_the_response_echoes_the_uid_and_carries_a_base64_json_patch() -> None:
    body = admission_review(pod({"alibabacloud.com/eci": "true"}))
    answer, mutation = review(body, None)
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    response = answer["response"]
    assert response["uid"] == body["request"]["uid"]
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(response["patch"])) == mutation.patch
    assert admission.namespace_of(body) == "apps"


def test_no_patch_means_no_patch_fields() -> None:
    answer, _ = review(admission_review(pod()), None)
    assert answer["response"] == {"uid": "705ab4f5-6393-11e8-b7cc-42010a800002", "allowed": True}
    other, _ = review(admission_review(pod({"alibabacloud.com/eci": "true"}), operation="UPDATE"), None)
    assert "patch" not in other["response"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ([], "expected a JSON AdmissionReview object, got list"),
        ({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}, "set admissionReviewVersions: [v1]"),
        ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}, "has no request object"),
        ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {}}, "request.uid is missing"),
        (admission_review(None), "request.object is missing"),
    ],
)
def test_a_malformed_review_is_an_admission_error(body: Any, expected: str) -> None:
    with pytest.raises(AdmissionError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        review(copy.deepcopy(body), None)


def test_namespace_of_a_review_whose_object_is_not_an_object_is_empty():
    # Found by the property test (an AttributeError on a list as `request.object`).
    for garbled in ([1], "x", 3, True):
        assert admission.namespace_of({"request": {"object": garbled}}) == ""
