"""Structured logging for the daemon: one line per event, as text or JSON, never with a secret.

Callers log an event name plus key/value fields::

    log = get_logger("pods")
    log.info("group created", extra=fields(pod="default/web-1", group="eci-123"))

Values whose key looks secret (password, token, secret, access key...) are masked by the
formatter, so a careless caller cannot leak them either.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

_FIELDS = "vkeci_fields"
_SECRET_KEY = re.compile(r"(pass(word)?|secret|token|access_?key|credential|authorization|auth)$", re.I)
_KEY_UNSAFE = re.compile(r'[\s="]+')  # what a logfmt key cannot hold
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def fields(**values: Any) -> dict[str, Any]:
    """The `extra=` argument carrying structured fields for one log call."""
    return {_FIELDS: values}


def redact(values: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``values`` with every secret-looking key masked."""
    # "set"/"unset" is how the configuration reports a secret without showing it.
    return {k: ("***" if _SECRET_KEY.search(k) and v not in ("set", "unset") else v) for k, v in values.items()}


def _fields_of(record: logging.LogRecord) -> dict[str, Any]:
    return redact(getattr(record, _FIELDS, None) or {})


def _quote(value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, (list, tuple, set, frozenset)):
        text = ",".join(v if isinstance(v, str) else json.dumps(v, default=str) for v in value)
    else:
        text = json.dumps(value, default=str)
    if text == "" or any(c in text for c in ' "=\n'):
        return json.dumps(text)
    return text


def _flat(key: str, value: Any) -> list[tuple[str, Any]]:
    """Maps become dotted keys (``kubernetes.PATCH_nodes/status=4``), so text lines hold no JSON to unpick."""
    if not isinstance(value, dict) or not value:
        return [(key, value)]
    pairs: list[tuple[str, Any]] = []
    for sub, item in value.items():
        sub = _KEY_UNSAFE.sub("_", str(sub))
        pairs += [(sub_key, "***" if _SECRET_KEY.search(sub) else v) for sub_key, v in _flat(f"{key}.{sub}", item)]
    return pairs


class TextFormatter(logging.Formatter):
    """``2026-11-22T05:00:00.123Z INFO pods: group created pod=default/web-1 group=eci-123``"""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        parts = [stamp, record.levelname, f"{record.name.removeprefix('vkeci.')}:", record.getMessage()]
        parts += [f"{k}={_quote(v)}" for key, value in _fields_of(record).items() for k, v in _flat(key, value)]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, msg and the structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        data.update(_fields_of(record))
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def setup(level: str = "info", fmt: str = "text", stream: Any = None) -> None:
    """Configure the `vkeci` logger tree (idempotent: replaces the handler set up before)."""
    root = logging.getLogger("vkeci")
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(_LEVELS.get(level, logging.INFO))
    root.propagate = False
    # The SDK and urllib3 are chatty at debug level and may echo request URLs; keep them quiet.
    for noisy in ("urllib3", "alibabacloud_credentials", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    adopt_sdk_loggers()


# alibabacloud-credentials logs to a logger named "credentials" with its own stderr handler, at INFO, with
# tracebacks (a failed ECS metadata lookup printed three of them in `vkeci check`).
SDK_LOGGERS = ("credentials",)


class _NoTraceback(logging.Filter):
    """Turn a record's traceback into one ``error=Type: message`` field: an SDK's stack is no use to an admin."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            extra = dict(getattr(record, _FIELDS, None) or {})
            extra["error"] = f"{type(exc).__name__}: {exc}"
            setattr(record, _FIELDS, extra)
        record.exc_info, record.exc_text = None, None
        return True


def adopt_sdk_loggers() -> None:
    """Route the SDK loggers of :data:`SDK_LOGGERS` through vk-eci's handler (warnings and up, no tracebacks).

    Call it again after importing the SDK: its modules add their own handler when they are imported."""
    ours = logging.getLogger("vkeci").handlers
    for name in SDK_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = list(ours)
        logger.propagate = False
        logger.setLevel(logging.WARNING)
        if not any(isinstance(f, _NoTraceback) for f in logger.filters):
            logger.addFilter(_NoTraceback())


def get_logger(name: str) -> logging.Logger:
    """A logger below `vkeci`, e.g. ``get_logger("pods")`` -> ``vkeci.controllers.pods``."""
    return logging.getLogger(f"vkeci.{name}")
