"""`shipyard canary`: the canary or watch under way in an environment; promote it, abort it."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from shipyard.cli.client import ApiClient, CliError, env_path
from shipyard.cli.render import console, printable, short_id
from shipyard.cli.resources import AppOpt, EnvOpt
from shipyard.cli.rollout_plans import plan_text, record_lines, state_text

canary_cli = typer.Typer(
    help="The canary or watch under way in an environment: see it, promote it, abort it."
)


def _say(text: str) -> None:
    console.print(printable(text), highlight=False, markup=False, soft_wrap=True)


def print_rollout(rollout: dict[str, Any], app: str, env: str) -> None:
    """A rollout under way: where it stands, its plan, each step's figures, a command pending."""
    _say(
        f"{app}/{env}: v{rollout['release_version']} {state_text(rollout)} of requests "
        f"(deployment {short_id(rollout['deployment_id'])})"
    )
    _say(f"plan: {plan_text(rollout['plan'])}")
    for line in record_lines(rollout):
        _say(f"  {line}")
    if rollout.get("command"):
        _say(f"{rollout['command']} asked: the run stage takes it at its next look")


def _status(app: str, env: str, as_json: bool) -> None:
    client = ApiClient()
    rollout = client.get_or_none(f"{env_path(app, env)}/canary")
    if as_json:
        print(json.dumps(rollout))
        return
    if rollout is None:
        environment = client.get(env_path(app, env))
        _say(
            f"No canary or watch runs in {app}/{env}; its deploys go live "
            f"{plan_text(environment.get('rollout'))} by default"
        )
        return
    print_rollout(rollout, app, env)


@canary_cli.callback(invoke_without_command=True)
def canary(ctx: typer.Context, app: AppOpt = "", env: EnvOpt = "") -> None:
    """Show the canary or watch under way (as `canary status`)."""
    if ctx.invoked_subcommand is not None:
        return
    if not app or not env:
        raise CliError("canary needs --app and --env")
    _status(app, env, as_json=False)


@canary_cli.command("status")
def canary_status(
    app: AppOpt,
    env: EnvOpt,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON.")] = False,
) -> None:
    """Show the canary or watch under way: its share, plan and each step's figures."""
    _status(app, env, as_json)


@canary_cli.command("promote")
def canary_promote(app: AppOpt, env: EnvOpt) -> None:
    """Send all the requests to the new release now (a watch: end it, keeping the release)."""
    rollout = ApiClient().post(f"{env_path(app, env)}/canary/promote", None)
    _say(
        f"Promoting v{rollout['release_version']} in {app}/{env} (was {state_text(rollout)}): "
        "it takes all the requests within a second or two"
    )


@canary_cli.command("abort")
def canary_abort(app: AppOpt, env: EnvOpt) -> None:
    """Give the live release all the requests back and stop the new one (a watch: roll back to
    the previous release at once); the deploy's pipeline fails."""
    rollout = ApiClient().post(f"{env_path(app, env)}/canary/abort", None)
    back = (
        "rolling back to the previous release"
        if rollout["state"] == "watching"
        else ("the live release takes all the requests back")
    )
    _say(
        f"Aborting v{rollout['release_version']} in {app}/{env} (was {state_text(rollout)}): "
        f"{back} within a second or two"
    )
