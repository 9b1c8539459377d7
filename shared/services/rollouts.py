"""Progressive delivery in the store: the plan a pipeline carries, the rollout under way in an
environment, the commands a person gives it (`promote`, `abort`) and the record the run stage
keeps of it. The run stage's own steps (the router's shares, the analysis) live in workers/."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy
import structlog
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import ColumnElement, Table, and_, bindparam, or_, update
from sqlmodel import Session, col, select

from shipyard.shared import constants
from shipyard.shared.db import core_connection, sync_loaded
from shipyard.shared.exceptions import Conflict, InvalidInput, NotFound
from shipyard.shared.models import (
    App,
    Deployment,
    DeploymentStatus,
    Environment,
    Release,
)
from shipyard.shared.schemas.rollouts import (
    RolloutCommand,
    RolloutPlan,
    RolloutPublic,
    RolloutRecord,
    RolloutRequest,
    StoredRecord,
)
from shipyard.shared.stages import PipelineKind

log = structlog.get_logger(__name__)

# The kinds of pipeline that bring a new release, and so may go live gradually; the others run
# a release that ran before (rollback) or the live one again (restart, scale, failover,
# placement), at once.
# What a run stage spends besides the plan, its health check and drain (starting, the router,
# the store), kept free under its task's time limit.
ROLLOUT_MARGIN_SECONDS = 60.0
GRADUAL_KINDS = frozenset({PipelineKind.DEPLOY, PipelineKind.CONFIG, PipelineKind.PROMOTION})

_STORED_RECORD: TypeAdapter[RolloutRecord | None] = TypeAdapter(StoredRecord)


def resolve_plan(
    *, environment: Environment, kind: str, request: RolloutRequest | None
) -> dict[str, Any] | None:
    """The plan a pipeline of `kind` stores: the environment's default with the request's fields
    laid over it (`canary: []`: at once, whatever the default), as JSON; None when it goes live
    at once, unwatched (and always for kinds that bring no new release). InvalidInput for a plan
    RolloutPlan refuses, or one that would outlast the run stage."""
    if PipelineKind(kind) not in GRADUAL_KINDS:
        return None
    fields = dict(environment.rollout or {})
    if request is not None:
        fields |= request.model_dump(exclude_none=True)
    plan = parse_plan(fields, what="rollout")
    if not plan.gradual:
        return None
    check_duration(environment=environment, plan=plan)
    return plan.model_dump(mode="json")


def check_duration(*, environment: Environment, plan: RolloutPlan) -> None:
    """Refuse a plan that, with the environment's health check and drain at their longest,
    would outlast the run stage's task (its hard time limit ends it, the canary with it)."""
    longest = plan.seconds + environment.health_timeout + environment.drain_timeout
    if longest + ROLLOUT_MARGIN_SECONDS > constants.TASK_TIME_LIMIT_SECONDS:
        raise InvalidInput(
            f"the canary's steps and the watch ({plan.seconds:g}s), with {environment.name}'s "
            f"health timeout ({environment.health_timeout:g}s) and drain timeout "
            f"({environment.drain_timeout:g}s), could take longer than a run stage may "
            f"({constants.TASK_TIME_LIMIT_SECONDS - ROLLOUT_MARGIN_SECONDS:g}s): fewer or "
            "shorter steps, or a shorter watch"
        )


def parse_plan(fields: dict[str, Any], *, what: str) -> RolloutPlan:
    """`fields` as a RolloutPlan; InvalidInput with the validators' own words if it is not one."""
    try:
        return RolloutPlan.model_validate(fields)
    except ValidationError as exc:
        raise InvalidInput(f"{what}: {_reasons(exc)}") from None


def _reasons(error: ValidationError) -> str:
    """A ValidationError's messages, each with its field (the input itself is not echoed)."""
    reasons = []
    for problem in error.errors():
        message = str(problem["msg"]).removeprefix("Value error, ")
        location = ".".join(str(part) for part in problem["loc"])
        reasons.append(f"{location}: {message}" if location else message)
    return "; ".join(reasons)


def set_default(*, environment: Environment, plan: RolloutPlan | None) -> None:
    """Make `plan` how the environment's deploys go live by default (None: at once, unwatched;
    a plan that is neither gradual is stored as None)."""
    if plan is not None and not plan.gradual:
        plan = None
    environment.rollout = plan.model_dump(mode="json") if plan is not None else None


_DEPLOYMENTS: Table = Deployment.__table__  # type: ignore[attr-defined]
_STATE = _DEPLOYMENTS.c.rollout["state"].as_string()
# A rollout under way: canary steps while the new release is still `starting` (the live one
# takes the rest of the requests), or the watch once it is live.
_RUNNING: ColumnElement[bool] = or_(
    and_(_DEPLOYMENTS.c.status == DeploymentStatus.STARTING, _STATE == "canary"),
    and_(_DEPLOYMENTS.c.status == DeploymentStatus.LIVE, _STATE == "watching"),
)


def active(*, session: Session, environment_id: uuid.UUID) -> Deployment | None:
    """The environment's deployment whose canary or watch runs now, if any."""
    return session.exec(
        select(Deployment)
        .where(Deployment.environment_id == environment_id, _RUNNING)
        .order_by(col(Deployment.created_at).desc())
    ).first()


def running(*, session: Session) -> list[tuple[str, str, RolloutRecord]]:
    """Every rollout under way, as (app, environment, record), for the metrics."""
    rows = session.exec(
        select(App.name, Environment.name, Deployment.rollout)
        .select_from(Deployment)
        .join(Environment, col(Environment.id) == col(Deployment.environment_id))
        .join(App, col(App.id) == col(Environment.app_id))
        .where(_RUNNING, col(App.destroyed_at).is_(None))
    ).all()
    found = []
    for app, environment, stored in rows:
        record = _STORED_RECORD.validate_python(stored)
        if record is not None:
            found.append((app, environment, record))
    return found


