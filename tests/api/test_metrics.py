"""`GET /metrics`: who may scrape it, and the store's figures as Prometheus text."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import Session, col, select

from shipyard.shared.db import get_engine
from shipyard.shared.models import App, Environment, Pipeline, StageRun, StageStatus, utcnow
from shipyard.shared.services import deployments, stage_runs
from shipyard.shared.settings import Settings
from tests.shared.factories import make_artifact, make_pipeline, make_release


def _token(client: TestClient, *scopes: str) -> dict[str, str]:
    response = client.post("/v1/tokens", json={"name": "scrape", "scopes": list(scopes)})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_needs_a_token(anonymous: TestClient) -> None:
    response = anonymous.get("/metrics")

    assert response.status_code == 401


def test_a_metrics_token_scrapes_and_reads_nothing_else(client: TestClient, staging: str) -> None:
    headers = _token(client, "metrics")

    scraped = client.get("/metrics", headers=headers)

    assert scraped.status_code == 200, scraped.text
    assert scraped.headers["content-type"].startswith("text/plain; version=")
    assert client.get("/v1/apps", headers=headers).status_code == 403
    assert client.get(f"{staging}/releases", headers=headers).status_code == 403


def test_read_and_admin_tokens_scrape_and_a_deploy_token_does_not(
    client: TestClient, staging: str
) -> None:
    assert client.get("/metrics").status_code == 200  # the admin token
    assert client.get("/metrics", headers=_token(client, "read")).status_code == 200

    refused = client.get("/metrics", headers=_token(client, "deploy:staging"))

    assert refused.status_code == 403
    assert "metrics, read or admin" in refused.json()["detail"]


def test_the_figures_match_the_store(client: TestClient, settings: Settings) -> None:
    assert client.post("/v1/apps", json={"name": "web", "repo": "/srv/web"}).status_code == 201
    for name in ("staging", "production"):
        response = client.post("/v1/apps/web/environments", json={"name": name})
        assert response.status_code == 201
    engine = get_engine(settings.sqlalchemy_url)
    with Session(engine, expire_on_commit=False) as session:
        app = session.exec(select(App)).one()
        staging, production = (
            session.exec(select(Environment).where(Environment.name == name)).one()
            for name in ("staging", "production")
        )
        # staging: v1 then v2 live (their pipelines stay as the factories left them: queued).
        for label in ("one", "two"):
            release = make_release(session, app, staging, make_artifact(session, app, label))
            assert release.pipeline_id is not None
            deployment = deployments.begin_deployment(
                session=session, pipeline_id=release.pipeline_id, release=release, cause="deploy"
            )
            assert deployment is not None
            deployments.go_live(session=session, deployment=deployment, processes=[])
            session.commit()
        # production: one queued two minutes ago, one building, one failed.
        queued = make_pipeline(session, app, production)
        for run in stage_runs.stages_of(session=session, pipeline_id=queued.id):
            if run.name == "build":
                run.queued_at = utcnow() - timedelta(seconds=120)
                session.add(run)
        building = make_pipeline(session, app, production)
        claim = stage_runs.claim_stage(
            session=session,
            pipeline_id=building.id,
            stage="build",
            hostname="build@test",
            stale_after=60,
        )
        assert claim.run is not None
        failed = make_pipeline(session, app, production)
        stage_runs.fail_pipeline(session=session, pipeline=failed, error="broker away")
        session.commit()
        # What the store says, counted here independently of the collector's queries.
        by_status = Counter(p.status for p in session.exec(select(Pipeline)))
        active_ids = [
            p.id for p in session.exec(select(Pipeline)) if p.status in ("queued", "running")
        ]
        in_flight = Counter(
            (run.name, run.status)
            for run in session.exec(
                select(StageRun).where(col(StageRun.pipeline_id).in_(active_ids))
            )
            if run.status in (StageStatus.QUEUED, StageStatus.WAITING, StageStatus.RUNNING)
        )

    response = client.get("/metrics")

    assert response.status_code == 200
    samples = _samples(response.text)
    live = {
        labels: value
        for (name, labels), value in samples.items()
        if name == "shipyard_environment_live_release"
    }
    assert live == {(("app", "web"), ("environment", "staging")): 2.0}
    for status in ("queued", "running", "succeeded", "failed"):
        assert samples[("shipyard_pipelines", (("status", status),))] == by_status[status], status
    assert by_status["failed"] == 1 and by_status["running"] == 1
    for queue in ("build", "release", "run"):
        for status in ("queued", "waiting", "running"):
            key = ("shipyard_stages", (("queue", queue), ("status", status)))
            assert samples[key] == in_flight[(queue, status)], key
    assert in_flight[("build", "running")] == 1
    oldest = samples[("shipyard_oldest_queued_stage_age_seconds", (("queue", "build"),))]
    assert 120 <= oldest < 120 + 60, oldest
    assert samples[("shipyard_oldest_queued_stage_age_seconds", (("queue", "run"),))] == 0
    # The tests' app has no broker: no worker liveness to report, rather than a made-up one.
    assert not any(name.startswith("shipyard_worker") for name, _ in samples)
