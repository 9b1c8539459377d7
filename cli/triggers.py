"""Triggers: `shipyard hooks`, `shipyard schedules`, `shipyard subscriptions`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from shipyard.cli.client import ApiClient, CliError
from shipyard.cli.render import (
    ago,
    block,
    console,
    exact_span,
    fixed,
    indented,
    resolve_id,
    short_id,
    short_time,
    table,
)
from shipyard.cli.resources import AppOpt

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
        console.print(f"  {provider:<8} {client.url}{path}", highlight=False, soft_wrap=True)
        indented(_SETUP[provider], indent=11)
    indented(
        f"github repository: {config['github_repository'] or '-'}, "
        f"gitlab project: {config['gitlab_project'] or '-'}"
    )
    for rule in config["rules"]:
        ref = f"branch {rule['branch']}" if rule.get("branch") else f"tag {rule['tag']}"
        indented(f"{ref} → {rule['environment']}")
    indented(
        "The secret is never shown again: `shipyard hooks set --app "
        f"{app} --rotate-secret` makes a new one, `--secret S` sets yours."
    )
    deliveries = client.get(f"/v1/apps/{app}/hooks/deliveries", {"limit": str(limit)})
    table(
        "Last deliveries",
        ["received", "from", "ref → env", "pipeline or outcome"],
        [
            [
                ago(d["received_at"]),
                f"{d['provider']} {d['event']}",
                " → ".join(filter(None, [_short_ref(d["ref"]), d["environment"]])),
                _delivery_result(d),
            ]
            for d in deliveries
        ],
    )


def _delivery_result(delivery: dict[str, Any]) -> str:
    """The pipeline a delivery started (whole, for `pipelines show`), or what became of it."""
    if delivery["outcome"] == "started" and delivery["pipeline_id"]:
        return str(delivery["pipeline_id"])
    reason = f": {delivery['reason']}" if delivery["reason"] else ""
    return f"{delivery['outcome']}{reason}"


def _short_ref(ref: str | None) -> str:
    """`main` for refs/heads/main, `tag v1` for refs/tags/v1."""
    if not ref:
        return ""
    if ref.startswith("refs/tags/"):
        return "tag " + ref.removeprefix("refs/tags/")
    return ref.removeprefix("refs/heads/")


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
        f"next {short_time(schedule['next_due_at'])} UTC ({ago(schedule['next_due_at'])})",
        highlight=False,
    )


@schedules_cli.command("ls")
def schedules_ls(app: AppOpt) -> None:
    """List the app's schedules with their next due time and latest run."""
    rows = ApiClient().get(f"/v1/apps/{app}/schedules")
    table(
        f"Schedules of {app}",
        [fixed("id"), "promote", "cron", "gates", "next due", "last run"],
        [
            [
                short_id(s["id"]),
                f"{s['from']} → {s['to']}",
                f"{s['cron']} {s['timezone']}",
                _gates(s["gates"]),
                ago(s["next_due_at"]),
                f"{s['last_run']['outcome']} {ago(s['last_run']['due_at'])}"
                if s["last_run"]
                else "-",
            ]
            for s in rows
        ],
    )
    for s in rows:
        if s["last_run"] and s["last_run"]["reason"]:
            block(f"{short_id(s['id'])} last skipped:", s["last_run"]["reason"])


def _gates(gates: dict[str, Any]) -> str:
    """`soak 1 h, healthy`: what must hold for a due schedule to fire."""
    soak = gates["min_soak_seconds"]
    shown = [f"soak {exact_span(soak)}"] if soak else []
    shown += ["healthy"] if gates["require_healthy"] else []
    return ", ".join(shown) or "none"


ScheduleIdArg = Annotated[
    str, typer.Argument(help="The schedule's ID, or its start as `ls` shows.")
]


@schedules_cli.command("runs")
def schedules_runs(schedule_id: ScheduleIdArg, app: AppOpt) -> None:
    """Every run of a schedule: fired (pipeline) or skipped (why)."""
    client = ApiClient()
    full_id = resolve_id(client, f"/v1/apps/{app}/schedules", schedule_id, "schedule")
    runs = client.get(f"/v1/apps/{app}/schedules/{full_id}/runs")
    if not runs:
        return
    table(
        f"Runs of schedule {short_id(full_id)} (UTC), newest first",
        [fixed("due"), "outcome", "pipeline / reason"],
        [
            [
                short_time(run["due_at"]),
                run["outcome"],
                run["pipeline_id"] if run["outcome"] == "fired" else run["reason"],
            ]
            for run in runs
        ],
    )


@schedules_cli.command("rm")
def schedules_rm(schedule_id: ScheduleIdArg, app: AppOpt) -> None:
    """Remove a schedule (its runs stay on record)."""
    client = ApiClient()
    full_id = resolve_id(client, f"/v1/apps/{app}/schedules", schedule_id, "schedule")
    client.request("DELETE", f"/v1/apps/{app}/schedules/{full_id}")
    console.print(f"removed schedule {full_id}", highlight=False)


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
        [fixed("id"), "url", "events", "created"],
        [[short_id(s["id"]), s["url"], ", ".join(s["events"]), ago(s["created_at"])] for s in rows],
    )


SubscriptionIdArg = Annotated[
    str, typer.Argument(help="The subscription's ID, or its start as `ls` shows.")
]


@subscriptions_cli.command("rm")
def subscriptions_rm(subscription_id: SubscriptionIdArg, app: AppOpt) -> None:
    """Stop a subscription."""
    client = ApiClient()
    path = f"/v1/apps/{app}/subscriptions"
    full_id = resolve_id(client, path, subscription_id, "subscription")
    client.request("DELETE", f"{path}/{full_id}")
    console.print(f"removed subscription {full_id}", highlight=False)


@subscriptions_cli.command("deliveries")
def subscriptions_deliveries(subscription_id: SubscriptionIdArg, app: AppOpt) -> None:
    """What a subscription was sent, with each attempt's status code and duration."""
    client = ApiClient()
    path = f"/v1/apps/{app}/subscriptions"
    full_id = resolve_id(client, path, subscription_id, "subscription")
    rows = client.get(f"{path}/{full_id}/notifications")
    if not rows:
        return
    table(
        f"Notifications sent to {short_id(full_id)}, newest first",
        [fixed("id"), "created", "event", "status", "attempts"],
        [
            [
                short_id(n["id"]),
                ago(n["created_at"]),
                n["event"],
                n["status"],
                ", ".join(_attempt(a) for a in n["attempts"]) or "-",
            ]
            for n in rows
        ],
    )
    for n in rows:
        errors = [f"#{a['number']}: {a['error']}" for a in n["attempts"] if a["error"]]
        if errors:
            block(f"{short_id(n['id'])} errors:", "\n".join(errors))


def _attempt(attempt: dict[str, Any]) -> str:
    """`#2 503 120ms`; an attempt without an answer shows `error` (its message is below)."""
    outcome = attempt["status_code"] or "error"
    return f"#{attempt['number']} {outcome} {attempt['duration_ms']:.0f}ms"