def current(*, session: Session, environment: Environment) -> RolloutPublic | None:
    """The environment's rollout under way, with its deployment and release, or None."""
    deployment = active(session=session, environment_id=environment.id)
    if deployment is None:
        return None
    return _public(
        session,
        deployment.id,
        deployment.release_id,
        deployment.rollout,
        deployment.rollout_command,
    )


def get_current(*, session: Session, environment: Environment) -> RolloutPublic:
    """The environment's rollout under way, or NotFound saying that none runs."""
    found = current(session=session, environment=environment)
    if found is None:
        raise NotFound(f"no canary or watch runs in {environment.name} now")
    return found


def _given(command: str) -> Any:
    return (
        update(_DEPLOYMENTS)
        .where(_DEPLOYMENTS.c.id == bindparam("p_deployment"), _RUNNING)
        .values(rollout_command=command)
        .returning(_DEPLOYMENTS.c.release_id, _DEPLOYMENTS.c.rollout)
    )


# Built once: a person's command, written only while the rollout still runs.
# `yield`: a rollback was asked for; a canary aborts, a watch ends without a rollback of its own.
_GIVE = {command: _given(command) for command in ("promote", "abort", "yield")}


def give_command(
    *, session: Session, environment: Environment, command: RolloutCommand
) -> RolloutPublic:
    """Ask the environment's rollout under way to `promote` (100 % now; a watch ends, keeping
    the new release) or `abort` (the live release back to 100 %, the new one stopped; a watch
    rolls back); the run stage takes it at its next look. Conflict when none runs. A later
    command replaces one not taken yet."""
    deployment = active(session=session, environment_id=environment.id)
    row = None
    if deployment is not None:
        # Conditional: a rollout that ended since it was read is not given a command.
        row = (
            core_connection(session)
            .execute(_GIVE[command], {"p_deployment": deployment.id})
            .one_or_none()
        )
    if deployment is None or row is None:
        raise Conflict(f"no canary or watch runs in {environment.name} now: nothing to {command}")
    sync_loaded(session, Deployment, deployment.id, {"rollout_command": command})
    log.info("rollout.command", deployment_id=str(deployment.id), command=command)
    return _public(session, deployment.id, row.release_id, row.rollout, command)


_COMMAND = sqlalchemy.select(_DEPLOYMENTS.c.rollout_command).where(
    _DEPLOYMENTS.c.id == bindparam("p_deployment")
)
# Clears exactly the command read: one given in between is not lost, it is taken next.
_TAKE = (
    update(_DEPLOYMENTS)
    .where(
        _DEPLOYMENTS.c.id == bindparam("p_deployment"),
        _DEPLOYMENTS.c.rollout_command == bindparam("p_command"),
    )
    .values(rollout_command=None)
    .returning(_DEPLOYMENTS.c.id)
)
_VALID_COMMANDS: frozenset[str] = frozenset({"promote", "abort", "yield"})


def take_command(*, session: Session, deployment_id: uuid.UUID) -> RolloutCommand | None:
    """The command given to the deployment's rollout, cleared as it is taken; None if none.

    UPDATE … RETURNING gives the row's new value on SQLite and PostgreSQL alike, never the
    one it replaced: so the command is read, then cleared on the condition that it is still
    the one read (compare-and-set). Usually there is none, and that costs a single SELECT.
    """
    connection = core_connection(session)
    for _ in range(3):  # a person would have to change their mind within microseconds
        command = connection.execute(_COMMAND, {"p_deployment": deployment_id}).scalar()
        if command is None:
            return None
        taken = connection.execute(
            _TAKE, {"p_deployment": deployment_id, "p_command": command}
        ).one_or_none()
        if taken is not None:
            sync_loaded(session, Deployment, deployment_id, {"rollout_command": None})
            return command if command in _VALID_COMMANDS else None
    return None


_RECORD = (
    update(_DEPLOYMENTS)
    .where(_DEPLOYMENTS.c.id == bindparam("p_deployment"))
    .values(rollout=bindparam("p_rollout"))
)


def record(*, session: Session, deployment_id: uuid.UUID, record: RolloutRecord) -> None:
    """Write where the deployment's rollout stands (its plan, state, share and steps)."""
    stored = record.model_dump(mode="json")
    core_connection(session).execute(_RECORD, {"p_deployment": deployment_id, "p_rollout": stored})
    sync_loaded(session, Deployment, deployment_id, {"rollout": stored})


def record_of(stored: dict[str, Any] | None) -> RolloutRecord | None:
    """A stored rollout record, or None (none, or one that does not parse)."""
    return _STORED_RECORD.validate_python(stored)


def _public(
    session: Session,
    deployment_id: uuid.UUID,
    release_id: uuid.UUID,
    stored: dict[str, Any] | None,
    command: str | None,
) -> RolloutPublic:
    version = session.exec(select(Release.version).where(Release.id == release_id)).one()
    parsed = record_of(stored)
    if parsed is None:
        # Running (its state said so), but its record is not one this version reads.
        state = (stored or {}).get("state")
        parsed = RolloutRecord(
            plan=RolloutPlan(),
            state=state if state in ("canary", "watching") else "canary",
            share=0,
            reason="its record could not be read by this version of Shipyard",
        )
    return RolloutPublic(
        **parsed.model_dump(),
        deployment_id=deployment_id,
        release_version=version,
        command=command if command in _VALID_COMMANDS else None,
    )
