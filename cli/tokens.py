"""`shipyard tokens`: create, list and revoke scoped API tokens."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from cli.client import ApiClient

console = Console()
tokens_cli = typer.Typer(help="Scoped API tokens (admin).", no_args_is_help=True)


@tokens_cli.command("create")
def create(
    scope: Annotated[
        list[str], typer.Option("--scope", help="read, admin or deploy:<environment>; repeatable.")
    ],
    name: Annotated[str, typer.Option(help="What the token is for.")] = "cli",
) -> None:
    """Create a token; it is printed once and cannot be shown again."""
    created = ApiClient().post("/v1/tokens", {"name": name, "scopes": scope})
    console.print(f"Token {created['id']} ({', '.join(created['scopes'])}), shown once:")
    print(created["token"])


@tokens_cli.command("ls")
def ls() -> None:
    """List tokens (never the tokens themselves)."""
    for token in ApiClient().get("/v1/tokens"):
        state = "revoked" if token["revoked_at"] else "active"
        console.print(
            f"{token['id']}  {token['prefix']}…  {state:<8} {','.join(token['scopes']):<30} "
            f"{token['name']}",
            highlight=False,
        )


@tokens_cli.command("revoke")
def revoke(token_id: str) -> None:
    """Revoke a token; it stops working at once."""
    ApiClient().request("DELETE", f"/v1/tokens/{token_id}")
    console.print(f"revoked {token_id}")
