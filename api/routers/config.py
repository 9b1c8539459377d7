"""Config of an environment: `/v1/apps/{app}/environments/{env}/config`."""

from __future__ import annotations

from fastapi import APIRouter

from shipyard.api.auth import PrincipalDep, deploy_scoped
from shipyard.api.deps import ClientDep, PublisherDep, SecretBoxDep, SessionDep
from shipyard.shared.schemas import ConfigPatch, ConfigPublic
from shipyard.shared.services import apps, config, pipelines

router = APIRouter(prefix="/apps/{app}/environments/{env}/config", tags=["config"])


@router.get("")
def get_config(app: str, env: str, session: SessionDep) -> ConfigPublic:
    """The current config version; secret values are shown as <redacted>."""
    environment = apps.environment_by_names(session=session, app=app, name=env)
    view = config.config_public(config.current_config(session=session, environment=environment))
    view.live_version = config.live_config_version(session=session, environment=environment)
    return view


@router.patch("")
@deploy_scoped
def patch_config(
    app: str,
    env: str,
    patch: ConfigPatch,
    session: SessionDep,
    box: SecretBoxDep,
    publish: PublisherDep,
    principal: PrincipalDep,
    client: ClientDep,
) -> ConfigPublic:
    """Set (value) or unset (null) vars as a new config version; with a live release and
    `deploy` (the default), release and run the live artifact with it, as Heroku does."""
    principal.require_deploy(env)
    owner = apps.get_app(session=session, name=app)
    environment = apps.get_environment(session=session, app=owner, name=env)
    version, _changed = config.patch_config(
        session=session, environment=environment, patch=patch, box=box
    )
    pipeline = None
    if patch.deploy:
        # Also when nothing changed: a release of this config may have failed to start before.
        pipeline = pipelines.create_config_pipeline(
            session=session,
            app=owner,
            environment=environment,
            config=version,
            trigger=client,
            requested_by=principal.name,
        )
    session.commit()
    public = config.config_public(version)
    if pipeline is not None:
        pipelines.start(session=session, pipeline=pipeline, publish=publish)
        public.pipeline_id = pipeline.id
    return public
