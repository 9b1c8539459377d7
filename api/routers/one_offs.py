"""One-off commands: `/v1/apps/{app}/environments/{env}/runs` and `/v1/runs/{id}` (`shipyard
run`). The API records the run and hands its id to the run host's inbox; the host runs it."""

from __future__ import annotations

import base64
import contextlib
import uuid
from typing import Annotated

import redis
from fastapi import APIRouter, Query, status

from shipyard.api.auth import PrincipalDep, deploy_scoped
from shipyard.api.deps import BrokerRedisDep, SessionDep, SettingsDep, WorkersProbeDep
from shipyard.shared import build_stream, one_off_stream
from shipyard.shared.exceptions import ServiceUnavailable
from shipyard.shared.host_inbox import Inbox, OneOffMessage
from shipyard.shared.models import Environment, OneOff, OneOffStatus
from shipyard.shared.schemas import OneOffCreate, OneOffOutputPublic, OneOffPublic
from shipyard.shared.services import apps, hosts, one_offs

router = APIRouter(tags=["one-offs"])


def _broker(broker: redis.Redis | None) -> redis.Redis:
    if broker is None:
        raise ServiceUnavailable("the broker is unavailable; try again shortly")
    return broker


@router.post("/apps/{app}/environments/{env}/runs", status_code=status.HTTP_202_ACCEPTED)
@deploy_scoped
def start_run(
    app: str,
    env: str,
    data: OneOffCreate,
    session: SessionDep,
    settings: SettingsDep,
    broker: BrokerRedisDep,
    probe: WorkersProbeDep,
    principal: PrincipalDep,
) -> OneOffPublic:
    """Run `command` once in a release of the environment (default: the live one; while none
    is live, the newest), as its processes run, on its run host; follow it at `…/output`."""
    principal.require_deploy(env)
    environment = apps.environment_by_names(session=session, app=app, name=env)
    client = _broker(broker)
    run = one_offs.create(
        session=session, environment=environment, data=data, requested_by=principal.name
    )
    hosts.require_up(session=session, probe=probe, name=run.host)
    session.commit()
    try:
        if data.stdin is not None:
            stdin = base64.b64decode(data.stdin)
            one_off_stream.put_input(client, settings.broker_namespace, run.id, stdin)
        message = OneOffMessage(run_id=run.id, stdin=data.stdin is not None)
        Inbox(client, settings.broker_namespace).send(run.host, message)
    except redis.RedisError as exc:
        with contextlib.suppress(redis.RedisError):  # what it was to read goes with it
            one_off_stream.drop_input(client, settings.broker_namespace, run.id)
        one_offs.finish(
            session=session,
            run_id=run.id,
            status=OneOffStatus.FAILED,
            exit_code=None,
            output="",
            error="the broker was unavailable: it was never started",
        )
        session.commit()
        raise ServiceUnavailable("the broker is unavailable; try again shortly") from exc
    return one_offs.view(session=session, run=run)


@router.get("/apps/{app}/environments/{env}/runs")
def list_runs(
    app: str,
    env: str,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[OneOffPublic]:
    """The environment's one-offs, newest first."""
    environment = apps.environment_by_names(session=session, app=app, name=env)
    return [
        one_offs.view(session=session, run=run)
        for run in one_offs.of_environment(session=session, environment=environment, limit=limit)
    ]


@router.get("/runs/{run_id}")
def get_run(run_id: uuid.UUID, session: SessionDep) -> OneOffPublic:
    """One one-off: who ran what, in which release, where, how it ended, its output's tail."""
    return one_offs.view(session=session, run=one_offs.get(session=session, run_id=run_id))


@router.get("/runs/{run_id}/output")
def get_run_output(
    run_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    broker: BrokerRedisDep,
    after: Annotated[str, Query(pattern=r"^[0-9]{1,20}-[0-9]{1,20}$")] = build_stream.START,
) -> OneOffOutputPublic:
    """The output's lines printed after position `after` (ask again from the returned one), with
    the run's status; once it ended and nothing is left, its exit code."""
    run = one_offs.get(session=session, run_id=run_id)
    key = one_off_stream.output_key(settings.broker_namespace, run_id)
    lines: list[str] = []
    position = after
    if broker is not None:
        try:
            lines, position = build_stream.read_after(broker, key, after)
        except redis.RedisError as exc:
            raise ServiceUnavailable("the broker is unavailable; try again shortly") from exc
    return OneOffOutputPublic(
        lines=lines, after=position, status=run.status, exit_code=run.exit_code
    )


@router.post("/runs/{run_id}/cancel", status_code=status.HTTP_202_ACCEPTED)
@deploy_scoped
def cancel_run(
    run_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    broker: BrokerRedisDep,
    principal: PrincipalDep,
) -> OneOffPublic:
    """Kill the one-off (its process group or container) within a moment; one that has ended
    stays as it ended."""
    run = one_offs.get(session=session, run_id=run_id)
    environment = session.get(Environment, run.environment_id)
    assert environment is not None
    principal.require_deploy(environment.name)
    try:
        one_off_stream.request_cancel(_broker(broker), settings.broker_namespace, run_id)
    except redis.RedisError as exc:
        raise ServiceUnavailable("the broker is unavailable; try again shortly") from exc
    if one_offs.cancel_queued(session=session, run_id=run_id):
        session.commit()
        with contextlib.suppress(redis.RedisError):  # never to run: its input goes
            one_off_stream.drop_input(_broker(broker), settings.broker_namespace, run_id)
    refreshed = session.get(OneOff, run_id, populate_existing=True)
    assert refreshed is not None
    return one_offs.view(session=session, run=refreshed)
