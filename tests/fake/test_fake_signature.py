"""Signature verification: the reference captures, live SDK requests, tampering, STS, replay."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from alibabacloud_eci20180808 import models as m
from alibabacloud_tea_openapi.exceptions import ClientException
from conftest import REGION, SK, sdk_client
from hypothesis import given
from hypothesis import strategies as st

from fakes.eci.errors import ApiError
from fakes.eci.params import parse_query
from fakes.eci.signature import Credential, Verifier

CAPTURES = json.loads((Path(__file__).parent / "data" / "sdk_captures.json").read_text())


AUTH_ERRORS = {
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "MissingAccessKeyId",
    "InvalidAccessKeyId.NotFound",
    "MissingSignature",
}


def _verifier(check: bool = False) -> Verifier:
    return Verifier(
        [Credential(CAPTURES["access_key_id"], CAPTURES["access_key_secret"])], check_time=check, check_nonce=check
    )


def _verify(v: Verifier, req: dict, target: str | None = None, headers: dict | None = None) -> None:
    split = urlsplit(target or req["target"])
    h = {k.lower(): val for k, val in (headers or req["headers"]).items()}
    v.verify(req["method"], split.path, parse_query(split.query), h, b"")


@pytest.mark.parametrize("req", CAPTURES["requests"], ids=lambda r: r["headers"]["x-acs-action"] + r["target"][:14])
def test_reference_captures_verify(req: dict) -> None:
    _verify(_verifier(), req)


@pytest.mark.parametrize("req", CAPTURES["requests"], ids=lambda r: r["headers"]["x-acs-action"] + r["target"][:14])
def test_reference_captures_with_wrong_secret_fail(req: dict) -> None:
    v = Verifier([Credential(CAPTURES["access_key_id"], "not-the-secret")], check_time=False, check_nonce=False)
    with pytest.raises(ApiError) as e:
        _verify(v, req)
    assert (e.value.code, e.value.status) == ("SignatureDoesNotMatch", 400)


def test_capture_timestamps_are_too_old_for_a_strict_verifier() -> None:
    # The captures were signed at a fixed time; with the 15-minute window on they must be refused.
    with pytest.raises(ApiError) as e:
        _verify(_verifier(check=True), CAPTURES["requests"][0])
    assert e.value.code in ("InvalidTimeStamp.Expired", "SignatureNonceUsed")


def _tamper_cases() -> list[tuple[int, str]]:
    cases = []
    for i, req in enumerate(CAPTURES["requests"]):
        cases.append((i, "query"))
        if "Authorization" in req["headers"]:
            cases += [(i, "header:x-acs-date"), (i, "header:host"), (i, "header:x-acs-action"), (i, "signature")]
    return cases


@given(st.sampled_from(_tamper_cases()), st.data())
def test_tampering_with_any_signed_part_is_rejected(case: tuple[int, str], data: st.DataObject) -> None:
    i, part = case
    req = CAPTURES["requests"][i]
    split = urlsplit(req["target"])
    pairs = parse_query(split.query)
    headers = {k.lower(): v for k, v in req["headers"].items()}
    if part == "query":
        signed = [j for j, (k, _) in enumerate(pairs) if k != "Signature"]
        j = data.draw(st.sampled_from(signed))
        k, v = pairs[j]
        new = data.draw(st.text(min_size=0, max_size=10).filter(lambda s, v=v: s != v))
        pairs[j] = (k, new)
    elif part.startswith("header:"):
        name = part.split(":", 1)[1]
        new = data.draw(
            st.text(alphabet="abcdefXYZ0123-:.", min_size=1, max_size=12).filter(lambda s: s != headers[name])
        )
        headers[name] = new
    else:
        auth = headers["authorization"]
        sig = auth.rsplit("Signature=", 1)[1]
        pos = data.draw(st.integers(0, len(sig) - 1))
        flipped = "0" if sig[pos] != "0" else "1"
        headers["authorization"] = auth[: -len(sig)] + sig[:pos] + flipped + sig[pos + 1 :]
    with pytest.raises(ApiError) as e:
        _verifier().verify(req["method"], split.path, pairs, headers, b"")
    # Usually SignatureDoesNotMatch; tampering with AccessKeyId/SignatureMethod is caught by its own check first.
    assert e.value.code in AUTH_ERRORS


def test_live_sdk_wrong_secret_raises_client_exception(fake) -> None:
    for algo in (None, "v2"):
        c = sdk_client(fake, algo, sk="wrong")
        with pytest.raises(ClientException) as e:
            c.describe_container_groups(m.DescribeContainerGroupsRequest(region_id=REGION))
        assert e.value.code == "SignatureDoesNotMatch"
        assert e.value.status_code == 400
        assert "wrong" not in str(e.value)


def test_live_sdk_unknown_access_key_is_404(fake) -> None:
    for algo in (None, "v2"):
        c = sdk_client(fake, algo, ak="LTAI-nobody")
        with pytest.raises(ClientException) as e:
            c.describe_container_groups(m.DescribeContainerGroupsRequest(region_id=REGION))
        assert (e.value.code, e.value.status_code) == ("InvalidAccessKeyId.NotFound", 404)


def test_incomplete_signature_header_is_rejected(fake) -> None:
    r = requests.post(
        fake.url + "/?RegionId=cn-hangzhou",
        headers={"Authorization": "ACS3-HMAC-SHA256 garbage", "x-acs-action": "DescribeContainerGroups"},
        timeout=5,
    )
    assert r.status_code == 400
    body = r.json()
    assert body["Code"] == "IncompleteSignature"
    assert set(body) == {"RequestId", "HostId", "Code", "Message", "Recommend"}


def test_unsigned_request_is_rejected(fake) -> None:
    r = requests.post(fake.url + "/?Action=DescribeRegions&Version=2018-08-08", timeout=5)
    assert r.status_code == 400
    assert r.json()["Code"] == "MissingSignature"


def test_sts_token_required_and_checked(make_fake) -> None:
    f = make_fake(security_token="tok/with+chars=")
    for algo in (None, "v2"):
        ok = sdk_client(f, algo, token="tok/with+chars=")
        assert ok.describe_regions(m.DescribeRegionsRequest()).status_code == 200
        with pytest.raises(ClientException) as e:
            sdk_client(f, algo, token="other").describe_regions(m.DescribeRegionsRequest())
        assert e.value.code == "InvalidSecurityToken.MismatchWithAccessKey"
        with pytest.raises(ClientException) as e:
            sdk_client(f, algo).describe_regions(m.DescribeRegionsRequest())
        assert e.value.code == "MissingSecurityToken"


def test_replayed_request_is_rejected(fake) -> None:
    # Capture a real signed request by letting the SDK send it through a tiny proxy-free path: sign via the SDK,
    # replay with requests. The SDK's own request succeeds; an identical replay reuses the nonce.
    import http.client

    c = sdk_client(fake)
    sent = {}
    orig = http.client.HTTPConnection.putrequest

    def spy(self, method, url, *a, **kw):  # type: ignore[no-untyped-def]
        sent["url"] = url
        return orig(self, method, url, *a, **kw)

    orig_putheader = http.client.HTTPConnection.putheader

    def spy_header(self, header, *values):  # type: ignore[no-untyped-def]
        sent.setdefault("headers", {})[header] = values[0] if values else ""
        return orig_putheader(self, header, *values)

    http.client.HTTPConnection.putrequest = spy  # type: ignore[method-assign]
    http.client.HTTPConnection.putheader = spy_header  # type: ignore[method-assign]
    try:
        c.describe_regions(m.DescribeRegionsRequest())
    finally:
        http.client.HTTPConnection.putrequest = orig  # type: ignore[method-assign]
        http.client.HTTPConnection.putheader = orig_putheader  # type: ignore[method-assign]
    headers = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in sent["headers"].items()}
    r = requests.post(fake.url + sent["url"], headers=headers, timeout=5)
    assert r.status_code == 400
    assert r.json()["Code"] == "SignatureNonceUsed"


def test_secret_never_in_error_messages(fake) -> None:
    c = sdk_client(fake, sk=SK + "x")
    with pytest.raises(ClientException) as e:
        c.describe_regions(m.DescribeRegionsRequest())
    assert SK not in json.dumps(e.value.data)


def test_v2_mismatch_does_not_echo_parameter_values(fake) -> None:
    from alibabacloud_eci20180808 import models as models

    c = sdk_client(fake, "v2", sk="wrong")
    req = models.CreateContainerGroupRequest(
        region_id=REGION,
        image_registry_credential=[
            models.CreateContainerGroupRequestImageRegistryCredential(
                server="r", user_name="u", password="hunter2-pass"
            )
        ],
    )
    with pytest.raises(ClientException) as e:
        c.create_container_group(req)
    assert e.value.code == "SignatureDoesNotMatch"
    assert "hunter2-pass" not in str(e.value) and "hunter2-pass" not in json.dumps(e.value.data)


def test_timestamp_format_is_checked() -> None:
    from fakes.eci.signature import _check_time

    _check_time("2026-01-01T00:00:00Z", "Timestamp", 1767225600.0)
    for bad in ("2026-01-01 00:00:00", "2026-13-01T00:00:00Z", "x"):
        with pytest.raises(ApiError) as e:
            _check_time(bad, "Timestamp", 1767225600.0)
        assert e.value.code == "InvalidTimeStamp.Format"
    with pytest.raises(ApiError) as e:
        _check_time("2026-01-01T00:16:00Z", "Timestamp", 1767225600.0)
    assert e.value.code == "InvalidTimeStamp.Expired"
