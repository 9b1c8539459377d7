"""`shipyard domains` and `shipyard certs`: an environment's custom domains, their HTTPS, and
each domain's certificate (from the ACME CA, or your own).

The `*.localhost` URLs every environment has stay plain HTTP: no public CA issues certificates
for them (RFC 6761 reserves the name for loopback).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from shipyard.cli.client import ApiClient, CliError, env_path
from shipyard.cli.render import block, console, fixed, printable, short_time, table

AppOpt = Annotated[str, typer.Option("--app", "-a", help="App name.")]
EnvOpt = Annotated[str, typer.Option("--env", "-e", help="Environment name.")]
DomainArg = Annotated[
    str, typer.Argument(help="A domain of the environment, e.g. www.example.com.")
]

domains_cli = typer.Typer(
    help="Show and change an environment's custom domains and their HTTPS (`*.localhost` names "
    "stay plain HTTP: no CA issues certificates for them)."
)
certs_cli = typer.Typer(
    help="Show each domain's certificate; add your own, renew, or go back to the ACME CA."
)


# --- domains ---------------------------------------------------------------------------------


def _environment(client: ApiClient, app: str, env: str) -> dict[str, Any]:
    environment: dict[str, Any] = client.get(env_path(app, env))
    return environment


def _print_domains(environment: dict[str, Any]) -> None:
    name = environment["name"]
    domains = environment["domains"]
    if not domains:
        console.print(
            f"{name} has no custom domain (`shipyard domains add DOMAIN`); its "
            f"{printable(environment.get('url') or 'localhost')} URL is plain HTTP",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    for domain in domains:
        console.print(printable(domain), highlight=False, markup=False)
    redirect = "on" if environment["https_redirect"] else "off"
    hsts = "on" if environment["hsts"] else "off"
    console.print(
        f"HTTP → HTTPS redirect: {redirect} (once a domain has a certificate); HSTS: {hsts}",
        highlight=False,
        markup=False,
    )


@domains_cli.callback(invoke_without_command=True)
def domains_show(
    ctx: typer.Context,
    app: AppOpt = "",
    env: EnvOpt = "",
    https_redirect: Annotated[
        bool | None,
        typer.Option(
            "--https-redirect/--no-https-redirect",
            help="Redirect plain HTTP to HTTPS for domains with a certificate.",
        ),
    ] = None,
    hsts: Annotated[
        bool | None,
        typer.Option("--hsts/--no-hsts", help="Send Strict-Transport-Security over HTTPS."),
    ] = None,
) -> None:
    """List the environment's domains (or change their HTTPS with the options)."""
    if ctx.invoked_subcommand is not None:
        return
    if not app or not env:
        raise CliError("domains needs --app and --env")
    client = ApiClient()
    changes = {
        key: value
        for key, value in {"https_redirect": https_redirect, "hsts": hsts}.items()
        if value is not None
    }
    if changes:
        _print_domains(client.patch(env_path(app, env), changes))
    else:
        _print_domains(_environment(client, app, env))


