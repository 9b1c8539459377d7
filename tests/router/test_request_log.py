"""The router's request log: HAProxy's line per request, read, and written as a `router:` line."""

from __future__ import annotations

import pytest

from shipyard.router import haproxy, request_log

REQUEST_ID = "4060ee9b-a38f-4cb0-ba27-178efbccff56"


def message(
    backend: str = "env_0003",
    server: str = "3fa85f64-web-1-p41234",
    status: int = 200,
    timings: str = "0 0 1 11 12",  # %TR %Tw %Tc %Tr %Ta
    state: str = "--",
    method: str = "GET",
    host: str = '"staging.hello.localhost"',
    path: str = '"/"',
) -> bytes:
    """A line as HAProxy sends it with router.request_log.LOG_FORMAT."""
    return (
        f"{backend} {server} {status} {timings} 512 {state} {method} {REQUEST_ID} 127.0.0.1 "
        f"{host} {path}\n"
    ).encode()


def test_a_request_a_process_answered_is_an_info_line() -> None:
    record = request_log.parse(message())

    assert record is not None
    assert haproxy.backend_slot(record.backend) == 3
    assert request_log.line(record) == (
        f'at=info method=GET path="/" host=staging.hello.localhost request_id={REQUEST_ID} '
        'fwd="127.0.0.1" dyno=web.1 connect=1ms service=11ms status=200 bytes=512'
    )


def test_an_app_error_is_still_info_it_is_the_apps_answer() -> None:
    record = request_log.parse(message(status=500, method="POST"))

    assert record is not None
    assert request_log.line(record).startswith('at=info method=POST path="/" ')
    assert " status=500 " in request_log.line(record)


def test_no_process_is_an_error_without_dyno_or_timings() -> None:
    record = request_log.parse(
        message(server="<NOSRV>", status=503, timings="0 -1 -1 -1 0", state="LR")
    )

    assert record is not None
    text = request_log.line(record)
    assert text.startswith('at=error reason="no process of this environment runs on this ')
    assert " dyno= connect= service= status=503 " in text


def test_a_refused_connection_shows_the_time_spent_trying() -> None:
    record = request_log.parse(message(status=503, timings="0 0 -1 -1 3006", state="SC"))

    assert record is not None
    text = request_log.line(record)
    assert text.startswith('at=error reason="the process refused the connection" method=GET')
    assert " dyno=web.1 connect=3006ms service= status=503 " in text


@pytest.mark.parametrize(
    ("state", "level", "reason"),
    [
        ("sH", "error", "the process did not answer in time"),
        ("SH", "error", "the process closed the connection without answering"),
        ("CD", "warning", "the client closed the connection"),
        ("PR", "error", "the router ended the request (HAProxy termination state PR)"),
    ],
)
def test_a_request_ended_early_says_why(state: str, level: str, reason: str) -> None:
    record = request_log.parse(message(status=504, state=state))

    assert record is not None
    assert request_log.outcome(record) == (level, reason)


@pytest.mark.parametrize(
    ("logged", "shown"),
    [
        # HAProxy escapes \ and " in quoted fields (+E) and writes a quote in a path as #22.
        (r'"/a%20b#22c\\d"', r'path="/a%20b#22c\\d"'),
        ('"/caf%C3%A9/"', 'path="/caf%C3%A9/"'),
        # Cut short by the log line's length: no closing quote, or inside an escape.
        ('"/' + "x" * 20, 'path="/' + "x" * 20 + '"'),
        ('"/cut\\', 'path="/cut"'),
    ],
)
def test_odd_paths_are_read_and_shown_quoted(logged: str, shown: str) -> None:
    record = request_log.parse(message(path=logged))

    assert record is not None
    assert f" {shown} " in request_log.line(record)


def test_an_odd_host_is_shown_quoted_and_on_one_line() -> None:
    record = request_log.parse(message(host=r'"a\"b c"'))

    assert record is not None
    assert record.host == 'a"b c'
    assert ' host="a\\"b c" ' in request_log.line(record)
    record = request_log.parse(message(host='"a\x01b"'))
    assert record is not None and ' host="a\\x01b" ' in request_log.line(record)


def test_a_request_to_an_unknown_host_belongs_to_no_slot() -> None:
    record = request_log.parse(
        message(backend="unknown_host", server="<NOSRV>", status=404, state="LR")
    )

    assert record is not None
    assert haproxy.backend_slot(record.backend) is None
    assert haproxy.backend_slot("env_x") is None
    assert haproxy.backend_slot(haproxy.backend_name(12)) == 12


@pytest.mark.parametrize(
    "text",
    [b"", b"Proxy http started.\n", b"env_0001 <NOSRV> 200 0 0 0\n", b"\xff\xfe garbage"],
)
def test_what_is_not_a_request_line_is_ignored(text: bytes) -> None:
    assert request_log.parse(text) is None


@pytest.mark.parametrize(
    ("server", "dyno"),
    [
        ("3fa85f64-web-1-p41234", "web.1"),
        ("3fa85f64-api-worker-12-p8000", "api-worker.12"),
        ("<NOSRV>", None),
        ("added-by-hand", "added-by-hand"),
    ],
)
def test_a_server_is_shown_as_the_process_it_is(server: str, dyno: str | None) -> None:
    assert request_log.dyno(server) == dyno
