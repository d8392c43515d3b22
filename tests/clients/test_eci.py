"""The ECI client: error classification, NoStock fallback, paging, id batching."""

import copy
import json
import logging
from types import SimpleNamespace

import pytest
from alibabacloud_tea_openapi.exceptions import ClientException, ServerException, ThrottlingException
from hypothesis import HealthCheck, given, settings

from tests.core.pod_strategies import scenarios
from vkeci.clients.eci import EciClient, EciError, chunks, classify
from vkeci.core.identity import tag_map
from vkeci.core.translate import pod_to_request


def test_classify_sdk_exceptions():
    throttled = classify("X", ClientException(code="Throttling.User", message="slow down", status_code=400))
    assert throttled.transient
    server = classify("X", ServerException(code="InternalError", message="oops", status_code=500, request_id="R1"))
    assert server.transient and server.request_id == "R1" and "RequestId R1" in str(server)
    assert classify("X", ThrottlingException(code="Throttling", message="m", status_code=400, retry_after=5)).transient
    bad = classify("X", ClientException(code="InvalidParameter", message="nope", status_code=400))
    assert not bad.transient
    gone = classify("X", ClientException(code="InvalidParameter.NotFound", message="", status_code=404))
    assert gone.not_found
    nothing = classify("X", ConnectionError("reset"))
    assert nothing.transient and nothing.code == "NoResponse"


class Body:
    def __init__(self, data, **attrs):
        self.data = data
        for k, v in attrs.items():
            setattr(self, k, v)

    def to_map(self):
        return self.data


class StubClient:
    """The SDK client as EciClient's calls use it: ``call_api`` with the action and the flattened query."""

    def __init__(self):
        self.creates = []
        self.describes = []

    def call_api(self, params, request, runtime):
        return {"body": getattr(self, params.action)(request.query), "statusCode": 200}

    def CreateContainerGroup(self, query):
        self.creates.append(query["VSwitchId"])
        if query["VSwitchId"].startswith("vsw-a"):
            raise ClientException(code="OperationDenied.NoStock", message="sold out", status_code=403)
        return {"ContainerGroupId": "eci-1", "RequestId": "R"}

    def DescribeContainerGroups(self, query):
        self.describes.append(query)
        if query.get("ContainerGroupIds"):
            ids = json.loads(query["ContainerGroupIds"])
            return {"ContainerGroups": [{"ContainerGroupId": i} for i in ids]}
        page = int(query.get("NextToken") or 0)
        token = str(page + 1) if page < 2 else ""
        return {"ContainerGroups": [{"ContainerGroupId": f"g{page}"}], "NextToken": token}


def test_no_stock_moves_to_the_next_vswitch():
    client = StubClient()
    provider = EciClient(client, "cn-hangzhou")
    group, request_id = provider.create({"ContainerGroupName": "x", "VSwitchId": "vsw-a,vsw-b"})
    assert (group, request_id) == ("eci-1", "R")
    assert client.creates == ["vsw-a,vsw-b", "vsw-b"]
    assert provider.calls["CreateContainerGroup"] == 2


def test_no_stock_with_one_vswitch_is_permanent():
    provider = EciClient(StubClient(), "cn-hangzhou")
    with pytest.raises(EciError) as info:
        provider.create({"VSwitchId": "vsw-a"})
    assert info.value.no_stock and not info.value.transient


def test_list_pages_and_describe_batches_of_20():
    client = StubClient()
    provider = EciClient(client, "cn-hangzhou")
    groups = provider.list_groups([{"Key": "NodeName", "Value": "vk"}])
    assert [g["ContainerGroupId"] for g in groups] == ["g0", "g1", "g2"]
    described = provider.describe([f"eci-{i}" for i in range(45)])
    assert len(described) == 45
    assert provider.calls["DescribeContainerGroups"] == 3 + 3
    assert all(len(json.loads(r["ContainerGroupIds"])) <= 20 for r in client.describes[3:])


def test_helpers():
    assert list(chunks(list("abcde"), 2)) == [["a", "b"], ["c", "d"], ["e"]]
    assert tag_map([{"Key": "UID", "Value": "u"}]) == {"UID": "u"}


def nobody_listening():
    """A configuration whose ECI endpoint is 127.0.0.1:1, where nothing listens."""
    from vkeci.config import Config, Secret

    return Config(
        region="cn-hangzhou",
        access_key_id=Secret("a"),
        access_key_secret=Secret("b"),
        eci_endpoint="127.0.0.1:1",
        eci_protocol="http",
    )


def test_no_answer_from_the_real_sdk_is_transient():
    from vkeci.clients.eci import new_client

    provider = EciClient(new_client(nobody_listening(), connect_timeout_ms=500, read_timeout_ms=500), "cn-hangzhou")
    with pytest.raises(EciError) as info:
        provider.ping()
    assert info.value.transient and info.value.code == "NoResponse"
    # Nothing listens on port 1: a refused connection, the hard outage the node notices at once.
    assert info.value.refused and "connection refused" in str(info.value)
    assert provider.calls["DescribeRegions"] == 1


