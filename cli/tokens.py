"""`shipyard tokens`: create, list and revoke scoped API tokens."""

from __future__ import annotations

from typing import Annotated

import typer

from shipyard.cli.client import ApiClient
from shipyard.cli.render import ago, console, fixed, resolve_id, short_id, table

tokens_cli = typer.Typer(help="Scoped API tokens (admin).", no_args_is_help=True)


@tokens_cli.command("create")
def create(
    scope: Annotated[
        list[str],
        typer.Option("--scope", help="read, admin, metrics or deploy:<environment>; repeatable."),
    ],
    name: Annotated[str, typer.Option(help="What the token is for.")] = "cli",
) -> None:
    """Create a token; it is printed once and cannot be shown again."""
    created = ApiClient().post("/v1/tokens", {"name": name, "scopes": scope})
    console.print(
        f"Token {created['id']} ({', '.join(created['scopes'])}), shown once:", highlight=False
    )
    print(created["token"])


@tokens_cli.command("ls")
def ls() -> None:
    """List tokens (never the tokens themselves)."""
    table(
        "Tokens",
        [fixed("id"), "name", "scopes", fixed("starts with"), "state", "last used"],
        [
            [
                short_id(token["id"]),
                token["name"],
                ", ".join(token["scopes"]),
                f"{token['prefix']}…",
                "revoked" if token["revoked_at"] else "active",
                ago(token["last_used_at"]) if token["last_used_at"] else "never",
            ]
            for token in ApiClient().get("/v1/tokens")
        ],
    )


@tokens_cli.command("revoke")
def revoke(
    token_id: Annotated[str, typer.Argument(help="The token's ID, or its start as `ls` shows.")],
) -> None:
    """Revoke a token; it stops working at once."""
    client = ApiClient()
    full_id = resolve_id(client, "/v1/tokens", token_id, "token")
    client.request("DELETE", f"/v1/tokens/{full_id}")
    console.print(f"revoked {full_id}", highlight=False)
