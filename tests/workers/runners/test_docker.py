"""The Docker runner on a real engine: containers per process, the shared health-gated switch."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest
from docker.errors import NotFound

from shipyard.shared.exceptions import ArtifactIntegrityError, StageFailed
from shipyard.shared.process_record import ProcessRecord
from shipyard.workers.build_log import BuildLog
from shipyard.workers.builders.base import BuiltArtifact
from shipyard.workers.builders.docker import DockerBuilder
from shipyard.workers.context import WorkerContext
from shipyard.workers.runners import get_runner
from shipyard.workers.runners.base import ReleaseSpec, run_to_end
from shipyard.workers.runners.docker import DockerRunner, network_settings
from shipyard.workers.runners.switch import switch
from shipyard.workers.sandbox import app_uid
from tests.docker_support import (
    DOCKERFILE,
    build_image,
    build_request,
    containers_of,
    release_spec,
    unique_app,
    write_app,
)
from tests.registry_support import Registry, StoreFactory

pytest_plugins = ["tests.docker_support", "tests.registry_support"]

SECRET = "hunter2-database-password"


@pytest.fixture
def runner(docker_engine: docker.DockerClient, worker_context: WorkerContext) -> DockerRunner:
    made = get_runner("docker", worker_context)
    assert isinstance(made, DockerRunner)
    return made


@pytest.fixture
def app() -> str:
    return unique_app()


@pytest.fixture
def image(docker_engine: docker.DockerClient, tmp_path: Path, app: str) -> BuiltArtifact:
    return build_image(docker_engine, write_app(tmp_path / "v1", version="1"), app)


class Live:
    """What a deployment's switch records: the processes that are live now."""

    def __init__(self, runner: DockerRunner) -> None:
        self.runner = runner
        self.processes: list[ProcessRecord] | None = None
        self.replaced: uuid.UUID | None = None

    def started(self, processes: list[ProcessRecord]) -> None:
        pass

    def go_live(self, processes: list[ProcessRecord]) -> list[ProcessRecord] | None:
        previous, self.processes = self.processes, processes
        return previous

    def switched(self) -> None:
        pass

    def retired(self) -> None:
        pass

    def stand_by(self) -> bool:
        return False

    def switch_to(self, spec: ReleaseSpec) -> list[ProcessRecord]:
        return switch(self.runner, spec, self)


@pytest.fixture
def live(runner: DockerRunner) -> Iterator[Live]:
    live = Live(runner)
    yield live
    runner.stop(live.processes or [])


def answer(processes: list[ProcessRecord]) -> str:
    web = next(p for p in processes if p["type"] == "web")
    return httpx.get(web["url"], timeout=5, trust_env=False).text.strip()


def test_each_process_runs_as_a_labelled_limited_container_and_web_answers(
    docker_engine: docker.DockerClient, live: Live, app: str, image: BuiltArtifact
) -> None:
    spec = release_spec(
        app,
        image.digest,
        env={"GREETING": "hi there", "DATABASE_PASSWORD": SECRET},
        memory_limit="64m",
        cpu_limit=0.5,
    )

    processes = live.switch_to(spec)

    assert answer(processes) == "hi there"
    assert sorted(p["type"] for p in processes) == ["web", "worker"]
    web = next(p for p in processes if p["type"] == "web")
    assert web["status"] == "running"
    assert web["url"] == f"http://127.0.0.1:{web['port']}"
    for process in processes:
        attrs = docker_engine.containers.get(process["container"]).attrs
        assert attrs["Image"] == image.digest
        assert attrs["Config"]["Labels"] == {
            "shipyard.app": app,
            "shipyard.environment": "staging",
            "shipyard.release": spec.release_id,
            "shipyard.process": process["type"],
            "shipyard.deployment": spec.deployment_id,
            "shipyard.host": spec.host,
            "shipyard.commit": docker_engine.images.get(image.digest).labels["shipyard.commit"],
            "shipyard.path": "",  # the image's labels, as the builder set them
        }
        host = attrs["HostConfig"]
        assert host["RestartPolicy"]["Name"] == "unless-stopped"
        assert host["Memory"] == 64 * 1024 * 1024
        assert host["NanoCpus"] == 500_000_000
        assert host["NetworkMode"] == "host"  # this engine runs with --bridge=none
        env = attrs["Config"]["Env"]
        assert f"PORT={process['port']}" in env and "HOST=127.0.0.1" in env
        assert f"DATABASE_PASSWORD={SECRET}" in env
        command_line = " ".join([attrs["Path"], *attrs["Args"]])
        assert SECRET not in command_line  # config travels as environment only


