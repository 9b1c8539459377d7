"""A pipeline's page, and its progress as server-sent events: each stage's status as it changes,
and the build log's lines as the build writes them (from the broker's live view, as
`GET /v1/pipelines/{id}/log/live` reads it)."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

import redis
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from markupsafe import escape
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool

from shipyard.api.deps import BrokerRedisDep, SessionDep, SettingsDep
from shipyard.api.ui.rendering import PageRoute, ViewerDep, page, templates
from shipyard.shared import build_stream
from shipyard.shared.db import session_scope
from shipyard.shared.exceptions import ShipyardError
from shipyard.shared.models import PipelineStatus
from shipyard.shared.schemas import PipelinePublic
from shipyard.shared.services import builds, pipelines

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)

# How often an open pipeline page's stream looks at the stages and the log.
POLL_SECONDS = 0.5
# A comment line this often keeps proxies from closing a quiet stream.
KEEPALIVE_SECONDS = 15.0
# One stream lasts at most this long; the browser then reconnects, from where it was.
STREAM_SECONDS = 600.0
# The browser waits this long before reconnecting a dropped stream.
RETRY_MILLISECONDS = 2000
# Most batches of live log lines a page starts with.
FIRST_READS = 20
_FINISHED = (PipelineStatus.SUCCEEDED, PipelineStatus.FAILED)
_POSITION = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$")


def _position(value: str | None) -> str:
    return value if value is not None and _POSITION.fullmatch(value) else build_stream.START


def _read_live(
    broker: redis.Redis | None, key: str, after: str, batches: int
) -> tuple[list[str], str]:
    """Up to `batches` reads of the live log after `after`; nothing if the broker is away."""
    if broker is None:
        return [], after
    lines: list[str] = []
    for _ in range(batches):
        try:
            batch, after = build_stream.read_after(broker, key, after)
        except redis.RedisError:
            break
        if not batch:
            break
        lines += batch
    return lines, after


@router.get("/pipelines/{pipeline_id}")
def pipeline_page(
    pipeline_id: uuid.UUID,
    request: Request,
    viewer: ViewerDep,
    session: SessionDep,
    settings: SettingsDep,
    broker: BrokerRedisDep,
) -> HTMLResponse:
    """A pipeline's stages and build log; while it runs, both update themselves."""
    pipeline = pipelines.get_pipeline(session=session, pipeline_id=pipeline_id)
    view = pipelines.pipeline_public(session=session, pipeline=pipeline)
    key = build_stream.stream_key(settings.broker_namespace, pipeline_id)
    lines, after = _read_live(broker, key, build_stream.START, FIRST_READS)
    log = "".join(lines)
    if not log:
        stored = builds.build_log(session=session, pipeline_id=pipeline_id)
        log = stored.log if stored is not None else ""
    context = {
        "viewer": viewer,
        "pipeline": view,
        "live": view.status not in _FINISHED,
        "after": after,
        "log": log,
        "has_build": any(stage.name == "build" for stage in view.stages),
    }
    return page(request, "pipeline.html", context)


@router.get("/pipelines/{pipeline_id}/events")
def pipeline_events(
    pipeline_id: uuid.UUID,
    viewer: ViewerDep,
    session: SessionDep,
    settings: SettingsDep,
    broker: BrokerRedisDep,
    after: Annotated[str, Query(max_length=48)] = build_stream.START,
    last_event_id: Annotated[str | None, Header(max_length=48)] = None,
) -> StreamingResponse:
    """`text/event-stream`: `progress` (the stages, as HTML) when they change, `log` (new build
    log lines, as HTML) as they are written, and `done` once the pipeline has finished."""
    pipelines.get_pipeline(session=session, pipeline_id=pipeline_id)
    # The stream reads anew each time; the request's session (on SQLite, a lock) is not kept.
    session.close()
    stream = _events(
        database_url=settings.sqlalchemy_url,
        broker=broker,
        pipeline_id=pipeline_id,
        log_key=build_stream.stream_key(settings.broker_namespace, pipeline_id),
        # A reconnecting browser says where it was; the page's own position otherwise.
        after=_position(last_event_id or after),
    )
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def event(name: str, data: str, event_id: str | None = None) -> str:
    """One server-sent event; `data` may span lines."""
    lines = [f"event: {name}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    text = data.replace("\r\n", "\n").replace("\r", "\n")
    lines += [f"data: {line}" for line in text.split("\n")]
    return "\n".join(lines) + "\n\n"


def _load(database_url: str, pipeline_id: uuid.UUID) -> PipelinePublic:
    with session_scope(database_url) as session:
        pipeline = pipelines.get_pipeline(session=session, pipeline_id=pipeline_id)
        return pipelines.pipeline_public(session=session, pipeline=pipeline)


async def _events(
    *,
    database_url: str,
    broker: redis.Redis | None,
    pipeline_id: uuid.UUID,
    log_key: str,
    after: str,
) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MILLISECONDS}\n\n"
    fragment = templates.get_template("_progress.html")
    shown = ""
    started = last_sent = time.monotonic()
    while time.monotonic() - started < STREAM_SECONDS:
        try:
            view = await run_in_threadpool(_load, database_url, pipeline_id)
        except (ShipyardError, DBAPIError) as exc:
            # The headers are sent: say why the stream ends; the browser reconnects later.
            reason = exc.message if isinstance(exc, ShipyardError) else "the store is unavailable"
            yield event("gone", str(escape(reason)))
            return
        progress = fragment.render(pipeline=view)
        if progress != shown:
            shown = progress
            last_sent = time.monotonic()
            yield event("progress", progress)
        lines, after = await run_in_threadpool(_read_live, broker, log_key, after, 1)
        if lines:
            last_sent = time.monotonic()
            yield event("log", str(escape("".join(lines))), event_id=after)
        if view.status in _FINISHED and not lines:
            yield event("done", view.status)
            return
        if time.monotonic() - last_sent >= KEEPALIVE_SECONDS:
            last_sent = time.monotonic()
            yield ": keep-alive\n\n"
        await asyncio.sleep(POLL_SECONDS)
