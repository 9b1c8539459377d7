"""Deployments: which release runs where, and the switch from one to the next."""

from __future__ import annotations

import uuid

from sqlalchemy import Table, bindparam, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from shipyard.shared import constants
from shipyard.shared.crypto import SecretBox
from shipyard.shared.db import core_connection, sync_loaded
from shipyard.shared.drivers import RunnerName
from shipyard.shared.models import (
    ConfigVersion,
    Deployment,
    DeploymentStatus,
    Environment,
    Pipeline,
    Release,
    ReleaseStatus,
    utcnow,
)
from shipyard.shared.process_record import ProcessRecord
from shipyard.shared.schemas import CurrentPublic, DeploymentPublic, ProcessPublic, StoragePublic
from shipyard.shared.schemas.releases import StandbyPublic
from shipyard.shared.services.config import decrypt_config
from shipyard.shared.services.releases import lock_environment, release_public
from shipyard.shared.stages import PipelineKind

# The trigger and cause of a rollback that a watch asked for, the new release failing in production.
AUTO_ROLLBACK = "auto-rollback"


def deployment_cause(pipeline: Pipeline, release: Release) -> str:
    """Why a deployment happens: a rollback runs an old release, a scale the live one with a new
    formation, a failover or a placement the live one on other run hosts, a restart the live
    one again (a rollback a watch asked for: `auto-rollback`); otherwise its release's cause."""
    if pipeline.kind == PipelineKind.ROLLBACK and pipeline.trigger == AUTO_ROLLBACK:
        return AUTO_ROLLBACK
    if pipeline.kind in (
        PipelineKind.ROLLBACK,
        PipelineKind.SCALE,
        PipelineKind.FAILOVER,
        PipelineKind.PLACEMENT,
        PipelineKind.RESTART,
    ):
        return str(pipeline.kind)
    return release.cause


def begin_deployment(
    *, session: Session, pipeline_id: uuid.UUID, release: Release, cause: str
) -> Deployment | None:
    """The starting deployment of `pipeline_id`; None if another worker already made it."""
    existing = session.exec(select(Deployment).where(Deployment.pipeline_id == pipeline_id)).first()
    if existing is not None:
        return existing
    deployment = Deployment(
        environment_id=release.environment_id,
        release_id=release.id,
        pipeline_id=pipeline_id,
        cause=cause,
    )
    session.add(deployment)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        return None
    return deployment


def live_deployment(*, session: Session, environment_id: uuid.UUID) -> Deployment | None:
    """The environment's live deployment, if any."""
    return session.exec(
        select(Deployment).where(
            Deployment.environment_id == environment_id,
            Deployment.status == DeploymentStatus.LIVE,
        )
    ).first()


_DEPLOYMENTS: Table = Deployment.__table__  # type: ignore[attr-defined]
_RELEASES: Table = Release.__table__  # type: ignore[attr-defined]
_THIS_DEPLOYMENT = _DEPLOYMENTS.c.id == bindparam("p_deployment")
# The switch's statements, built once (every run stage makes them).
_SUPERSEDE = (
    update(_DEPLOYMENTS)
    .where(_THIS_DEPLOYMENT)
    .values(status=DeploymentStatus.SUPERSEDED, ended_at=bindparam("p_now"))
)
# Superseded by a restart of one process type: it keeps only the processes that were replaced.
_SUPERSEDE_PART = _SUPERSEDE.values(processes=bindparam("p_processes"))
_LIVE = {
    switched: update(_DEPLOYMENTS)
    .where(_THIS_DEPLOYMENT)
    .values(
        status=DeploymentStatus.LIVE,
        started_at=bindparam("p_now"),
        ended_at=None,  # a retry may revive a row an earlier attempt marked failed
        processes=bindparam("p_processes"),
        error=None,
        **({"switched_at": bindparam("p_now")} if switched else {}),
    )
    for switched in (False, True)
}
_RAN = (
    update(_RELEASES)
    .where(_RELEASES.c.id == bindparam("p_release"))
    .values(status=ReleaseStatus.SUCCEEDED)
)
_PROCESSES = update(_DEPLOYMENTS).where(_THIS_DEPLOYMENT).values(processes=bindparam("p_processes"))


