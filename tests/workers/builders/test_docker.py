"""The Docker builder on a real engine: tags, image ids, streamed logs, failures, no build args."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import docker
import httpx
import pytest
from docker.errors import ImageNotFound

from shipyard.shared.exceptions import StageFailed
from shipyard.workers.build_log import BuildLog
from shipyard.workers.builders import get_builder
from shipyard.workers.builders.docker import DockerBuilder
from shipyard.workers.context import WorkerContext
from shipyard.workers.runners.docker import verified_image
from tests.docker_support import DOCKERFILE, build_request, release_spec, unique_app, write_app
from tests.registry_support import Registry, StoreFactory

pytest_plugins = ["tests.docker_support", "tests.registry_support"]

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class TimedLog(BuildLog):
    """A build log that remembers when each line arrived."""

    def __init__(self) -> None:
        super().__init__(1_000_000)
        self.arrivals: list[tuple[float, str]] = []

    def write(self, line: str) -> None:
        self.arrivals.append((time.monotonic(), line))
        super().write(line)


def test_build_tags_the_commit_and_returns_the_image_id(
    docker_engine: docker.DockerClient, worker_context: WorkerContext, tmp_path: Path
) -> None:
    app = unique_app()
    builder = get_builder("docker", worker_context)
    log = BuildLog(1_000_000)

    built = builder.build(build_request(write_app(tmp_path / "src"), app, COMMIT), log)

    tag = f"shipyard/{app}:{COMMIT[:12]}"
    image = docker_engine.images.get(tag)
    assert builder.name == "docker"
    assert built.digest == image.id and built.digest.startswith("sha256:")
    assert built.location == tag
    assert built.size == image.attrs["Size"] > 0
    assert image.labels == {"shipyard.app": app, "shipyard.commit": COMMIT, "shipyard.path": ""}
    assert f"Image {image.id}" in log.text()


def test_the_same_commit_built_from_another_folder_is_another_image_and_both_still_run(
    docker_engine: docker.DockerClient, worker_context: WorkerContext, tmp_path: Path
) -> None:
    app = unique_app()
    builder = get_builder("docker", worker_context)
    root = build_request(write_app(tmp_path / "root"), app, COMMIT)
    moved = replace(
        build_request(write_app(tmp_path / "moved", version="2"), app, COMMIT), path="web"
    )

    first = builder.build(root, BuildLog(1_000_000))
    second = builder.build(moved, BuildLog(1_000_000))

    assert first.digest != second.digest and first.location != second.location
    assert second.location.startswith(f"shipyard/{app}:{COMMIT[:12]}-")
    for built in (first, second):  # neither tag was moved off its image
        assert verified_image(docker_engine, release_spec(app, built.digest)).id == built.digest


def test_build_output_reaches_the_log_line_by_line_while_it_runs(
    docker_engine: docker.DockerClient, tmp_path: Path
) -> None:
    app = unique_app()  # in the step too, so that no layer cache can answer it
    slow = DOCKERFILE + f'RUN echo "first line"; sleep 1; echo "second line of {app}"\n'
    source = write_app(tmp_path / "src", dockerfile=slow)
    log = TimedLog()

    DockerBuilder(docker_engine).build(build_request(source, app, COMMIT), log)

    lines = [line for _, line in log.arrivals]
    # The daemon sends "Step 1/N : FROM scratch" and its newline apart: one line in the log.
    assert any(line.startswith("Step 1/") and line.endswith(": FROM scratch") for line in lines)
    arrived = {line: at for at, line in log.arrivals}
    assert arrived[f"second line of {app}"] - arrived["first line"] >= 0.8  # written as it came


def test_the_same_commit_builds_to_the_same_image(
    docker_engine: docker.DockerClient, tmp_path: Path
) -> None:
    source = write_app(tmp_path / "src")
    app = unique_app()
    builder = DockerBuilder(docker_engine)

    first = builder.build(build_request(source, app, COMMIT), BuildLog(1_000_000))
    log = BuildLog(1_000_000)
    second = builder.build(build_request(source, app, COMMIT), log)

    assert second.digest == first.digest
    assert "Using cache" in log.text()


@pytest.mark.parametrize(
    ("extra_step", "daemon_says"),
    [
        ("COPY missing.txt /app/\n", "missing.txt"),
        ("RUN exit 7\n", "returned a non-zero code: 7"),
    ],
)
def test_a_failing_dockerfile_fails_with_the_daemons_message(
    docker_engine: docker.DockerClient, tmp_path: Path, extra_step: str, daemon_says: str
) -> None:
    source = write_app(tmp_path / "src", dockerfile=DOCKERFILE + extra_step)
    log = BuildLog(1_000_000)

    with pytest.raises(StageFailed) as failure:
        DockerBuilder(docker_engine).build(build_request(source, unique_app(), COMMIT), log)

    assert failure.value.message.startswith("docker build failed: ")
    assert daemon_says in failure.value.message
    assert "COPY busybox /bin/sh" in log.text()  # what came before the failure is kept


def test_an_invalid_dockerfile_is_refused_with_the_daemons_message(
    docker_engine: docker.DockerClient, tmp_path: Path
) -> None:
    source = write_app(tmp_path / "src", dockerfile="FROM scratch\nNOT-AN-INSTRUCTION x\n")

    with pytest.raises(StageFailed, match="unknown instruction"):
        DockerBuilder(docker_engine).build(
            build_request(source, unique_app(), COMMIT), BuildLog(1_000)
        )


def test_an_app_without_a_dockerfile_fails_clearly(
    docker_engine: docker.DockerClient, tmp_path: Path
) -> None:
    source = write_app(tmp_path / "src")
    (source / "Dockerfile").unlink()

    with pytest.raises(StageFailed, match="no Dockerfile at the root of the app"):
        DockerBuilder(docker_engine).build(
            build_request(source, unique_app(), COMMIT), BuildLog(1_000)
        )


def test_a_silent_build_longer_than_the_timeout_is_cancelled(
    docker_engine: docker.DockerClient, tmp_path: Path
) -> None:
    source = write_app(tmp_path / "src", dockerfile=DOCKERFILE + "RUN sleep 5\n")

    started = time.monotonic()
    with pytest.raises(StageFailed, match="printed nothing for 1s and was cancelled"):
        DockerBuilder(docker_engine).build(
            build_request(source, unique_app(), COMMIT, timeout=1), BuildLog(1_000)
        )
    assert time.monotonic() - started < 4


def test_a_chatty_build_longer_than_the_timeout_is_cancelled(
    docker_engine: docker.DockerClient, tmp_path: Path
) -> None:
    app = unique_app()
    chatty = DOCKERFILE + f"RUN for i in 1 2 3 4 5 6; do echo {app}; sleep 0.4; done\n"
    source = write_app(tmp_path / "src", dockerfile=chatty)

    with pytest.raises(StageFailed, match="ran longer than 1s and was cancelled"):
        DockerBuilder(docker_engine).build(
            build_request(source, app, COMMIT, timeout=1), BuildLog(1_000)
        )


def test_the_build_gets_no_build_args_from_the_workers_docker_config(
    docker_engine: docker.DockerClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SDK turns proxies of ~/.docker/config.json into build args unless told not to.
    config_dir = tmp_path / "docker-config"
    config_dir.mkdir()
    proxy = "http://deploy:proxy-password@proxy.invalid:3128"
    proxies = {"proxies": {"default": {"httpProxy": proxy, "httpsProxy": proxy}}}
    (config_dir / "config.json").write_text(json.dumps(proxies))
    monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))
    monkeypatch.setenv("SHIPYARD_DATABASE_URL", "postgresql://shipyard:db-password@db/shipyard")
    app = unique_app()
    source = write_app(tmp_path / "src", dockerfile=DOCKERFILE + f"RUN env # {app}\n")
    log = BuildLog(1_000_000)

    client = docker.from_env()
    try:
        DockerBuilder(client).build(build_request(source, app, COMMIT), log)
    finally:
        client.close()

    assert "HOSTNAME=" in log.text()  # the RUN step's environment is in the log
    assert "password" not in log.text()
    assert "SHIPYARD_" not in log.text()


def test_remove_deletes_the_image_and_its_tag_and_a_gone_one_is_fine(
    docker_engine: docker.DockerClient, tmp_path: Path
) -> None:
    builder = DockerBuilder(docker_engine)
    built = builder.build(
        build_request(write_app(tmp_path / "src"), unique_app(), COMMIT), BuildLog(1_000_000)
    )

    builder.remove("app", built.digest)
    builder.remove("app", built.digest)

    for reference in (built.digest, built.location):
        with pytest.raises(ImageNotFound):
            docker_engine.images.get(reference)


def test_remove_keeps_an_image_that_a_running_container_uses(
    docker_engine: docker.DockerClient, tmp_path: Path
) -> None:
    app = unique_app()
    builder = DockerBuilder(docker_engine)
    built = builder.build(build_request(write_app(tmp_path / "src"), app, COMMIT), BuildLog(1_000))
    container = docker_engine.containers.run(
        built.digest,
        entrypoint=["/bin/sh", "-c"],
        command=["exec sleep 60"],
        labels={"shipyard.app": app},
        network_mode="host",
        detach=True,
    )
    try:
        builder.remove("app", built.digest)  # refused by the engine: no error, the image stays

        assert docker_engine.images.get(built.digest).id == built.digest
    finally:
        container.remove(force=True)


def test_with_a_registry_the_image_is_pushed_and_the_artifact_is_its_manifest_digest(
    docker_engine: docker.DockerClient,
    private_registry: Registry,
    registry_store: StoreFactory,
    tmp_path: Path,
) -> None:
    app = unique_app()
    images = registry_store(private_registry, tmp_path / "cache")
    builder = DockerBuilder(docker_engine, images)
    log = BuildLog(1_000_000)

    built = builder.build(build_request(write_app(tmp_path / "src"), app, COMMIT), log)

    repository = f"{private_registry.host}/shipyard/{app}"
    assert built.location == f"{repository}@{built.digest}"
    manifest = httpx.head(
        f"http://{private_registry.host}/v2/shipyard/{app}/manifests/{built.digest}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    assert manifest.status_code == 200
    assert manifest.headers["Docker-Content-Digest"] == built.digest
    assert (
        f"{repository}@{built.digest}"
        in docker_engine.images.get(built.location).attrs["RepoDigests"]
    )
    assert f"Pushed {repository}@{built.digest}" in log.text()

    builder.remove(app, built.digest)  # gc: the manifest leaves the registry, the image the engine

    assert httpx.head(manifest.url).status_code == 404
    with pytest.raises(ImageNotFound):
        docker_engine.images.get(built.location)


def test_a_push_to_a_registry_that_is_down_fails_the_build_saying_so(
    docker_engine: docker.DockerClient,
    private_registry: Registry,
    registry_store: StoreFactory,
    tmp_path: Path,
) -> None:
    builder = DockerBuilder(docker_engine, registry_store(private_registry, tmp_path / "cache"))
    private_registry.stop()

    with pytest.raises(StageFailed, match="docker push to .* failed") as caught:
        builder.build(
            build_request(write_app(tmp_path / "src"), unique_app(), COMMIT), BuildLog(1_000_000)
        )

    assert private_registry.host in caught.value.message
