"""Environments of an app: `/v1/apps/{app}/environments`, and what runs in each."""

from __future__ import annotations

from fastapi import APIRouter, status

from shipyard.api.auth import PrincipalDep
from shipyard.api.deps import ClientDep, PublisherDep, SessionDep, SettingsDep, WorkersProbeDep
from shipyard.shared import routing
from shipyard.shared.exceptions import NotFound
from shipyard.shared.schemas import (
    CurrentPublic,
    EnvironmentCreate,
    EnvironmentPublic,
    EnvironmentUpdate,
    PlacementChange,
    StoragePublic,
)
from shipyard.shared.services import apps, certificates, deployments, hosts, pipelines

router = APIRouter(prefix="/apps/{app}/environments", tags=["environments"])


@router.post("", status_code=status.HTTP_201_CREATED)
def create_environment(
    app: str,
    data: EnvironmentCreate,
    session: SessionDep,
    settings: SettingsDep,
    probe: WorkersProbeDep,
    publish: PublisherDep,
) -> EnvironmentPublic:
    """Add an environment (staging, production, …) with its runner and health check."""
    owner = apps.get_app(session=session, name=app)
    placed = hosts.choose(
        session=session, probe=probe, run_host=data.run_host, hosts=data.hosts, spread=data.spread
    )
    environment = apps.create_environment(
        session=session, app=owner, data=data, slots=settings.router_slots, placed=placed
    )
    session.commit()
    if environment.domains:
        certificates.ask_for_orders(publish)
    return routing.environment_public(settings, environment, app)


@router.get("/{env}")
def get_environment(
    app: str, env: str, session: SessionDep, settings: SettingsDep
) -> EnvironmentPublic:
    """One environment, with its stable URL."""
    environment = apps.environment_by_names(session=session, app=app, name=env)
    return routing.environment_public(settings, environment, app)


@router.patch("/{env}")
def update_environment(
    app: str,
    env: str,
    data: EnvironmentUpdate,
    session: SessionDep,
    settings: SettingsDep,
    publish: PublisherDep,
) -> EnvironmentPublic:
    """Change its domains (admin; the whole list: each one added is given a certificate from
    the ACME CA, each one removed loses its own) and their HTTPS: `https_redirect` (plain HTTP
    redirected once a domain has a certificate) and `hsts`; and `rollout`, how its deploys go
    live by default (a plan; null: at once, unwatched)."""
    environment = apps.environment_by_names(session=session, app=app, name=env)
    added = apps.update_environment(session=session, environment=environment, data=data)
    session.commit()
    if added:
        certificates.ask_for_orders(publish)
    return routing.environment_public(settings, environment, app)


@router.get("")
def list_environments(
    app: str, session: SessionDep, settings: SettingsDep
) -> list[EnvironmentPublic]:
    """The app's environments, with their stable URLs."""
    owner = apps.get_app(session=session, name=app)
    return [
        routing.environment_public(settings, e, app)
        for e in apps.list_environments(session=session, app=owner)
    ]


@router.put("/{env}/placement", status_code=status.HTTP_202_ACCEPTED)
def change_placement(
    app: str,
    env: str,
    data: PlacementChange,
    session: SessionDep,
    probe: WorkersProbeDep,
    publish: PublisherDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    client: ClientDep,
) -> EnvironmentPublic:
    """Run the environment on other run hosts (admin): its live release starts there healthy
    before it stops where it ran, in a `placement` pipeline (`pipeline_id`; none when nothing is
    live yet)."""
    owner = apps.get_app(session=session, name=app)
    environment = apps.environment_by_names(session=session, app=app, name=env)
    placed = hosts.choose(
        session=session, probe=probe, run_host=data.run_host, hosts=data.hosts, spread=data.spread
    )
    assert placed is not None, "PlacementChange says where"
    pipeline = hosts.replace_placement(
        session=session,
        app=owner,
        environment=environment,
        placed=placed,
        trigger=client,
        requested_by=principal.name,
    )
    session.commit()
    view = routing.environment_public(settings, environment, app)
    if pipeline is not None:
        pipelines.start(session=session, pipeline=pipeline, publish=publish)
        view.pipeline_id = pipeline.id
    return view


@router.get("/{env}/current")
def current(app: str, env: str, session: SessionDep, settings: SettingsDep) -> CurrentPublic:
    """The live release, its deployment, its processes and the stable URL; 404 when nothing is
    live."""
    environment = apps.environment_by_names(session=session, app=app, name=env)
    live = deployments.current(session=session, environment=environment)
    if live is None:
        raise NotFound(f"nothing is live in {app}/{env} yet")
    if environment.route_slot is not None:
        live.url = routing.url(settings, app, env)
    return live


@router.get("/{env}/storage")
def storage(app: str, env: str, session: SessionDep) -> StoragePublic:
    """The environment's persistent storage: the variable apps read and where it is."""
    environment = apps.environment_by_names(session=session, app=app, name=env)
    return deployments.storage(session=session, environment=environment)
