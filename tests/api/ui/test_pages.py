"""The read pages: apps, environments with what is live, history, diffs, what ran at."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from shipyard.shared.db import get_engine
from shipyard.shared.models import OneOffStatus
from shipyard.shared.schemas import OneOffCreate
from shipyard.shared.services import apps, deployments, one_offs
from shipyard.shared.settings import Settings
from tests.api.ui.conftest import SECRET, WEB_PROCESS, make_token, sign_in, start_canary


@pytest.fixture
def admin(browser: TestClient, settings: Settings) -> TestClient:
    sign_in(browser, settings.api_token())
    return browser


def test_the_apps_page_lists_each_environment_with_its_live_release(
    admin: TestClient, history: dict[str, Any]
) -> None:
    response = admin.get("/ui")

    assert response.status_code == 200
    page = response.text
    assert '<a href="/ui/apps/web">web</a>' in page
    assert '<a href="/ui/apps/web/environments/staging">staging</a>' in page
    assert 'class="live-version">v2</td>' in page
    assert "nothing live yet" in page  # production
    assert "http://staging.web.localhost:" in page  # the stable URL
    assert "web.1 running" in page


def test_the_app_page_shows_digest_config_version_and_processes(
    admin: TestClient, history: dict[str, Any]
) -> None:
    page = admin.get("/ui/apps/web").text

    assert "sha256:3fc4ccfe7458" in page  # the short digest of artifact "two"
    assert "<dt>Config</dt><dd>v2</dd>" in page
    assert WEB_PROCESS["url"] in page
    assert ">Deploy</button>" in page and ">Promote</button>" in page


def test_the_environment_page_shows_history_and_releases(
    admin: TestClient, history: dict[str, Any]
) -> None:
    page = admin.get("/ui/apps/web/environments/staging").text

    assert page.count('class="deployment"') == 2
    assert page.count('class="release"') == 2
    assert "live now" in page
    assert "Roll back to v1" in page and "Roll back to v2" not in page  # v2 is live
    assert SECRET not in page


def test_the_environment_page_says_where_it_runs(
    admin: TestClient, history: dict[str, Any], settings: Settings
) -> None:
    unplaced = admin.get("/ui/apps/web/environments/staging").text
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        staging = apps.environment_by_names(session=session, app="web", name="staging")
        staging.run_host, staging.extra_hosts = "alpha", ["beta"]
        live = deployments.live_deployment(session=session, environment_id=staging.id)
        assert live is not None
        deployments.set_processes(
            session=session,
            deployment_id=live.id,
            processes=[
                {**WEB_PROCESS, "index": 1, "host": "alpha"},  # type: ignore[typeddict-item]
                {**WEB_PROCESS, "index": 2, "host": "beta"},  # type: ignore[typeddict-item]
            ],
        )
        session.add(staging)
        session.commit()

    page = admin.get("/ui/apps/web/environments/staging").text

    assert "Not placed yet" in unplaced
    assert 'Placed on run hosts <span id="run-hosts">alpha, beta</span>' in page
    assert '<td class="run-host">alpha</td>' in page and '<td class="run-host">beta</td>' in page


def test_the_environment_page_shows_each_domains_certificate(
    admin: TestClient, history: dict[str, Any], settings: Settings
) -> None:
    from shipyard.shared.schemas import EnvironmentUpdate
    from shipyard.shared.services import certificates
    from tests.certificate_support import TestCA

    plain = admin.get("/ui/apps/web/environments/staging").text
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        staging = apps.environment_by_names(session=session, app="web", name="staging")
        apps.update_environment(
            session=session,
            environment=staging,
            data=EnvironmentUpdate(domains=["shop.example.com", "www.example.com"]),
        )
        issued = TestCA().issue("shop.example.com")
        certificates.upload(
            session=session,
            environment=staging,
            chain_text=issued.chain,
            key_text=issued.key,
            box=settings.secret_box(),
        )
        session.commit()

    page = admin.get("/ui/apps/web/environments/staging").text

    assert "Domains and certificates" not in plain
    assert '<tr class="certificate" data-domain="shop.example.com" data-status="issued">' in page
    assert '<tr class="certificate" data-domain="www.example.com" data-status="pending">' in page
    assert "CN=Shipyard Test CA" in page
    assert '<td class="days-left">89</td>' in page or '<td class="days-left">88</td>' in page
    assert "PRIVATE" not in page


def test_a_diff_masks_secrets(admin: TestClient, history: dict[str, Any]) -> None:
    response = admin.get(
        "/ui/apps/web/environments/staging/diff", params={"version": 2, "against": 1}
    )

    assert response.status_code == 200
    assert "<code>DATABASE_URL</code> <small>(secret)</small>" in response.text
    assert "&lt;redacted&gt;" in response.text
    assert SECRET not in response.text
    assert "<code>hi</code>" in response.text


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"version": "two", "against": "1"}, 422, "choose the newer release"),
        ({"version": "2", "against": "0"}, 422, "must be v1 or later"),
        ({"version": "9", "against": "1"}, 404, "staging has no release v9"),
        ({}, 422, "choose the newer release"),
    ],
)
def test_a_bad_diff_says_why_on_the_page(
    admin: TestClient, history: dict[str, Any], params: dict[str, str], status: int, message: str
) -> None:
    response = admin.get("/ui/apps/web/environments/staging/diff", params=params)

    assert response.status_code == status
    assert message in response.text
    assert 'id="diff-result"' in response.text  # htmx swaps this part of the page in


def test_what_ran_at_an_instant(admin: TestClient, history: dict[str, Any]) -> None:
    now = admin.get("/ui/apps/web/environments/staging/at", params={"at": "2100-01-01T00:00Z"})
    naive = admin.get("/ui/apps/web/environments/staging/at", params={"at": "2100-01-01T00:00"})
    before = admin.get("/ui/apps/web/environments/staging/at", params={"at": "2000-01-01"})
    garbage = admin.get("/ui/apps/web/environments/staging/at", params={"at": "yesterday"})

    assert now.status_code == naive.status_code == 200
    assert "<strong>v2</strong> was live" in now.text
    assert "<strong>v2</strong> was live" in naive.text  # read as UTC
    assert before.status_code == 404
    assert "nothing was live in staging at 2000-01-01" in before.text
    assert garbage.status_code == 422
    assert "is not an ISO-8601 instant" in garbage.text


@pytest.mark.parametrize(
    "path",
    [
        "/ui/apps/nope",
        "/ui/apps/web/environments/nope",
        "/ui/apps/web/environments/nope/diff?version=1&against=1",
        "/ui/pipelines/00000000-0000-0000-0000-000000000000",
    ],
)
def test_unknown_things_are_a_404_page_not_json(
    admin: TestClient, history: dict[str, Any], path: str
) -> None:
    response = admin.get(path)

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert 'id="error-message"' in response.text


def test_a_malformed_path_is_a_422_page(admin: TestClient) -> None:
    response = admin.get("/ui/pipelines/not-a-uuid")

    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert "pipeline_id" in response.text


def test_a_read_token_sees_every_page_but_no_action(
    browser: TestClient, settings: Settings, history: dict[str, Any]
) -> None:
    sign_in(browser, make_token(settings, "read"))

    pages = [
        browser.get(path).text
        for path in ("/ui", "/ui/apps/web", "/ui/apps/web/environments/staging")
    ]

    for page in pages:
        assert "<button" in page  # sign out
        assert ">Deploy</button>" not in page
        assert ">Promote</button>" not in page
        assert "Roll back" not in page
        assert 'method="post" action="/ui/apps' not in page


def test_a_deploy_token_sees_actions_only_for_its_environment(
    browser: TestClient, settings: Settings, history: dict[str, Any]
) -> None:
    sign_in(browser, make_token(settings, "deploy:production"))

    app_page = browser.get("/ui/apps/web").text
    staging = browser.get("/ui/apps/web/environments/staging").text
    production = browser.get("/ui/apps/web/environments/production").text

    assert '<option value="production">production</option>' in app_page
    assert '<option value="staging">staging</option>' not in app_page.split("promote-from")[0]
    assert ">Deploy</button>" not in staging and "Roll back" not in staging
    assert ">Deploy</button>" in production


def test_the_static_files_are_served(browser: TestClient) -> None:
    htmx = browser.get("/ui/static/htmx.min.js")
    sse = browser.get("/ui/static/htmx-ext-sse.min.js")

    assert htmx.status_code == sse.status_code == 200
    assert "htmx" in htmx.text[:200]
    assert 'defineExtension("sse"' in sse.text


def test_the_environment_page_lists_its_one_off_commands(
    admin: TestClient, history: dict[str, Any], settings: Settings
) -> None:
    empty = admin.get("/ui/apps/web/environments/staging").text
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        staging = apps.environment_by_names(session=session, app="web", name="staging")
        staging.run_host = "alpha"
        session.add(staging)
        run = one_offs.create(
            session=session,
            environment=staging,
            data=OneOffCreate(command="flask --app blog seed-db <b>"),
            requested_by="deploy:staging",
        )
        one_offs.finish(
            session=session, run_id=run.id, status=OneOffStatus.FAILED, exit_code=3, output=""
        )
        session.commit()

    page = admin.get("/ui/apps/web/environments/staging").text

    assert "None yet: <code>shipyard run -a web -e staging -- COMMAND</code>" in empty
    assert '<tr class="one-off" data-status="failed">' in page
    assert "<code>flask --app blog seed-db &lt;b&gt;</code>" in page  # escaped
    assert "<td>deploy:staging</td>" in page and "<td>3</td>" in page


def test_the_environment_page_shows_the_canary_under_way(
    admin: TestClient, history: dict[str, Any], settings: Settings
) -> None:
    quiet = admin.get("/ui/apps/web/environments/staging").text
    start_canary(settings, "three")

    page = admin.get("/ui/apps/web/environments/staging").text

    assert 'id="rollout"' not in quiet
    assert "Canary of v3" in page and 'data-state="canary"' in page
    assert '<dd class="rollout-share">10 % of requests to v3</dd>' in page
    assert "10 → 50 → 100 %, 60 s a step" in page
    assert "canary 10 %: running" in page
    assert '<dd class="rollout-new">0.0 % errors of 523 requests, p95 25 ms</dd>' in page
    assert '<dd class="rollout-live">0.0 % errors of 4,701 requests, p95 25 ms</dd>' in page
    assert ">Promote now</button>" in page and ">Abort</button>" in page
