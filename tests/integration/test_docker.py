"""Docker builder and runner end to end: real workers, a real engine, an app FROM scratch."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.conftest import commit_file
from tests.docker_support import DOCKERFILE, PROCFILE, containers_of, unique_app, write_app
from tests.integration.stack import Stack, fetch
from tests.integration.traffic import Load, router_client
from tests.repos import git

pytest_plugins = ["tests.docker_support"]
pytestmark = pytest.mark.integration

SECRET = "s3cr3t-api-token-value"
# The release phase runs as a one-off container of the new release, before the switch.
RELEASE_LINE = 'release: echo "release phase of v$(cat VERSION) for ${GREETING:-nobody}"\n'


def docker_repo(tmp_path: Path, dockerfile: str = DOCKERFILE) -> Path:
    """A git repository holding a busybox app: Dockerfile, Procfile, VERSION and busybox."""
    repo = write_app(
        tmp_path / "docker-repo", procfile=PROCFILE + RELEASE_LINE, dockerfile=dockerfile
    )
    git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", "busybox app")
    return repo


def create_docker_app(stack: Stack, repo: Path, standby_seconds: float | None = None) -> str:
    """An app built by the docker builder, with a `staging` environment run by the docker runner
    (`standby_seconds`: how long a replaced release's containers stand by; None: the default)."""
    app = unique_app()
    stack.api("POST", "/v1/apps", 201, json={"name": app, "repo": str(repo), "builder": "docker"})
    environment: dict[str, Any] = {
        "name": "staging",
        "runner": "docker",
        "memory_limit": "64m",
        "cpu_limit": 0.5,
        "health_timeout": 10,
    }
    if standby_seconds is not None:
        environment["standby_seconds"] = standby_seconds
    stack.api("POST", f"/v1/apps/{app}/environments", 201, json=environment)
    return app


def configure(stack: Stack, app: str, body: dict[str, Any]) -> dict[str, Any]:
    """Change the config; when that starts a pipeline, wait for it and return it."""
    result = stack.patch_config(app, "staging", body)
    if result.get("pipeline_id") is None:
        return result
    return stack.wait_pipeline(result["pipeline_id"])


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Poll `condition` until it holds; fail saying what was awaited after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.2)


def stage(pipeline: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in pipeline["stages"] if s["name"] == name)


def live_containers(client: docker.DockerClient, app: str) -> dict[str, Any]:
    """The app's containers by process type (the release phase leaves none behind)."""
    containers = containers_of(client, f"shipyard.app={app}")
    by_type = {c.labels["shipyard.process"]: c for c in containers}
    assert len(by_type) == len(containers), [c.name for c in containers]
    return by_type


