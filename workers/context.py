"""What every task needs, made once per worker process: settings, database, store, keys."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import redis
from celery import Celery

from shipyard.router.runtime import RuntimeAPI
from shipyard.shared.artifacts import ArtifactStore, open_store
from shipyard.shared.crypto import SecretBox
from shipyard.shared.settings import Settings
from shipyard.workers.docker_engine import DockerEngine
from shipyard.workers.sandbox import Sandbox


@dataclass(frozen=True)
class WorkerContext:
    """Long-lived clients of one worker process, passed to stages and drivers."""

    settings: Settings
    celery: Celery
    box: SecretBox
    store: ArtifactStore
    redis: redis.Redis  # the broker, for the release-phase lock
    router: RuntimeAPI  # this run host's router (it may not run: see RuntimeAPI.available)
    docker: DockerEngine  # connected when a Docker builder or runner first needs it
    sandbox: Sandbox  # how apps' programs are confined on this host

    @property
    def db_url(self) -> str:
        return self.settings.sqlalchemy_url

    @classmethod
    def create(cls, settings: Settings, celery: Celery) -> WorkerContext:
        """Build the context from settings; called when a worker process first runs a task."""
        for folder in (settings.work_dir, settings.run_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return cls(
            settings=settings,
            celery=celery,
            box=settings.secret_box(),
            store=_artifact_store(settings),
            # A broker that does not answer fails the lock or the live log, never hangs them.
            redis=redis.Redis.from_url(
                settings.redis_url, socket_timeout=5, socket_connect_timeout=5
            ),
            router=RuntimeAPI(settings.router_socket),
            docker=DockerEngine(),
            sandbox=sandbox_for(settings),
        )


def sandbox_for(settings: Settings) -> Sandbox:
    """The confinement of apps' programs that `settings` ask for on this host."""
    directory = settings.artifact_store_location.directory
    store = [directory] if directory is not None else []
    return Sandbox(
        settings.sandbox,
        data_dir=settings.data_dir,
        uid_base=settings.app_uid_base,
        extra_paths=[Path(p) for p in settings.sandbox_paths.split(os.pathsep) if p],
        private_paths=[settings.metrics_root, *store],
    )


def _artifact_store(settings: Settings) -> ArtifactStore:
    password = settings.registry_password
    return open_store(
        settings.artifact_store_location,
        cache_dir=settings.artifact_cache_dir,
        username=settings.registry_username,
        password=password.get_secret_value() if password is not None else None,
        ca_file=settings.registry_ca_file,
    )
