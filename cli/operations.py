"""Operations on environments: rollback, promote, releases diff, history, gc."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from shipyard.cli.client import ApiClient, CliError, env_path
from shipyard.cli.follow import TimeoutOpt, WaitOpt, follow_to_live, web_url
from shipyard.cli.inspection import releases_cli
from shipyard.cli.render import (
    block,
    console,
    fixed,
    printable,
    requested,
    short_digest,
    short_time,
    table,
)
from shipyard.cli.resources import AppOpt, EnvOpt
from shipyard.cli.rollout_plans import CanaryOpt, StepTimeOpt, WatchOpt, rollout_request


def _finish(
    client: ApiClient, pipeline: dict[str, Any], what: str, wait: bool, timeout: float
) -> None:
    """Say what started; unless told not to wait, follow it and say what runs now."""
    console.print(f"Pipeline {pipeline['id']}: {what}", highlight=False, soft_wrap=True)
    if not wait:
        return
    current = follow_to_live(client, pipeline["id"], timeout)
    release = current["release"]
    console.print(
        f"{pipeline['environment']} now runs release v{release['version']} "
        f"({short_digest(release['artifact_id'])}){web_url(current)}",
        highlight=False,
        soft_wrap=True,  # one line, whatever the width: scripts grep it
    )


def rollback(
    app: AppOpt,
    env: EnvOpt,
    to: Annotated[
        int | None, typer.Option("--to", help="Release version (default: previous).")
    ] = None,
    timeout: TimeoutOpt = 600,
    wait: WaitOpt = True,
) -> None:
    """Run an earlier release again, exactly as it was: same artifact, same config (a canary
    or watch under way is aborted first)."""
    client = ApiClient()
    body = {"to_version": to} if to is not None else {}
    pipeline = client.post(f"{env_path(app, env)}/rollback", body)
    target = f"v{to}" if to is not None else "the previous release"
    _finish(client, pipeline, f"rolling {app}/{env} back to {target}", wait, timeout)


def scale(
    app: AppOpt,
    env: EnvOpt,
    counts: Annotated[list[str], typer.Argument(help="TYPE=N… e.g. web=3 worker=2.")],
    timeout: TimeoutOpt = 600,
    wait: WaitOpt = True,
) -> None:
    """Run N processes of each TYPE (Heroku's ps:scale); the live release runs again so, with
    no new release and no dropped request."""
    processes: dict[str, int] = {}
    for item in counts:
        kind, sep, number = item.partition("=")
        if not sep or not number.isdigit():
            raise CliError(f"expected TYPE=N (e.g. web=3), got {item!r}")
        processes[kind] = int(number)
    client = ApiClient()
    result = client.patch(f"{env_path(app, env)}/formation", {"processes": processes})
    formation = " ".join(f"{k}={v}" for k, v in sorted(result["formation"].items()))
    console.print(f"Formation of {app}/{env}: {formation}", highlight=False, markup=False)
    if result["pipeline_id"] is None:
        console.print("Nothing is live yet: the next deploy runs it so.", highlight=False)
        return
    pipeline = {"id": result["pipeline_id"], "environment": env}
    _finish(client, pipeline, f"scaling {app}/{env}", wait, timeout)


def restart(
    app: AppOpt,
    env: EnvOpt,
    process_type: Annotated[
        str | None,
        typer.Argument(
            metavar="TYPE", help="Only this process type (e.g. web); the others keep running."
        ),
    ] = None,
    timeout: TimeoutOpt = 600,
    wait: WaitOpt = True,
) -> None:
    """Restart the environment's processes (Heroku's ps:restart), or only those of TYPE: the
    live release runs again, its new processes healthy before the router switches to them, the
    old ones drained."""
    client = ApiClient()
    body = {"process_type": process_type} if process_type is not None else {}
    pipeline = client.post(f"{env_path(app, env)}/restart", body)
    what = f"the {process_type} processes of {app}/{env}" if process_type else f"{app}/{env}"
    _finish(client, pipeline, f"restarting {what}", wait, timeout)


def promote(
    app: AppOpt,
    source: Annotated[str, typer.Argument(help="Environment whose live artifact moves.")],
    target: Annotated[str, typer.Argument(help="Environment it moves to, with its own config.")],
    canary: CanaryOpt = None,
    step_time: StepTimeOpt = None,
    watch: WatchOpt = None,
    timeout: TimeoutOpt = 600,
    wait: WaitOpt = True,
) -> None:
    """Promote the artifact live in SOURCE to TARGET as a new release with TARGET's config
    (going live as TARGET's plan says, or as --canary, --step-time and --watch say)."""
    body: dict[str, object] = {"from": source, "to": target}
    rollout = rollout_request(canary, step_time, watch)
    if rollout is not None:
        body["rollout"] = rollout
    client = ApiClient()
    pipeline = client.post(f"/v1/apps/{app}/promotions", body)
    _finish(client, pipeline, f"promoting {app} {source} → {target}", wait, timeout)


@releases_cli.command("diff")
def releases_diff(
    old: Annotated[int, typer.Argument(help="The earlier release version.")],
    new: Annotated[int, typer.Argument(help="The later release version.")],
    app: AppOpt,
    env: EnvOpt,
) -> None:
    """What changed from release OLD to release NEW (secret values are never shown)."""
    diff = ApiClient().get(f"{env_path(app, env)}/releases/{new}/diff", {"against": str(old)})
    before, after = diff["artifact_from"], diff["artifact_to"]
    if diff["artifact_changed"]:
        console.print(
            f"artifact: {short_digest(before['id'])} ({before['commit']}) → "
            f"{short_digest(after['id'])} ({after['commit']})",
            highlight=False,
        )
    else:
        console.print(
            f"artifact: unchanged ({short_digest(after['id'])}, {after['commit']})",
            highlight=False,
        )
    if not diff["config"]:
        console.print("config: unchanged")
    for change in diff["config"]:
        key, kind = change["key"], change["change"]
        if kind == "added":
            line = f"+ {key}={change['to']}"
        elif kind == "removed":
            line = f"- {key}"
        else:
            line = f"~ {key}: {change['from']} → {change['to']}"
        console.print(printable(line), markup=False, highlight=False)


def history(
    app: AppOpt,
    env: EnvOpt,
    at: Annotated[
        str | None, typer.Option(help="ISO-8601 instant (UTC if no zone): what ran then.")
    ] = None,
) -> None:
    """What ran in ENV at an instant (--at), or the list of deployments."""
    client = ApiClient()
    if at is not None:
        try:
            parsed = datetime.fromisoformat(at)
        except ValueError as exc:
            raise CliError(f"--at {at!r} is not an ISO-8601 instant") from exc
        instant = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).isoformat()
        live = client.get(f"{env_path(app, env)}/history", {"at": instant})
        release, deployment = live["release"], live["deployment"]
        ended = deployment["ended_at"]
        console.print(
            f"At {instant}, {app}/{env} ran release v{release['version']} "
            f"({short_digest(release['artifact_id'])}, config v{release['config_version']})",
            highlight=False,
            soft_wrap=True,  # one line, whatever the width: scripts grep it
        )
        console.print(
            f"  live from {short_time(deployment['started_at'])} UTC "
            f"until {short_time(ended) + ' UTC' if ended else 'now'}",
            highlight=False,
        )
        # Why it was live then (its deployment), and how that release came to be (its own).
        console.print(
            f"  live by: {deployment['cause']}, asked by {requested(deployment)}",
            highlight=False,
            markup=False,
        )
        console.print(f"  the release was made by: {release['cause']}", highlight=False)
        return
    rows = client.get(f"{env_path(app, env)}/deployments")
    # One time each: when it went live (each was live until the one above it), or when it
    # failed; to the second, in UTC.
    table(
        f"Deployments of {app}/{env}, newest first",
        ["release", "status", "cause", fixed("at (UTC)"), "by"],
        [
            [
                f"v{row['release_version']}",
                row["status"],
                row["cause"],
                short_time(row["started_at"] or row["ended_at"]),
                requested(row),
            ]
            for row in rows
        ],
    )
    failures = [row for row in rows if row["error"]]
    for row in failures:
        block(f"v{row['release_version']} failed:", row["error"])


def gc(
    keep: Annotated[
        int | None, typer.Option(help="Releases kept per environment (default: the setting).")
    ] = None,
) -> None:
    """Remove artifacts no kept release needs; their releases become expired."""
    result = ApiClient().post("/v1/gc", {"keep": keep} if keep is not None else {})
    console.print(
        f"removed {len(result['removed_artifacts'])} artifacts, "
        f"expired {len(result['expired_releases'])} releases"
    )
