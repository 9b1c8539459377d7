"""The local runner: verified artifacts, health-gated processes, and stopping them again."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shipyard.shared.artifacts import FileStore, file_digest
from shipyard.shared.exceptions import ArtifactIntegrityError, StageFailed
from shipyard.shared.logging import forget_secrets, register_secrets
from shipyard.shared.process_record import ProcessRecord
from shipyard.workers.archives import first_layer
from shipyard.workers.builders.layers import pack_layer, pack_layered
from shipyard.workers.builders.local import pack_reproducibly
from shipyard.workers.runners.base import OneOffEnd, ReleaseSpec, run_to_end
from shipyard.workers.runners.local import LocalRunner
from shipyard.workers.runners.switch import health_gated_start
from shipyard.workers.sandbox import Sandbox
from tests import attacker

# The host's python3, as an app's Procfile names it (in its sandbox, the worker's own
# virtualenv is not there).
PYTHON = "python3"
SECRET = "hunter2-database-password"

# A tiny web app: "/" answers 200 with GREETING, "/env" lists its environment variable names.
WEB_APP = """\
import os
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/env":
            body = "\\n".join(sorted(os.environ)).encode()
        else:
            body = os.environ.get("GREETING", "").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "artifacts")


@pytest.fixture
def runner(tmp_path: Path, store: FileStore, sandbox: Sandbox) -> LocalRunner:
    return LocalRunner(store, tmp_path / "run", tmp_path / "storage", sandbox)


@pytest.fixture
def started(runner: LocalRunner) -> Iterator[list[ProcessRecord]]:
    """Processes a test started; whatever is still running is stopped at the end."""
    records: list[ProcessRecord] = []
    yield records
    runner.stop(records)


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    yield
    forget_secrets()


def make_artifact(tmp_path: Path, store: FileStore, files: dict[str, str]) -> str:
    """Pack `files` as a build would and store the artifact; returns its digest."""
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    for name, content in files.items():
        (app_dir / name).write_text(content)
    tarball = tmp_path / "artifact.tar.gz"
    pack_reproducibly(app_dir, tarball, mtime=1_700_000_000)
    digest = store.put(tarball, app="app").digest
    return digest


def make_spec(artifact_id: str, env: dict[str, str] | None = None, **fields: object) -> ReleaseSpec:
    values: dict[str, object] = {
        "app": "web",
        "environment": "staging",
        "release_id": "release-1",
        "release_version": 1,
        "deployment_id": "deployment-1",
        "artifact_id": artifact_id,
        "health_path": "/",
        "health_timeout": 10.0,
        "env": env if env is not None else {},
    }
    values.update(fields)
    return ReleaseSpec(**values)  # type: ignore[arg-type]


def web_artifact(tmp_path: Path, store: FileStore) -> str:
    return make_artifact(
        tmp_path, store, {"app.py": WEB_APP, "Procfile": f"web: {PYTHON} app.py\n"}
    )


def test_a_healthy_web_process_serves_its_config_and_stops(
    tmp_path: Path,
    store: FileStore,
    runner: LocalRunner,
    started: list[ProcessRecord],
) -> None:
    spec = make_spec(web_artifact(tmp_path, store), env={"GREETING": "hello from v1"})

    started.extend(health_gated_start(runner, spec))

    (web,) = started
    assert web["type"] == "web" and web["url"].startswith("http://127.0.0.1:")
    assert runner.is_running(web)
    assert httpx.get(web["url"], trust_env=False).text == "hello from v1"

    runner.stop(started)

    assert not runner.is_running(web)
    with pytest.raises(httpx.ConnectError):
        httpx.get(web["url"], trust_env=False, timeout=2)


