"""The dashboard in a real browser (Debian's chromium, driven by Playwright) against the
distributed stack: sign in, watch a CLI deploy go green live, roll back, and a read-only token.

A screenshot of each page goes to $SHIPYARD_TEST_OUTPUT/screenshots (default: test-output/).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.conftest import REPO_ROOT, REQUIRE_SERVICES, commit_file
from tests.integration.stack import Stack

CHROMIUM = Path("/usr/bin/chromium")
# Generous: two cores, busy, and every stage runs on a real worker pool.
PIPELINE_MS = 180_000
PAGE_MS = 30_000
# The build command: a line, a pause long enough to have the page open before the build ends,
# then another line, which the open page must receive as it is written.
SLOW_BUILD = """[build]
command = "echo compiling slowly; sleep 4; echo compiled at last; python3 -m compileall -q ."
"""


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Debian's chromium, never a downloaded browser; closed (and its driver stopped) after."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is not installed (apt-get install chromium)"
        if REQUIRE_SERVICES:
            pytest.fail(message + "; SHIPYARD_REQUIRE_SERVICES=1 makes this a failure")
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def context(chromium: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile (its own cookies) for one test; it fails the test if a page threw
    an exception or the Content Security Policy blocked something (htmx runs under it)."""
    context = chromium.new_context()
    context.set_default_timeout(PAGE_MS)
    problems: list[str] = []

    def watch(page: Page) -> None:
        page.on("pageerror", lambda error: problems.append(f"{page.url}: {error}"))
        page.on(
            "console",
            lambda message: (
                problems.append(f"{page.url}: {message.text}")
                if "Content Security Policy" in message.text
                else None
            ),
        )

    context.on("page", watch)
    try:
        yield context
    finally:
        context.close()
    assert not problems, problems


@pytest.fixture(scope="module")
def screenshots() -> Path:
    """Where the screenshots go: $SHIPYARD_TEST_OUTPUT/screenshots, the repository's
    test-output/screenshots by default."""
    base = Path(os.environ.get("SHIPYARD_TEST_OUTPUT", "test-output"))
    folder = (base if base.is_absolute() else REPO_ROOT / base) / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sign_in(page: Page, stack: Stack, token: str) -> None:
    """Open the dashboard, get sent to the sign-in form, and sign in with the keyboard."""
    page.goto(f"{stack.url}/ui")
    expect(page, "an unauthenticated visit to go to the sign-in form").to_have_url(
        re.compile(r"/ui/sign-in\?next=/ui$")
    )
    page.get_by_label("API token").fill(token)
    page.keyboard.press("Enter")
    expect(
        page.get_by_role("heading", name="Apps"), "the apps page after signing in"
    ).to_be_visible()


def expect_stage(page: Page, stage: str, status: str) -> None:
    expect(
        page.locator(f'[data-stage="{stage}"]'),
        f"the {stage} stage to turn {status} on the open page",
    ).to_have_attribute("data-status", status, timeout=PIPELINE_MS)


