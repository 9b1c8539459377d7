"""Commands over the API's resources: apps, envs, config, releases, ps, pipelines, logs."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cli.client import ApiClient, CliError

console = Console()
AppOpt = Annotated[str, typer.Option("--app", "-a", help="App name.")]
EnvOpt = Annotated[str, typer.Option("--env", "-e", help="Environment name.")]

apps_cli = typer.Typer(help="Register and list apps.", no_args_is_help=True)
envs_cli = typer.Typer(help="Create and list environments.", no_args_is_help=True)
config_cli = typer.Typer(help="Show and change an environment's config.")
pipelines_cli = typer.Typer(help="Inspect pipelines.", no_args_is_help=True)
logs_cli = typer.Typer(help="Read logs.", no_args_is_help=True)


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*[Text("" if cell is None else str(cell)) for cell in row])
    console.print(table)


def env_path(app: str, env: str) -> str:
    """The API path of environment `env` of `app`."""
    return f"/v1/apps/{app}/environments/{env}"


@apps_cli.command("create")
def apps_create(
    name: str,
    repo: Annotated[str, typer.Option(help="Git repository: a local path or a URL.")],
    path: Annotated[str, typer.Option(help="Subdirectory of the app in the repo.")] = "",
    builder: Annotated[str, typer.Option(help="Builder driver.")] = "local",
) -> None:
    """Register an app."""
    app = ApiClient().post(
        "/v1/apps", {"name": name, "repo": repo, "path": path, "builder": builder}
    )
    console.print(f"Created app [bold]{app['name']}[/] ({app['repo']} {app['path']})")


@apps_cli.command("ls")
def apps_ls() -> None:
    """List apps."""
    apps = ApiClient().get("/v1/apps")
    table(
        "Apps",
        ["name", "repo", "path", "builder"],
        [[a["name"], a["repo"], a["path"], a["builder"]] for a in apps],
    )


@envs_cli.command("create")
def envs_create(
    name: str,
    app: AppOpt,
    runner: Annotated[str, typer.Option(help="Runner driver.")] = "local",
    health_path: Annotated[str, typer.Option(help="Path the health check GETs.")] = "/",
    health_timeout: Annotated[float, typer.Option(help="Seconds to become healthy.")] = 30.0,
) -> None:
    """Create an environment of an app."""
    body = {
        "name": name,
        "runner": runner,
        "health_path": health_path,
        "health_timeout": health_timeout,
    }
    env = ApiClient().post(f"/v1/apps/{app}/environments", body)
    console.print(f"Created environment [bold]{env['name']}[/] of {app} (runner {env['runner']})")


@envs_cli.command("ls")
def envs_ls(app: AppOpt) -> None:
    """List an app's environments."""
    envs = ApiClient().get(f"/v1/apps/{app}/environments")
    table(
        f"Environments of {app}",
        ["name", "runner", "health"],
        [
            [e["name"], e["runner"], f"{e['health_path']} within {e['health_timeout']:g}s"]
            for e in envs
        ],
    )


def _print_config(config: dict[str, Any]) -> None:
    console.print(f"Config version {config['version']}")
    for key, value in config["vars"].items():
        marker = " (secret)" if key in config["secrets"] else ""
        console.print(f"  {key}={value}{marker}", markup=False, highlight=False)


@config_cli.callback(invoke_without_command=True)
def config_show(ctx: typer.Context, app: AppOpt = "", env: EnvOpt = "") -> None:
    """Show the config (secret values are never shown)."""
    if ctx.invoked_subcommand is not None:
        return
    if not app or not env:
        raise CliError("config needs --app and --env")
    _print_config(ApiClient().get(f"{env_path(app, env)}/config"))


def _send_config(app: str, env: str, body: dict[str, Any]) -> None:
    result = ApiClient().patch(f"{env_path(app, env)}/config", body)
    _print_config(result)
    if result.get("pipeline_id"):
        console.print(f"Releasing with the new config: pipeline {result['pipeline_id']}")


@config_cli.command("set")
def config_set(
    pairs: Annotated[
        list[str], typer.Argument(help="KEY=value pairs; a bare KEY asks for its value.")
    ],
    app: AppOpt,
    env: EnvOpt,
    secret: Annotated[bool, typer.Option(help="Store these values encrypted.")] = False,
    deploy: Annotated[bool, typer.Option(help="Release the live artifact with it.")] = True,
) -> None:
    """Set config vars: a new config version, and a new release if one is live.

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
    _send_config(app, env, body)


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
) -> None:
    """Remove config vars."""
    _send_config(app, env, {"vars": dict.fromkeys(keys), "deploy": deploy})


releases_cli = typer.Typer(help="List and compare releases.")


@releases_cli.callback(invoke_without_command=True)
def releases(ctx: typer.Context, app: AppOpt = "", env: EnvOpt = "") -> None:
    """List an environment's releases, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    if not app or not env:
        raise CliError("releases needs --app and --env")
    rows = ApiClient().get(f"{env_path(app, env)}/releases")
    table(
        f"Releases of {app}/{env}",
        ["version", "status", "cause", "artifact", "config", "created"],
        [
            [
                f"v{r['version']}",
                r["status"],
                r["cause"],
                r["artifact_id"][:19],
                f"v{r['config_version']}",
                r["created_at"],
            ]
            for r in rows
        ],
    )


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
    release = current["release"]
    console.print(
        f"{app}/{env}: release v{release['version']} ({release['artifact_id'][:19]}), "
        f"live since {current['deployment']['started_at']}"
    )
    table(
        "Processes",
        ["type", "status", "url"],
        [[p["type"], p["status"], p["url"]] for p in current["processes"]],
    )


def print_pipeline(pipeline: dict[str, Any]) -> None:
    """A pipeline and its stages as a table."""
    console.print(
        f"Pipeline {pipeline['id']} ({pipeline['kind']}) of {pipeline['app']}/"
        f"{pipeline['environment']}: [bold]{pipeline['status']}[/]"
    )
    table(
        "Stages",
        ["stage", "status", "attempt", "worker", "result", "error"],
        [
            [
                s["name"],
                s["status"] + (" (cache hit)" if s["cache_hit"] else ""),
                s["attempt"],
                s["hostname"],
                s["result_id"],
                s["error"],
            ]
            for s in pipeline["stages"]
        ],
    )


@pipelines_cli.command("show")
def pipelines_show(pipeline_id: str) -> None:
    """Show a pipeline and its stages."""
    print_pipeline(ApiClient().get(f"/v1/pipelines/{pipeline_id}"))


@logs_cli.command("build")
def logs_build(pipeline_id: str) -> None:
    """Print the build log of a pipeline."""
    log = ApiClient().get(f"/v1/pipelines/{pipeline_id}/log")
    print(log["log"], end="")