def test_a_restart_of_one_type_starts_only_its_containers(
    docker_engine: docker.DockerClient, runner: DockerRunner, app: str, image: BuiltArtifact
) -> None:
    spec = release_spec(app, image.digest, formation={"worker": 2}, only_type="worker")

    processes = runner.start(spec)

    try:
        assert [(p["type"], p["index"]) for p in processes] == [("worker", 1), ("worker", 2)]
        labelled = containers_of(docker_engine, f"shipyard.deployment={spec.deployment_id}")
        assert [c.labels["shipyard.process"] for c in labelled] == ["worker", "worker"]
    finally:
        runner.stop(processes)


def test_the_port_is_bound_on_loopback_only(live: Live, app: str, image: BuiltArtifact) -> None:
    processes = live.switch_to(release_spec(app, image.digest))
    web = next(p for p in processes if p["type"] == "web")
    listening = Path("/proc/net/tcp").read_text().splitlines()[1:]

    # /proc/net/tcp lists local addresses as hex "ADDR:PORT"; 0100007F is 127.0.0.1.
    local = {line.split()[1] for line in listening if line.split()[3] == "0A"}  # LISTEN
    assert f"0100007F:{web['port']:04X}" in local
    assert f"00000000:{web['port']:04X}" not in local


def test_behind_a_bridge_the_port_is_published_on_loopback_only() -> None:
    # This machine's engine has no bridge; the choice itself is checked here.
    assert network_settings(False, 8123) == (
        "0.0.0.0",
        {"ports": {"8123/tcp": ("127.0.0.1", 8123)}},
    )
    assert network_settings(False, None) == ("0.0.0.0", {})
    assert network_settings(True, 8123) == ("127.0.0.1", {"network_mode": "host"})


def test_a_config_change_replaces_the_containers_with_new_env(
    docker_engine: docker.DockerClient, live: Live, app: str, image: BuiltArtifact
) -> None:
    first = live.switch_to(release_spec(app, image.digest, env={"GREETING": "one"}))
    second_spec = release_spec(app, image.digest, version=2, env={"GREETING": "two"})

    second = live.switch_to(second_spec)

    assert answer(second) == "two"
    for process in second:
        env = docker_engine.containers.get(process["container"]).attrs["Config"]["Env"]
        assert "GREETING=two" in env
    for process in first:  # stopped and removed once the new ones were healthy
        with pytest.raises(NotFound):
            docker_engine.containers.get(process["container"])


def test_rollback_runs_the_earlier_image_with_its_env_again(
    docker_engine: docker.DockerClient,
    live: Live,
    app: str,
    image: BuiltArtifact,
    tmp_path: Path,
) -> None:
    newer = build_image(docker_engine, write_app(tmp_path / "v2", version="2"), app)
    assert newer.digest != image.digest
    v1 = release_spec(app, image.digest, env={"GREETING": "one"})
    live.switch_to(v1)
    live.switch_to(release_spec(app, newer.digest, version=2, env={"GREETING": "two"}))

    # A rollback is a new deployment of the earlier release, exactly as it was.
    rolled_back = live.switch_to(
        release_spec(app, v1.artifact_id, release_id=v1.release_id, env=dict(v1.env))
    )

    assert answer(rolled_back) == "one"
    for process in rolled_back:
        container = docker_engine.containers.get(process["container"])
        assert container.attrs["Image"] == image.digest
        assert "GREETING=one" in container.attrs["Config"]["Env"]
    assert len(containers_of(docker_engine, f"shipyard.app={app}")) == 2  # web + worker


def test_a_container_that_exits_at_once_fails_the_gate_and_the_old_ones_keep_serving(
    docker_engine: docker.DockerClient, live: Live, app: str, image: BuiltArtifact
) -> None:
    old = live.switch_to(release_spec(app, image.digest, env={"GREETING": "still here"}))
    broken = release_spec(app, image.digest, version=2, env={"CRASH": "1"})

    started = time.monotonic()
    with pytest.raises(StageFailed) as failure:
        live.switch_to(broken)

    assert time.monotonic() - started < broken.health_timeout  # seen exiting, not timed out
    assert "the web process exited during the health check" in failure.value.message
    assert "web refuses to start: CRASH=1" in failure.value.message  # its output tail
    assert live.processes == old
    assert answer(old) == "still here"
    assert not containers_of(docker_engine, f"shipyard.deployment={broken.deployment_id}")


