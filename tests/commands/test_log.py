"""Structured logs: text and JSON, secret-looking fields masked."""

import io
import json

from vkeci.log import fields, get_logger, setup


def test_json_lines_and_masking():
    out = io.StringIO()
    setup("info", "json", stream=out)
    get_logger("t").info("hello", extra=fields(pod="ns/p", password="hunter2", access_key="AK"))
    line = json.loads(out.getvalue())
    assert line["msg"] == "hello" and line["pod"] == "ns/p"
    assert line["password"] == "***" and line["access_key"] == "***"
    assert "hunter2" not in out.getvalue()


def test_text_format_and_level():
    out = io.StringIO()
    setup("warning", "text", stream=out)
    log = get_logger("t")
    log.info("quiet")
    log.warning("loud", extra=fields(message="two words", token="x"))
    text = out.getvalue()
    assert "quiet" not in text
    assert 'WARNING t: loud message="two words" token=***' in text


def test_text_lines_flatten_lists_and_maps():
    # R18: nested values used to be JSON inside logfmt (vswitches="[\"vsw-a\"]").
    from vkeci import log

    stream = io.StringIO()
    log.setup("info", "text", stream=stream)
    log.get_logger("daemon").info(
        "request totals",
        extra=log.fields(
            vswitches=("vsw-a", "vsw-b"), kubernetes={"PATCH nodes/status": 4}, auth={"password": "hunter2"}
        ),
    )
    line = stream.getvalue().strip()
    assert line.endswith("vswitches=vsw-a,vsw-b kubernetes.PATCH_nodes/status=4 auth=***")
    stream.seek(0), stream.truncate()
    log.get_logger("daemon").info("x", extra=log.fields(settings={"login": {"password": "hunter2", "user": "u"}}))
    assert stream.getvalue().strip().endswith("settings.login.password=*** settings.login.user=u")
