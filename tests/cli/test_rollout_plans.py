"""Rollout plans on the command line: durations and shares read, plans and steps written."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
import typer

from shipyard.cli import rollout_plans
from shipyard.cli.rollout_plans import (
    duration_text,
    parse_duration,
    parse_shares,
    plan_text,
    progress_lines,
    record_lines,
    rollout_request,
    step_line,
)
from tests.cli.conftest import NOW

NEW = {"requests": 523, "errors": 0, "error_rate": 0.0, "p95_ms": 25.0}
LIVE = {"requests": 4701, "errors": 0, "error_rate": 0.0, "p95_ms": 25.0}
BAD = {"requests": 212, "errors": 31, "error_rate": 31 / 212, "p95_ms": 40.0}


def _step(share: int, outcome: str = "passed", **more: Any) -> dict[str, Any]:
    return {
        "phase": "canary",
        "share": share,
        "started_at": "2026-12-01T21:30:00Z",
        "ended_at": "2026-12-01T21:31:00Z" if outcome != "running" else None,
        "canary": NEW,
        "stable": LIVE,
        "outcome": outcome,
        "reason": None,
        **more,
    }


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("60s", 60), ("5m", 300), ("1h", 3600), ("1.5m", 90), (" 2M ", 120), ("0", 0)],
)
def test_durations_are_seconds_or_a_number_with_a_unit(text: str, seconds: float) -> None:
    assert parse_duration(text, "--watch") == seconds


@pytest.mark.parametrize("text", ["", "5 minutes", "m5", "-1s", "1d", "1h30m", "soon"])
def test_a_bad_duration_is_a_usage_error_naming_the_option(text: str) -> None:
    with pytest.raises(typer.BadParameter, match="is not a duration") as refused:
        parse_duration(text, "--step-time")

    assert refused.value.param_hint == "--step-time"


@pytest.mark.parametrize(
    ("text", "shares"),
    [("10,50,100", [10, 50, 100]), ("25", [25]), (" 10 , 50% ", [10, 50]), ("none", [])],
)
def test_shares_are_comma_separated_percentages_or_none(text: str, shares: list[int]) -> None:
    assert parse_shares(text) == shares


@pytest.mark.parametrize("text", ["10;50", "ten", "10,,50", "-10", "0.5"])
def test_bad_shares_are_a_usage_error(text: str) -> None:
    with pytest.raises(typer.BadParameter, match="is not a list of percentages"):
        parse_shares(text)


def test_the_request_holds_only_the_options_given() -> None:
    assert rollout_request(None, None, None) is None
    assert rollout_request("10,50", "90s", None) == {"canary": [10, 50], "step_seconds": 90}
    assert rollout_request("none", None, "0") == {"canary": [], "watch_seconds": 0}


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.5, "0.5s"), (45, "45s"), (60, "60s"), (90, "90s"), (150, "2m30s"), (300, "5m")],
)
def test_durations_are_written_short(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text
    assert duration_text(5400) == "1h30m"


def test_plans_are_written_in_one_line() -> None:
    canary = {"canary": [10, 50, 100], "step_seconds": 60, "watch_seconds": 300}

    assert plan_text(canary) == "canary 10 → 50 → 100 %, 60s a step, watched 5m"
    assert (
        plan_text({**canary, "watch_seconds": 0}) == "canary 10 → 50 → 100 %, 60s a step, unwatched"
    )
    assert plan_text({"canary": [], "step_seconds": 60, "watch_seconds": 120}) == (
        "at once, watched 2m"
    )
    assert plan_text(None) == "at once, unwatched"


def test_a_step_shows_its_share_time_outcome_and_both_releases_figures() -> None:
    assert step_line(_step(10)) == (
        "canary  10 %    60s  passed       new: 0.0 % errors of 523 requests, p95 25 ms"
        " · live: 0.0 % of 4,701, p95 25 ms"
    )


def test_a_running_step_shows_how_long_so_far(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rollout_plans, "utc_now", lambda: NOW)  # 21:34:56

    line = step_line(_step(50, "running", canary=None, stable=None))

    assert line == "canary  50 %  4m56s  running      new: no figures yet"


def test_a_watch_step_compares_with_the_release_before() -> None:
    watched = _step(100, "breached", phase="watch", canary=BAD, reason="errors 14.6 % > 1 %")

    lines = record_lines(
        {"state": "rolled_back", "steps": [watched], "reason": "the watch breached"}
    )

    assert lines == [
        "watch  100 %    60s  breached     new: 14.6 % errors of 212 requests, p95 40 ms"
        " · before: 0.0 % of 4,701, p95 25 ms",
        "    breached: errors 14.6 % > 1 %",
        "rolled back: the watch breached",
    ]


def test_progress_says_each_step_as_it_starts_and_ends_and_each_state() -> None:
    first = {"state": "canary", "share": 10, "steps": [_step(10, "running")]}
    second = {"state": "canary", "share": 50, "steps": [_step(10), _step(50, "running")]}
    aborted = {
        "state": "aborted",
        "share": 0,
        "steps": [_step(10), _step(50, "aborted", reason="abort asked")],
        "reason": "abort asked",
    }

    assert progress_lines(None, first) == [
        "canary at 10 % of requests",
        "rollout canary at 10 %",
    ]
    assert progress_lines(first, first) == []
    shown = progress_lines(first, second)
    assert shown[0].startswith("canary  10 %    60s  passed")
    assert shown[1:] == ["canary at 50 % of requests"]
    ended = progress_lines(second, aborted)
    assert ended[0].startswith("canary  50 %    60s  aborted")
    assert ended[1:] == ["    aborted: abort asked", "rollout aborted: abort asked"]


def test_times_are_read_whatever_their_zone() -> None:
    assert isinstance(NOW, datetime)
    step = _step(10, started_at="2026-12-01T21:30:00+00:00", ended_at="2026-12-01T21:30:30")
    assert "  30s  passed" in step_line(step)