@pytest.mark.timeout(600)  # three pipelines on a busy machine, and the stack may start
def test_a_cli_deploy_goes_green_live_and_a_rollback_joins_the_history(
    distributed: Stack,
    hello_repo: Path,
    context: BrowserContext,
    screenshots: Path,
) -> None:
    app = unique("dash")
    commit_file(hello_repo, "shipyard.toml", SLOW_BUILD, "a slow build")
    distributed.create_app(app, hello_repo, envs=("staging",))
    page = context.new_page()
    page.goto(f"{distributed.url}/ui")
    page.screenshot(path=screenshots / "sign-in.png", full_page=True)
    sign_in(page, distributed, distributed.token)

    started = distributed.run_cli("deploy", "--app", app, "--env", "staging", "--no-wait")
    found = re.search(r"Pipeline ([0-9a-f-]{36})", started.stdout)
    assert found, f"the CLI printed no pipeline id: {started.stdout!r} {started.stderr!r}"
    page.goto(f"{distributed.url}/ui/pipelines/{found.group(1)}")
    expect(page.locator('[data-stage="run"]'), "the run stage still ahead").not_to_have_attribute(
        "data-status", "succeeded"
    )
    page.evaluate("window.openedOnce = true")  # gone if the page were reloaded
    page.screenshot(path=screenshots / "pipeline-in-progress.png", full_page=True)

    for stage in ("build", "release", "run"):
        expect_stage(page, stage, "succeeded")
    expect(page.locator("#pipeline-status"), "the pipeline to succeed").to_have_text("succeeded")
    expect(
        page.locator("#build-log"), "the log line written after the page opened"
    ).to_contain_text("compiled at last")
    assert page.evaluate("window.openedOnce === true"), "the pipeline page was reloaded"
    page.screenshot(path=screenshots / "pipeline-deploy.png", full_page=True)

    second = distributed.deploy(app, "staging")  # a second release, so v1 can be rolled back to
    assert second["status"] == "succeeded", second

    page.goto(f"{distributed.url}/ui")
    staging_row = page.locator(f'section[aria-labelledby="app-{app}"] [data-environment="staging"]')
    expect(staging_row.locator(".live-version"), "v2 live on the apps page").to_have_text("v2")
    page.screenshot(path=screenshots / "apps.png", full_page=True)
    page.get_by_role("link", name=app, exact=True).click()
    expect(page.get_by_role("heading", name=app, exact=True)).to_be_visible()
    page.screenshot(path=screenshots / "app.png", full_page=True)

    page.get_by_role("link", name="staging", exact=True).click()
    history = page.locator("#deployment-history tbody tr")
    expect(history, "two deployments before the rollback").to_have_count(2)
    page.screenshot(path=screenshots / "environment.png", full_page=True)
    page.get_by_role("button", name="Roll back to v1").click()
    expect(page, "the rollback's pipeline page").to_have_url(re.compile(r"/ui/pipelines/"))
    expect_stage(page, "run", "succeeded")
    page.screenshot(path=screenshots / "pipeline-rollback.png", full_page=True)

    page.get_by_role("link", name="staging", exact=True).click()
    expect(history, "the rollback in the history").to_have_count(3)
    newest = history.first
    expect(newest).to_have_attribute("data-cause", "rollback")
    expect(newest).to_have_attribute("data-version", "1")
    expect(newest).to_contain_text("dashboard")
    expect(page.locator(".live-version").first).to_have_text("v1")

    page.get_by_label("From").select_option("1")
    page.get_by_label("to", exact=True).select_option("2")
    page.get_by_role("button", name="Compare").click()
    expect(page.locator("#diff-result"), "the diff swapped into the page").to_contain_text(
        "v1 → v2"
    )
    page.get_by_label(re.compile("^Instant")).fill(datetime.now(UTC).isoformat())
    page.get_by_role("button", name="What ran then?").click()
    expect(page.locator("#at-result"), "what ran now, swapped into the page").to_contain_text(
        "v1 was live"
    )
    page.screenshot(path=screenshots / "environment-after-rollback.png", full_page=True)

    environment_url = f"{distributed.url}/ui/apps/{app}/environments/staging"
    page.goto(f"{environment_url}/diff?version=2&against=1")  # the same, without htmx
    expect(page.locator("#diff-result")).to_contain_text("v1 → v2")
    page.screenshot(path=screenshots / "diff.png", full_page=True)
    page.goto(f"{environment_url}/at?at=2000-01-01T00:00:00Z")
    expect(page.locator("#at-result")).to_contain_text("nothing was live in staging")
    page.screenshot(path=screenshots / "what-ran-at.png", full_page=True)


@pytest.mark.timeout(300)
def test_a_read_only_token_sees_no_actions_and_a_forged_post_is_refused(
    distributed: Stack,
    hello_repo: Path,
    context: BrowserContext,
    screenshots: Path,
) -> None:
    app = unique("dashro")
    distributed.create_app(app, hello_repo, envs=("staging",))
    assert distributed.deploy(app, "staging")["status"] == "succeeded"
    token = distributed.api("POST", "/v1/tokens", 201, json={"name": "viewer", "scopes": ["read"]})
    page = context.new_page()
    sign_in(page, distributed, token["token"])

    for path in (f"/ui/apps/{app}", f"/ui/apps/{app}/environments/staging"):
        page.goto(distributed.url + path)
        expect(page.get_by_text("Signed in as")).to_contain_text("viewer")
        actions = page.get_by_role("button", name=re.compile("Deploy|Roll back|Promote"))
        expect(actions, "no action buttons for a read-only token").to_have_count(0)
        expect(page.locator('form[method="post"][action^="/ui/apps"]')).to_have_count(0)
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    page.screenshot(path=screenshots / "environment-read-only.png", full_page=True)
    pipelines_before = distributed.api("GET", f"/v1/apps/{app}/environments/staging/deployments")

    no_csrf = page.request.post(
        f"{distributed.url}/ui/apps/{app}/deploy", form={"environment": "staging"}
    )
    assert no_csrf.status == 403, no_csrf.text()
    # A form forged in the page itself, with the session's own CSRF token: the scope refuses it.
    page.evaluate(
        """([action]) => {
            const form = document.createElement("form");
            form.method = "post";
            form.action = action;
            const csrf = document.querySelector('input[name="csrf"]').cloneNode();
            const environment = document.createElement("input");
            environment.name = "environment";
            environment.value = "staging";
            form.append(csrf, environment);
            document.body.append(form);
            form.submit();
        }""",
        [f"/ui/apps/{app}/deploy"],
    )
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    expect(page.locator("#error-message")).to_contain_text("needs deploy:staging")
    page.screenshot(path=screenshots / "forbidden.png", full_page=True)
    after = distributed.api("GET", f"/v1/apps/{app}/environments/staging/deployments")
    assert after == pipelines_before