def test_a_docker_app_is_built_run_reconfigured_and_survives_a_crashing_change(
    docker_engine: docker.DockerClient, distributed: Stack, tmp_path: Path
) -> None:
    repo = docker_repo(tmp_path)
    commit = git(repo, "rev-parse", "HEAD")
    # Replaced containers stopped once drained (none standing by): the test follows each one.
    app = create_docker_app(distributed, repo, standby_seconds=0)
    configure(
        distributed,
        app,
        {"vars": {"GREETING": "hello from docker", "API_TOKEN": SECRET}, "secrets": ["API_TOKEN"]},
    )

    pipeline = distributed.deploy(app, "staging")

    assert pipeline["status"] == "succeeded", pipeline
    image = docker_engine.images.get(f"shipyard/{app}:{commit[:12]}")
    assert pipeline["artifact_id"] == image.id
    assert "release phase of v1 for hello from docker" in (
        stage(pipeline, "release")["output"] or ""
    )
    assert fetch(distributed.web_url(app, "staging")) == "hello from docker"
    log = distributed.api("GET", f"/v1/pipelines/{pipeline['id']}/log", 200)["log"]
    assert "Step 1/" in log and "Successfully tagged" in log and SECRET not in log
    current = distributed.current(app, "staging")
    containers = live_containers(docker_engine, app)
    assert sorted(containers) == ["web", "worker"]
    for process_type, container in containers.items():
        assert container.labels["shipyard.environment"] == "staging"
        assert container.labels["shipyard.release"] == current["release"]["id"]
        assert container.labels["shipyard.deployment"] == current["deployment"]["id"]
        assert container.labels["shipyard.process"] == process_type
        host = container.attrs["HostConfig"]
        assert host["Memory"] == 64 * 1024 * 1024 and host["NanoCpus"] == 500_000_000
        assert host["RestartPolicy"]["Name"] == "unless-stopped"
        assert f"API_TOKEN={SECRET}" in container.attrs["Config"]["Env"]
        assert SECRET not in " ".join([container.attrs["Path"], *container.attrs["Args"]])

    changed = configure(distributed, app, {"vars": {"GREETING": "bonjour"}})

    assert changed["status"] == "succeeded", changed
    assert fetch(distributed.web_url(app, "staging")) == "bonjour"
    replaced = live_containers(docker_engine, app)
    assert {c.id for c in replaced.values()}.isdisjoint(c.id for c in containers.values())
    assert "GREETING=bonjour" in replaced["web"].attrs["Config"]["Env"]
    assert replaced["web"].attrs["Image"] == image.id

    crashing = configure(distributed, app, {"vars": {"CRASH": "1"}})

    assert crashing["status"] == "failed", crashing
    assert "the web process exited during the health check" in stage(crashing, "run")["error"]
    assert fetch(distributed.web_url(app, "staging")) == "bonjour"
    assert {c.id for c in live_containers(docker_engine, app).values()} == {
        c.id for c in replaced.values()
    }

    configure(distributed, app, {"vars": {"CRASH": None}})
    again = distributed.deploy(app, "staging")

    assert again["status"] == "succeeded", again
    assert stage(again, "build")["cache_hit"] is True
    assert again["artifact_id"] == image.id
    assert fetch(distributed.web_url(app, "staging")) == "bonjour"


def test_a_failing_dockerfile_fails_the_build_with_the_daemons_message(
    docker_engine: docker.DockerClient, distributed: Stack, tmp_path: Path
) -> None:
    repo = docker_repo(tmp_path)
    app = create_docker_app(distributed, repo)
    commit_file(repo, "Dockerfile", DOCKERFILE + "COPY missing-file.txt /app/\n", "break it")

    pipeline = distributed.deploy(app, "staging")

    assert pipeline["status"] == "failed", pipeline
    build = stage(pipeline, "build")
    assert build["status"] == "failed"
    assert build["error"].startswith("docker build failed: ")
    assert "missing-file.txt" in build["error"]
    log = distributed.api("GET", f"/v1/pipelines/{pipeline['id']}/log", 200)["log"]
    assert "missing-file.txt" in log
    assert [s["status"] for s in pipeline["stages"]][1:] == ["skipped", "skipped"]
    assert not containers_of(docker_engine, f"shipyard.app={app}")


def test_a_one_off_runs_in_a_throwaway_container_of_the_release(
    docker_engine: docker.DockerClient, distributed: Stack, tmp_path: Path
) -> None:
    app = create_docker_app(distributed, docker_repo(tmp_path))
    configure(
        distributed,
        app,
        {"vars": {"GREETING": "from docker", "API_TOKEN": SECRET}, "secrets": ["API_TOKEN"]},
    )
    assert distributed.deploy(app, "staging")["status"] == "succeeded"
    before = {c.id for c in containers_of(docker_engine, f"shipyard.app={app}")}
    script = 'echo "$GREETING in v$(cat VERSION) as $(id -u)"; echo "token $API_TOKEN"; exit 6'

    ran = distributed.run_cli("run", "-a", app, "-e", "staging", "--", script, check=False)

    assert ran.returncode == 6, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0].startswith("from docker in v1 as ") and lines[1] == "token <redacted>"
    after = {c.id for c in containers_of(docker_engine, f"shipyard.app={app}")}
    assert after == before  # the one-off's container is gone; the app's run on