def go_live(
    *,
    session: Session,
    deployment: Deployment,
    processes: list[ProcessRecord],
    switched: bool = False,
    only_type: str | None = None,
) -> Deployment | None:
    """Make `deployment` the live one; returns the one it supersedes (whose processes to stop).

    `deployment` need not belong to `session` (only its ids are read); both rows are written
    without reading them again, and the objects updated to match. With `switched`, the
    deployment is recorded as serving its environment's traffic from now on too (no router
    between: each release answers on its own address).

    With `only_type` (`ps:restart web`), `processes` replace only the live processes of that
    type: the others carry over to `deployment` as they run, and the superseded deployment
    keeps only those replaced, so that whatever stops a replaced deployment's processes (the
    switch, the supervision's clean-up) never stops a process that still runs live.
    """
    lock_environment(session=session, environment_id=deployment.environment_id)
    now = utcnow()
    connection = core_connection(session)
    previous = live_deployment(session=session, environment_id=deployment.environment_id)
    if only_type is not None and previous is not None:
        # Its processes as they are now: the supervision rewrites a record it restarts.
        session.refresh(previous, with_for_update=True)
        processes = _restarted(previous.processes, processes, only_type)
    if previous is not None and previous.id != deployment.id:
        if only_type is None:
            connection.execute(_SUPERSEDE, {"p_deployment": previous.id, "p_now": now})
        else:
            replaced = [p for p in previous.processes if p["type"] == only_type]
            connection.execute(
                _SUPERSEDE_PART,
                {"p_deployment": previous.id, "p_now": now, "p_processes": replaced},
            )
            set_committed_value(previous, "processes", replaced)
        set_committed_value(previous, "status", DeploymentStatus.SUPERSEDED)
        set_committed_value(previous, "ended_at", now)
    else:
        previous = None
    connection.execute(
        _LIVE[switched], {"p_deployment": deployment.id, "p_now": now, "p_processes": processes}
    )
    made: dict[str, object] = {
        "status": DeploymentStatus.LIVE,
        "started_at": now,
        "ended_at": None,
        "processes": processes,
        "error": None,
    }
    if switched:
        made["switched_at"] = now
    for name, value in made.items():
        set_committed_value(deployment, name, value)
    sync_loaded(session, Deployment, deployment.id, made)  # the session's own copy, if another
    # The release went live at least once: nothing to read first.
    connection.execute(_RAN, {"p_release": deployment.release_id})
    sync_loaded(session, Release, deployment.release_id, {"status": ReleaseStatus.SUCCEEDED})
    return previous


def _restarted(
    live: list[ProcessRecord], started: list[ProcessRecord], only_type: str
) -> list[ProcessRecord]:
    """The processes after a restart of `only_type`: those started, and the live ones of every
    other type, unchanged; in the order the live ones ran (by type, then index)."""
    carried = [p for p in live if p["type"] != only_type]
    order = list(dict.fromkeys(str(p["type"]) for p in [*live, *started]))
    return sorted(
        [*carried, *started], key=lambda p: (order.index(str(p["type"])), p.get("index", 1))
    )


def fail_deployment(*, session: Session, deployment: Deployment, error: str) -> None:
    """Record a deployment that never became healthy; its release fails if it never ran."""
    deployment.status = DeploymentStatus.FAILED
    deployment.error = error
    deployment.ended_at = utcnow()
    session.add(deployment)
    release = session.get(Release, deployment.release_id)
    if release is not None and release.status == ReleaseStatus.PENDING:
        release.status = ReleaseStatus.FAILED
        session.add(release)
    session.flush()


def set_processes(
    *, session: Session, deployment_id: uuid.UUID, processes: list[ProcessRecord]
) -> None:
    """Record the processes a deployment runs now (started, or one of them restarted)."""
    core_connection(session).execute(
        _PROCESSES, {"p_deployment": deployment_id, "p_processes": processes}
    )
    sync_loaded(session, Deployment, deployment_id, {"processes": processes})


def live_deployments(
    *, session: Session, runner: RunnerName | None = None, starting: bool = False
) -> list[Deployment]:
    """Every live deployment (and, with `starting`, those still in their health check),
    optionally of environments using `runner`."""
    statuses = [DeploymentStatus.LIVE, *([DeploymentStatus.STARTING] if starting else [])]
    query = select(Deployment).where(col(Deployment.status).in_(statuses))
    if runner is not None:
        query = query.join(
            Environment, col(Environment.id) == col(Deployment.environment_id)
        ).where(Environment.runner == runner)
    return list(session.exec(query))