def test_the_process_gets_only_its_config_and_the_platforms_port(
    tmp_path: Path,
    store: FileStore,
    runner: LocalRunner,
    started: list[ProcessRecord],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHIPYARD_SECRET_KEY", "the-workers-own-key")
    spec = make_spec(web_artifact(tmp_path, store), env={"GREETING": "hi", "PORT": "1"})

    started.extend(health_gated_start(runner, spec))

    (web,) = started
    names = httpx.get(f"{web['url']}/env", trust_env=False).text.split()
    assert "GREETING" in names and "PORT" in names
    assert "SHIPYARD_SECRET_KEY" not in names
    assert web["port"] != 1 and web["url"].endswith(f":{web['port']}")


def test_a_tampered_artifact_is_refused_naming_both_digests(
    tmp_path: Path, store: FileStore, runner: LocalRunner, started: list[ProcessRecord]
) -> None:
    digest = web_artifact(tmp_path, store)
    stored = store.path_for(digest)
    stored.chmod(0o644)
    with stored.open("ab") as handle:
        handle.write(b"tampered")

    with pytest.raises(ArtifactIntegrityError) as caught:
        started.extend(runner.start(make_spec(digest)))

    assert digest in caught.value.message
    assert file_digest(stored) in caught.value.message
    assert started == []
    assert not runner.release_dir(make_spec(digest)).exists()


def test_an_artifact_with_a_link_to_an_absolute_path_fails_the_stage_clearly(
    tmp_path: Path, store: FileStore, runner: LocalRunner, started: list[ProcessRecord]
) -> None:
    # What `python -m venv .venv` leaves in a build: .venv/bin/python -> /usr/bin/python3.
    app_dir = tmp_path / "app"
    (app_dir / ".venv" / "bin").mkdir(parents=True)
    (app_dir / "Procfile").write_text(f"web: {PYTHON} -m http.server $PORT\n")
    (app_dir / ".venv" / "bin" / "python").symlink_to(sys.executable)
    pack_reproducibly(app_dir, tmp_path / "artifact.tar.gz", mtime=1_700_000_000)
    digest = store.put(tmp_path / "artifact.tar.gz", app="app").digest

    with pytest.raises(StageFailed, match=r"\.venv/bin/python"):
        started.extend(runner.start(make_spec(digest)))


def test_an_app_that_exits_at_once_fails_with_its_output_and_secrets_redacted(
    tmp_path: Path, store: FileStore, runner: LocalRunner
) -> None:
    crash = (
        "import os, sys\n"
        "print('connecting with', os.environ['DATABASE_PASSWORD'])\n"
        "print('fatal: cannot open database')\n"
        "sys.exit(3)\n"
    )
    digest = make_artifact(
        tmp_path, store, {"crash.py": crash, "Procfile": f"web: {PYTHON} crash.py\n"}
    )
    register_secrets([SECRET])

    with pytest.raises(StageFailed) as caught:
        health_gated_start(runner, make_spec(digest, env={"DATABASE_PASSWORD": SECRET}))

    message = caught.value.message
    assert "the web process exited during the health check" in message
    assert "fatal: cannot open database" in message
    assert "connecting with <redacted>" in message
    assert SECRET not in message


def test_an_app_that_never_answers_healthy_fails_and_is_stopped(
    tmp_path: Path, store: FileStore, runner: LocalRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    unhealthy = WEB_APP.replace("self.send_response(200)", "self.send_response(503)")
    digest = make_artifact(
        tmp_path, store, {"app.py": unhealthy, "Procfile": f"web: {PYTHON} app.py\n"}
    )
    # Whether it answered 503 or not yet at all: test_switch.py checks the reason itself.
    spec = make_spec(digest, health_timeout=0.5)
    stopped: list[list[ProcessRecord]] = []
    original_stop = runner.stop

    def recording_stop(records: list[ProcessRecord]) -> None:
        stopped.append(records)
        original_stop(records)

    monkeypatch.setattr(runner, "stop", recording_stop)

    with pytest.raises(StageFailed, match=r"^web did not become healthy within 0.5s \("):
        health_gated_start(runner, spec)

    ((web,),) = stopped
    assert not runner.is_running(web)


def test_run_to_end_runs_a_command_in_the_release_with_its_config(
    tmp_path: Path, store: FileStore, runner: LocalRunner
) -> None:
    spec = make_spec(web_artifact(tmp_path, store), env={"GREETING": "migrating"})

    result = run_to_end(runner, spec, "echo $GREETING; ls; exit 4", timeout=10)

    assert result.exit_code == 4
    assert result.output.splitlines()[0] == "migrating"
    assert "app.py" in result.output.splitlines()


def test_run_to_end_kills_a_command_over_its_time_limit(
    tmp_path: Path, store: FileStore, runner: LocalRunner
) -> None:
    spec = make_spec(web_artifact(tmp_path, store))
    before = time.monotonic()

    result = run_to_end(runner, spec, "echo starting; sleep 30", timeout=0.3)

    assert result.exit_code is None
    assert result.output == "starting\n"
    assert time.monotonic() - before < 20  # killed at its limit, not after its 30 s


def test_config_may_name_a_path_in_the_storage_before_it_exists(
    tmp_path: Path, store: FileStore, runner: LocalRunner
) -> None:
    env = {
        "DATABASE_URL": "sqlite:///$SHIPYARD_STORAGE_DIR/blog.db",
        "B": "${SHIPYARD_STORAGE_DIR}",
    }
    spec = make_spec(web_artifact(tmp_path, store), env=env)

    result = run_to_end(runner, spec, 'echo "$DATABASE_URL $B $SHIPYARD_STORAGE_DIR"', 30)

    url, braced, storage = result.output.split()
    assert (url, braced) == (f"sqlite:///{storage}/blog.db", storage)
    assert "$" not in result.output


def test_stream_once_passes_each_line_on_as_it_is_printed_and_ends_with_the_exit_code(
    tmp_path: Path, store: FileStore, runner: LocalRunner
) -> None:
    spec = make_spec(web_artifact(tmp_path, store), env={"GREETING": "set up"})
    lines: list[str] = []

    ended = runner.stream_once(
        spec, "echo one; echo $GREETING >&2; exit 3", 30, lines.append, lambda: False
    )

    assert ended == OneOffEnd(exit_code=3)
    assert lines == ["one", "set up"]


def test_stream_once_gives_the_command_its_input_or_an_empty_one(
    tmp_path: Path, store: FileStore, runner: LocalRunner
) -> None:
    spec = make_spec(web_artifact(tmp_path, store), env={"GREETING": "set up"})
    data = b"".join(b"row %d\n" % n for n in range(20_000))  # past a pipe's buffer
    given: list[str] = []
    none: list[str] = []

    ended = runner.stream_once(
        spec, "wc -l; echo $GREETING", 30, given.append, lambda: False, stdin=data
    )
    empty = runner.stream_once(spec, "wc -c", 30, none.append, lambda: False)

    assert ended == OneOffEnd(exit_code=0) and empty == OneOffEnd(exit_code=0)
    assert [line.strip() for line in given] == ["20000", "set up"]  # its config still there
    assert [line.strip() for line in none] == ["0"]


@pytest.mark.parametrize("how", ["timeout", "cancel"])
def test_stream_once_kills_its_whole_process_group_at_its_timeout_or_when_cancelled(
    tmp_path: Path, store: FileStore, runner: LocalRunner, how: str
) -> None:
    spec = make_spec(web_artifact(tmp_path, store))
    lines: list[str] = []
    marker = f"sleep {os.getpid() % 1000 + 3000}"  # a command line no other process has

    ended = runner.stream_once(
        spec,
        f"echo started; {marker} & {marker}",
        0.5 if how == "timeout" else 300,
        lines.append,
        lambda: how == "cancel" and bool(lines),  # cancelled once it printed
    )

    assert ended == OneOffEnd(exit_code=None, timed_out=how == "timeout", cancelled=how == "cancel")
    assert lines == ["started"]
    assert not _processes_running(marker), f"{marker} survived its one-off"


def _processes_running(command: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().replace(
                    b"\0", b" "
                ).strip() == command.encode():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_the_environments_storage_outlives_releases_and_is_shared_with_the_release_phase(
    tmp_path: Path, store: FileStore, runner: LocalRunner
) -> None:
    artifact = web_artifact(tmp_path, store)
    phase = run_to_end(
        runner,
        make_spec(artifact),
        'echo "from the release phase" > "$SHIPYARD_STORAGE_DIR/note"',
        30,
    )
    assert phase.exit_code == 0, phase.output

    later = run_to_end(
        runner, make_spec(artifact, release_version=2), 'cat "$SHIPYARD_STORAGE_DIR/note"', 30
    )

    storage = tmp_path / "storage" / "web" / "staging"
    assert later.output.strip() == "from the release phase"
    assert (storage / "note").is_file()
    assert oct(storage.stat().st_mode & 0o777) == "0o700"
    assert not (runner.release_dir(make_spec(artifact)) / "note").exists()  # not in a release


def test_an_environment_may_keep_its_storage_in_a_directory_of_its_own(
    tmp_path: Path, store: FileStore, runner: LocalRunner, started: list[ProcessRecord]
) -> None:
    own = tmp_path / "srv" / "blog-data"
    spec = make_spec(web_artifact(tmp_path, store), storage_dir=str(own))

    started.extend(health_gated_start(runner, spec))
    result = run_to_end(runner, spec, 'echo kept > "$SHIPYARD_STORAGE_DIR/mark"', 30)

    assert result.exit_code == 0, result.output
    assert (own / "mark").read_text() == "kept\n"  # wherever the app finds it
    assert started[0]["storage"] == str(own)


def test_the_formation_starts_as_many_processes_of_a_type_each_on_its_own_port(
    tmp_path: Path, store: FileStore, runner: LocalRunner, started: list[ProcessRecord]
) -> None:
    spec = make_spec(web_artifact(tmp_path, store), formation={"web": 3})

    started.extend(health_gated_start(runner, spec))

    assert [(p["type"], p["index"]) for p in started] == [("web", 1), ("web", 2), ("web", 3)]
    assert len({p["port"] for p in started}) == 3
    assert len({p["server"] for p in started}) == 3
    assert all(httpx.get(p["url"], trust_env=False).status_code == 200 for p in started)


def test_a_restart_of_one_type_starts_only_that_types_processes(
    tmp_path: Path, store: FileStore, runner: LocalRunner, started: list[ProcessRecord]
) -> None:
    artifact = make_artifact(
        tmp_path, store, {"Procfile": "web: sleep 60\nworker: sleep 60\nclock: sleep 60\n"}
    )
    spec = make_spec(artifact, formation={"worker": 2}, only_type="worker")

    started.extend(runner.start(spec))

    assert [(p["type"], p["index"]) for p in started] == [("worker", 1), ("worker", 2)]
    assert all(runner.is_running(p) for p in started)


def test_a_process_that_exits_leaves_its_status_and_one_can_be_started_again(
    tmp_path: Path, store: FileStore, runner: LocalRunner, started: list[ProcessRecord]
) -> None:
    artifact = make_artifact(tmp_path, store, {"Procfile": "web: sleep 60\nonce: sh -c 'exit 7'\n"})
    spec = make_spec(artifact)
    started.extend(runner.start(spec))
    once = next(p for p in started if p["type"] == "once")
    deadline = time.monotonic() + 10
    while runner.is_running(once) and time.monotonic() < deadline:
        time.sleep(0.02)

    assert not runner.is_running(once)
    assert runner.exit_status(once) == 7
    again = runner.start_process(spec, "once", 1)
    started.append(again)
    assert again["pid"] != once["pid"] and again["index"] == 1
    with pytest.raises(StageFailed, match="no 'clock' process"):
        runner.start_process(spec, "clock", 1)


def test_a_sigkilled_app_leaves_no_defunct_shell_behind(
    tmp_path: Path, store: FileStore, runner: LocalRunner, started: list[ProcessRecord]
) -> None:
    artifact = make_artifact(tmp_path, store, {"Procfile": "web: exec sleep 3600\n"})
    started.extend(runner.start(make_spec(artifact)))
    shell = started[0]["pid"]
    app = _descendant_running(shell, "sleep")

    os.kill(app, signal.SIGKILL)

    def state(pid: int) -> str | None:  # R, S, Z (defunct), …; None once it is gone
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return None

    deadline = time.monotonic() + 30
    while state(shell) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state(shell) is None, f"the app's shell {shell} is still there ({state(shell)})"
    assert runner.exit_status(started[0]) == 128 + signal.SIGKILL


def _descendant_running(root: int, name: str, timeout: float = 30) -> int:
    """The pid of a process named `name` below `root` (once it has started)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = {root}
        for _ in range(8):  # the shell, bubblewrap, its init, setpriv, the shell, the app
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                parent = int(stat.rsplit(")", 1)[1].split()[1])
                if parent in children:
                    children.add(int(entry.name))
                    if stat.split("(", 1)[1].split(")")[0] == name:
                        return int(entry.name)
        time.sleep(0.05)
    raise AssertionError(f"no {name} process below {root} within {timeout:g}s")


def test_a_record_of_another_runner_is_neither_running_nor_stopped_here(
    runner: LocalRunner,
) -> None:
    container: ProcessRecord = {
        "type": "web",
        "status": "running",
        "runner": "docker",
        "container": "0123456789ab",
    }

    runner.stop([container])  # not a KeyError: a container is not this runner's to stop

    assert runner.is_running(container) is False


def test_a_record_of_another_run_host_is_neither_running_nor_stopped_here(
    tmp_path: Path, store: FileStore, sandbox: Sandbox
) -> None:
    here = LocalRunner(store, tmp_path / "run", tmp_path / "storage", sandbox, "alpha")
    (web,) = health_gated_start(here, make_spec(web_artifact(tmp_path, store), host="alpha"))
    try:
        # The same record as another host sees it: its pid (alive here) means nothing there.
        elsewhere = LocalRunner(store, tmp_path / "run", tmp_path / "storage", sandbox, "beta")

        elsewhere.stop([web])

        assert elsewhere.is_running(web) is False
        assert here.is_running(web) is True  # not stopped by the other host
    finally:
        here.stop([web])
    assert here.is_running(web) is False


# --- confinement (workers/sandbox.py) -------------------------------------------------------


def _in_group(process: Path, leader: ProcessRecord) -> bool:
    try:
        return os.getpgid(int(process.name)) == leader["pid"]
    except (ProcessLookupError, PermissionError):
        return False


def _platform_files(data_dir: Path) -> tuple[list[Path], list[Path]]:
    """What an installation keeps in its data dir that an app must not reach: its key, token
    and store, another app's storage and logs; and folders an app must not write into."""
    secret_files = {
        data_dir / "secret.key": "fernet-key",
        data_dir / "admin-token": "admin-token",
        data_dir / "shipyard.db": "the store",
        data_dir / "storage" / "victim" / "staging" / "private.txt": "another app's data",
        data_dir / "run" / "victim" / "staging" / "logs" / "d.web.1.log": "another app's log",
    }
    for path, content in secret_files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        path.chmod(0o600)
    targets = [*secret_files, data_dir / "storage" / "victim", data_dir / "run"]
    return targets, [data_dir, data_dir / "run", data_dir / "storage" / "victim" / "staging"]


def test_a_confined_app_reaches_neither_the_platform_nor_another_app(
    tmp_path: Path, store: FileStore, confining_sandbox: Sandbox
) -> None:
    runner = LocalRunner(store, tmp_path / "run", tmp_path / "storage", confining_sandbox)
    targets, plant = _platform_files(tmp_path)
    umask = os.umask(0o077)  # as every server command sets it
    env = {"TARGETS": ":".join(map(str, targets)), "PLANT": ":".join(map(str, plant))}
    digest = make_artifact(tmp_path, store, attacker.FILES)
    spec = make_spec(digest, env={**env, "API_KEY": SECRET})
    records: list[ProcessRecord] = []
    try:
        records.extend(health_gated_start(runner, spec))
        (web,) = records
        with httpx.Client(trust_env=False, timeout=10) as client:
            served = client.get(web["url"]).json()
        # The shell, bubblewrap, setpriv and the app: the config is in none of their arguments.
        group = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _in_group(p, web)]
        assert len(group) >= 3
        assert not [p for p in group if SECRET.encode() in (p / "cmdline").read_bytes()]
        released = run_to_end(runner, spec, "python3 attack.py", timeout=60)
    finally:
        runner.stop(records)
        os.umask(umask)

    for report in (served, attacker.parse_report(released.output)):  # the web process, the release
        assert attacker.breaches(report) == {}
        assert set(report["read"]) == {str(p) for p in targets}  # each one was tried
        assert report["storage"] == "allowed"  # its own storage works
        assert len(report["processes"]) < 10  # its own PID namespace: not the worker's
        if os.geteuid() == 0:
            assert report["uid"] == confining_sandbox.uid_for("web") != 0
    assert (tmp_path / "storage" / "web" / "staging" / "mine").read_text() == "planted"
    assert not any((folder / "planted").exists() for folder in plant)


# --- unpacked artifacts ------------------------------------------------------------------------


def test_a_hundred_releases_of_one_artifact_share_one_unpacked_copy(
    tmp_path: Path, store: FileStore, runner: LocalRunner, started: list[ProcessRecord]
) -> None:
    digest = web_artifact(tmp_path, store)
    specs = [make_spec(digest, release_version=v, env={"N": str(v)}) for v in range(1, 101)]

    for spec in specs:  # a hundred config releases, each with its release phase
        assert run_to_end(runner, spec, 'test "$N" -gt 0', timeout=30).exit_code == 0
    started.extend(health_gated_start(runner, specs[-1]))

    unpacked = [p for p in (tmp_path / "run" / "web" / "_artifacts").iterdir() if p.is_dir()]
    assert unpacked == [runner.release_dir(specs[0])] == [runner.release_dir(specs[-1])]
    assert sorted(p.name for p in (tmp_path / "run" / "web").iterdir()) == ["_artifacts", "staging"]


def test_prune_keeps_what_it_is_told_and_a_removed_one_is_unpacked_again(
    tmp_path: Path, store: FileStore, runner: LocalRunner
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    kept = make_spec(make_artifact(tmp_path / "a", store, {"Procfile": "web: true\n"}))
    dropped = make_spec(make_artifact(tmp_path / "b", store, {"Procfile": "web: false\n"}))
    for spec in (kept, dropped):
        assert run_to_end(runner, spec, "true", timeout=30).exit_code == 0
    earlier = tmp_path / "run" / "web" / "staging" / "v7"  # the layout before: one per release
    shutil.copytree(runner.release_dir(dropped), earlier)
    broken_off = runner.release_dir(kept).with_name(".abc.123.tmp")  # an unpack never finished
    broken_off.mkdir()

    size = runner.prune("web", {kept.artifact_id})

    assert runner.release_dir(kept).is_dir() and size > 0
    assert not runner.release_dir(dropped).exists()
    assert not earlier.exists() and not broken_off.exists()
    assert run_to_end(runner, dropped, "cat Procfile", timeout=30).output == "web: false\n"
    assert runner.release_dir(dropped).is_dir()


def layered_artifact(tmp_path: Path, store: FileStore, name: str, code: dict[str, str]) -> str:
    """An artifact as the Python build makes one: the same `.python` layer in each, then the
    member of `code` (which a hostile one makes write into `.python` too); its digest."""
    dependencies = tmp_path / "dependencies"
    (dependencies / ".python" / "lib").mkdir(parents=True, exist_ok=True)
    (dependencies / ".python" / "lib" / "dep.py").write_text("DEP = 1\n")
    layer = pack_layer(dependencies, ".python", tmp_path / "layer.tar.gz")
    tree = tmp_path / name
    for path, content in code.items():
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        (tree / path).write_text(content)
    tarball = tmp_path / f"{name}.tar.gz"
    if not any(path.startswith(".python/") for path in code):
        pack_layered(tree, layer, tarball, mtime=1_700_000_000)
    else:  # pack_layered leaves .python out of the code's member: this one does not
        pack_reproducibly(tree, tmp_path / "code.tar.gz", mtime=1_700_000_000)
        layered = layer.member.read_bytes() + (tmp_path / "code.tar.gz").read_bytes()
        tarball.write_bytes(layered)
    return store.put(tarball, app="web").digest


def test_an_artifact_whose_layer_is_unpacked_already_links_it_and_unpacks_only_its_code(
    tmp_path: Path, store: FileStore, runner: LocalRunner
) -> None:
    first = make_spec(layered_artifact(tmp_path, store, "one", {"Procfile": "web: true\n"}))
    second = make_spec(layered_artifact(tmp_path, store, "two", {"Procfile": "web: false\n"}))

    for spec in (first, second):
        ended = run_to_end(runner, spec, "cat Procfile .python/lib/dep.py", timeout=30)
        assert ended.exit_code == 0, ended.output

    assert ended.output == "web: false\nDEP = 1\n"
    dep = [runner.release_dir(s) / ".python" / "lib" / "dep.py" for s in (first, second)]
    assert dep[0].stat().st_ino == dep[1].stat().st_ino  # one copy on this host's disk
    assert (runner.release_dir(second) / "Procfile").read_text() == "web: false\n"
    runner.prune("web", {second.artifact_id})
    assert dep[1].read_text() == "DEP = 1\n"  # the other release's copy is its own


def test_an_artifact_whose_code_writes_into_its_layer_is_refused_and_changes_nothing(
    tmp_path: Path, store: FileStore, runner: LocalRunner
) -> None:
    first = make_spec(layered_artifact(tmp_path, store, "one", {"Procfile": "web: true\n"}))
    assert run_to_end(runner, first, "true", timeout=30).exit_code == 0
    hostile = {"Procfile": "web: true\n", ".python/lib/dep.py": "DEP = 'replaced'\n"}
    second = make_spec(layered_artifact(tmp_path, store, "two", hostile))

    with pytest.raises(StageFailed, match="cannot be unpacked safely.*makes '.python' too"):
        run_to_end(runner, second, "true", timeout=30)

    assert (runner.release_dir(first) / ".python/lib/dep.py").read_text() == "DEP = 1\n"


def test_an_artifact_cannot_pass_its_files_off_as_a_layer_for_later_artifacts_to_link(
    tmp_path: Path, store: FileStore, runner: LocalRunner
) -> None:
    layered = layered_artifact(tmp_path, store, "probe", {"Procfile": "web: true\n"})
    layer = first_layer(store.path_for(layered))
    assert layer is not None
    # One member, no layer: its own marker naming the app's layer, and its own `.python`.
    spoof = tmp_path / "spoof"
    (spoof / ".python" / "lib").mkdir(parents=True)
    (spoof / ".python" / "lib" / "dep.py").write_text("DEP = 'spoofed'\n")
    (spoof / ".shipyard-layer").write_text(layer.digest)
    (spoof / "Procfile").write_text("web: true\n")
    pack_reproducibly(spoof, tmp_path / "spoof.tar.gz", mtime=1_700_000_000)
    spoofed = make_spec(store.put(tmp_path / "spoof.tar.gz", app="web").digest)
    later = make_spec(layered)

    for spec in (spoofed, later):
        assert run_to_end(runner, spec, "true", timeout=30).exit_code == 0

    assert (runner.release_dir(spoofed) / ".shipyard-layer").read_text() == ""
    assert (runner.release_dir(later) / ".python/lib/dep.py").read_text() == "DEP = 1\n"


def test_the_apps_config_never_reaches_the_platforms_side_of_its_sandbox(
    tmp_path: Path, store: FileStore, confining_sandbox: Sandbox
) -> None:
    # A deploy token may set PATH: with a `setpriv` of the app's own on it, a root shell or
    # bubblewrap that looked commands up on the app's PATH would run it before the drop.
    runner = LocalRunner(store, tmp_path / "run", tmp_path / "storage", confining_sandbox)
    storage = tmp_path / "storage" / "web" / "staging"
    storage.mkdir(parents=True)
    trap = storage / "setpriv"
    trap.write_text(f"#!/bin/sh\necho ran > {storage}/trapped; echo ran > /storage/trapped\n")
    trap.chmod(0o755)
    env = {"PATH": f"{storage}:/storage:/usr/bin:/bin", "API_KEY": SECRET, "GREETING": "hello"}
    spec = make_spec(web_artifact(tmp_path, store), env=env)
    records = health_gated_start(runner, spec)
    try:
        (web,) = records
        served = httpx.get(web["url"], trust_env=False).text
        group = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _in_group(p, web)]
        outside = [p for p in group if os.stat(p).st_uid == os.geteuid()]  # shell, bubblewrap
        inside = [p for p in group if p not in outside]
        assert outside and all(SECRET.encode() not in (p / "environ").read_bytes() for p in outside)
        status = (inside[-1] / "status").read_text()
        checked = run_to_end(runner, spec, 'test "$API_KEY" = ' + SECRET, timeout=30)
    finally:
        runner.stop(records)

    assert served == "hello"  # the app itself got its config
    assert checked.exit_code == 0, checked.output  # and so does its release command
    assert not (storage / "trapped").exists()
    assert "CapEff:\t0000000000000000" in status
