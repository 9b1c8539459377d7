"""`shipyard`: the command line. Resource commands are HTTP clients of the API.

A run imports and builds only the command it names (`shipyard ps` builds `ps`, not all thirty;
Typer builds a command by reading its function's parameters): the whole CLI is built for
`--help`, shell completion and a name it does not know, so their output stays the same.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Iterable

import typer
from rich.console import Console
from rich.markup import escape
from typer.main import get_command

from shipyard.cli.client import CliError
from shipyard.cli.plain_values import skip_pydantic_for_plain_values
from shipyard.cli.render import printable

# Every top-level command: its name → the module of shipyard.cli and the attribute that holds
# it, a function (a command) or a Typer (a group of commands, such as `apps`). `--help` lists the
# commands in this order, then the groups.
COMMANDS: dict[str, tuple[str, str]] = {
    "up": ("server", "up"),
    "api": ("server", "api"),
    "worker": ("server", "worker"),
    "beat": ("server", "beat"),
    "router": ("server", "router"),
    "db": ("server", "db_cli"),
    "apps": ("resources", "apps_cli"),
    "envs": ("resources", "envs_cli"),
    "config": ("resources", "config_cli"),
    "domains": ("certificates", "domains_cli"),
    "certs": ("certificates", "certs_cli"),
    "deploy": ("deploy", "deploy"),
    "run": ("one_offs", "run"),
    "runs": ("one_offs", "runs"),
    # inspection's group, which operations imports to add `releases diff` to it.
    "releases": ("operations", "releases_cli"),
    "rollback": ("operations", "rollback"),
    "promote": ("operations", "promote"),
    "canary": ("canary", "canary_cli"),
    "ps:scale": ("operations", "scale"),
    "ps:restart": ("operations", "restart"),
    "history": ("operations", "history"),
    "gc": ("operations", "gc"),
    "ps": ("inspection", "ps"),
    "artifacts": ("inspection", "artifacts"),
    "hosts": ("inspection", "hosts_cli"),
    "pipelines": ("inspection", "pipelines_cli"),
    "logs": ("inspection", "logs_cli"),
    "storage": ("inspection", "storage"),
    "secrets": ("server", "secrets_cli"),
    "tokens": ("tokens", "tokens_cli"),
    "hooks": ("triggers", "hooks_cli"),
    "schedules": ("triggers", "schedules_cli"),
    "subscriptions": ("triggers", "subscriptions_cli"),
}


def _no_options() -> None:
    # The app's callback: with one, Typer builds a group even around a single command.
    pass


def build_app(names: Iterable[str]) -> typer.Typer:
    """The CLI with the commands `names` only (their modules imported now)."""
    app = typer.Typer(
        name="shipyard",
        help="Build → release → run, on your own machines.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        callback=_no_options,
    )
    for name in names:
        module, attribute = COMMANDS[name]
        command = getattr(importlib.import_module(f"shipyard.cli.{module}"), attribute)
        if isinstance(command, typer.Typer):
            app.add_typer(command, name=name)
        else:
            app.command(name)(command)
    return app


@functools.cache
def whole_app() -> typer.Typer:
    """The CLI with every command."""
    return build_app(COMMANDS)


def __getattr__(name: str) -> typer.Typer:
    """`app`, the whole CLI (what tests drive with Typer's CliRunner), built when first used."""
    if name == "app":
        return whole_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def app_for(args: list[str]) -> typer.Typer:
    """The CLI that runs the command line `args`: the command its first word names, if it
    names one, else the whole CLI."""
    if args and args[0] in COMMANDS:
        return build_app([args[0]])
    return whole_app()


def main() -> None:
    """Entry point: run the CLI; known errors print one line and exit 1."""
    # What `app()` does, but with the click command at hand to spare pydantic; Typer's
    # except hook, which `app()` also installs, prints as Python's own without pretty errors.
    command = get_command(app_for(sys.argv[1:]))
    skip_pydantic_for_plain_values(command)
    try:
        command()
    except CliError as exc:
        Console(stderr=True, soft_wrap=True).print(
            f"[red]error:[/] {escape(printable(str(exc)))}", highlight=False
        )
        raise SystemExit(1) from None
