"""The CLI's short forms: relative times, short dates, durations, digests and IDs."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shipyard.cli import render
from shipyard.cli.client import CliError
from tests.cli.conftest import NOW


def _iso(**delta: float) -> str:
    return (NOW - timedelta(**delta)).isoformat()


@pytest.mark.usefixtures("frozen_now")
@pytest.mark.parametrize(
    ("when", "shown"),
    [
        (_iso(seconds=0.4), "just now"),
        (_iso(seconds=42), "42 s ago"),
        (_iso(minutes=3, seconds=59), "3 min ago"),
        (_iso(hours=47), "47 h ago"),
        (_iso(days=6, hours=23), "6 days ago"),
        (_iso(minutes=-90), "in 1 h"),
        (_iso(days=7), "2026-11-24 21:34:56"),
        (None, "-"),
    ],
)
def test_ago_is_relative_within_a_week_and_a_utc_date_beyond(when: str | None, shown: str) -> None:
    assert render.ago(when) == shown


def test_short_time_is_utc_to_the_second_whatever_the_zone_given() -> None:
    assert render.short_time("2026-12-01T22:34:56+01:00") == "2026-12-01 21:34:56"
    assert render.short_time("2026-12-01T21:34:56.9") == "2026-12-01 21:34:56"  # no zone: UTC


def test_requested_says_how_and_by_whom() -> None:
    assert render.requested({"trigger": "cli", "requested_by": "admin"}) == "cli (admin)"
    assert render.requested({"trigger": "failover", "requested_by": None}) == "failover"
    assert render.requested({}) == "-"


@pytest.mark.usefixtures("frozen_now")
def test_took_is_the_duration_of_a_stage_or_how_long_so_far() -> None:
    assert render.took(_iso(seconds=5), _iso(seconds=0.8)) == "4.2 s"
    assert render.took(_iso(minutes=3), _iso(minutes=1, seconds=57)) == "1 min 3 s"
    assert render.took(_iso(hours=2, minutes=6), None) == "2 h 6 min so far"
    assert render.took(None, None) == ""


def test_exact_span_uses_the_largest_unit_that_is_exact() -> None:
    assert [render.exact_span(s) for s in (90, 300, 3600, 5400, 172800, 0)] == [
        "90 s",
        "5 min",
        "1 h",
        "90 min",
        "2 days",
        "0 s",
    ]


def test_digests_keep_their_algorithm_and_eight_hex_digits_and_ids_eight_characters() -> None:
    assert render.short_digest("sha256:a3634f1b" + "0" * 56) == "sha256:a3634f1b"
    assert render.short_digest("6fd3a7ca-1111-2222-3333-444455556666") == "6fd3a7ca"
    assert render.short_digest(None) == ""


def test_pick_id_finds_the_one_id_a_prefix_starts() -> None:
    assert render.pick_id("6fd", ["6fd3a7ca-0000", "6fe00000-0000"], "token") == "6fd3a7ca-0000"


def test_pick_id_refuses_an_ambiguous_unknown_or_empty_prefix() -> None:
    ids = ["6fd3a7ca-0000", "6fd40000-0000"]

    with pytest.raises(CliError, match="'6fd' is the start of 2 token IDs; give more of it"):
        render.pick_id("6fd", ids, "token")
    with pytest.raises(CliError, match="no token with an ID starting with 'ab'"):
        render.pick_id("ab", ids, "token")
    with pytest.raises(CliError, match="no token with an ID starting with ''"):
        render.pick_id("", ids, "token")


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("title\x1b]0;pwned\x07", "title\\x1b]0;pwned\\x07"),
        ("c1 \x9b2J and del \x7f", "c1 \\x9b2J and del \\x7f"),
        ("back\rover\x08", "back\\x0dover\\x08"),
        ("lines\nand\ttabs stay, as does é ü →", "lines\nand\ttabs stay, as does é ü →"),
    ],
)
def test_printable_shows_control_characters_as_escapes(text: str, shown: str) -> None:
    assert render.printable(text) == shown


def test_a_table_cell_never_carries_an_escape_sequence(capsys: pytest.CaptureFixture[str]) -> None:
    render.table("Processes", ["process", "url"], [["web.1", "http://x\x1b[2J"]])

    output = capsys.readouterr().out
    assert "\x1b" not in output and "http://x\\x1b[2J" in output
