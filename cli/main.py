"""`shipyard`: the command line. Resource commands are HTTP clients of the API."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

from shipyard.cli import (
    deploy,
    inspection,
    one_offs,
    operations,
    resources,
    server,
    tokens,
    triggers,
)
from shipyard.cli.client import CliError
from shipyard.cli.render import printable

app = typer.Typer(
    name="shipyard",
    help="Build → release → run, on your own machines.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

app.command()(server.up)
app.command()(server.api)
app.command()(server.worker)
app.command()(server.beat)
app.command()(server.router)
app.add_typer(server.db_cli, name="db")
app.add_typer(resources.apps_cli, name="apps")
app.add_typer(resources.envs_cli, name="envs")
app.add_typer(resources.config_cli, name="config")
app.command()(deploy.deploy)
app.command()(one_offs.run)
app.command()(one_offs.runs)
app.add_typer(inspection.releases_cli, name="releases")
app.command()(operations.rollback)
app.command()(operations.promote)
app.command("ps:scale")(operations.scale)
app.command("ps:restart")(operations.restart)
app.command()(operations.history)
app.command()(operations.gc)
app.command()(inspection.ps)
app.command()(inspection.artifacts)
app.add_typer(inspection.hosts_cli, name="hosts")
app.add_typer(inspection.pipelines_cli, name="pipelines")
app.add_typer(inspection.logs_cli, name="logs")
app.command()(inspection.storage)
app.add_typer(server.secrets_cli, name="secrets")
app.add_typer(tokens.tokens_cli, name="tokens")
app.add_typer(triggers.hooks_cli, name="hooks")
app.add_typer(triggers.schedules_cli, name="schedules")
app.add_typer(triggers.subscriptions_cli, name="subscriptions")


def main() -> None:
    """Entry point: run the CLI; known errors print one line and exit 1."""
    try:
        app()
    except CliError as exc:
        Console(stderr=True, soft_wrap=True).print(
            f"[red]error:[/] {escape(printable(str(exc)))}", highlight=False
        )
        raise SystemExit(1) from None
