"""`/v1/apps/{app}/environments/{env}/logs`: what the environment's processes print, and a
line per request through its routers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from shipyard.api.deps import BrokerRedisDep, SecretBoxDep, SessionDep, SettingsDep
from shipyard.shared import constants, router_log
from shipyard.shared.app_logs import Follower, sources_for
from shipyard.shared.crypto import SecretBox
from shipyard.shared.db import session_scope
from shipyard.shared.exceptions import NotFound, ServiceUnavailable
from shipyard.shared.process_record import ProcessRecord
from shipyard.shared.services import apps, deployments

router = APIRouter(prefix="/apps/{app}/environments/{env}", tags=["logs"])

# How often a follower looks for new output, and for a new live deployment (after a deploy).
POLL_SECONDS = 0.25
REDISCOVER_SECONDS = 2.0


@router.get(
    "/logs",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/plain": {}},
            "description": "Output lines, `type.N: …`, and the router's `router: …`",
        }
    },
)
def app_logs(
    app: str,
    env: str,
    session: SessionDep,
    settings: SettingsDep,
    box: SecretBoxDep,
    broker: BrokerRedisDep,
    process: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,63}$")] = None,
    lines: Annotated[int, Query(ge=0, le=constants.LOG_LINES_MAX)] = 100,
    follow: bool = False,
) -> StreamingResponse:
    """The last `lines` lines of each live process (of type `process`, or all) and of the
    router's request lines (`process=router`: those alone, unless the release has a `router`
    process type); with `follow`, then every new line as it is written, across deploys, until
    the client hangs up."""
    environment = apps.environment_by_names(session=session, app=app, name=env)
    deployment_id, processes, secrets = deployments.live_output(
        session=session, environment_id=environment.id, box=box
    )
    if deployment_id is None:
        raise NotFound(f"nothing is live in {app}/{env} yet")
    types = {p["type"] for p in processes}
    # The router's lines: with every process's, or alone when asked for by their label.
    routed = broker is not None and (
        process is None or (process == router_log.LABEL and process not in types)
    )
    if process == router_log.LABEL and process not in types and broker is None:
        raise ServiceUnavailable("the router's lines are on the broker, which is unavailable")
    if process is not None and process not in types and not routed:
        raise NotFound(f"the live release of {app}/{env} has no {process!r} process")
    # The request's session would otherwise stay open (on SQLite: holding its write lock)
    # for as long as the stream is followed; what the stream needs next it reads anew.
    session.close()
    follower = Follower(secrets=secrets)
    first = _attach(follower, processes, process, lines)
    if routed and broker is not None:
        key = router_log.stream_key(settings.broker_namespace, environment.id)
        requests = router_log.RouterLogSource(broker, key)
        first += follower.add(requests.origin, requests, lines)
    stream = _follow(follower, settings.sqlalchemy_url, environment.id, box, process, first)
    return StreamingResponse(
        stream if follow else _once(first), media_type="text/plain; charset=utf-8"
    )


def _attach(
    follower: Follower, processes: list[ProcessRecord], process: str | None, lines: int
) -> list[str]:
    docker_client = _docker_client_factory()
    first: list[str] = []
    for source in sources_for(processes, process, docker_client):
        # One key per process, not per deployment: one carried over to the next deployment
        # (`ps:restart` of another type) is not followed twice.
        first += follower.add(source.origin, source, lines)
    return first


async def _once(lines: list[str]) -> AsyncIterator[str]:
    yield "".join(lines)


async def _follow(
    follower: Follower,
    database_url: str,
    environment_id: Any,
    box: SecretBox,
    process: str | None,
    first: list[str],
) -> AsyncIterator[str]:
    if first:
        yield "".join(first)
    since_discovery = 0.0
    while True:
        await asyncio.sleep(POLL_SECONDS)
        since_discovery += POLL_SECONDS
        if since_discovery >= REDISCOVER_SECONDS:
            since_discovery = 0.0
            new = await run_in_threadpool(
                _rediscover, follower, database_url, environment_id, box, process
            )
            if new:
                yield "".join(new)
        lines = await run_in_threadpool(follower.poll)
        if lines:
            yield "".join(lines)


def _rediscover(
    follower: Follower, database_url: str, environment_id: Any, box: SecretBox, process: str | None
) -> list[str]:
    """Follow the processes of a deployment that went live since (from their first line)."""
    with session_scope(database_url) as session:
        _, processes, secrets = deployments.live_output(
            session=session, environment_id=environment_id, box=box
        )
    follower.secrets |= secrets
    # A deployment that went live since is followed from its first line.
    return _attach(follower, processes, process, constants.LOG_LINES_MAX)


def _docker_client_factory() -> Any:
    made: list[Any] = []

    def client() -> Any:
        if not made:
            import docker

            made.append(docker.from_env())
        return made[0]

    return client
