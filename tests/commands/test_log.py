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
