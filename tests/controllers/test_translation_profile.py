"""The eci-profile's cluster parameters reach the ECI request; the pod's annotations still win."""

from __future__ import annotations

from typing import Any

from vkeci.clients.kube import KubeError
from vkeci.config import Config
from vkeci.controllers.translation import Translation
from vkeci.core.profile import EMPTY, Profile, parse_profile


class NoObjects:
    """A cluster with nothing the pod references (every GET is a 404, every list empty)."""

    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        if path.endswith("/services"):
            return {"items": []}
        raise KubeError(404, "NotFound", path)


class Current:
    def __init__(self, profile: Profile) -> None:
        self.profile = profile

    def current(self) -> Profile:
        return self.profile


def pod(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u", "annotations": annotations or {}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}], "automountServiceAccountToken": False},
    }


def test_the_profile_in_force_overrides_the_daemon_settings_for_the_next_pod() -> None:
    config = Config(region="cn-hangzhou", security_group="sg-daemon", vswitches=("vsw-daemon",))
    source = Current(EMPTY)
    translation = Translation(config, NoObjects(), profile=source)  # type: ignore[arg-type]
    request, _ = translation.request(pod())
    assert (request["VSwitchId"], request["SecurityGroupId"]) == ("vsw-daemon", "sg-daemon")

    source.profile = parse_profile(
        {"vSwitchIds": "vsw-a,vsw-b", "securityGroupId": "sg-profile", "resourceGroupId": "rg-1"}
    )
    request, _ = translation.request(pod())
    assert (request["VSwitchId"], request["SecurityGroupId"]) == ("vsw-a,vsw-b", "sg-profile")
    assert request["ResourceGroupId"] == "rg-1"

    request, _ = translation.request(pod({"k8s.aliyun.com/eci-vswitch": "vsw-own"}))
    assert request["VSwitchId"] == "vsw-own"