@domains_cli.command("add")
def domains_add(domain: DomainArg, app: AppOpt, env: EnvOpt) -> None:
    """Add a domain: the routers answer it at once, and a certificate is ordered from the ACME CA
    (its DNS must name your run hosts, whose router's HTTP port must be reachable on port 80)."""
    domain = domain.lower()  # host names are case-insensitive; the API keeps them lowercase
    client = ApiClient()
    domains = _environment(client, app, env)["domains"]
    if domain in domains:
        raise CliError(f"{domain} is already a domain of {env}")
    changed = client.patch(env_path(app, env), {"domains": [*domains, domain]})
    console.print(
        f"Added {printable(domain)} to {env}: a certificate is being ordered "
        f"(`shipyard certs -a {app} -e {env}`)",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    _print_domains(changed)


@domains_cli.command("remove")
def domains_remove(domain: DomainArg, app: AppOpt, env: EnvOpt) -> None:
    """Remove a domain, and its certificate."""
    domain = domain.lower()
    client = ApiClient()
    domains = _environment(client, app, env)["domains"]
    if domain not in domains:
        raise CliError(f"{domain} is not a domain of {env}")
    kept = [d for d in domains if d != domain]
    changed = client.patch(env_path(app, env), {"domains": kept})
    console.print(f"Removed {printable(domain)} from {env}", highlight=False, markup=False)
    _print_domains(changed)


# --- certs -----------------------------------------------------------------------------------


def _issuer(issuer: str | None) -> str:
    """The issuer's common name (`CN=R11,O=Let's Encrypt,C=US` → `R11`), else the whole."""
    if not issuer:
        return "-"
    for part in issuer.split(","):
        if part.startswith("CN="):
            return part.removeprefix("CN=")
    return issuer


def _print_certs(certs: list[dict[str, Any]], app: str, env: str) -> None:
    table(
        f"Certificates of {app}/{env}",
        ["domain", "source", "status", "issuer", fixed("expires"), "days left"],
        [
            [
                c["domain"],
                c["source"],
                c["status"],
                _issuer(c["issuer"]),
                short_time(c["not_after"]),
                "-" if c["days_left"] is None else c["days_left"],
            ]
            for c in certs
        ],
    )
    for c in certs:
        if c.get("error"):
            retry = short_time(c.get("next_attempt_at"))
            block(
                f"{c['domain']}: its last order failed ({c['attempts']} in a row; next try "
                f"{retry} UTC)",
                c["error"],
            )


@certs_cli.callback(invoke_without_command=True)
def certs_show(ctx: typer.Context, app: AppOpt = "", env: EnvOpt = "") -> None:
    """List each domain's certificate: source, status, issuer, expiry, and why an order failed."""
    if ctx.invoked_subcommand is not None:
        return
    if not app or not env:
        raise CliError("certs needs --app and --env")
    certs = ApiClient().get(f"{env_path(app, env)}/certs")
    if not certs:
        console.print(
            f"{env} has no custom domain: `shipyard domains add DOMAIN -a {app} -e {env}` (its "
            "*.localhost URL stays plain HTTP)",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        return
    _print_certs(certs, app, env)


def _read_pem(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read the {what} file {path}: {type(exc).__name__}") from None


@certs_cli.command("add")
def certs_add(
    app: AppOpt,
    env: EnvOpt,
    cert: Annotated[Path, typer.Option(help="PEM file: the certificate, then its intermediates.")],
    key: Annotated[Path, typer.Option(help="PEM file: its private key, without a passphrase.")],
) -> None:
    """Use your own certificate for the environment's domains it names (never renewed by
    Shipyard; another `certs add` replaces it, `certs remove` goes back to the ACME CA)."""
    # The key is read here and sent in the request's body: never an argument, never printed.
    body = {"cert": _read_pem(cert, "certificate"), "key": _read_pem(key, "key")}
    stored = ApiClient().post(f"{env_path(app, env)}/certs", body)
    domains = ", ".join(c["domain"] for c in stored)
    console.print(f"Certificate stored for {printable(domains)}", highlight=False, markup=False)
    _print_certs(stored, app, env)


@certs_cli.command("renew")
def certs_renew(domain: DomainArg, app: AppOpt, env: EnvOpt) -> None:
    """Order a new certificate for DOMAIN from the ACME CA now; the current one keeps serving
    until it is issued."""
    ApiClient().post(f"{env_path(app, env)}/certs/{domain}/renew", None)
    console.print(
        f"Ordering a new certificate for {printable(domain)} "
        f"(`shipyard certs -a {app} -e {env}` shows when it is issued)",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


@certs_cli.command("remove")
def certs_remove(domain: DomainArg, app: AppOpt, env: EnvOpt) -> None:
    """Remove your own certificate for DOMAIN: the ACME CA is asked for one at once."""
    ApiClient().delete(f"{env_path(app, env)}/certs/{domain}")
    console.print(
        f"Removed the uploaded certificate of {printable(domain)}; ordering one from the ACME CA",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