def test_a_retagged_image_is_refused_naming_both_digests(
    docker_engine: docker.DockerClient,
    runner: DockerRunner,
    app: str,
    tmp_path: Path,
) -> None:
    commit = "a" * 40
    original = build_image(docker_engine, write_app(tmp_path / "v1", version="1"), app, commit)
    other = build_image(docker_engine, write_app(tmp_path / "v2", version="2"), app)
    docker_engine.images.get(other.digest).tag(original.location)  # the tag now names `other`
    spec = release_spec(app, original.digest)

    with pytest.raises(ArtifactIntegrityError) as refused:
        runner.start(spec)

    assert original.digest in refused.value.message and other.digest in refused.value.message
    assert not containers_of(docker_engine, f"shipyard.deployment={spec.deployment_id}")


def test_an_image_missing_from_the_engine_fails_clearly(runner: DockerRunner, app: str) -> None:
    missing = "sha256:" + "0" * 64

    with pytest.raises(StageFailed, match="is not on this Docker engine"):
        runner.start(release_spec(app, missing))


def test_an_image_without_a_procfile_runs_its_cmd_as_web(
    docker_engine: docker.DockerClient, live: Live, app: str, tmp_path: Path
) -> None:
    # A plain Dockerfile: no Procfile in the image, its CMD starts the server on $PORT.
    dockerfile = DOCKERFILE.replace("COPY Procfile VERSION /app/", "COPY VERSION /app/") + (
        'CMD ["/bin/sh", "-c", "mkdir -p /tmp/www && echo from-cmd > /tmp/www/index.html && '
        'exec busybox httpd -f -p $HOST:$PORT -h /tmp/www"]\n'
    )
    built = build_image(docker_engine, write_app(tmp_path / "src", dockerfile=dockerfile), app)

    processes = live.switch_to(release_spec(app, built.digest))

    assert [p["type"] for p in processes] == ["web"]
    assert answer(processes) == "from-cmd"


def test_an_image_without_a_procfile_or_a_cmd_is_refused_clearly(
    docker_engine: docker.DockerClient, runner: DockerRunner, app: str, tmp_path: Path
) -> None:
    # The host's Procfile is not copied in: the image has none in its WORKDIR, and no CMD.
    dockerfile = DOCKERFILE.replace("COPY Procfile VERSION /app/", "COPY VERSION /app/")
    built = build_image(docker_engine, write_app(tmp_path / "src", dockerfile=dockerfile), app)

    with pytest.raises(StageFailed, match=r"no Procfile in its WORKDIR and no CMD or ENTRYPOINT"):
        runner.start(release_spec(app, built.digest))
    assert not containers_of(docker_engine, f"shipyard.app={app}")


def test_stop_removes_the_containers_and_is_running_then_says_so(
    docker_engine: docker.DockerClient, runner: DockerRunner, app: str, image: BuiltArtifact
) -> None:
    spec = release_spec(app, image.digest)
    processes = runner.start(spec)
    assert all(runner.is_running(p) for p in processes)

    runner.stop(processes)
    runner.stop(processes)  # gone ones are fine

    assert not any(runner.is_running(p) for p in processes)
    assert not containers_of(docker_engine, f"shipyard.deployment={spec.deployment_id}")
    assert runner.output_tail(processes[0], 5) == ""


def test_output_tail_shows_what_the_process_printed(
    runner: DockerRunner, app: str, image: BuiltArtifact
) -> None:
    processes = runner.start(release_spec(app, image.digest, env={"CRASH": "yes"}))
    try:
        web = next(p for p in processes if p["type"] == "web")
        deadline = time.monotonic() + 5
        while "refuses" not in runner.output_tail(web, 5) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "web refuses to start: CRASH=yes" in runner.output_tail(web, 5)
    finally:
        runner.stop(processes)


def test_run_to_end_reports_exit_code_and_output_and_leaves_no_container(
    docker_engine: docker.DockerClient, runner: DockerRunner, app: str, image: BuiltArtifact
) -> None:
    spec = release_spec(app, image.digest, env={"GREETING": "migrations"})

    result = run_to_end(runner, spec, 'echo "running $GREETING"; echo oops >&2; exit 4', timeout=30)

    assert result.exit_code == 4
    assert "running migrations" in result.output and "oops" in result.output
    assert not containers_of(docker_engine, f"shipyard.deployment={spec.deployment_id}")


def test_a_one_off_container_reads_the_input_it_is_given(
    docker_engine: docker.DockerClient, runner: DockerRunner, app: str, image: BuiltArtifact
) -> None:
    spec = release_spec(app, image.digest)
    data = b"".join(b"row %d\n" % n for n in range(20_000))
    lines: list[str] = []

    ended = runner.stream_once(spec, "wc -l", 60, lines.append, lambda: False, stdin=data)
    unread = runner.stream_once(spec, "true", 60, lines.append, lambda: False, stdin=data)

    assert ended.exit_code == 0 and unread.exit_code == 0
    assert [line.strip() for line in lines] == ["20000"]
    assert not containers_of(docker_engine, f"shipyard.deployment={spec.deployment_id}")


