"""Formation: how many processes of each type an environment runs (Heroku's `ps:scale`).

Scaling is not a new release: it runs the live release again with the new counts, through the
same health-gated switch with drain as any deploy, recorded as a deployment of cause `scale`.
"""

from __future__ import annotations

from sqlmodel import Session, select

from shipyard.shared.exceptions import Conflict, InvalidInput
from shipyard.shared.models import App, Environment, Pipeline, Release
from shipyard.shared.process_record import ProcessRecord
from shipyard.shared.services import deployments, pipelines, queueing
from shipyard.shared.stages import PipelineKind


def process_count(formation: dict[str, int], process_type: str) -> int:
    """How many `process_type` processes run: the formation's count, else one."""
    return formation.get(process_type, 1)


def share_indexes(
    formation: dict[str, int], process_type: str, position: int = 0, hosts: int = 1
) -> list[int]:
    """The indexes (1…N) of the `process_type` processes that run host `position` of `hosts`
    runs when the environment is spread over several: dealt out in turn, so `web=3` on two
    hosts runs web.1 and web.3 on the first, web.2 on the second."""
    return [
        index
        for index in range(1, process_count(formation, process_type) + 1)
        if (index - 1) % hosts == position
    ]


def laid_out(processes: list[ProcessRecord], hosts: list[str], formation: dict[str, int]) -> bool:
    """Whether the processes are one of each index of their type that the formation runs, each
    on the host it is dealt to over `hosts` (share_indexes; a process recorded without a host
    is on the first): what a release's processes taken back from standby must be to run as it
    would be started now, with no index twice and none on a host that no longer runs it."""
    # Every type they run, and any the formation now asks for (scaled up since: then not they).
    types = {str(p["type"]) for p in processes} | {t for t, n in formation.items() if n > 0}
    wanted = {
        (process_type, index, host)
        for position, host in enumerate(hosts)
        for process_type in types
        for index in share_indexes(formation, process_type, position, len(hosts))
    }
    found = [(str(p["type"]), p.get("index"), p.get("host", hosts[0])) for p in processes]
    return len(set(found)) == len(found) and set(found) == wanted


def scale(
    *,
    session: Session,
    app: App,
    environment: Environment,
    changes: dict[str, int],
    trigger: str,
    requested_by: str | None = None,
) -> Pipeline | None:
    """Change the formation; when a release is live, a pipeline that runs it so (else None:
    the next deploy runs the new formation)."""
    if changes.get("web") == 0:
        raise InvalidInput("web cannot be scaled to 0: it is what the router sends traffic to")
    _refuse_while_busy(session, environment, "scale")
    environment.formation = {**environment.formation, **changes}
    session.add(environment)
    live = deployments.live_deployment(session=session, environment_id=environment.id)
    if live is None:
        session.flush()
        return None
    release = session.get(Release, live.release_id)
    assert release is not None
    return pipelines.create_pipeline(
        session=session,
        app=app,
        environment=environment,
        kind=PipelineKind.SCALE,
        trigger=trigger,
        requested_by=requested_by,
        artifact_id=release.artifact_id,
        release_id=release.id,
    )


def restart(
    *,
    session: Session,
    app: App,
    environment: Environment,
    trigger: str,
    requested_by: str | None = None,
    process_type: str | None = None,
) -> Pipeline:
    """A pipeline that runs the live release again as it runs (`ps:restart`): new processes,
    healthy before the router switches to them, the old ones drained and stopped. With
    `process_type` (`ps:restart web`), only that type's: the others keep running as they are."""
    _refuse_while_busy(session, environment, "restart")
    live = deployments.live_deployment(session=session, environment_id=environment.id)
    if live is None:
        raise InvalidInput(f"nothing is live in {environment.name}: deploy it first")
    running = sorted({str(p["type"]) for p in live.processes})
    if process_type is not None and process_type not in running:
        raise InvalidInput(
            f"{environment.name} runs no {process_type!r} process "
            f"(it runs: {', '.join(running) or 'none'})"
        )
    release = session.get(Release, live.release_id)
    assert release is not None
    return pipelines.create_pipeline(
        session=session,
        app=app,
        environment=environment,
        kind=PipelineKind.RESTART,
        trigger=trigger,
        requested_by=requested_by,
        artifact_id=release.artifact_id,
        release_id=release.id,
        process_type=process_type,
    )


def _refuse_while_busy(session: Session, environment: Environment, what: str) -> None:
    """Refuse (409) while a pipeline of the environment is under way: it could make another
    release live first, and this would then run the older one again."""
    busy = session.exec(
        select(Pipeline.id).where(Pipeline.environment_id == environment.id, queueing.active())
    ).first()
    if busy is not None:
        raise Conflict(
            f"a pipeline of {environment.name} is under way ({busy}); {what} once it has ended"
        )
