"""The cluster defaults read at start: the kube-dns Service's IP and the kubernetes endpoints."""

from __future__ import annotations

from typing import Any

from vkeci.clients.kube import KubeError
from vkeci.config import Config
from vkeci.controllers.clusterinfo import KUBE_DNS, KUBERNETES_ENDPOINTS, with_cluster_defaults
from vkeci.controllers.translation import NO_CLUSTER_DNS, Translation

SLICE = {
    "ports": [{"name": "https", "port": 6443}],
    "endpoints": [
        {"addresses": ["10.0.0.9"], "conditions": {"ready": False}},
        {"addresses": ["10.0.0.1"], "conditions": {"ready": True}},
    ],
}


class Kube:
    def __init__(self, objects: dict[str, Any]) -> None:
        self.objects = objects
        self.asked: list[str] = []

    def get(self, path: str, params: Any = None) -> dict[str, Any]:
        self.asked.append(path)
        if path not in self.objects:
            raise KubeError(404, "NotFound", "", "GET", path)
        return self.objects[path]


def test_unset_settings_come_from_the_cluster():
    kube = Kube({KUBE_DNS: {"spec": {"clusterIP": "10.96.0.10"}}, KUBERNETES_ENDPOINTS: SLICE})
    config = with_cluster_defaults(Config(), kube)
    assert (config.cluster_dns, config.api_server) == (("10.96.0.10",), "10.0.0.1:6443")


def test_settings_win_and_nothing_is_read():
    kube = Kube({})
    config = with_cluster_defaults(Config(cluster_dns=("10.1.1.1",), api_server="1.2.3.4:443"), kube)
    assert (config.cluster_dns, config.api_server, kube.asked) == (("10.1.1.1",), "1.2.3.4:443", [])


def test_without_kube_dns_clusterfirst_pods_are_warned():
    config = with_cluster_defaults(Config(), Kube({}))
    assert config.cluster_dns == () and config.api_server == ""
    pod = {
        "metadata": {"name": "p", "namespace": "default", "uid": "u"},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
    }
    kube = Kube({"/api/v1/namespaces/default/services": {"items": []}})
    _, warnings = Translation(Config(region="cn-hangzhou", security_group="sg", vswitches=("vsw",)), kube).request(pod)
    assert NO_CLUSTER_DNS in warnings and "CLUSTER_DNS" in str(NO_CLUSTER_DNS)
    pod["spec"]["dnsPolicy"] = "Default"
    _, warnings = Translation(Config(region="cn-hangzhou", security_group="sg", vswitches=("vsw",)), kube).request(pod)
    assert NO_CLUSTER_DNS not in warnings
