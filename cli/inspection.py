"""What ran and what runs: `releases`, `ps`, `artifacts`, `pipelines show` (with its rollout's
steps) and `logs build`."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from shipyard.cli.client import ApiClient, CliError, env_path
from shipyard.cli.render import (
    ago,
    block,
    console,
    fixed,
    printable,
    requested,
    short_digest,
    short_time,
    table,
    took,
)
from shipyard.cli.resources import AppOpt, EnvOpt
from shipyard.cli.rollout_plans import plan_text, record_lines, state_text

releases_cli = typer.Typer(help="List and compare releases.")
pipelines_cli = typer.Typer(help="Inspect pipelines.", no_args_is_help=True)
logs_cli = typer.Typer(help="What the app's processes print, or a pipeline's build log.")

LIVE = "●"


@releases_cli.callback(invoke_without_command=True)
def releases(ctx: typer.Context, app: AppOpt = "", env: EnvOpt = "") -> None:
    """List an environment's releases, newest first; ● marks the one live now."""
    if ctx.invoked_subcommand is not None:
        return
    if not app or not env:
        raise CliError("releases needs --app and --env")
    client = ApiClient()
    rows = client.get(f"{env_path(app, env)}/releases")
    current = client.get_or_none(f"{env_path(app, env)}/current")
    live_id = current["release"]["id"] if current else None
    table(
        f"Releases of {app}/{env}",
        [fixed("version"), "status", "cause", fixed("artifact"), "config", "created"],
        [
            [
                f"{LIVE if r['id'] == live_id else ' '} v{r['version']}",
                _release_status(client, r),
                r["cause"],
                short_digest(r["artifact_id"]),
                f"v{r['config_version']}",
                ago(r["created_at"]),
            ]
            for r in rows
        ],
    )
    if current is not None:
        deployment = current["deployment"]
        console.print(
            f"{LIVE} live: v{current['release']['version']} since "
            f"{ago(deployment['started_at'])} ({deployment['cause']})",
            highlight=False,
        )


def _release_status(client: ApiClient, release: dict[str, Any]) -> str:
    """The release's status, or `never ran` for one still `pending` whose pipeline has ended
    without running it (a failed release phase or run, or a pipeline that was given up)."""
    if release["status"] != "pending" or not release["pipeline_id"]:
        return str(release["status"])
    pipeline = client.get_or_none(f"/v1/pipelines/{release['pipeline_id']}")
    if pipeline is not None and pipeline["status"] in ("failed", "succeeded"):
        return "never ran"
    return "pending"


def ps(
    app: AppOpt,
    env: EnvOpt,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON.")] = False,
) -> None:
    """Show the live release and its processes."""
    current = ApiClient().get(f"{env_path(app, env)}/current")
    if as_json:
        print(json.dumps(current))
        return
    release, deployment = current["release"], current["deployment"]
    console.print(
        f"{app}/{env} runs release v{release['version']} "
        f"({short_digest(release['artifact_id'])}, config v{release['config_version']})",
        highlight=False,
    )
    console.print(
        f"live since {ago(deployment['started_at'])} ({deployment['cause']})", highlight=False
    )
    if current.get("url"):
        console.print(f"answers at {printable(current['url'])}", highlight=False, markup=False)
    table(
        "Processes",
        ["process", "status", "restarts", "host", fixed("pid"), "url"],
        [
            [
                f"{p['type']}.{p.get('index', 1)}",
                p["status"],
                _restarts(p),
                p.get("host") or "-",
                p.get("pid") or p.get("container") or "-",  # a container's short id
                p["url"],
            ]
            for p in current["processes"]
        ],
    )
    for standby in current.get("standby") or []:
        console.print(
            f"standby: v{standby['release_version']} runs on out of rotation until "
            f"{printable(standby['until'])} ({len(standby['processes'])} processes): "
            f"`shipyard rollback --to {standby['release_version']}` is only a router change",
            highlight=False,
            markup=False,
        )


