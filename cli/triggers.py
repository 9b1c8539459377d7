"""Triggers: `shipyard hooks`, `shipyard schedules`, `shipyard subscriptions`."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console

from cli.client import ApiClient, CliError
from cli.resources import AppOpt, table

console = Console()
hooks_cli = typer.Typer(help="Incoming webhooks from GitHub, GitLab and CI.")
schedules_cli = typer.Typer(help="Scheduled promotions.", no_args_is_help=True)
subscriptions_cli = typer.Typer(help="Outgoing notifications.", no_args_is_help=True)

_SETUP = {
    "github": "GitHub: Settings → Webhooks → Add webhook; content type application/json, "
    "secret = the app's hook secret, events: just the push event",
    "gitlab": "GitLab: Settings → Webhooks; secret token = the app's hook secret, "
    "trigger: push events and tag push events",
    "generic": 'CI: POST {"app", "environment", "ref"} with X-Shipyard-Signature-256: '
    "sha256=<HMAC-SHA256 of the body under the secret>",
}


def _print_secret(secret: str | None, what: str) -> None:
    if secret is None:
        return
    console.print(f"{what} (shown once; store it now):")
    print(secret)


@hooks_cli.callback(invoke_without_command=True)
def hooks(
    ctx: typer.Context,
    app: AppOpt = "",
    limit: Annotated[int, typer.Option(help="Deliveries shown.")] = 10,
) -> None:
    """The app's webhook URLs, how to set them up, and the last deliveries."""
    if ctx.invoked_subcommand is not None:
        return
    if not app:
        raise CliError("hooks needs --app")
    client = ApiClient()
    config = client.get(f"/v1/apps/{app}/hooks")
    console.print(f"Webhooks of {app}", style="bold")
    for provider, path in config["urls"].items():
        console.print(f"  {provider:<8} {client.url}{path}", highlight=False)
        console.print(f"           {_SETUP[provider]}", highlight=False, markup=False)
    console.print(
        f"  github repository: {config['github_repository'] or '-'}, "
        f"gitlab project: {config['gitlab_project'] or '-'}",
        highlight=False,
    )
    for rule in config["rules"]:
        ref = f"branch {rule['branch']}" if rule.get("branch") else f"tag {rule['tag']}"
        console.print(f"  {ref} → {rule['environment']}", highlight=False, markup=False)
    console.print(
        "  The secret is never shown again: `shipyard hooks set --app "
        f"{app} --rotate-secret` makes a new one, `--secret S` sets yours.",
        highlight=False,
    )
    deliveries = client.get(f"/v1/apps/{app}/hooks/deliveries", {"limit": str(limit)})
    table(
        "Last deliveries",
        ["received", "provider", "event", "outcome", "ref", "environment", "pipeline / reason"],
        [
            [
                d["received_at"],
                d["provider"],
                d["event"],
                d["outcome"],
                d["ref"],
                d["environment"],
                d["pipeline_id"] or d["reason"],
            ]
            for d in deliveries
        ],
    )


def _rules(values: list[str], kind: str) -> list[dict[str, str]]:
    rules = []
    for value in values:
        pattern, sep, environment = value.rpartition("=")
        if not sep or not pattern or not environment:
            raise CliError(f"{value!r} is not PATTERN=ENVIRONMENT")
        rules.append({kind: pattern, "environment": environment})
    return rules


@hooks_cli.command("set")
def hooks_set(
    app: AppOpt,
    github: Annotated[str | None, typer.Option(help="GitHub repository, owner/name.")] = None,
    gitlab: Annotated[str | None, typer.Option(help="GitLab project, group/name.")] = None,
    branch: Annotated[
        list[str] | None, typer.Option(help="BRANCH=ENV (globs allowed); repeatable.")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option(help="TAG=ENV, e.g. 'v*=production'.")] = None,
    secret: Annotated[str | None, typer.Option(help="Use this secret (16+ characters).")] = None,
    rotate_secret: Annotated[bool, typer.Option(help="Generate a new secret.")] = False,
) -> None:
    """Configure the app's webhooks (replaces repository and rules); prints a new secret once."""
    body: dict[str, Any] = {
        "github_repository": github,
        "gitlab_project": gitlab,
        "rules": _rules(branch or [], "branch") + _rules(tag or [], "tag"),
        "rotate_secret": rotate_secret,
    }
    if secret is not None:
        body["secret"] = secret
    config = ApiClient().request("PUT", f"/v1/apps/{app}/hooks", json=body)
    console.print(f"Webhooks of {app} configured ({len(config['rules'])} rules)")
    _print_secret(config.get("secret"), "Webhook secret")


