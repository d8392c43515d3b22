"""The node Lease: create with an owner reference, renew by PUT, re-read on conflict."""

import json

import responses

from vkeci.clients.kube import Credentials, KubeClient
from vkeci.controllers.lease import LeaseController

HOST = "http://api.test"
COLL = HOST + "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"


def lease(rv: str) -> dict:
    return {"metadata": {"name": "vk", "namespace": "kube-node-lease", "resourceVersion": rv}, "spec": {}}


@responses.activate
def test_create_then_renew_with_resource_version():
    responses.get(COLL + "/vk", status=404, json={"reason": "NotFound"})
    responses.post(COLL, json=lease("1"))
    responses.put(COLL + "/vk", json=lease("2"))
    controller = LeaseController(KubeClient(Credentials(host=HOST)), "vk", 40)
    controller.renew("node-uid")
    created = json.loads(responses.calls[1].request.body)
    assert created["metadata"]["ownerReferences"][0] == {
        "apiVersion": "v1",
        "kind": "Node",
        "name": "vk",
        "uid": "node-uid",
    }
    assert created["spec"]["leaseDurationSeconds"] == 40
    controller.renew("node-uid")
    put = json.loads(responses.calls[2].request.body)
    assert put["metadata"]["resourceVersion"] == "1"
    assert put["spec"]["holderIdentity"] == "vk" and put["spec"]["renewTime"].endswith("Z")


@responses.activate
def test_conflict_rereads_and_retries():
    responses.get(COLL + "/vk", json=lease("5"))
    responses.put(COLL + "/vk", status=409, json={"reason": "Conflict"})
    responses.put(COLL + "/vk", json=lease("6"))
    controller = LeaseController(KubeClient(Credentials(host=HOST)), "vk")
    controller._latest = lease("4")
    controller.renew("u")
    assert [c.request.method for c in responses.calls] == ["PUT", "GET", "PUT"]
    assert json.loads(responses.calls[2].request.body)["metadata"]["resourceVersion"] == "5"