def _restarts(process: dict[str, Any]) -> str:
    """`2 (exit 137, 3 min ago)`: how often it was started again, how it last ended, when."""
    count = int(process.get("restarts") or 0)
    if not count and process.get("last_exit") is None:
        return "0"
    details = [f"exit {process['last_exit']}"] if process.get("last_exit") is not None else []
    if process.get("restarted_at"):
        details.append(ago(process["restarted_at"]))
    return f"{count} ({', '.join(details)})" if details else str(count)


def print_pipeline(pipeline: dict[str, Any]) -> None:
    """A pipeline, its stages as a table, and below it each failure's error in full."""
    console.print(
        f"Pipeline {pipeline['id']} ({_kind(pipeline)}) of {pipeline['app']}/"
        f"{pipeline['environment']}: {pipeline['status']}",
        highlight=False,
        markup=False,
    )
    console.print(
        f"ref {pipeline['ref'] or '-'}, by {requested(pipeline)}, "
        f"created {short_time(pipeline['created_at'])} UTC",
        highlight=False,
        markup=False,
    )
    table(
        "Stages",
        ["stage", "status", "worker", fixed("result"), fixed("took")],
        [
            [
                s["name"],
                _stage_status(s),
                (s["hostname"] or "").split(".")[0],  # its short name, as `hostname -s`
                short_digest(s["result_id"]),
                took(s["started_at"], s["finished_at"]),
            ]
            for s in pipeline["stages"]
        ],
    )
    _print_rollout(pipeline)
    failed = [s for s in pipeline["stages"] if s["error"]]
    for stage in pipeline["stages"]:
        if stage["error"]:
            block(f"{stage['name']} failed:", stage["error"])
        if stage["output"]:  # the release command's, failed or not
            block(f"{stage['name']} output:", stage["output"])
    if pipeline["error"] and not failed:
        block("failed:", pipeline["error"])


def _print_rollout(pipeline: dict[str, Any]) -> None:
    """How its release goes live, and how that went: each step with its figures."""
    plan, record = pipeline.get("rollout"), pipeline.get("rollout_record")
    if not plan and not record:
        return
    console.print(f"Rollout: {plan_text(plan)}", highlight=False, markup=False)
    if record:
        console.print(f"  {state_text(record)}", highlight=False, markup=False)
        for line in record_lines(record):
            console.print(f"  {printable(line)}", highlight=False, markup=False, soft_wrap=True)


def _kind(pipeline: dict[str, Any]) -> str:
    """`restart`, or `restart worker` for a restart of that process type only."""
    only = pipeline.get("process_type")
    return f"{pipeline['kind']} {only}" if only else str(pipeline["kind"])


def _stage_status(stage: dict[str, Any]) -> str:
    """`succeeded (cached)`, `failed (attempt 2)`: the status and what is unusual about it."""
    notes = ["cached"] if stage["cache_hit"] else []
    notes += [f"attempt {stage['attempt']}"] if stage["attempt"] > 1 else []
    return str(stage["status"]) + (f" ({', '.join(notes)})" if notes else "")


@pipelines_cli.command("show")
def pipelines_show(
    pipeline_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON.")] = False,
) -> None:
    """Show a pipeline and its stages; errors in full below them."""
    pipeline = ApiClient().get(f"/v1/pipelines/{pipeline_id}")
    if as_json:
        print(json.dumps(pipeline))
        return
    print_pipeline(pipeline)


hosts_cli = typer.Typer(
    help="Run hosts: list them, drain one before maintenance, take it back.",
    invoke_without_command=True,
    no_args_is_help=False,
)


@hosts_cli.callback()
def hosts(
    context: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON.")] = False,
) -> None:
    """List the run hosts: up, down or draining, what is placed on each, what runs, its disk."""
    if context.invoked_subcommand is not None:
        return
    _print_hosts(ApiClient().get("/v1/hosts"), as_json)