def test_exhausted_local_limit_is_a_transient_eci_error():
    from vkeci.clients.ratelimit import EciLimiter, RateLimitTimeout

    class Exhausted(EciLimiter):
        def acquire(self, action, timeout=60.0):
            raise RateLimitTimeout("no token")

    provider = EciClient(StubClient(), "cn-hangzhou", Exhausted())
    with pytest.raises(EciError) as info:
        provider.describe(["eci-1"])
    assert info.value.transient and info.value.code == "Throttling.Local"


def test_a_page_that_is_not_ecis_json_is_reported_as_such():
    import http.server
    import threading

    from vkeci.clients.eci import new_client
    from vkeci.config import Config, Secret

    class Proxy(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = b"<html><body>414 Request-URI Too Large</body></html>"
            self.send_response(414)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        config = Config(
            region="cn-hangzhou",
            access_key_id=Secret("a"),
            access_key_secret=Secret("b"),
            eci_endpoint=f"127.0.0.1:{server.server_port}",
            eci_protocol="http",
        )
        with pytest.raises(EciError) as info:
            EciClient(new_client(config), "cn-hangzhou").ping()
    finally:
        server.shutdown()
    assert info.value.code == "BadResponse" and info.value.transient
    assert "414 Request-URI Too Large" in str(info.value) and "proxy or gateway" in str(info.value)


class KubeletCalls:
    """The SDK calls behind `kubectl logs`, `kubectl exec` and `kubectl top`."""

    def __init__(self):
        self.requests = []

    def describe_container_log(self, req):
        self.requests.append(req)
        return SimpleNamespace(body=Body({"Content": "hello\n"}))

    def exec_container_command(self, req):
        self.requests.append(req)
        return SimpleNamespace(body=Body({"WebSocketUri": "wss://x"}))

    def describe_multi_container_group_metric(self, req):
        self.requests.append(req)
        raise ClientException(code="Throttling.User", message="slow down", status_code=400)


def test_the_kubelet_apis_calls_are_counted_and_raise_the_one_eci_error():
    # They used to go through a second client that counted nothing: --stats-file left them out.
    sdk = KubeletCalls()
    eci = EciClient(sdk, "cn-hangzhou")
    assert eci.describe_container_log({"ContainerGroupId": "eci-1", "ContainerName": "c", "Tail": 5}) == {
        "Content": "hello\n"
    }
    answer = eci.exec_container_command({"ContainerGroupId": "eci-1", "ContainerName": "c", "Command": ["ls", "-l"]})
    assert answer == {"WebSocketUri": "wss://x"} and sdk.requests[1].command == '["ls", "-l"]'
    with pytest.raises(EciError) as info:
        eci.describe_multi_container_group_metric(["eci-1"])
    assert info.value.transient and info.value.code == "Throttling.User"
    assert dict(eci.calls) == {
        "DescribeContainerLog": 1,
        "ExecContainerCommand": 1,
        "DescribeMultiContainerGroupMetric": 1,
    }


def test_a_local_rate_limit_is_a_transient_429():
    from vkeci.clients.ratelimit import RateLimitTimeout

    class Exhausted:
        def acquire(self, action):
            raise RateLimitTimeout(action)

    eci = EciClient(KubeletCalls(), "cn-hangzhou", Exhausted())
    with pytest.raises(EciError) as info:
        eci.describe_container_log({"ContainerGroupId": "eci-1", "ContainerName": "c"})
    assert info.value.code == "Throttling.Local" and info.value.status == 429 and info.value.transient


class FlakyPages:
    """DescribeContainerGroups by tag over 15 pages, every third call a 503 (before it acts)."""

    def __init__(self):
        self.calls = 0
        self.tokens = []

    def call_api(self, params, request, runtime):
        assert params.action == "DescribeContainerGroups"
        self.calls += 1
        if self.calls % 3 == 0:
            raise ServerException(code="ServiceUnavailable", message="try later", status_code=503)
        token = request.query.get("NextToken")
        self.tokens.append(token)
        page = int(token or 0)
        following = str(page + 1) if page < 14 else ""
        groups = [{"ContainerGroupId": f"g{page}-{i}"} for i in range(20)]
        return {"body": {"ContainerGroups": groups, "NextToken": following}}


def test_the_client_never_retries_a_failed_page_on_its_own():
    client = FlakyPages()
    provider = EciClient(client, "cn-hangzhou")
    with pytest.raises(EciError) as info:
        provider.list_groups([{"Key": "NodeName", "Value": "vk"}])
    assert info.value.transient and provider.calls["DescribeContainerGroups"] == 3 == client.calls


def test_a_listing_whose_pages_fail_a_third_of_the_time_completes_with_the_controllers_pager():
    from vkeci.config import PodSettings
    from vkeci.controllers.listing import Listing

    client = FlakyPages()
    provider = EciClient(client, "cn-hangzhou")
    pager = Listing.per_settings("start-up listing", logging.getLogger("test"), PodSettings(page_backoff=0))
    groups = provider.list_groups([{"Key": "NodeName", "Value": "vk"}], pager=pager)
    assert len(groups) == 300 and len({g["ContainerGroupId"] for g in groups}) == 300
    assert client.tokens == [None, *map(str, range(1, 15))]  # each page answered once, resumed at its NextToken
    assert provider.calls["DescribeContainerGroups"] == client.calls == 22  # 15 pages + 7 failed calls, each counted


# ---- the calls send what the SDK's generated methods send ----------------------------------------------


def recording_sdk():
    """A real SDK client whose ``call_api`` (where every generated method ends) records what it is given."""
    from vkeci.clients.eci import new_client

    sdk = new_client(nobody_listening())
    sent = []

    def call_api(params, request, runtime):
        sent.append((params.to_map(), dict(request.query), request.body, request.headers))
        body = {"ContainerGroupId": "eci-1", "RequestId": "R", "ContainerGroups": [], "Data": [], "NextToken": ""}
        return {"body": body, "headers": {}, "statusCode": 200}

    sdk.call_api = call_api
    return sdk, sent


def via_models(request_map):
    """What the SDK's generated method sends for a CreateContainerGroup built from ``request_map``."""
    from alibabacloud_eci20180808 import models

    sdk, sent = recording_sdk()
    sdk.create_container_group(models.CreateContainerGroupRequest().from_map(copy.deepcopy(request_map)))
    return sent


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_a_create_sends_the_query_the_sdks_model_would_send(scenario):
    request = pod_to_request(scenario.pod, scenario.objects, scenario.defaults)
    request["RegionId"] = "cn-hangzhou"
    sdk, sent = recording_sdk()
    assert EciClient(sdk, "cn-hangzhou").create(copy.deepcopy(request)) == ("eci-1", "R")
    assert sent == via_models(request)


def test_deletes_describes_and_listings_send_the_query_the_sdks_models_would_send():
    from alibabacloud_eci20180808 import models as m

    tags = [{"Key": "NodeName", "Value": "vk"}, {"Key": "Cluster", "Value": "c"}]
    expected_sdk, expected = recording_sdk()
    tag = m.DescribeContainerGroupsRequestTag
    expected_sdk.delete_container_group(m.DeleteContainerGroupRequest(region_id="cn-hangzhou", container_group_id="g"))
    for with_event in (True, False):
        expected_sdk.describe_container_groups(
            m.DescribeContainerGroupsRequest(
                region_id="cn-hangzhou", container_group_ids='["a", "b"]', limit=20, with_event=with_event
            )
        )
    for with_event in (None, True):
        expected_sdk.describe_container_groups(
            m.DescribeContainerGroupsRequest(
                region_id="cn-hangzhou",
                limit=20,
                next_token=None,
                tag=[tag(key=t["Key"], value=t["Value"]) for t in tags],
                with_event=with_event,
            )
        )
    for since in (None, 30):
        expected_sdk.describe_container_group_status(
            m.DescribeContainerGroupStatusRequest(
                region_id="cn-hangzhou",
                limit=200,
                since_second=since,
                tag=[m.DescribeContainerGroupStatusRequestTag(key=t["Key"], value=t["Value"]) for t in tags],
            )
        )
    expected_sdk.describe_container_group_events(
        m.DescribeContainerGroupEventsRequest(
            region_id="cn-hangzhou",
            limit=200,
            since_second=30,
            tag=[m.DescribeContainerGroupEventsRequestTag(key=t["Key"], value=t["Value"]) for t in tags],
        )
    )
    sdk, sent = recording_sdk()
    eci = EciClient(sdk, "cn-hangzhou")
    eci.delete("g")
    eci.describe(["b", "a", "a"])
    eci.describe(["a", "b"], with_event=False)
    eci.list_groups(tags)
    eci.list_groups(tags, with_event=True)
    eci.changed_since(tags, None)
    eci.changed_since(tags, 30)
    eci.events_since(tags, 30)
    assert sent == expected


def test_a_failed_call_keeps_the_codes_and_request_id_of_the_sdks_exception():
    sdk, _ = recording_sdk()

    def refuse(params, request, runtime):
        raise ClientException(
            code="InvalidParameter", message="bad vSwitch", status_code=400, request_id="RID-1", data={}
        )

    sdk.call_api = refuse
    with pytest.raises(EciError) as info:
        EciClient(sdk, "cn-hangzhou").create({"ContainerGroupName": "x"})
    err = info.value
    assert (err.code, err.status, err.request_id, err.transient) == ("InvalidParameter", 400, "RID-1", False)
    assert "RequestId RID-1" in str(err)
