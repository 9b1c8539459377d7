"""A pipeline's page and its server-sent events: stages as they change, the build log as it is
written, and the end."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import fakeredis
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from shipyard.api.ui import live
from shipyard.shared import build_stream
from shipyard.shared.db import get_engine
from shipyard.shared.services import apps, builds, pipelines, stage_runs
from shipyard.shared.settings import Settings
from tests.api.ui.conftest import sign_in
from tests.shared.factories import make_pipeline


@pytest.fixture
def broker(anonymous: TestClient) -> Iterator[fakeredis.FakeRedis]:
    """The broker a build worker writes the live log to."""
    fake = fakeredis.FakeRedis()
    anonymous.app.state.broker_redis = fake  # type: ignore[attr-defined]
    yield fake
    fake.close()


def _pipeline(settings: Settings) -> uuid.UUID:
    """A new deploy pipeline of web/staging, its build queued."""
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        app = apps.get_app(session=session, name="web")
        environment = apps.get_environment(session=session, app=app, name="staging")
        return make_pipeline(session, app, environment).id


def _claim(settings: Settings, pipeline_id: uuid.UUID, stage: str) -> None:
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        claim = stage_runs.claim_stage(
            session=session,
            pipeline_id=pipeline_id,
            stage=stage,
            hostname=f"{stage}@test",
            stale_after=60,
        )
        assert claim.outcome == "claimed"
        session.commit()


def _fail(settings: Settings, pipeline_id: uuid.UUID, stage: str, error: str) -> None:
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        pipeline = pipelines.get_pipeline(session=session, pipeline_id=pipeline_id)
        stage_runs.fail_stage(session=session, pipeline=pipeline, stage=stage, error=error)
        session.commit()


def _parse(raw: str) -> list[tuple[str, str | None, str]]:
    """(event, id, data) of each event in a text/event-stream body; comments dropped."""
    parsed = []
    for block in raw.split("\n\n"):
        name, event_id, data = "message", None, []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("id: "):
                event_id = line.removeprefix("id: ")
            elif line.startswith("data: "):
                data.append(line.removeprefix("data: "))
        if data:
            parsed.append((name, event_id, "\n".join(data)))
    return parsed


def test_an_event_spans_lines_and_never_breaks_its_frame() -> None:
    assert live.event("log", "a\r\nb\rc\n", event_id="1-0") == (
        "event: log\nid: 1-0\ndata: a\ndata: b\ndata: c\ndata: \n\n"
    )


def test_the_stream_follows_the_stages_and_ends_when_the_pipeline_does(
    staging: str, settings: Settings
) -> None:
    pipeline_id = _pipeline(settings)
    stream = live._events(
        database_url=settings.sqlalchemy_url,
        broker=None,
        pipeline_id=pipeline_id,
        log_key="unused",
        after=build_stream.START,
    )

    async def follow(events: AsyncIterator[str]) -> list[tuple[str, str | None, str]]:
        seen = _parse(await anext(events) + await anext(events))  # retry, then the stages
        _claim(settings, pipeline_id, "build")
        seen += _parse(await anext(events))
        _fail(settings, pipeline_id, "build", "no such ref")
        seen += _parse("".join([chunk async for chunk in events]))
        return seen

    seen = asyncio.run(asyncio.wait_for(follow(stream), timeout=30))

    names = [name for name, _id, _data in seen]
    assert names == ["progress", "progress", "progress", "done"]
    assert 'data-stage="build" data-status="queued"' in seen[0][2]
    assert 'data-stage="build" data-status="running"' in seen[1][2]
    assert 'data-stage="build" data-status="failed"' in seen[2][2]
    assert 'data-stage="release" data-status="skipped"' in seen[2][2]
    assert "no such ref" in seen[2][2]
    assert seen[3][2] == "failed"


def test_the_log_arrives_escaped_and_a_reconnect_resumes_after_its_last_event(
    browser: TestClient,
    settings: Settings,
    staging: str,
    broker: fakeredis.FakeRedis,
) -> None:
    sign_in(browser, settings.api_token())
    pipeline_id = _pipeline(settings)
    key = build_stream.stream_key(settings.broker_namespace, pipeline_id)
    build_stream.append(broker, key, "-----> Building <web>\n")
    build_stream.append(broker, key, "Collecting flask & co\n")
    _claim(settings, pipeline_id, "build")
    _fail(settings, pipeline_id, "build", "boom")  # finished: the stream ends by itself
    url = f"/ui/pipelines/{pipeline_id}/events"

    response = browser.get(url)
    logs = [(event_id, data) for name, event_id, data in _parse(response.text) if name == "log"]
    resumed = browser.get(url, headers={"Last-Event-ID": str(logs[0][0])})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert [data for _id, data in logs] == [
        "-----&gt; Building &lt;web&gt;\nCollecting flask &amp; co\n"
    ]
    assert _parse(response.text)[-1] == ("done", None, "failed")
    assert [name for name, _id, _data in _parse(resumed.text)] == ["progress", "done"]


def test_a_bad_position_reads_from_the_start(
    browser: TestClient, settings: Settings, staging: str, broker: fakeredis.FakeRedis
) -> None:
    sign_in(browser, settings.api_token())
    pipeline_id = _pipeline(settings)
    build_stream.append(
        broker, build_stream.stream_key(settings.broker_namespace, pipeline_id), "one\n"
    )
    _claim(settings, pipeline_id, "build")
    _fail(settings, pipeline_id, "build", "boom")

    response = browser.get(
        f"/ui/pipelines/{pipeline_id}/events", headers={"Last-Event-ID": "garbage"}
    )

    assert ("log", "one\n") in [(name, data) for name, _id, data in _parse(response.text)]


def test_the_page_of_a_running_pipeline_starts_with_the_log_so_far(
    browser: TestClient, settings: Settings, staging: str, broker: fakeredis.FakeRedis
) -> None:
    sign_in(browser, settings.api_token())
    pipeline_id = _pipeline(settings)
    key = build_stream.stream_key(settings.broker_namespace, pipeline_id)
    build_stream.append(broker, key, "<script>alert(1)</script>\n")
    _claim(settings, pipeline_id, "build")
    position = build_stream.read_after(broker, key, build_stream.START)[1]

    page = browser.get(f"/ui/pipelines/{pipeline_id}").text

    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert" not in page
    assert f'sse-connect="/ui/pipelines/{pipeline_id}/events?after={position}"' in page
    assert 'data-stage="build" data-status="running"' in page


def test_a_finished_pipeline_shows_its_stored_log_and_no_stream(
    browser: TestClient, settings: Settings, staging: str
) -> None:
    sign_in(browser, settings.api_token())
    pipeline_id = _pipeline(settings)
    _claim(settings, pipeline_id, "build")
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        app = apps.get_app(session=session, name="web")
        pipeline = pipelines.get_pipeline(session=session, pipeline_id=pipeline_id)
        build = builds.start_build(session=session, pipeline=pipeline, app=app)
        builds.finish_build(
            session=session,
            build_id=build.id,
            commit_sha="0" * 40,
            artifact_id=None,
            cache_hit=False,
            log="stored build output\n",
        )
        session.commit()
    _fail(settings, pipeline_id, "build", "boom")

    page = browser.get(f"/ui/pipelines/{pipeline_id}").text

    assert "stored build output" in page
    assert "sse-connect" not in page
    assert 'data-status="failed"' in page


def test_events_need_a_session(browser: TestClient, settings: Settings, staging: str) -> None:
    pipeline_id = _pipeline(settings)

    response = browser.get(f"/ui/pipelines/{pipeline_id}/events", follow_redirects=False)

    assert response.status_code == 303
