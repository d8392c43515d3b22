"""Log options, the follow cursor and the log streaming loop."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vkeci.kubelet import logs
from vkeci.kubelet.backend import EciError
from vkeci.kubelet.errors import BadRequest


def q(**kwargs: str) -> dict[str, list[str]]:
    return {k: [v] for k, v in kwargs.items()}


def eci_error(code: str, message: str, *, status: int) -> EciError:
    return EciError("DescribeContainerLog", code, message, status=status)


def test_defaults_mean_everything_once() -> None:
    options = logs.parse_log_options({})
    assert options == logs.LogOptions()
    params = logs.eci_log_params(options, "eci-1", "main")
    assert params == {"ContainerGroupId": "eci-1", "ContainerName": "main", "Timestamps": False, "Tail": 2000}


def test_all_options_map_to_eci() -> None:
    options = logs.parse_log_options(
        q(tailLines="5", limitBytes="100", sinceTime="2024-01-02T03:04:05Z", timestamps="true", previous="1")
    )
    params = logs.eci_log_params(options, "eci-1", "main")
    assert params["Tail"] == 5
    assert params["LimitBytes"] == 100
    assert params["StartTime"] == "2024-01-02T03:04:05Z"
    assert params["LastTime"] is True
    assert options.timestamps


def test_since_seconds_and_caps() -> None:
    options = logs.parse_log_options(q(sinceSeconds="30", tailLines="999999", limitBytes="99999999"))
    params = logs.eci_log_params(options, "g", "c")
    assert params["SinceSeconds"] == 30
    assert params["Tail"] == logs.ECI_MAX_TAIL
    assert params["LimitBytes"] == logs.ECI_MAX_LIMIT_BYTES


def test_legacy_tail_parameter() -> None:
    assert logs.parse_log_options(q(tail="3")).tail_lines == 3
    assert logs.parse_log_options({"tail": ["all"], "tailLines": ["3"]}).tail_lines is None


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        (q(tailLines="x"), "tailLines='x' is not a whole number"),
        (q(tailLines="-1"), "tailLines=-1 is invalid"),
        (q(limitBytes="0"), "limitBytes=0 is invalid"),
        (q(sinceSeconds="0"), "sinceSeconds=0 is invalid"),
        (q(sinceTime="yesterday"), "sinceTime='yesterday' is not an RFC 3339 time"),
        (q(sinceSeconds="5", sinceTime="2024-01-01T00:00:00Z"), "cannot both be set"),
        (q(follow="maybe"), "follow='maybe' is not a boolean"),
        (q(stream="Stdout"), "stream='Stdout' is not supported"),
    ],
)
def test_bad_options_name_the_parameter(query: dict[str, list[str]], fragment: str) -> None:
    with pytest.raises(BadRequest) as info:
        logs.parse_log_options(query)
    assert fragment in info.value.message
    assert info.value.status == 400


def test_lines_render_with_and_without_timestamps() -> None:
    lines = logs.split_lines("2024-01-01T00:00:00.5Z hello world\n2024-01-01T00:00:01Z bye\nno stamp\n")
    assert [line.render(False) for line in lines] == ["hello world\n", "bye\n", "no stamp\n"]
    assert lines[0].render(True) == "2024-01-01T00:00:00.5Z hello world\n"
    assert lines[0].ts_ns == 1704067200_500000000
    assert lines[2].ts_ns is None


def stamp(ns: int) -> str:
    seconds, frac = divmod(ns, 1_000_000_000)
    moment = dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


@given(st.lists(st.integers(min_value=0, max_value=5_000_000_000), min_size=1, max_size=40), st.data())
def test_cursor_writes_every_line_once_across_overlapping_reads(offsets: list[int], data: st.DataObject) -> None:
    # A log that grows over time, read by polls that each restart at the second of the newest line seen.
    base = 1_700_000_000_000_000_000
    times = sorted(base + o for o in offsets)
    log_lines = [f"{stamp(t)} line-{i}\n" for i, t in enumerate(times)]
    cursor = logs.FollowCursor()
    written: list[str] = []
    visible = 0
    while visible < len(log_lines):
        visible = data.draw(st.integers(min_value=visible + 1, max_value=len(log_lines)))
        start = cursor.start_time()
        start_ns = (
            0 if start is None else int(dt.datetime.fromisoformat(start.replace("Z", "+00:00")).timestamp()) * 10**9
        )
        batch = [line for line, t in zip(log_lines[:visible], times[:visible], strict=True) if t >= start_ns]
        written += [line.raw for line in cursor.fresh(logs.split_lines("".join(batch)))]
    assert written == log_lines


class FakeLogs:
    def __init__(self, contents: list[str], error_first: bool = False) -> None:
        self.contents = contents
        self.calls: list[dict[str, Any]] = []
        self.error_first = error_first

    def describe_container_log(self, params: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(params)
        if self.error_first and len(self.calls) == 1:
            raise eci_error("InvalidParameter", "boom", status=400)
        index = min(len(self.calls) - 1, len(self.contents) - 1)
        return {"Content": self.contents[index]}


def test_stream_without_follow_passes_through_and_limits_bytes() -> None:
    # Without timestamps requested, a line that merely starts with a time is left alone.
    eci = FakeLogs(["2024-01-01T00:00:00Z is my own text\ndef\n"])
    out: list[bytes] = []
    logs.stream_logs(eci, logs.LogOptions(limit_bytes=24), "g", "c", out.append, lambda: True)  # type: ignore[arg-type]
    assert b"".join(out) == b"2024-01-01T00:00:00Z is "
    assert eci.calls == [
        {"ContainerGroupId": "g", "ContainerName": "c", "Timestamps": False, "Tail": 2000, "LimitBytes": 24}
    ]


def test_follow_without_timestamps_strips_them_and_limits_locally() -> None:
    params = logs.eci_log_params(logs.LogOptions(follow=True, limit_bytes=5), "g", "c")
    assert params["Timestamps"] is True and "LimitBytes" not in params
    eci = FakeLogs(["2024-01-01T00:00:00Z abc\n2024-01-01T00:00:01Z def\n"])
    out: list[bytes] = []
    options = logs.LogOptions(follow=True, limit_bytes=6)
    logs.stream_logs(eci, options, "g", "c", out.append, lambda: True, sleep=lambda _: None)  # type: ignore[arg-type]
    assert b"".join(out) == b"abc\nde"


def test_follow_polls_until_the_container_ends() -> None:
    first = "2024-01-01T00:00:00Z a\n"
    second = first + "2024-01-01T00:00:00.5Z b\n2024-01-01T00:00:02Z c\n"
    eci = FakeLogs([first, second, "2024-01-01T00:00:02Z c\n2024-01-01T00:00:03Z d\n"])
    out: list[bytes] = []
    state = iter([False, False, True])
    logs.stream_logs(
        eci,  # type: ignore[arg-type]
        logs.LogOptions(follow=True, timestamps=True),
        "g",
        "c",
        out.append,
        lambda: next(state),
        sleep=lambda _: None,
        max_polls=10,
    )
    assert b"".join(out).decode().splitlines() == [
        "2024-01-01T00:00:00Z a",
        "2024-01-01T00:00:00.5Z b",
        "2024-01-01T00:00:02Z c",
        "2024-01-01T00:00:03Z d",
    ]
    assert eci.calls[1]["StartTime"] == "2024-01-01T00:00:00Z"
    assert eci.calls[2]["StartTime"] == "2024-01-01T00:00:02Z"


def test_first_read_error_propagates_for_a_proper_status() -> None:
    eci = FakeLogs([""], error_first=True)
    with pytest.raises(EciError):
        logs.stream_logs(eci, logs.LogOptions(), "g", "c", lambda _: None, lambda: True)  # type: ignore[arg-type]


def test_eci_errors_become_kubelet_answers() -> None:
    previous = logs.LogOptions(previous=True)
    assert logs.eci_error_to_http(eci_error("InvalidParameter", "x", status=400), previous, "p", "c").status == 400
    assert (
        "previous terminated container"
        in logs.eci_error_to_http(eci_error("", "x", status=404), previous, "p", "c").message
    )
    assert logs.eci_error_to_http(eci_error("Throttling", "x", status=400), logs.LogOptions(), "p", "c").status == 429
    assert (
        logs.eci_error_to_http(eci_error("ServiceUnavailable", "x", status=503), logs.LogOptions(), "p", "c").status
        == 502
    )


def test_container_finished() -> None:
    pod: dict[str, Any] = {
        "status": {"phase": "Running", "containerStatuses": [{"name": "c", "state": {"running": {}}}]}
    }
    assert not logs.container_finished(pod, "c")
    pod["status"]["containerStatuses"][0]["state"] = {"terminated": {"exitCode": 0}}
    assert logs.container_finished(pod, "c")
    assert logs.container_finished(None, "c")
    assert logs.container_finished({"status": {"phase": "Succeeded"}}, "c")


def test_follow_with_nothing_yet_starts_from_now() -> None:
    eci = FakeLogs(["", "2000-01-01T00:00:00Z ancient\n2999-01-01T00:00:00Z future\n"])
    out: list[bytes] = []
    state = iter([False, True])
    logs.stream_logs(
        eci,  # type: ignore[arg-type]
        logs.LogOptions(follow=True, tail_lines=0),
        "g",
        "c",
        out.append,
        lambda: next(state),
        sleep=lambda _: None,
        max_polls=5,
    )
    assert b"".join(out) == b"future\n"
    assert eci.calls[1]["StartTime"] is not None