def unretired_deployments(*, session: Session, runner: RunnerName) -> list[Deployment]:
    """Deployments replaced whose processes were never recorded stopped: a switch interrupted
    during its drain (its run worker stopped or killed)."""
    query = (
        select(Deployment)
        .join(Environment, col(Environment.id) == col(Deployment.environment_id))
        .where(
            Deployment.status == DeploymentStatus.SUPERSEDED,
            col(Deployment.retired_at).is_(None),
            col(Deployment.switched_at).is_not(None),  # made since switches are recorded
            Environment.runner == runner,
        )
    )
    return list(session.exec(query))


def deployment_view(
    deployment: Deployment,
    release_version: int,
    trigger: str | None = None,
    requested_by: str | None = None,
) -> DeploymentPublic:
    """The API view of a deployment whose release's version (and pipeline's trigger and
    requester, when read with it) is known (no table-only column). Its rollout record is
    shown as None when it does not parse (DeploymentPublic's StoredRecord)."""
    return DeploymentPublic(
        **deployment.model_dump(
            exclude={"environment_id", "pipeline_id", "processes", "rollout_command"}
        ),
        release_version=release_version,
        trigger=trigger,
        requested_by=requested_by,
    )


def deployment_public(*, session: Session, deployment: Deployment) -> DeploymentPublic:
    """The API view of a deployment."""
    release = session.get(Release, deployment.release_id)
    assert release is not None
    return deployment_view(deployment, release.version)


def current(*, session: Session, environment: Environment) -> CurrentPublic | None:
    """What runs in `environment` now: release, deployment and processes."""
    deployment = live_deployment(session=session, environment_id=environment.id)
    if deployment is None:
        return None
    release = session.get(Release, deployment.release_id)
    assert release is not None
    standing_by = session.exec(
        select(Deployment, Release.version)
        .join(Release, col(Release.id) == col(Deployment.release_id))
        .where(
            Deployment.environment_id == environment.id,
            Deployment.status == DeploymentStatus.SUPERSEDED,
            col(Deployment.retired_at).is_(None),
            col(Deployment.standby_until) > utcnow(),
        )
    ).all()
    return CurrentPublic(
        release=release_public(session=session, release=release),
        deployment=deployment_public(session=session, deployment=deployment),
        processes=[_process_public(p) for p in deployment.processes],
        standby=[
            StandbyPublic(
                release_version=version,
                deployment_id=old.id,
                until=old.standby_until,
                processes=[_process_public(p) for p in old.processes],
            )
            for old, version in standing_by
            if old.standby_until is not None
        ],
    )


def _process_public(p: ProcessRecord) -> ProcessPublic:
    return ProcessPublic(
        type=p["type"],
        index=p.get("index", 1),
        status=p["status"],
        url=p.get("url"),
        restarts=p.get("restarts", 0),
        last_exit=p.get("last_exit"),
        restarted_at=p.get("restarted_at"),
        host=p.get("host"),
        pid=p.get("pid"),
        container=(p.get("container") or "")[:12] or None,
    )


def storage(*, session: Session, environment: Environment) -> StoragePublic:
    """The environment's persistent storage: the variable, the setting, where the runner put it."""
    live = live_deployment(session=session, environment_id=environment.id)
    located = [p["storage"] for p in (live.processes if live else []) if p.get("storage")]
    return StoragePublic(
        variable=constants.STORAGE_VARIABLE,
        configured=environment.storage_dir,
        location=located[0] if located else None,
    )


def live_output(
    *, session: Session, environment_id: uuid.UUID, box: SecretBox
) -> tuple[uuid.UUID | None, list[ProcessRecord], set[str]]:
    """The live deployment's id, its process records (where their output is) and the secret
    values of its release, to redact from that output."""
    live = live_deployment(session=session, environment_id=environment_id)
    if live is None:
        return None, [], set()
    release = session.get(Release, live.release_id)
    config = session.get(ConfigVersion, release.config_version_id) if release else None
    secrets = decrypt_config(config, box)[1] if config else set()
    return live.id, list(live.processes), secrets
