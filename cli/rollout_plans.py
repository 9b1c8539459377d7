"""Rollout plans on the command line: `--canary 10,50,100 --step-time 60s --watch 5m` read into
the API's `rollout`, and a plan, its steps and their figures written out (`pipelines show`,
`canary`, a followed deploy)."""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer

from shipyard.cli.render import parse_time, utc_now

CanaryOpt = Annotated[
    str | None,
    typer.Option(
        "--canary",
        metavar="SHARES",
        help="Canary steps: the new release's percent of requests, rising, e.g. 10,50,100 "
        "(each step held --step-time, then 100); `none`: at once.",
    ),
]
StepTimeOpt = Annotated[
    str | None,
    typer.Option(
        "--step-time", metavar="DURATION", help="How long each canary step lasts: 90, 60s, 5m."
    ),
]
WatchOpt = Annotated[
    str | None,
    typer.Option(
        "--watch",
        metavar="DURATION",
        help="Watch the new release this long at 100 %, rolled back on a breach (0: no watch).",
    ),
]

# `90`, `90s`, `1.5m`, `5m`, `1h`: a number, and seconds unless a unit says otherwise.
_DURATION = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>s|m|h)?")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, None: 1}
_AT_ONCE = ("none", "off", "no")


def parse_duration(text: str, option: str) -> float:
    """Seconds from `90`, `60s`, `5m` or `1h`; a usage error naming `option` otherwise."""
    found = _DURATION.fullmatch(text.strip().lower())
    if found is None:
        raise typer.BadParameter(
            f"{text!r} is not a duration: give seconds (90), or a number with s, m or h "
            "(60s, 5m, 1h)",
            param_hint=option,
        )
    return float(found["number"]) * _UNIT_SECONDS[found["unit"]]


def parse_shares(text: str) -> list[int]:
    """`10,50,100` as [10, 50, 100]; `none` as [] (at once); a usage error otherwise (the API
    says whether the shares rise and stay within 1 to 100)."""
    cleaned = text.strip().lower()
    if cleaned in _AT_ONCE:
        return []
    parts = [part.strip().removesuffix("%").strip() for part in cleaned.split(",")]
    if not all(part.isdigit() for part in parts):
        raise typer.BadParameter(
            f"{text!r} is not a list of percentages: give them rising, comma-separated "
            "(10,50,100), or `none` to go live at once",
            param_hint="--canary",
        )
    return [int(part) for part in parts]


def rollout_request(
    canary: str | None, step_time: str | None, watch: str | None
) -> dict[str, Any] | None:
    """The API's `rollout` for the options given (None: none given, the environment's default
    as it is)."""
    request: dict[str, Any] = {}
    if canary is not None:
        request["canary"] = parse_shares(canary)
    if step_time is not None:
        request["step_seconds"] = parse_duration(step_time, "--step-time")
    if watch is not None:
        request["watch_seconds"] = parse_duration(watch, "--watch")
    return request or None


def duration_text(seconds: float) -> str:
    """`45s`, `90s`, `2m30s`, `5m`, `1h`, `1h30m`: short, exact to the second."""
    whole = round(seconds)
    if whole < 120:
        return f"{seconds:g}s" if seconds < 10 and seconds != whole else f"{whole}s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return text + (f"{secs}s" if secs else "")


def plan_text(plan: dict[str, Any] | None) -> str:
    """`canary 10 → 50 → 100 %, 60s a step, watched 5m`; `at once, unwatched` for none."""
    if not plan:
        return "at once, unwatched"
    shares = plan.get("canary") or []
    text = (
        f"canary {' → '.join(str(share) for share in shares)} %, "
        f"{duration_text(plan['step_seconds'])} a step"
        if shares
        else "at once"
    )
    watch = plan.get("watch_seconds") or 0
    return text + (f", watched {duration_text(watch)}" if watch else ", unwatched")


def figures_text(figures: dict[str, Any] | None, *, full: bool = True) -> str:
    """`0.0 % errors of 523 requests, p95 25 ms` (`full`) or `0.0 % of 4,701, p95 25 ms`."""
    if not figures:
        return "no figures yet"
    rate = f"{figures['error_rate'] * 100:.1f} %"
    text = (
        f"{rate} errors of {figures['requests']:,} requests"
        if full
        else f"{rate} of {figures['requests']:,}"
    )
    p95 = figures.get("p95_ms")
    return text + (f", p95 {p95:g} ms" if p95 is not None else "")


def step_line(step: dict[str, Any]) -> str:
    """`canary  10 %  60s  passed    new: … · live: …`: a step, how long it lasted (so far),
    how it ended, the new release's figures and those it was compared with."""
    started = parse_time(step.get("started_at"))
    ended = parse_time(step.get("ended_at"))
    lasted = ((ended or utc_now()) - started).total_seconds() if started else 0.0
    other = "live" if step["phase"] == "canary" else "before"
    figures = f"new: {figures_text(step.get('canary'))}"
    if step.get("stable"):
        figures += f" · {other}: {figures_text(step['stable'], full=False)}"
    return (
        f"{step['phase']:<6} {step['share']:>3} %  {duration_text(max(lasted, 0.0)):>5}  "
        f"{step['outcome']:<12} {figures}"
    )


def record_lines(record: dict[str, Any]) -> list[str]:
    """A rollout record's steps, one line each, with the reason of a step cut short or failed
    under it, and the rollout's own reason last."""
    lines = []
    for step in record.get("steps") or []:
        lines.append(step_line(step))
        if step.get("reason"):
            lines.append(f"    {step['outcome']}: {step['reason']}")
    if record.get("reason"):
        lines.append(f"{record['state'].replace('_', ' ')}: {record['reason']}")
    return lines


def state_text(record: dict[str, Any]) -> str:
    """`canary at 10 %`, `watching at 100 %`, `promoted`, `rolled back`…"""
    state = str(record["state"])
    if state in ("canary", "watching"):
        return f"{state} at {record['share']} %"
    return state.replace("_", " ")


def progress_lines(before: dict[str, Any] | None, after: dict[str, Any]) -> list[str]:
    """What changed in a rollout between two looks: each step as it starts and as it ends, and
    its state when it changes (what `deploy` prints while it follows a canary)."""
    lines: list[str] = []
    seen = (before or {}).get("steps") or []
    for index, step in enumerate(after.get("steps") or []):
        earlier = seen[index] if index < len(seen) else None
        if earlier is None:
            lines.append(f"{step['phase']} at {step['share']} % of requests")
        if step["outcome"] != "running" and (earlier is None or earlier["outcome"] == "running"):
            lines.append(step_line(step))
            if step.get("reason"):
                lines.append(f"    {step['outcome']}: {step['reason']}")
    if before is None or before.get("state") != after.get("state"):
        reason = f": {after['reason']}" if after.get("reason") else ""
        lines.append(f"rollout {state_text(after)}{reason}")
    return lines
