"""`shipyard hooks`, `schedules` and `subscriptions` against the in-process API."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from shipyard.shared.services.webhooks import sign
from tests.cli.conftest import Shipyard

SECRET = "a secret the user chose"


@pytest.fixture
def two_envs(run: Shipyard, staging: None) -> None:
    assert run("envs", "create", "production", "--app", "web").exit_code == 0


@pytest.mark.usefixtures("staging")
def test_hooks_set_prints_a_generated_secret_once_and_hooks_shows_urls_and_deliveries(
    run: Shipyard, api: FastAPI
) -> None:
    configured = run(
        "hooks", "set", "--app", "web", "--github", "acme/web",
        "--branch", "main=staging", "--tag", "v*=staging",
    )  # fmt: skip
    assert configured.exit_code == 0, configured.output
    assert "Webhooks of web configured (2 rules)" in configured.output
    secret = configured.output.strip().splitlines()[-1]
    body = json.dumps(
        {"ref": "refs/heads/main", "after": "a" * 40, "repository": {"full_name": "acme/web"}}
    ).encode()
    with TestClient(api) as client:
        response = client.post(
            "/v1/hooks/github",
            content=body,
            headers={
                "X-GitHub-Event": "push",
                "X-GitHub-Delivery": "delivery-42",
                "X-Hub-Signature-256": sign(secret, body),
            },
        )
    assert response.status_code == 202, response.text

    shown = run("hooks", "--app", "web")

    assert shown.exit_code == 0, shown.output
    assert "http://127.0.0.1:8000/v1/hooks/github" in shown.output
    assert "X-Shipyard-Signature-256" in shown.output
    assert "branch main → staging" in shown.output and "tag v* → staging" in shown.output
    started = response.json()["pipelines"][0]["id"]
    assert f"github push   main → staging   {started}\n" in shown.output
    assert secret not in shown.output


@pytest.mark.usefixtures("staging")
def test_hooks_set_with_a_chosen_secret_prints_no_secret(run: Shipyard) -> None:
    result = run("hooks", "set", "--app", "web", "--gitlab", "g/web", "--secret", SECRET)

    assert result.exit_code == 0, result.output
    assert "shown once" not in result.output and SECRET not in result.output


@pytest.mark.usefixtures("two_envs")
def test_schedules_add_ls_runs_rm(run: Shipyard) -> None:
    added = run(
        "schedules", "add", "--app", "web", "--from", "staging", "--to", "production",
        "--cron", "0 3 * * 1-5", "--timezone", "Europe/Paris", "--min-soak", "3600",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    schedule_id = added.output.split()[1].rstrip(":")

    listed = run("schedules", "ls", "--app", "web")
    runs = run("schedules", "runs", schedule_id, "--app", "web")
    removed = run("schedules", "rm", schedule_id, "--app", "web")

    assert listed.exit_code == 0
    assert schedule_id[:8] in listed.output and "staging → production" in listed.output
    assert "soak 1 h, healthy" in listed.output
    assert runs.exit_code == 0 and runs.output == ""
    assert removed.exit_code == 0 and f"removed schedule {schedule_id}" in removed.output
    assert schedule_id[:8] not in run("schedules", "ls", "--app", "web").output


@pytest.mark.usefixtures("two_envs")
def test_a_bad_cron_is_a_clear_error(run: Shipyard) -> None:
    result = run(
        "schedules", "add", "--app", "web", "--from", "staging", "--to", "production",
        "--cron", "soon",
    )  # fmt: skip

    assert result.exit_code == 1
    assert "cron" in str(result.exception)


@pytest.mark.usefixtures("staging")
def test_subscriptions_add_ls_deliveries_rm(run: Shipyard) -> None:
    added = run(
        "subscriptions", "add", "--app", "web", "--url", "http://127.0.0.1:9/hook",
        "--event", "pipeline.failed", "--event", "schedule.skipped",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "Signing secret (shown once" in added.output
    subscription_id = added.output.split()[1].rstrip(":")

    listed = run("subscriptions", "ls", "--app", "web")
    sent = run("subscriptions", "deliveries", subscription_id, "--app", "web")
    removed = run("subscriptions", "rm", subscription_id, "--app", "web")

    assert listed.exit_code == 0 and "pipeline.failed, schedule.skipped" in listed.output
    assert sent.exit_code == 0 and sent.output == ""
    assert removed.exit_code == 0
    assert subscription_id[:8] not in run("subscriptions", "ls", "--app", "web").output
