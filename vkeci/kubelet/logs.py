"""``GET /containerLogs/{ns}/{pod}/{container}``: kubelet log options mapped onto ECI's
DescribeContainerLog, and ``follow`` done by polling it.

The option parsing and the line bookkeeping are pure; :func:`stream_logs` is the loop that
talks to ECI and writes to the client.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from vkeci.core.times import rfc3339
from vkeci.kubelet.backend import EciApi, EciError
from vkeci.kubelet.errors import BadRequest, HttpError, NotFound

# DescribeContainerLog returns at most 2000 lines (eci-openapi.md §5.4); without Tail it
# would default to 500, so "all lines" is asked for as the maximum.
ECI_MAX_TAIL = 2000
ECI_MAX_LIMIT_BYTES = 1048576

_TRUE = {"1", "t", "T", "true", "TRUE", "True"}
_FALSE = {"0", "f", "F", "false", "FALSE", "False"}


@dataclass(frozen=True)
class LogOptions:
    """The subset of v1.PodLogOptions the kubelet honours."""

    tail_lines: int | None = None
    limit_bytes: int | None = None
    since_seconds: int | None = None
    since_time: dt.datetime | None = None
    timestamps: bool = False
    previous: bool = False
    follow: bool = False


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _int(query: dict[str, list[str]], name: str, minimum: int) -> int | None:
    raw = _one(query, name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise BadRequest(f"{name}={value} is invalid: it must be at least {minimum}")
    return value


def _bool(query: dict[str, list[str]], name: str) -> bool:
    raw = _one(query, name)
    if raw is None or raw == "":
        return False
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise BadRequest(f"{name}={raw!r} is not a boolean (use true or false)")


def parse_log_options(query: dict[str, list[str]]) -> LogOptions:
    """Parse the kubelet's containerLogs query (as from ``urllib.parse.parse_qs``).

    Raises BadRequest naming the parameter for anything the kubelet would refuse.
    """
    query = dict(query)
    tail = _one(query, "tail")  # the kubelet's legacy spelling; "all" means no limit
    if tail is not None:
        if tail == "all":
            query.pop("tailLines", None)
        else:
            query["tailLines"] = [tail]
    since_time = None
    raw_since_time = _one(query, "sinceTime")
    if raw_since_time:
        try:
            since_time = dt.datetime.fromisoformat(raw_since_time.replace("Z", "+00:00"))
        except ValueError:
            raise BadRequest(
                f"sinceTime={raw_since_time!r} is not an RFC 3339 time such as 2024-01-01T00:00:00Z"
            ) from None
        if since_time.tzinfo is None:
            since_time = since_time.replace(tzinfo=dt.timezone.utc)
    options = LogOptions(
        tail_lines=_int(query, "tailLines", 0),
        limit_bytes=_int(query, "limitBytes", 1),
        since_seconds=_int(query, "sinceSeconds", 1),
        since_time=since_time,
        timestamps=_bool(query, "timestamps"),
        previous=_bool(query, "previous"),
        follow=_bool(query, "follow"),
    )
    if options.since_seconds is not None and options.since_time is not None:
        raise BadRequest("sinceSeconds and sinceTime cannot both be set; use one of them")
    stream = _one(query, "stream")
    if stream not in (None, "", "All"):
        raise BadRequest(f"stream={stream!r} is not supported: ECI returns stdout and stderr together (use All)")
    return options


def eci_log_params(options: LogOptions, group_id: str, container: str) -> dict[str, Any]:
    """The DescribeContainerLog parameters for the first read.

    A follow always asks for timestamps, so each poll can resume exactly where the last one
    stopped; they are stripped again before writing when the client did not ask for them
    (and LimitBytes is then enforced here, since ECI would count the timestamps too).
    """
    stamped = options.timestamps or options.follow
    params: dict[str, Any] = {
        "ContainerGroupId": group_id,
        "ContainerName": container,
        "Timestamps": stamped,
        "Tail": min(options.tail_lines, ECI_MAX_TAIL) if options.tail_lines is not None else ECI_MAX_TAIL,
    }
    if options.since_seconds is not None:
        params["SinceSeconds"] = options.since_seconds
    if options.since_time is not None:
        params["StartTime"] = rfc3339(options.since_time)
    if options.limit_bytes is not None and stamped == options.timestamps:
        params["LimitBytes"] = min(options.limit_bytes, ECI_MAX_LIMIT_BYTES)
    if options.previous:
        params["LastTime"] = True
    return params


_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")


def _timestamp_ns(text: str) -> int | None:
    """Nanoseconds since the epoch of an RFC 3339(Nano) timestamp, or None if it is not one."""
    match = _TIMESTAMP.match(text)
    if not match:
        return None
    seconds, fraction, zone = match.groups()
    try:
        moment = dt.datetime.fromisoformat(seconds + ("+00:00" if zone == "Z" else zone))
    except ValueError:
        return None
    return int(moment.timestamp()) * 1_000_000_000 + int((fraction or "0").ljust(9, "0"))


@dataclass(frozen=True)
class LogLine:
    """One log line as ECI returned it."""

    raw: str  # exactly as received, newline included when present
    ts_ns: int | None  # the leading timestamp when ECI added one, else None

    def render(self, timestamps: bool) -> str:
        """The line as the client asked for it: with or without the timestamp ECI added."""
        if timestamps or self.ts_ns is None:
            return self.raw
        return self.raw.split(" ", 1)[1] if " " in self.raw else ""


def split_lines(content: str, stamped: bool = True) -> list[LogLine]:
    """Split ECI's Content into lines; when ECI was asked for timestamps, read each line's."""
    lines = []
    for raw in content.splitlines(keepends=True):
        ts_ns = _timestamp_ns(raw.split(" ", 1)[0].rstrip("\n")) if stamped else None
        lines.append(LogLine(raw=raw, ts_ns=ts_ns))
    return lines


@dataclass
class FollowCursor:
    """Where a follow stands: the newest timestamp written and how many lines carried it.

    ECI's StartTime has second precision, so each poll re-reads part of the last second;
    the cursor drops what was already written.
    """

    last_ns: int | None = None
    at_last: int = 0
    seen: list[int] = field(default_factory=list)

    def fresh(self, lines: Iterable[LogLine]) -> list[LogLine]:
        """The lines not yet written, advancing the cursor past them."""
        out = []
        skip_at_last = self.at_last
        for line in lines:
            if line.ts_ns is None:
                continue  # without a timestamp a re-read cannot be told from a new line
            if self.last_ns is not None and line.ts_ns < self.last_ns:
                continue
            if self.last_ns is not None and line.ts_ns == self.last_ns and skip_at_last > 0:
                skip_at_last -= 1
                continue
            out.append(line)
            if line.ts_ns == self.last_ns:
                self.at_last += 1
            else:
                self.last_ns = line.ts_ns
                self.at_last = 1
                skip_at_last = 0
        return out

    def start_time(self) -> str | None:
        """StartTime for the next poll (the second of the newest line written)."""
        if self.last_ns is None:
            return None
        return rfc3339(dt.datetime.fromtimestamp(self.last_ns // 1_000_000_000, tz=dt.timezone.utc))


def find_container(pod: dict[str, Any], container: str) -> bool:
    """Whether the pod spec has a container (or init/ephemeral container) of that name."""
    spec = pod.get("spec") or {}
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for item in spec.get(key) or []:
            if item.get("name") == container:
                return True
    return False


def has_previous(pod: dict[str, Any], container: str) -> bool:
    """Whether the container has a previous (terminated) instance, as the pod status tells it.
    Without a status for the container there is nothing to go by, and ECI is asked."""
    status = pod.get("status") or {}
    for item in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        if item.get("name") == container:
            return bool(item.get("restartCount")) or "terminated" in (item.get("lastState") or {})
    return True


def container_finished(pod: dict[str, Any] | None, container: str) -> bool:
    """Whether following should stop: the pod is gone, finished, or the container terminated
    and will not restart."""
    if pod is None:
        return True
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed") or (pod.get("metadata") or {}).get("deletionTimestamp"):
        return True
    for item in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        if item.get("name") == container:
            return "terminated" in (item.get("state") or {})
    return False


def eci_error_to_http(exc: EciError, options: LogOptions, pod: str, container: str) -> HttpError:
    """Turn an ECI failure into the answer a kubelet would give."""
    if options.previous and exc.status in (400, 404):
        return BadRequest(f'previous terminated container "{container}" in pod "{pod}" not found')
    if exc.status == 404 or "NotFound" in exc.code:
        return NotFound(f'container "{container}" in pod "{pod}" has no logs in ECI yet ({exc.code})')
    if exc.status == 429 or "Throttling" in exc.code:
        return HttpError(f"ECI is rate limiting log reads, try again in a few seconds ({exc.code})", 429)
    return HttpError(f"reading logs from ECI failed: {exc}", 502)


def stream_logs(
    eci: EciApi,
    options: LogOptions,
    group_id: str,
    container: str,
    write: Callable[[bytes], None],
    finished: Callable[[], bool],
    *,
    poll_interval: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    max_polls: int | None = None,
) -> None:
    """Write the container's log to ``write``; with ``follow``, keep polling ECI until
    ``finished()`` says the container ended or ``write`` raises (the client went away).

    Raises EciError from the first read (before anything was written); later read errors
    end a follow quietly rather than cut a line in half.
    """
    budget = options.limit_bytes
    cursor = FollowCursor()

    def emit(lines: list[LogLine]) -> bool:
        nonlocal budget
        for line in lines:
            data = line.render(options.timestamps).encode()
            if budget is not None:
                data = data[:budget]
                budget -= len(data)
            if data:
                write(data)
            if budget is not None and budget <= 0:
                return False
        return True

    params = eci_log_params(options, group_id, container)
    started_ns = time.time_ns()
    first = eci.describe_container_log(params)
    lines = split_lines(str(first.get("Content") or ""), stamped=bool(params["Timestamps"]))
    if not options.follow:
        emit(lines)
        return
    cursor.fresh(lines)  # only to move the cursor: the first read is written whole
    if cursor.last_ns is None:
        # Nothing yet: follow from about now, not from the start of the log. The margin allows for
        # ECI's clock running a little behind ours; the first read was empty, so nothing repeats.
        cursor.last_ns = started_ns - 2_000_000_000
    if not emit(lines):
        return
    polls = 0
    while max_polls is None or polls < max_polls:
        polls += 1
        done = finished()
        sleep(0 if done else poll_interval)
        poll = {
            "ContainerGroupId": group_id,
            "ContainerName": container,
            "Timestamps": True,
            "Tail": ECI_MAX_TAIL,
            "StartTime": cursor.start_time(),
        }
        try:
            body = eci.describe_container_log(poll)
        except EciError:
            if done:
                return
            continue  # a throttled or failed poll is retried at the next interval
        if not emit(cursor.fresh(split_lines(str(body.get("Content") or "")))):
            return
        if done:
            return
