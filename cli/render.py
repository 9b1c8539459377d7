"""How the CLI shows things: tables that fit 80 columns, short digests and IDs, readable times."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from rich import box
from rich.console import Console
from rich.padding import Padding
from rich.table import Column, Table
from rich.text import Text

from shipyard.cli.client import ApiClient, CliError

console = Console()

# Enough hex digits to tell artifacts and rows apart by eye; the full value is in `--json`,
# `pipelines show` headers and the API.
_DIGEST_HEX = 8
_ID_CHARS = 8
# Times closer than this are relative ("3 min ago"); older ones are dates, which stay exact.
_RELATIVE_WITHIN = timedelta(days=7)


# C0 controls but tab and newline, DEL and the C1 controls: what a terminal may act on (colours,
# cursor moves, a new window title, a rewritten screen) rather than show.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` with each control character a terminal would obey shown as `\\xNN` instead: what
    the CLI prints comes from apps and tokens that must not drive the reader's terminal."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def utc_now() -> datetime:
    """Now, for relative times (tests freeze it)."""
    return datetime.now(UTC)


def short_digest(digest: str | None) -> str:
    """`sha256:a3634f1b` for `sha256:a3634f1b…`; anything else (an ID) shortened as an ID."""
    if not digest:
        return ""
    algorithm, sep, hexdigest = digest.partition(":")
    if not sep:
        return short_id(digest)
    return f"{algorithm}:{hexdigest[:_DIGEST_HEX]}"


def short_id(value: str | None) -> str:
    """The first characters of a UUID: what `docker ps` shows, and what the CLI accepts back."""
    return (value or "")[:_ID_CHARS]


def parse_time(value: str | None) -> datetime | None:
    """An API timestamp as an aware datetime (UTC if it carries no zone)."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def short_time(value: str | None) -> str:
    """`2026-12-01 21:34:07` in UTC (to the second: what ran at 14:00 has one answer); `-` for
    none."""
    parsed = parse_time(value)
    return parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if parsed else "-"


def requested(item: dict[str, Any]) -> str:
    """How a pipeline (or a deployment, by its pipeline) was asked for, and by whom: `cli
    (admin)`, `schedule (schedule 3f2a…)`; `-` when unknown (recorded before it was kept)."""
    trigger, by = item.get("trigger"), item.get("requested_by")
    if not trigger:
        return "-"
    return f"{trigger} ({by})" if by else str(trigger)


def ago(value: str | None) -> str:
    """`3 min ago` (or `in 2 h` for a future time); a date beyond a week; `-` for none."""
    parsed = parse_time(value)
    if parsed is None:
        return "-"
    delta = utc_now() - parsed
    size = abs(delta)
    if size >= _RELATIVE_WITHIN:
        return short_time(value)
    if size < timedelta(seconds=1):
        return "just now"
    return f"{span_of(size)} ago" if delta > timedelta(0) else f"in {span_of(size)}"


def span_of(delta: timedelta) -> str:
    """`42 s`, `3 min`, `5 h`, `2 days`: one unit, rounded down."""
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 48 * 3600:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def exact_span(seconds: int) -> str:
    """`90 s`, `5 min`, `1 h`, `2 days`: the largest unit that is exact (for settings)."""
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def took(start: str | None, end: str | None) -> str:
    """How long from `start` to `end`: `4.2 s`, `1 min 3 s`; so far, if it has not ended."""
    started = parse_time(start)
    if started is None:
        return ""
    finished = parse_time(end)
    seconds = ((finished or utc_now()) - started).total_seconds()
    if seconds < 60:
        text = f"{seconds:.1f} s"
    elif seconds < 3600:
        text = f"{int(seconds) // 60} min {int(seconds) % 60} s"
    else:
        text = f"{int(seconds) // 3600} h {int(seconds) % 3600 // 60} min"
    return text if finished else f"{text} so far"


def table(title: str, columns: Sequence[str | Column], rows: Iterable[Sequence[Any]]) -> None:
    """Print a borderless table; cells are text (never markup). Text wraps between its words; a
    word wider than its column (a path, a URL, a digest) is never broken across lines: it is
    cut, with `…` to say so (`--json` and `show` commands give it whole)."""
    shown = Table(
        *[Column(c, overflow="ellipsis") if isinstance(c, str) else c for c in columns],
        title=title,
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )
    for row in rows:
        shown.add_row(*[Text("" if cell is None else printable(str(cell))) for cell in row])
    console.print(shown)


def fixed(header: str) -> Column:
    """A column whose cells never wrap (IDs, digests, times), so they can be copied whole."""
    return Column(header, no_wrap=True, overflow="ignore")


def indented(text: str, indent: int = 2) -> None:
    """A paragraph whose wrapped lines keep its indent."""
    console.print(Padding(Text(printable(text)), (0, 0, 0, indent)), highlight=False)


def block(heading: str, text: str) -> None:
    """A long text (an error, a traceback, a command's output) below a table, verbatim."""
    console.print()
    console.print(printable(heading), style="bold", highlight=False, markup=False)
    # Soft-wrapped: the terminal folds long lines, so a copied traceback is the traceback.
    console.print(printable(text.rstrip("\n")), highlight=False, markup=False, soft_wrap=True)


def resolve_id(client: ApiClient, path: str, given: str, what: str) -> str:
    """The full ID of the item of `path` whose ID starts with `given` (as `ls` shows it)."""
    if len(given) == 36:  # already a whole UUID
        return given
    return pick_id(given, [str(item["id"]) for item in client.get(path)], what)


def pick_id(given: str, ids: list[str], what: str) -> str:
    """The one of `ids` that starts with `given`; an error if none or several do."""
    matches = [i for i in ids if given and i.startswith(given)]
    if not matches:
        raise CliError(f"no {what} with an ID starting with {given!r}")
    if len(matches) > 1:
        raise CliError(f"{given!r} is the start of {len(matches)} {what} IDs; give more of it")
    return matches[0]
