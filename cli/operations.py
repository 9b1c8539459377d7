"""Operations on environments: rollback, promote, releases diff, history, gc."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console

from cli.client import ApiClient, CliError
from cli.deploy import follow_to_live
from cli.resources import AppOpt, EnvOpt, env_path, releases_cli

console = Console()
TimeoutOpt = Annotated[float, typer.Option(help="Seconds to follow the pipeline.")]


def _finish(client: ApiClient, pipeline: dict[str, Any], timeout: float, what: str) -> None:
    console.print(f"Pipeline {pipeline['id']}: {what}")
    current = follow_to_live(client, pipeline["id"], timeout)
    console.print(
        f"{pipeline['environment']} now runs release v{current['release']['version']} "
        f"({current['release']['artifact_id'][:19]})"
    )


def rollback(
    app: AppOpt,
    env: EnvOpt,
    to: Annotated[
        int | None, typer.Option("--to", help="Release version (default: previous).")
    ] = None,
    timeout: TimeoutOpt = 600,
) -> None:
    """Run an earlier release again, exactly as it was: same artifact, same config."""
    client = ApiClient()
    body = {"to_version": to} if to is not None else {}
    pipeline = client.post(f"{env_path(app, env)}/rollback", body)
    target = f"v{to}" if to is not None else "the previous release"
    _finish(client, pipeline, timeout, f"rolling {app}/{env} back to {target}")


def promote(
    app: AppOpt,
    source: Annotated[str, typer.Argument(help="Environment whose live artifact moves.")],
    target: Annotated[str, typer.Argument(help="Environment it moves to, with its own config.")],
    timeout: TimeoutOpt = 600,
) -> None:
    """Promote the artifact live in SOURCE to TARGET as a new release with TARGET's config."""
    client = ApiClient()
    pipeline = client.post(f"/v1/apps/{app}/promotions", {"from": source, "to": target})
    _finish(client, pipeline, timeout, f"promoting {app} {source} → {target}")


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
            f"artifact: {before['id'][:19]} ({before['commit']}) → "
            f"{after['id'][:19]} ({after['commit']})",
            highlight=False,
        )
    else:
        console.print(f"artifact: unchanged ({after['id'][:19]}, {after['commit']})")
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
        console.print(line, markup=False, highlight=False)


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
        console.print(
            f"At {instant}, {app}/{env} ran release v{release['version']} "
            f"({release['artifact_id'][:19]}, config v{release['config_version']}, "
            f"cause {release['cause']}), live from {deployment['started_at']} "
            f"until {deployment['ended_at'] or 'now'}"
        )
        return
    rows = client.get(f"{env_path(app, env)}/deployments")
    for row in rows:
        console.print(
            f"v{row['release_version']:<4} {row['status']:<10} {row['cause']:<9} "
            f"{row['started_at'] or '-'} → {row['ended_at'] or ''}",
            highlight=False,
        )


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
