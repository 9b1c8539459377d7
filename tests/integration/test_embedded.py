"""Embedded mode: `shipyard up` alone (SQLite, its own broker), driven through the CLI and damaged
for real: pools, the broker and `up` itself SIGKILLed."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from shipyard.shared import processes
from shipyard.shared.db import session_scope
from shipyard.shared.services import deployments
from tests import attacker
from tests.conftest import commit_file
from tests.integration.stack import (
    SHIPYARD,
    Stack,
    descendants,
    fetch,
    sigkill,
    up_children,
)
from tests.integration.up import UpFactory, restart_up, wait_for
from tests.repos import commit_files, git

# Fast failure detection, so that recovery is seen within seconds (see docs/reliability.md).
FAST = {
    "SHIPYARD_HEARTBEAT_SECONDS": "0.3",
    "SHIPYARD_STALE_AFTER_SECONDS": "2",
    "SHIPYARD_RECONCILE_SECONDS": "0.5",
    "SHIPYARD_QUEUED_REDELIVER_SECONDS": "3",
}


@pytest.fixture
def embedded(start_up: UpFactory) -> Stack:
    """`shipyard up` in a fresh data dir; the token is the one it generates at first start."""
    return start_up()


def test_up_deploys_through_the_cli_and_restores_live_releases_after_a_restart(
    embedded: Stack, hello_repo: Path
) -> None:
    assert embedded.run_cli("apps", "create", "hello", "--repo", str(hello_repo)).returncode == 0
    embedded.run_cli("envs", "create", "staging", "--app", "hello")
    deploy = embedded.run_cli("deploy", "--app", "hello", "--env", "staging")
    assert "Deployed release v1 to staging" in deploy.stdout
    for stage in ("build", "release", "run"):
        assert f"-----> {stage:<8} succeeded" in deploy.stdout
    # The build's own output, streamed by deploy as the build wrote it.
    assert "       -----> Building hello at " in deploy.stdout
    assert "       -----> Running build command: python3 -m compileall" in deploy.stdout
    ps = json.loads(embedded.run_cli("ps", "-a", "hello", "-e", "staging", "--json").stdout)
    router_port = embedded.env["SHIPYARD_ROUTER_PORT"]
    assert ps["url"] == f"http://staging.hello.localhost:{router_port}"
    summary = embedded.log_path("up").read_text()
    assert f"Apps answer at http://ENV.APP.localhost:{router_port} (the router)" in summary
    token_file = embedded.data_dir / "admin-token"
    assert (
        f"Dashboard: {embedded.url}/ui (sign in with the admin token, in {token_file})" in summary
    )
    url = ps["processes"][0]["url"]
    assert fetch(url) == "Hello from Shipyard"
    web = next(p for p in embedded.current("hello", "staging")["processes"])
    assert web["status"] == "running"
    assert (embedded.data_dir / "shipyard.db").is_file()
    assert any((embedded.data_dir / "broker").iterdir())

    # Stopping `up` stops the app it ran ...
    pid = int(_pid_of(embedded))
    embedded.stop("up")
    assert not processes.is_alive(pid, None)

    # ... and the next `up` starts the live release again: the SQL record is the truth.
    restart_up(embedded)
    for _ in range(300):
        current = embedded.current("hello", "staging")
        url = current["processes"][0]["url"]
        if current["processes"][0]["status"] == "running" and url:
            try:
                if fetch(url) == "Hello from Shipyard":
                    break
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    else:
        raise AssertionError("the live release was not started again")
    assert current["release"]["version"] == 1


def test_cli_deploy_exits_non_zero_with_the_error_when_the_build_fails(
    embedded: Stack, hello_repo: Path
) -> None:
    (hello_repo / "Procfile").unlink()
    git(hello_repo, "commit", "--quiet", "-am", "remove the Procfile")
    embedded.run_cli("apps", "create", "hello", "--repo", str(hello_repo))
    embedded.run_cli("envs", "create", "staging", "--app", "hello")

    result = embedded.run_cli("deploy", "--app", "hello", "--env", "staging", check=False)

    assert result.returncode == 1
    assert "no Procfile" in result.stderr + result.stdout


def test_embedded_mode_generates_its_secrets_privately(embedded: Stack) -> None:
    for name in ("admin-token", "secret.key"):
        path = embedded.data_dir / name
        assert path.is_file()
        assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert len(embedded.token) >= 32
    assert embedded.api("GET", "/v1/apps", 200) == []


def _pid_of(stack: Stack) -> int:
    url = f"sqlite:///{stack.data_dir / 'shipyard.db'}"
    with session_scope(url) as session:
        (live,) = deployments.live_deployments(session=session)
        return int(live.processes[0]["pid"])


def test_secrets_are_encrypted_at_rest_and_survive_a_key_rotation(
    embedded: Stack, hello_repo: Path
) -> None:
    secret = f"greeting-{secrets.token_hex(8)}"
    embedded.run_cli("apps", "create", "hello", "--repo", str(hello_repo))
    embedded.run_cli("envs", "create", "staging", "--app", "hello")
    embedded.run_cli(
        "config", "set", f"GREETING={secret}", "--secret", "-a", "hello", "-e", "staging"
    )
    embedded.run_cli("deploy", "--app", "hello", "--env", "staging")
    database = embedded.data_dir / "shipyard.db"
    assert secret.encode() not in database.read_bytes()
    old_key = (embedded.data_dir / "secret.key").read_text().strip()

    rotated = embedded.run_cli("secrets", "rotate-key", "--data-dir", str(embedded.data_dir))

    assert "re-encrypted 1 secret values" in rotated.stdout
    new_keys = (embedded.data_dir / "secret.key").read_text().strip().split(",")
    assert new_keys[1:] == [old_key] and new_keys[0] != old_key
    assert secret.encode() not in database.read_bytes()
    embedded.run_cli("config", "set", "OTHER=1", "-a", "hello", "-e", "staging")
    for _ in range(200):
        if embedded.current("hello", "staging")["release"]["version"] == 2:
            break
        time.sleep(0.1)
    rollback = embedded.run_cli("rollback", "--app", "hello", "--env", "staging", "--to", "1")
    assert "now runs release v1" in rollback.stdout
    assert fetch(embedded.web_url("hello", "staging")) == secret  # the old release still runs


def test_a_secret_a_release_command_prints_is_kept_nowhere_and_the_data_dir_is_private(
    embedded: Stack, hello_repo: Path
) -> None:
    secret = f"greeting-{secrets.token_hex(8)}"
    commit_file(
        hello_repo, "Procfile", "web: python3 app.py\nrelease: echo migrating as $GREETING\n"
    )
    embedded.run_cli("apps", "create", "hello", "--repo", str(hello_repo))
    embedded.run_cli("envs", "create", "staging", "--app", "hello")
    embedded.run_cli(
        "config", "set", f"GREETING={secret}", "--secret", "-a", "hello", "-e", "staging"
    )

    deploy = embedded.run_cli("deploy", "--app", "hello", "--env", "staging")

    assert fetch(embedded.web_url("hello", "staging")) == secret  # the app does get it
    pipeline_id = re.search(r"Pipeline ([0-9a-f-]{36})", deploy.stdout)
    assert pipeline_id is not None
    shown = embedded.run_cli("pipelines", "show", pipeline_id[1], "--json").stdout
    (release,) = [s for s in json.loads(shown)["stages"] if s["name"] == "release"]
    assert release["status"] == "succeeded"
    assert release["output"] == "migrating as <redacted>\n"
    assert secret not in deploy.stdout + shown
    data_dir = embedded.data_dir
    files = [path for path in data_dir.rglob("*") if path.is_file() and not path.is_symlink()]
    for path in files:  # the store, its WAL, the broker's files, every log
        assert secret.encode() not in path.read_bytes(), path
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    private = [
        *data_dir.glob("shipyard.db*"),
        # up.log is this test's redirect of `up`'s own output, made before `up` starts.
        *(path for path in (data_dir / "logs").glob("*.log") if path.name != "up.log"),
        *(data_dir / "run").rglob("*.log"),
        *(data_dir / "broker").iterdir(),
    ]
    assert any(path.name == "shipyard.db-wal" for path in private)
    assert any(path.parent.name == "logs" and "web" in path.name for path in private)
    loose = {str(p): oct(p.stat().st_mode & 0o777) for p in private if p.stat().st_mode & 0o077}
    assert loose == {}


def test_an_app_reaches_neither_the_platform_nor_another_app(
    embedded: Stack, hello_repo: Path, tmp_path: Path
) -> None:
    # The victim: hello in staging, with something of its own in its storage.
    embedded.run_cli("apps", "create", "hello", "--repo", str(hello_repo))
    embedded.run_cli("envs", "create", "staging", "--app", "hello")
    embedded.run_cli("deploy", "--app", "hello", "--env", "staging")
    data_dir = embedded.data_dir
    victim_storage = data_dir / "storage" / "hello" / "staging"
    (victim_storage / "private.txt").write_text("the victim's own")
    victim_logs = sorted((data_dir / "run" / "hello" / "staging" / "logs").glob("*.log"))
    assert victim_logs
    # The attacker, whose web process and release command try everything.
    attacker_repo = tmp_path / "attacker-repo"
    attacker_repo.mkdir()
    git(attacker_repo, "init", "--quiet", "--initial-branch=main")
    commit_files(attacker_repo, attacker.FILES, "attack")
    targets = [
        data_dir / "secret.key",
        data_dir / "admin-token",
        data_dir / "shipyard.db",
        victim_storage / "private.txt",
        victim_logs[0],
        data_dir / "run" / "hello" / "staging",
    ]
    plant = [data_dir, data_dir / "run", victim_storage]
    embedded.run_cli("apps", "create", "attacker", "--repo", str(attacker_repo))
    embedded.run_cli("envs", "create", "staging", "--app", "attacker")
    embedded.run_cli(
        "config",
        "set",
        f"TARGETS={os.pathsep.join(map(str, targets))}",
        f"PLANT={os.pathsep.join(map(str, plant))}",
        "-a",
        "attacker",
        "-e",
        "staging",
    )

    deploy = embedded.run_cli("deploy", "--app", "attacker", "--env", "staging")

    served = json.loads(fetch(embedded.web_url("attacker", "staging")))
    pipeline_id = re.search(r"Pipeline ([0-9a-f-]{36})", deploy.stdout)
    assert pipeline_id is not None
    shown = embedded.run_cli("pipelines", "show", pipeline_id[1], "--json").stdout
    (release,) = [s for s in json.loads(shown)["stages"] if s["name"] == "release"]
    for report in (served, attacker.parse_report(release["output"])):
        assert attacker.breaches(report) == {}
        assert len(report["read"]) == len(targets)  # each one was tried, and failed
        assert report["storage"] == "allowed"  # its own storage works
        assert report["uid"] != 0
    assert (victim_storage / "private.txt").read_text() == "the victim's own"
    assert not any((folder / "planted").exists() for folder in plant)
    assert fetch(embedded.web_url("hello", "staging")) == "Hello from Shipyard"


def _supervisor_events(stack: Stack, event: str) -> list[dict[str, Any]]:
    lines = stack.log_path("up").read_text().splitlines()
    parsed = [json.loads(line) for line in lines if line.startswith("{")]
    return [line for line in parsed if line["event"] == event]


@pytest.mark.timeout(600)
def test_thirty_pipelines_in_a_row_succeed_with_the_beat_ticking_every_50_ms(
    start_up: UpFactory, hello_repo: Path
) -> None:
    # The documented settings that lost a pool within seconds on the file broker.
    stack = start_up(SHIPYARD_RECONCILE_SECONDS="0.05", SHIPYARD_SCHEDULE_TICK_SECONDS="0.05")
    stack.create_app("hello", hello_repo, envs=("staging",))

    results = [stack.deploy("hello", "staging", ref="HEAD")["status"] for _ in range(30)]

    assert results == ["succeeded"] * 30
    assert _supervisor_events(stack, "supervisor.exited") == []  # no child was lost on the way
    releases = stack.api("GET", "/v1/apps/hello/environments/staging/releases", 200)
    assert len(releases) == 30


@pytest.mark.timeout(300)
def test_every_worker_sigkilled_mid_build_is_restarted_and_the_pipeline_finishes_once(
    start_up: UpFactory, slow_build_repo: Path
) -> None:
    stack = start_up(**FAST)
    stack.create_app("crash", slow_build_repo, envs=("staging", "qa"))
    in_flight = stack.start_pipeline("crash", "staging")
    wait_for(lambda: _stage(stack, in_flight, "build") == "running", "the build to run", stack)

    pools = {name: pid for name, pid in up_children(stack.data_dir).items() if "worker" in name}
    assert len(pools) == 4
    sigkill([p for pid in pools.values() for p in [*descendants(pid), pid]])

    wait_for(
        lambda: (
            {e["child"] for e in _supervisor_events(stack, "supervisor.restarting")} >= set(pools)
        ),
        "up to restart all four pools",
        stack,
    )
    done = stack.wait_pipeline(in_flight, timeout=120)
    assert done["status"] == "succeeded", done
    assert {s["name"]: s["attempt"] for s in done["stages"]}["build"] == 2
    assert stack.deploy("crash", "qa")["status"] == "succeeded"  # and the next one too
    releases = stack.api("GET", "/v1/apps/crash/environments/staging/releases", 200)
    assert [r["version"] for r in releases] == [1]  # redelivered, not duplicated
    exits = {e["child"]: e["exit_code"] for e in _supervisor_events(stack, "supervisor.exited")}
    assert exits == {name: -9 for name in pools}


@pytest.mark.timeout(300)
def test_up_sigkilled_with_a_pipeline_queued_finishes_it_at_the_next_up(
    start_up: UpFactory, hello_repo: Path
) -> None:
    # The reconciler's own redelivery of queued stages is left at its default (120 s), so the
    # pipeline can only finish in time from the message the broker kept on disk.
    stack = start_up()
    stack.create_app("hello", hello_repo, envs=("staging",))
    up = stack.processes["up"]
    children = up_children(stack.data_dir)
    os.kill(up.pid, signal.SIGSTOP)  # nothing is restarted from here on
    build_pool = children["worker-build"]
    sigkill([*descendants(build_pool), build_pool])
    queued = stack.start_pipeline("hello", "staging")
    broker = redis.Redis(unix_socket_path=str(stack.data_dir / "broker" / "broker.sock"))
    assert broker.llen("shipyard:build") == 1  # queued in the broker, no consumer left
    broker.close()

    os.kill(up.pid, signal.SIGKILL)
    up.wait()
    stack.processes.pop("up")
    wait_for(
        lambda: not any(processes.is_alive(pid, None) for pid in children.values()),
        "up's children to exit after up was killed",
        stack,
        timeout=60,
    )
    restart_up(stack)

    done = stack.wait_pipeline(queued, timeout=90)
    assert done["status"] == "succeeded", done
    assert fetch(stack.web_url("hello", "staging")) == "Hello from Shipyard"


@pytest.mark.timeout(300)
def test_the_broker_sigkilled_is_restarted_and_the_pools_reconnect(
    start_up: UpFactory, hello_repo: Path
) -> None:
    stack = start_up()
    stack.create_app("hello", hello_repo, envs=("staging", "qa"))
    assert stack.deploy("hello", "staging")["status"] == "succeeded"
    broker = up_children(stack.data_dir)["broker"]

    os.kill(broker, signal.SIGKILL)

    wait_for(
        lambda: up_children(stack.data_dir).get("broker", broker) != broker,
        "up to start a new broker",
        stack,
    )
    assert stack.deploy("hello", "qa")["status"] == "succeeded"
    assert stack.deploy("hello", "staging")["status"] == "succeeded"
    assert [e["child"] for e in _supervisor_events(stack, "supervisor.exited")] == ["broker"]


def _stage(stack: Stack, pipeline_id: str, name: str) -> str:
    pipeline = stack.api("GET", f"/v1/pipelines/{pipeline_id}", 200)
    return str(next(s for s in pipeline["stages"] if s["name"] == name)["status"])


@pytest.mark.timeout(180)
def test_logs_tail_shows_what_the_app_prints_after_the_command_started(
    embedded: Stack, hello_repo: Path
) -> None:
    embedded.run_cli("apps", "create", "hello", "--repo", str(hello_repo))
    embedded.run_cli("envs", "create", "staging", "--app", "hello")
    embedded.run_cli("deploy", "--app", "hello", "--env", "staging")
    marker = f"/marker-{secrets.token_hex(6)}"
    output = embedded.log_path("logs-tail")
    env = {**embedded.env, "SHIPYARD_URL": embedded.url, "SHIPYARD_TOKEN": embedded.token}
    with output.open("wb") as sink:
        tail = subprocess.Popen(
            [SHIPYARD, "logs", "-a", "hello", "-e", "staging", "--tail", "-n", "5"],
            env=env, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        wait_for(
            lambda: "web.1: hello listening" in output.read_text(), "the first lines", embedded
        )
        fetch(embedded.web_url("hello", "staging") + marker)  # printed after `logs` started

        wait_for(lambda: f"GET {marker}" in output.read_text(), "the new request's line", embedded)
    finally:
        tail.kill()
        tail.wait()
    assert output.read_text().splitlines()[0].startswith("web.1: ")


def test_a_failed_release_command_shows_its_output_in_deploy(
    embedded: Stack, hello_repo: Path
) -> None:
    procfile = (
        "web: python3 app.py\nrelease: echo migrating; echo 'no such table: post' >&2; exit 3\n"
    )
    commit_file(hello_repo, "Procfile", procfile, "a release command that fails")
    embedded.run_cli("apps", "create", "hello", "--repo", str(hello_repo))
    embedded.run_cli("envs", "create", "staging", "--app", "hello")

    result = embedded.run_cli("deploy", "--app", "hello", "--env", "staging", check=False)

    assert result.returncode == 1
    assert "-----> release  failed" in result.stdout
    assert "exited with status 3" in result.stdout
    assert "no such table: post" in result.stdout  # what the command printed, not only its code
    assert "deploy failed at the release stage" in result.stderr