def test_a_destroyed_docker_app_leaves_no_container(
    docker_engine: docker.DockerClient, distributed: Stack, tmp_path: Path
) -> None:
    app = create_docker_app(distributed, docker_repo(tmp_path))
    assert distributed.deploy(app, "staging")["status"] == "succeeded"
    assert set(live_containers(docker_engine, app)) == {"web", "worker"}

    distributed.run_cli("apps", "destroy", app, "--confirm", app)

    deadline = time.monotonic() + 60
    while containers_of(docker_engine, f"shipyard.app={app}") and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [c.name for c in containers_of(docker_engine, f"shipyard.app={app}")]
    assert left == [], f"the router's supervision did not remove {app}'s containers in 60 s"


def test_a_plain_dockerfile_without_a_procfile_deploys_with_its_cmd_as_web(
    docker_engine: docker.DockerClient, distributed: Stack, tmp_path: Path
) -> None:
    dockerfile = DOCKERFILE.replace("COPY Procfile VERSION /app/", "COPY VERSION /app/") + (
        'CMD ["/bin/sh", "-c", "mkdir -p /tmp/www && echo plain-$GREETING > /tmp/www/index.html && '
        'exec busybox httpd -f -p $HOST:$PORT -h /tmp/www"]\n'
    )
    repo = docker_repo(tmp_path, dockerfile=dockerfile)
    (repo / "Procfile").unlink()
    git(repo, "commit", "--quiet", "-am", "no Procfile: the image's CMD is the web process")
    app = create_docker_app(distributed, repo)
    configure(distributed, app, {"vars": {"GREETING": "docker"}, "deploy": False})

    done = distributed.deploy(app, "staging")

    assert done["status"] == "succeeded", done
    assert fetch(distributed.web_url(app, "staging")) == "plain-docker"
    assert set(live_containers(docker_engine, app)) == {"web"}


@pytest.mark.timeout(600)
def test_docker_deploys_and_rollbacks_through_the_router_fail_no_request(
    docker_engine: docker.DockerClient, distributed: Stack, tmp_path: Path
) -> None:
    app = create_docker_app(distributed, docker_repo(tmp_path))
    configure(distributed, app, {"vars": {"GREETING": "one"}, "deploy": False})
    assert distributed.deploy(app, "staging")["status"] == "succeeded"
    url = distributed.current(app, "staging")["url"]
    traffic = Load(url, clients=3)
    traffic.start()
    try:
        for greeting in ("two", "three", "four"):  # each a new release of the same image
            assert configure(distributed, app, {"vars": {"GREETING": greeting}})["status"] == (
                "succeeded"
            )
        for version in (2, 3):
            body = {"to_version": version}
            rollback = distributed.api(
                "POST", f"/v1/apps/{app}/environments/staging/rollback", 202, json=body
            )
            assert distributed.wait_pipeline(rollback["id"])["status"] == "succeeded"
    finally:
        traffic.stop()

    assert traffic.errors == []
    assert len(traffic.answers) > 50, "the load generator hardly ran"
    assert [a for a in traffic.answers if a[2] != 200] == []
    assert {a[3].strip() for a in traffic.answers} <= {"one", "two", "three", "four"}
    with router_client(url) as client:
        assert client.get("/").text.strip() == "three"
    # The old ones gone but the live release's and the one standing by (the last replaced).
    current = distributed.current(app, "staging")
    [standing] = current["standby"]
    kept = {current["deployment"]["id"], standing["deployment_id"]}

    def deployments_with_containers() -> set[str] | None:
        try:
            containers = containers_of(docker_engine, f"shipyard.app={app}")
        except docker.errors.NotFound:  # one removed while listed: look again
            return None
        return {c.labels["shipyard.deployment"] for c in containers}

    wait_until(
        lambda: deployments_with_containers() == kept,
        "only the live and the standby release's containers to remain",
    )
