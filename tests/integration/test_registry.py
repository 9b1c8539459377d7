"""Artifacts across hosts: a build host and a run host that share only Redis, PostgreSQL and an
OCI registry (two data dirs, nothing else in common), on a real `docker-registry`."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from cryptography.fernet import Fernet

from shipyard.shared.artifacts import FileStore, file_digest
from shipyard.shared.artifacts.oci import artifact_tag
from tests.conftest import commit_file, fresh_database
from tests.docker_support import containers_of, unique_app, write_app
from tests.integration.stack import SHIPYARD, Stack, fetch, free_port, stack_environment
from tests.integration.traffic import router_client
from tests.registry_support import Registry, require_registry_binary
from tests.repos import git

pytest_plugins = ["tests.docker_support", "tests.registry_support"]


@dataclass
class TwoHosts:
    """The stack (API, release and run pools on the run host), its registry and both data dirs."""

    stack: Stack
    registry: Registry
    build_host: Path
    run_host: Path

    def run_host_cache(self) -> FileStore:
        return FileStore(self.run_host / "cache" / "artifacts")

    def manifest_status(self, app: str, digest: str) -> int:
        url = f"http://{self.registry.host}/v2/shipyard/{app}/manifests/{artifact_tag(digest)}"
        return httpx.head(
            url, headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}
        ).status_code


@pytest.fixture(scope="module")
def two_hosts(
    redis_url: str,
    broker_namespace: str,
    postgres_server: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[TwoHosts]:
    require_registry_binary()
    registry = Registry(tmp_path_factory.mktemp("registry"))
    registry.start()
    build_host = tmp_path_factory.mktemp("build-host")
    run_host = tmp_path_factory.mktemp("run-host")
    with fresh_database(postgres_server) as database_url:
        token = secrets.token_urlsafe(24)
        env = stack_environment(
            run_host,
            SHIPYARD_BROKER_URL=redis_url,
            # A namespace of its own: the session's other workers never take these tasks.
            SHIPYARD_BROKER_NAMESPACE=f"{broker_namespace}-registry",
            SHIPYARD_DATABASE_URL=database_url,
            SHIPYARD_SECRET_KEY=Fernet.generate_key().decode(),
            SHIPYARD_ADMIN_TOKEN=token,
            SHIPYARD_ARTIFACT_STORE=registry.url(),
        )
        subprocess.run([SHIPYARD, "db", "upgrade"], env=env, check=True, capture_output=True)
        port = free_port()
        stack = Stack(url=f"http://127.0.0.1:{port}", token=token, env=env, data_dir=run_host)
        try:
            # The build host: its own data dir, nothing of the run host's.
            stack.spawn(
                "worker-build", "worker", "build", env={**env, "SHIPYARD_DATA_DIR": str(build_host)}
            )
            for queue in ("release", "run", "notify"):
                stack.spawn(f"worker-{queue}", "worker", queue)
            stack.spawn("beat", "beat")
            stack.spawn("router", "router")
            stack.spawn("api", "api", "--port", str(port))
            stack.wait_healthy()
            yield TwoHosts(stack, registry, build_host, run_host)
        finally:
            stack.stop_all()
            registry.stop()


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def stage(pipeline: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in pipeline["stages"] if s["name"] == name)


def wait_for(condition: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


def test_a_pipeline_builds_on_one_host_and_runs_on_another_through_the_registry(
    two_hosts: TwoHosts, hello_repo: Path
) -> None:
    stack, app = two_hosts.stack, unique("farm")
    stack.create_app(app, hello_repo, envs=("staging",))
    stack.patch_config(app, "staging", {"vars": {"GREETING": "built there, run here"}})

    pipeline = stack.deploy(app, "staging")

    assert pipeline["status"] == "succeeded", pipeline
    digest = pipeline["artifact_id"]
    assert two_hosts.manifest_status(app, digest) == 200
    # The run host pulled the artifact into its own cache and checked its digest...
    cached = two_hosts.run_host_cache().path_for(digest)
    assert file_digest(cached) == digest
    pulled = [
        line
        for line in stack.log_path("worker-run").read_text().splitlines()
        if '"artifact.pulled"' in line and digest in line
    ]
    assert pulled and '"verified": true' in pulled[0]
    # ...and neither host keeps an artifact directory that the other could have shared.
    assert not (two_hosts.build_host / "artifacts").exists()
    assert not (two_hosts.run_host / "artifacts").exists()
    assert not (two_hosts.build_host / "cache" / "artifacts").exists()
    url = stack.current(app, "staging")["url"]
    assert router_client(url).get("/").text.strip() == "built there, run here"
    artifact = stack.api("GET", f"/v1/apps/{app}/artifacts", 200)[0]
    assert artifact["location"] == f"{two_hosts.registry.host}/shipyard/{app}@{digest}"
    listed = stack.run_cli("artifacts", "--app", app, "--json")
    assert [row["location"] for row in json.loads(listed.stdout)] == [artifact["location"]]


def test_a_blob_changed_in_the_registry_is_refused_by_a_run_host_that_must_fetch_it(
    two_hosts: TwoHosts, hello_repo: Path
) -> None:
    stack, app = two_hosts.stack, unique("tamper")
    stack.create_app(app, hello_repo, envs=("staging", "production"))
    digest = stack.deploy(app, "staging")["artifact_id"]
    blob = two_hosts.registry.blob_file(digest)
    blob.write_bytes(blob.read_bytes()[::-1])
    # A run host that has not pulled it yet (its cache emptied): it must fetch the changed blob.
    cache = two_hosts.run_host_cache()
    cache.path_for(digest).unlink()

    promoted = stack.api(
        "POST", f"/v1/apps/{app}/promotions", 202, json={"from": "staging", "to": "production"}
    )
    pipeline = stack.wait_pipeline(promoted["id"])

    assert pipeline["status"] == "failed"
    failed = next(s for s in pipeline["stages"] if s["status"] == "failed")
    assert "modified or damaged" in failed["error"] and digest in failed["error"]
    assert not cache.path_for(digest).exists()
    assert stack.api("GET", f"/v1/apps/{app}/environments/production/current", 404)
    assert fetch(stack.web_url(app, "staging")) == "Hello from Shipyard"  # untouched


def test_gc_deletes_the_manifest_of_an_unkept_artifact_and_a_rollback_to_it_is_refused(
    two_hosts: TwoHosts, hello_repo: Path
) -> None:
    stack, app = two_hosts.stack, unique("gc")
    stack.create_app(app, hello_repo, envs=("staging",))
    built = []
    for number in range(2):
        commit_file(hello_repo, "VERSION", f"{number}\n")
        built.append(stack.deploy(app, "staging")["artifact_id"])

    result = stack.api("POST", "/v1/gc", 200, json={"keep": 1})

    assert built[0] in result["removed_artifacts"] and built[1] not in result["removed_artifacts"]
    wait_for(
        lambda: two_hosts.manifest_status(app, built[0]) == 404,
        f"the build host to delete {built[0]}'s manifest from the registry",
    )
    assert two_hosts.manifest_status(app, built[1]) == 200
    refused = stack.api(
        "POST", f"/v1/apps/{app}/environments/staging/rollback", 409, json={"to_version": 1}
    )
    assert "expired" in refused["detail"]


def test_a_registry_down_mid_pipeline_fails_the_build_clearly_and_records_no_artifact(
    two_hosts: TwoHosts, hello_repo: Path
) -> None:
    stack, registry, app = two_hosts.stack, two_hosts.registry, unique("down")
    # A build that takes a while, so that the registry stops while it runs.
    commit_file(hello_repo, "shipyard.toml", '[build]\ncommand = "sleep 3"\n', "slow")
    stack.create_app(app, hello_repo, envs=("staging",))
    pipeline_id = stack.start_pipeline(app, "staging")
    wait_for(
        lambda: (
            stage(stack.api("GET", f"/v1/pipelines/{pipeline_id}", 200), "build")["status"]
            == "running"
        ),
        "the build stage to start",
    )
    registry.stop()
    try:
        pipeline = stack.wait_pipeline(pipeline_id)

        assert pipeline["status"] == "failed"
        error = stage(pipeline, "build")["error"]
        assert "is unreachable" in error and registry.host in error
        assert stage(pipeline, "release")["status"] != "succeeded"
        assert stack.api("GET", f"/v1/apps/{app}/artifacts", 200) == []
        assert stack.api("GET", f"/v1/apps/{app}/environments/staging/releases", 200) == []
    finally:
        registry.start()

    again = stack.deploy(app, "staging")

    assert again["status"] == "succeeded", again
    assert two_hosts.manifest_status(app, again["artifact_id"]) == 200


def test_a_docker_app_is_pushed_by_its_build_host_and_run_by_digest(
    docker_engine: docker.DockerClient, two_hosts: TwoHosts, tmp_path: Path
) -> None:
    stack, app = two_hosts.stack, unique_app()
    repo = write_app(tmp_path / "docker-repo")
    git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", "busybox app")
    stack.api("POST", "/v1/apps", 201, json={"name": app, "repo": str(repo), "builder": "docker"})
    stack.api(
        "POST",
        f"/v1/apps/{app}/environments",
        201,
        json={"name": "staging", "runner": "docker", "health_timeout": 10},
    )
    stack.patch_config(app, "staging", {"vars": {"GREETING": "from the registry"}})

    pipeline = stack.deploy(app, "staging")

    assert pipeline["status"] == "succeeded", pipeline
    digest = pipeline["artifact_id"]
    reference = f"{two_hosts.registry.host}/shipyard/{app}@{digest}"
    manifest = httpx.head(
        f"http://{two_hosts.registry.host}/v2/shipyard/{app}/manifests/{digest}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    assert manifest.status_code == 200 and manifest.headers["Docker-Content-Digest"] == digest
    image = docker_engine.images.get(reference)
    for container in containers_of(docker_engine, f"shipyard.app={app}"):
        assert container.attrs["Image"] == image.id  # by content, never by a tag
    assert fetch(stack.web_url(app, "staging")) == "from the registry"


def test_a_cache_hit_whose_artifact_left_the_registry_is_built_and_pushed_again(
    two_hosts: TwoHosts, hello_repo: Path
) -> None:
    stack, app = two_hosts.stack, unique("lost")
    stack.create_app(app, hello_repo, envs=("staging",))
    digest = stack.deploy(app, "staging")["artifact_id"]
    tag_url = f"http://{two_hosts.registry.host}/v2/shipyard/{app}/manifests/{artifact_tag(digest)}"
    manifest = httpx.head(tag_url, headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    deleted = httpx.delete(
        f"http://{two_hosts.registry.host}/v2/shipyard/{app}/manifests/"
        + manifest.headers["Docker-Content-Digest"]
    )
    assert deleted.status_code == 202

    again = stack.deploy(app, "staging")

    assert again["status"] == "succeeded", again
    assert again["artifact_id"] == digest  # the same commit builds the same artifact
    log = stack.api("GET", f"/v1/pipelines/{again['id']}/log", 200)["log"]
    assert "no longer in the artifact store: rebuilding" in log
    assert two_hosts.manifest_status(app, digest) == 200