def test_run_to_end_kills_the_command_at_the_timeout(
    docker_engine: docker.DockerClient, runner: DockerRunner, app: str, image: BuiltArtifact
) -> None:
    spec = release_spec(app, image.digest)

    started = time.monotonic()
    result = run_to_end(runner, spec, "echo started; exec sleep 60", timeout=1)

    assert result.exit_code is None
    assert "started" in result.output
    assert time.monotonic() - started < 10
    assert not containers_of(docker_engine, f"shipyard.deployment={spec.deployment_id}")


def test_the_environments_storage_outlives_its_releases_and_is_shared_with_the_release_phase(
    docker_engine: docker.DockerClient,
    runner: DockerRunner,
    live: Live,
    app: str,
    image: BuiltArtifact,
) -> None:
    phase = run_to_end(
        runner,
        release_spec(app, image.digest),
        'echo "written by v1 at $SHIPYARD_STORAGE_DIR" > "$SHIPYARD_STORAGE_DIR/note"',
        timeout=30,
    )
    assert phase.exit_code == 0, phase.output
    first = live.switch_to(release_spec(app, image.digest, version=1))
    live.switch_to(release_spec(app, image.digest, version=2))  # v1's containers are removed

    reader = run_to_end(runner, release_spec(app, image.digest, version=3), "cat /storage/note", 30)

    assert reader.output.strip() == "written by v1 at /storage"
    assert first[0]["storage"] == f"shipyard-{app}-staging-storage"
    assert docker_engine.volumes.get(first[0]["storage"]) is not None


def test_with_a_registry_a_run_host_without_the_image_pulls_it_by_digest_and_runs_that(
    docker_engine: docker.DockerClient,
    private_registry: Registry,
    registry_store: StoreFactory,
    tmp_path: Path,
    app: str,
) -> None:
    images = registry_store(private_registry, tmp_path / "cache")
    address = images.client.address
    request = build_request(write_app(tmp_path / "src", version="7"), app, "ab" * 20)
    built = DockerBuilder(docker_engine, images).build(request, BuildLog(1_000_000))
    image_id = docker_engine.images.get(built.location).id
    docker_engine.images.remove(image_id, force=True)  # this engine is now another run host
    runner = DockerRunner(docker_engine, images)
    live = Live(runner)
    try:
        processes = live.switch_to(release_spec(app, built.digest, env={"GREETING": "pulled"}))

        assert answer(processes) == "pulled"
        pulled = docker_engine.images.get(f"{address.image_repository(app)}@{built.digest}")
        assert pulled.id == image_id  # the very image that was built, by its content
        for process in processes:
            assert docker_engine.containers.get(process["container"]).attrs["Image"] == image_id
    finally:
        runner.stop(live.processes or [])


def test_with_a_registry_an_image_it_does_not_have_fails_the_start_saying_so(
    docker_engine: docker.DockerClient,
    private_registry: Registry,
    registry_store: StoreFactory,
    tmp_path: Path,
    app: str,
) -> None:
    images = registry_store(private_registry, tmp_path / "cache")
    address = images.client.address
    runner = DockerRunner(docker_engine, images)

    with pytest.raises(StageFailed, match="could not pull .*garbage-collected") as caught:
        runner.start(release_spec(app, "sha256:" + "0" * 64))

    assert f"{address.image_repository(app)}@sha256:" in caught.value.message
    assert containers_of(docker_engine, f"shipyard.app={app}") == []


def test_containers_run_as_the_apps_own_user_unless_the_image_names_one(
    docker_engine: docker.DockerClient,
    runner: DockerRunner,
    live: Live,
    app: str,
    image: BuiltArtifact,
    tmp_path: Path,
) -> None:
    (web,) = [p for p in live.switch_to(release_spec(app, image.digest)) if p["type"] == "web"]
    phase = run_to_end(
        runner,
        release_spec(app, image.digest),
        'id -u; touch "$SHIPYARD_STORAGE_DIR/mine"; id -u',
        30,
    )
    named = build_image(
        docker_engine,
        write_app(tmp_path / "named", dockerfile=DOCKERFILE + "USER 4242:4242\n"),
        app,
    )
    as_named = run_to_end(runner, release_spec(app, named.digest), "id -u", 30)

    user = docker_engine.api.inspect_container(web["container"])["Config"]["User"]
    assert user == f"{app_uid(app)}:{app_uid(app)}" and app_uid(app) != 0
    assert phase.exit_code == 0, phase.output  # its storage is its own to write
    assert phase.output.split() == [str(app_uid(app))] * 2
    assert as_named.output.strip() == "4242"