@hosts_cli.command("drain")
def hosts_drain(name: str) -> None:
    """Move every environment off run host NAME (each live release starts on another host
    within seconds); nothing more is placed on it until `hosts resume`."""
    host = ApiClient().post(f"/v1/hosts/{name}/drain", {})
    console.print(
        f"Draining {printable(host['name'])}: "
        f"{', '.join(map(printable, host['environments'])) or 'nothing'} placed there will move; "
        "`shipyard hosts` shows when it is empty",
        highlight=False,
        markup=False,
    )


@hosts_cli.command("resume")
def hosts_resume(name: str) -> None:
    """Let environments be placed on run host NAME again (nothing moves back by itself)."""
    host = ApiClient().post(f"/v1/hosts/{name}/resume", {})
    console.print(f"{printable(host['name'])} takes environments again ({host['state']})")


def _print_hosts(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows))
        return
    table(
        "Run hosts",
        ["host", "state", "environments", "processes", "unpacked", "run workers"],
        [
            [
                row["name"],
                row["state"],
                ", ".join(row["environments"]) or "-",
                str(row["processes"]),
                "-" if row.get("unpacked_bytes") is None else f"{row['unpacked_bytes']:,} B",
                ", ".join(row["workers"]) or "-",
            ]
            for row in rows
        ],
    )


def artifacts(
    app: AppOpt,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON.")] = False,
) -> None:
    """List the app's artifacts, newest first, with where each is kept."""
    rows = ApiClient().get(f"/v1/apps/{app}/artifacts")
    if as_json:
        print(json.dumps(rows))
        return
    table(
        f"Artifacts of {app}",
        [fixed("artifact"), fixed("commit"), "builder", "size", "built", "location"],
        [
            [
                short_digest(row["id"]),
                row["commit"][:8],
                row["builder"],
                f"{row['size']:,}",
                ago(row["created_at"]),
                row["location"],
            ]
            for row in rows
        ],
    )


def storage(app: AppOpt, env: EnvOpt) -> None:
    """Where the environment's persistent storage is, and how the app finds it."""
    info = ApiClient().get(f"{env_path(app, env)}/storage")
    where = (
        info["location"] or info["configured"] or "(made on its run host when a release first runs)"
    )
    console.print(
        f"Persistent storage of {app}/{env}: {printable(where)}", highlight=False, markup=False
    )
    console.print(
        f"Apps find it in ${info['variable']}, and config values may name it "
        f"(DATABASE_URL=sqlite:///${info['variable']}/app.db); it survives releases, rollbacks "
        "and restarts.",
        highlight=False,
        markup=False,
    )


@logs_cli.callback(invoke_without_command=True)
def logs(
    ctx: typer.Context,
    app: AppOpt = "",
    env: EnvOpt = "",
    process: Annotated[
        str | None,
        typer.Option(
            "--process", "-p", help="Only this process type (e.g. web), or router: its requests."
        ),
    ] = None,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="Lines to show first.")] = 100,
    tail: Annotated[
        bool, typer.Option("--tail", "-t", help="Keep printing new lines (Ctrl-C stops).")
    ] = False,
) -> None:
    """The output of an environment's live processes and a line per request through its router
    (`logs build PIPELINE` for a build's)."""
    if ctx.invoked_subcommand is not None:
        return
    if not app or not env:
        raise CliError("logs needs --app and --env (or: logs build PIPELINE_ID)")
    params = {"lines": str(lines), "follow": "true" if tail else "false"}
    if process:
        params["process"] = process
    try:
        for text in ApiClient().stream_text(f"{env_path(app, env)}/logs", params):
            print(printable(text), end="", flush=True)
    except KeyboardInterrupt:
        pass


@logs_cli.command("build")
def logs_build(pipeline_id: str) -> None:
    """Print the build log of a pipeline."""
    log = ApiClient().get(f"/v1/pipelines/{pipeline_id}/log")
    print(printable(log["log"]), end="")