@schedules_cli.command("add")
def schedules_add(
    app: AppOpt,
    source: Annotated[str, typer.Option("--from", help="Environment promoted from.")],
    target: Annotated[str, typer.Option("--to", help="Environment promoted to.")],
    cron: Annotated[str, typer.Option(help="Five-field cron, e.g. '0 3 * * 1-5'.")],
    timezone: Annotated[str, typer.Option(help="IANA time zone of the cron.")] = "UTC",
    min_soak: Annotated[int, typer.Option(help="Seconds FROM's release must have been live.")] = 0,
    require_healthy: Annotated[
        bool, typer.Option(help="Skip unless FROM's processes are running.")
    ] = True,
) -> None:
    """Promote FROM to TO whenever the cron matches and the gates pass."""
    body = {
        "action": "promote",
        "from": source,
        "to": target,
        "cron": cron,
        "timezone": timezone,
        "gates": {"min_soak_seconds": min_soak, "require_healthy": require_healthy},
    }
    schedule = ApiClient().post(f"/v1/apps/{app}/schedules", body)
    console.print(
        f"Schedule {schedule['id']}: promote {source} → {target} at '{cron}' ({timezone}), "
        f"next {schedule['next_due_at']}",
        highlight=False,
    )


@schedules_cli.command("ls")
def schedules_ls(app: AppOpt) -> None:
    """List the app's schedules with their next due time and latest run."""
    rows = ApiClient().get(f"/v1/apps/{app}/schedules")
    table(
        f"Schedules of {app}",
        ["id", "promote", "cron", "gates", "next due", "last run"],
        [
            [
                s["id"],
                f"{s['from']} → {s['to']}",
                f"{s['cron']} ({s['timezone']})",
                f"soak {s['gates']['min_soak_seconds']}s"
                + (", healthy" if s["gates"]["require_healthy"] else ""),
                s["next_due_at"],
                _run_summary(s["last_run"]),
            ]
            for s in rows
        ],
    )


def _run_summary(run: dict[str, Any] | None) -> str:
    if run is None:
        return "-"
    detail = run["pipeline_id"] if run["outcome"] == "fired" else run["reason"]
    return f"{run['due_at']} {run['outcome']}: {detail}"


@schedules_cli.command("runs")
def schedules_runs(schedule_id: str, app: AppOpt) -> None:
    """Every run of a schedule: fired (pipeline) or skipped (why)."""
    runs = ApiClient().get(f"/v1/apps/{app}/schedules/{schedule_id}/runs")
    for run in runs:
        console.print(_run_summary(run), highlight=False, markup=False)


@schedules_cli.command("rm")
def schedules_rm(schedule_id: str, app: AppOpt) -> None:
    """Remove a schedule (its runs stay on record)."""
    ApiClient().request("DELETE", f"/v1/apps/{app}/schedules/{schedule_id}")
    console.print(f"removed schedule {schedule_id}")


@subscriptions_cli.command("add")
def subscriptions_add(
    app: AppOpt,
    url: Annotated[str, typer.Option(help="Where events are POSTed.")],
    event: Annotated[list[str], typer.Option("--event", help="pipeline.succeeded, …; repeatable.")],
    secret: Annotated[str | None, typer.Option(help="Signing secret (default: generated).")] = None,
) -> None:
    """Send the app's EVENTs to URL, signed with X-Shipyard-Signature-256."""
    body: dict[str, Any] = {"url": url, "events": event}
    if secret is not None:
        body["secret"] = secret
    created = ApiClient().post(f"/v1/apps/{app}/subscriptions", body)
    console.print(f"Subscription {created['id']}: {', '.join(created['events'])} → {url}")
    _print_secret(created.get("secret"), "Signing secret")


@subscriptions_cli.command("ls")
def subscriptions_ls(app: AppOpt) -> None:
    """List the app's subscriptions."""
    rows = ApiClient().get(f"/v1/apps/{app}/subscriptions")
    table(
        f"Subscriptions of {app}",
        ["id", "url", "events"],
        [[s["id"], s["url"], ", ".join(s["events"])] for s in rows],
    )


@subscriptions_cli.command("rm")
def subscriptions_rm(subscription_id: str, app: AppOpt) -> None:
    """Stop a subscription."""
    ApiClient().request("DELETE", f"/v1/apps/{app}/subscriptions/{subscription_id}")
    console.print(f"removed subscription {subscription_id}")


@subscriptions_cli.command("deliveries")
def subscriptions_deliveries(subscription_id: str, app: AppOpt) -> None:
    """What a subscription was sent, with each attempt's status code and duration."""
    rows = ApiClient().get(f"/v1/apps/{app}/subscriptions/{subscription_id}/notifications")
    for notification in rows:
        attempts = ", ".join(
            f"#{a['number']} {a['status_code'] or a['error']} {a['duration_ms']:.0f}ms"
            for a in notification["attempts"]
        )
        console.print(
            f"{notification['created_at']} {notification['event']:<20} "
            f"{notification['status']:<10} {attempts}",
            highlight=False,
            markup=False,
        )
