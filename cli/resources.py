"""Commands over the API's resources: apps, environments and their config."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from shipyard.cli.client import ApiClient, CliError, env_path
from shipyard.cli.follow import TimeoutOpt, WaitOpt, follow_to_live, web_url
from shipyard.cli.render import ago, console, printable, table
from shipyard.cli.rollout_plans import (
    CanaryOpt,
    StepTimeOpt,
    WatchOpt,
    duration_text,
    parse_duration,
    plan_text,
    rollout_request,
)
from shipyard.shared.repo_location import is_local_path

AppOpt = Annotated[str, typer.Option("--app", "-a", help="App name.")]
EnvOpt = Annotated[str, typer.Option("--env", "-e", help="Environment name.")]
StandbyOpt = Annotated[
    str | None,
    typer.Option(
        "--standby",
        metavar="DURATION",
        help="How long a replaced release keeps running out of rotation, for a rollback that "
        "is only a router change (default 5m; 0: stopped once drained).",
    ),
]
HostsOpt = Annotated[
    str | None,
    typer.Option(help="Spread it over these run hosts, comma-separated (the first coordinates)."),
]
SpreadOpt = Annotated[
    str | None,
    typer.Option(help="Spread it over N up run hosts with the fewest processes, or `all`."),
]

apps_cli = typer.Typer(help="Register, change, list and destroy apps.", no_args_is_help=True)
envs_cli = typer.Typer(help="Create, change, place and list environments.", no_args_is_help=True)
config_cli = typer.Typer(help="Show and change an environment's config.")


@apps_cli.command("create")
def apps_create(
    name: str,
    repo: Annotated[str, typer.Option(help="Git repository: a local path or a URL.")],
    path: Annotated[str, typer.Option(help="Subdirectory of the app in the repo.")] = "",
    builder: Annotated[str, typer.Option(help="Builder driver.")] = "local",
) -> None:
    """Register an app."""
    if is_local_path(repo):  # the servers do not run in this directory: the path is sent whole
        repo = str(Path(repo).expanduser().absolute())
    app = ApiClient().post(
        "/v1/apps", {"name": name, "repo": repo, "path": path, "builder": builder}
    )
    where = printable(app["repo"] + (f", path {app['path']}" if app["path"] else ""))
    console.print(
        f"Created app [bold]{app['name']}[/] ({escape(where)}; builder {app['builder']})",
        highlight=False,
        soft_wrap=True,
    )


@apps_cli.command("update")
def apps_update(
    name: str,
    repo: Annotated[str | None, typer.Option(help="Git repository: a local path or a URL.")] = None,
    path: Annotated[str | None, typer.Option(help="Subdirectory of the app in the repo.")] = None,
    builder: Annotated[str | None, typer.Option(help="Builder driver.")] = None,
) -> None:
    """Change an app's repository, folder or builder (Heroku's buildpacks:set); the next deploy
    builds with them, what runs stays until then."""
    if repo is not None and is_local_path(repo):
        repo = str(Path(repo).expanduser().absolute())
    changes = {
        k: v for k, v in {"repo": repo, "path": path, "builder": builder}.items() if v is not None
    }
    if not changes:
        raise CliError("nothing to change: give --repo, --path or --builder")
    app = ApiClient().patch(f"/v1/apps/{name}", changes)
    where = printable(app["repo"] + (f", path {app['path']}" if app["path"] else ""))
    console.print(
        f"Updated app [bold]{app['name']}[/] ({escape(where)}; builder {app['builder']}): "
        "the next deploy builds with it",
        highlight=False,
        soft_wrap=True,
    )


@apps_cli.command("destroy")
def apps_destroy(
    name: str,
    confirm: Annotated[
        str | None, typer.Option(help="The app's name again: destroy without asking.")
    ] = None,
) -> None:
    """Destroy an app (Heroku's apps:destroy): its processes stop, its URLs stop answering,
    its schedules and webhooks stop. Its records stay in the store; its name is free again."""
    if confirm is None:
        console.print(
            f"Destroying [bold]{escape(name)}[/] stops all its processes in every environment "
            "and cannot be undone.",
            highlight=False,
        )
        confirm = str(typer.prompt(f"Type {name} to confirm"))
    gone = ApiClient().delete(f"/v1/apps/{name}", {"confirm": confirm})
    where = ", ".join(gone["environments"]) or "no environment"
    console.print(
        f"Destroyed [bold]{escape(gone['name'])}[/] ({escape(where)}): "
        f"{gone['stopped']} live release(s) stop on their run hosts within seconds"
        + (
            f", {gone['one_offs_cancelled']} one-off(s) asked to end"
            if gone["one_offs_cancelled"]
            else ""
        )
        + "; their persistent storage is kept, put aside on the run hosts (docs/operations.md)",
        highlight=False,
        soft_wrap=True,
    )


@apps_cli.command("ls")
def apps_ls() -> None:
    """List apps."""
    apps = ApiClient().get("/v1/apps")
    table(
        "Apps",
        ["name", "repo", "path", "builder", "created"],
        [[a["name"], a["repo"], a["path"], a["builder"], ago(a["created_at"])] for a in apps],
    )


@envs_cli.command("create")
def envs_create(
    name: str,
    app: AppOpt,
    runner: Annotated[str, typer.Option(help="Runner driver.")] = "local",
    health_path: Annotated[str, typer.Option(help="Path the health check GETs.")] = "/",
    health_timeout: Annotated[float, typer.Option(help="Seconds to become healthy.")] = 30.0,
    storage_dir: Annotated[
        str | None,
        typer.Option(help="Host directory for persistent storage (default: in the data dir)."),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(
            help="Run host to place it on (its SHIPYARD_HOST_NAME; default: where it first runs)."
        ),
    ] = None,
    hosts: HostsOpt = None,
    spread: SpreadOpt = None,
    standby: StandbyOpt = None,
) -> None:
    """Create an environment of an app."""
    body: dict[str, object] = {
        "name": name,
        "runner": runner,
        "health_path": health_path,
        "health_timeout": health_timeout,
    }
    if storage_dir is not None:
        body["storage_dir"] = storage_dir
    if standby is not None:
        body["standby_seconds"] = parse_duration(standby, "--standby")
    body.update(_placement(host, hosts, spread))
    env = ApiClient().post(f"/v1/apps/{app}/environments", body)
    console.print(
        f"Created environment [bold]{env['name']}[/] of {app} "
        f"(runner {env['runner']}{_placed(env)})"
    )


@envs_cli.command("place")
def envs_place(
    env: EnvOpt,
    app: AppOpt,
    host: Annotated[str | None, typer.Option(help="The one run host to run it on.")] = None,
    hosts: HostsOpt = None,
    spread: SpreadOpt = None,
) -> None:
    """Run an environment on other run hosts: its live release starts there healthy, then
    stops where it ran."""
    body = _placement(host, hosts, spread)
    if not body:
        raise CliError("say where: --host NAME, --hosts a,b or --spread N|all")
    placed = ApiClient().put(f"/v1/apps/{app}/environments/{env}/placement", body)
    console.print(f"{placed['name']} of {app} is placed{_placed(placed)}")
    if placed.get("pipeline_id"):
        console.print(f"moving it: pipeline {placed['pipeline_id']} (`shipyard pipelines show`)")


@envs_cli.command("update")
def envs_update(
    name: str,
    app: AppOpt,
    canary: CanaryOpt = None,
    step_time: StepTimeOpt = None,
    watch: WatchOpt = None,
    no_rollout: Annotated[
        bool,
        typer.Option("--no-rollout", help="Go live at once, unwatched, by default (clears it)."),
    ] = False,
    standby: StandbyOpt = None,
) -> None:
    """Change how the environment's deploys, config releases and promotions go live by default:
    canary steps (--canary 10,50 --step-time 60s), then a watch (--watch 5m); each option left
    out keeps its current value. A deploy's own options override it."""
    client = ApiClient()
    path = env_path(app, name)
    asked = rollout_request(canary, step_time, watch)
    if no_rollout and asked is not None:
        raise CliError("--no-rollout clears the plan: give it alone")
    body: dict[str, object] = {}
    if no_rollout:
        body["rollout"] = None
    elif asked is not None:
        body["rollout"] = {**(client.get(path).get("rollout") or {}), **asked}
    if standby is not None:
        body["standby_seconds"] = parse_duration(standby, "--standby")
    if not body:
        raise CliError(
            "nothing to change: give --canary, --step-time, --watch, --no-rollout or --standby"
        )
    changed = client.patch(path, body)
    if "rollout" in body:
        console.print(
            f"Deploys of {app}/{name} go live {plan_text(changed.get('rollout'))} by default",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    if standby is not None:
        console.print(
            f"A release {app}/{name} replaces stands by "
            f"{duration_text(changed['standby_seconds'])} (a rollback to it is warm)",
            highlight=False,
            markup=False,
        )


def _placement(host: str | None, hosts: str | None, spread: str | None) -> dict[str, object]:
    """The API's placement fields for the CLI's options."""
    if sum(option is not None for option in (host, hosts, spread)) > 1:
        raise CliError("give one of --host, --hosts and --spread")
    if host is not None:
        return {"run_host": host}
    if hosts is not None:
        return {"hosts": [name.strip() for name in hosts.split(",") if name.strip()]}
    if spread is not None:
        if spread != "all" and not spread.isdigit():
            raise CliError("--spread takes a number of run hosts or `all`")
        return {"spread": spread if spread == "all" else int(spread)}
    return {}


def _placed(env: dict[str, Any]) -> str:
    """Where an environment runs, for a sentence: `, on run hosts a, b`."""
    names = [env["run_host"], *env.get("extra_hosts", [])] if env.get("run_host") else []
    if not names:
        return ""
    label = "run host" if len(names) == 1 else "run hosts"
    return f", on {label} {printable(', '.join(names))}"


@envs_cli.command("ls")
def envs_ls(app: AppOpt) -> None:
    """List an app's environments."""
    envs = ApiClient().get(f"/v1/apps/{app}/environments")
    table(
        f"Environments of {app}",
        ["name", "runner", "run hosts", "health", "limits", "created"],
        [
            [
                e["name"],
                e["runner"],
                ", ".join([e["run_host"], *e.get("extra_hosts", [])]) if e.get("run_host") else "-",
                f"{e['health_path']} within {e['health_timeout']:g}s",
                _limits(e),
                ago(e["created_at"]),
            ]
            for e in envs
        ],
    )
    for e in envs:
        if e.get("url"):
            console.print(
                f"{e['name']} answers at {printable(e['url'])}", highlight=False, markup=False
            )


def _limits(env: dict[str, Any]) -> str:
    limits = [f"memory {env['memory_limit']}"] if env.get("memory_limit") else []
    limits += [f"{env['cpu_limit']:g} CPU"] if env.get("cpu_limit") else []
    return ", ".join(limits) or "-"


def _print_config(config: dict[str, Any]) -> None:
    console.print(f"Config version {config['version']}")
    live = config.get("live_version")
    if live is not None and live != config["version"]:
        # A config release that failed its health check (or was never made) left the live
        # release on an older version: say so, or the values below read as what runs.
        console.print(
            f"[yellow]Not live:[/] the live release runs config v{live}; these values (v"
            f"{config['version']}) go live with the next release (a deploy, `config set`, or a "
            "promotion to here)",
            highlight=False,
            soft_wrap=True,
        )
    for key, value in config["vars"].items():
        marker = " (secret)" if key in config["secrets"] else ""
        # Never hard-wrapped: a value copied from the terminal is the value.
        console.print(
            f"  {key}={printable(value)}{marker}", markup=False, highlight=False, soft_wrap=True
        )


@config_cli.callback(invoke_without_command=True)
def config_show(ctx: typer.Context, app: AppOpt = "", env: EnvOpt = "") -> None:
    """Show the config (secret values are never shown)."""
    if ctx.invoked_subcommand is not None:
        return
    if not app or not env:
        raise CliError("config needs --app and --env")
    _print_config(ApiClient().get(f"{env_path(app, env)}/config"))


def _send_config(app: str, env: str, body: dict[str, Any], wait: bool, timeout: float) -> None:
    """Change the config; then follow the release of it, if one started, until it is live."""
    client = ApiClient()
    result = client.patch(f"{env_path(app, env)}/config", body)
    _print_config(result)
    pipeline_id = result.get("pipeline_id")
    if not pipeline_id:
        return
    console.print(f"Releasing with the new config: pipeline {pipeline_id}", soft_wrap=True)
    if not wait:
        return
    current = follow_to_live(client, pipeline_id, timeout)
    console.print(
        f"Released v{current['release']['version']} to {env}{web_url(current)}",
        highlight=False,
        soft_wrap=True,  # one line, whatever the width: scripts grep it
    )


@config_cli.command("set")
def config_set(
    pairs: Annotated[
        list[str], typer.Argument(help="KEY=value pairs; a bare KEY asks for its value.")
    ],
    app: AppOpt,
    env: EnvOpt,
    secret: Annotated[bool, typer.Option(help="Store these values encrypted.")] = False,
    deploy: Annotated[bool, typer.Option(help="Release the live artifact with it.")] = True,
    wait: WaitOpt = True,
    timeout: TimeoutOpt = 600,
) -> None:
    """Set config vars: a new config version, and a new release if one is live (followed).

    A bare KEY reads its value from a hidden prompt (or standard input), so that a secret never
    appears in the process arguments or the shell history.
    """
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            value = _read_value(key)
        values[key] = value
    body = {"vars": values, "secrets": list(values) if secret else [], "deploy": deploy}
    _send_config(app, env, body, wait, timeout)


def _read_value(key: str) -> str:
    if sys.stdin.isatty():
        return str(typer.prompt(f"{key}", hide_input=True))
    line = sys.stdin.readline()
    if not line:
        raise CliError(f"no value for {key}: give KEY=value, or the value on standard input")
    return line.rstrip("\n")


@config_cli.command("unset")
def config_unset(
    keys: Annotated[list[str], typer.Argument(help="Keys to remove.")],
    app: AppOpt,
    env: EnvOpt,
    deploy: Annotated[bool, typer.Option(help="Release the live artifact with it.")] = True,
    wait: WaitOpt = True,
    timeout: TimeoutOpt = 600,
) -> None:
    """Remove config vars (and release the live artifact without them, followed)."""
    _send_config(app, env, {"vars": dict.fromkeys(keys), "deploy": deploy}, wait, timeout)
