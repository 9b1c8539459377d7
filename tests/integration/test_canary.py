"""Progressive delivery for real: `shipyard up` (its router's HAProxy, its pools), an app in
keep-alive load, canary deploys that go through or abort, a watch that rolls back, and a run
worker SIGKILLed in the middle of a canary step."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import commit_file
from tests.integration.stack import Stack, descendants, sigkill, up_children
from tests.integration.traffic import Load
from tests.integration.up import UpFactory, wait_for

# Answers `v<N> <flavour>`, with a 500 to one request in five once FAIL_AFTER seconds have passed
# since it started (flavour `bad`: at once; `late`: after three seconds; others never).
APP = """\
import os, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FLAVOUR = "{flavour}"
FAIL_AFTER = {{"bad": 0.0, "late": 3.0}}.get(FLAVOUR)
STARTED = time.monotonic()
COUNT = [0]
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        with LOCK:
            COUNT[0] += 1
            n = COUNT[0]
        failing = (
            self.path == "/"
            and FAIL_AFTER is not None
            and time.monotonic() - STARTED >= FAIL_AFTER
            and n % 5 == 0
        )
        body = f"v{{os.environ['SHIPYARD_RELEASE_VERSION']}} {{FLAVOUR}}".encode()
        self.send_response(500 if failing else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""

# Fast failure detection: a killed run worker's stage is taken over within seconds.
FAST = {
    "SHIPYARD_HEARTBEAT_SECONDS": "0.3",
    "SHIPYARD_STALE_AFTER_SECONDS": "2",
    "SHIPYARD_RECONCILE_SECONDS": "0.5",
    "SHIPYARD_QUEUED_REDELIVER_SECONDS": "3",
}


@dataclass(frozen=True)
class Flavours:
    repo: Path
    commits: dict[str, str]  # good, good2, bad, late


@pytest.fixture
def flavours(hello_repo: Path) -> Flavours:
    """The app's commits by flavour."""
    commit_file(hello_repo, "Procfile", "web: python3 server.py\n", "serve")
    (hello_repo / "shipyard.toml").unlink()
    commits = {
        flavour: commit_file(hello_repo, "server.py", APP.format(flavour=flavour), flavour)
        for flavour in ("good", "good2", "bad", "late")
    }
    return Flavours(hello_repo, commits)


@pytest.fixture
def load() -> Iterator[list[Load]]:
    started: list[Load] = []
    yield started
    for each in started:
        each.stop()


def _start(stack: Stack, ref: str, **rollout: Any) -> str:
    body: dict[str, Any] = {"environment": "staging", "ref": ref}
    if rollout:
        body["rollout"] = rollout
    return str(stack.api("POST", "/v1/apps/web/pipelines", 202, json=body)["id"])


def _deployment(stack: Stack, pipeline: dict[str, Any]) -> dict[str, Any]:
    """The deployment the pipeline's run stage made (a failed stage records no result: the
    deployment of the pipeline's release, then)."""
    deployments = stack.api("GET", "/v1/apps/web/environments/staging/deployments", 200)
    if pipeline["deployment_id"]:
        return next(d for d in deployments if d["id"] == pipeline["deployment_id"])
    release = stack.api("GET", f"/v1/pipelines/{pipeline['id']}", 200)["release_id"]
    return next(d for d in deployments if d["release_id"] == release)


def _serving(stack: Stack, flavour: str) -> Load:
    """A live release of `flavour`'s commit, and keep-alive load on its stable URL."""
    url = stack.current("web", "staging")["url"]
    traffic = Load(url)
    traffic.start()
    wait_for(lambda: len(traffic.answers) > 50, "the load to get answers", stack)
    return traffic


def _answers_after(traffic: Load, moment: float, count: int, stack: Stack) -> list[str]:
    """The bodies of the first `count` answers to requests sent after `moment`."""
    wait_for(
        lambda: len([a for a in list(traffic.answers) if a[0] > moment]) >= count,
        f"{count} answers after the rollout ended",
        stack,
    )
    return [a[3] for a in list(traffic.answers) if a[0] > moment][:count]


def _is_worker(pid: int) -> bool:
    """Whether `pid` is a Celery worker process (its pool's children have the same command)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"celery" in argv and b"worker" in argv


def _canary_state(stack: Stack) -> dict[str, Any] | None:
    found = stack.client.get("/v1/apps/web/environments/staging/canary")
    return found.json() if found.status_code == 200 else None


def _stack(start_up: UpFactory, flavours: Flavours, **settings: str) -> Stack:
    """`shipyard up` with the app, its first release (good) live."""
    stack = start_up(**settings)
    stack.create_app("web", flavours.repo, envs=("staging",))
    assert stack.wait_pipeline(_start(stack, flavours.commits["good"]))["status"] == "succeeded"
    return stack


@pytest.mark.timeout(300)
def test_a_failing_canary_aborts_in_its_first_step_and_only_its_share_of_requests_failed(
    start_up: UpFactory, flavours: Flavours, load: list[Load]
) -> None:
    stack = _stack(start_up, flavours)
    traffic = _serving(stack, "good")
    load.append(traffic)

    # A step far longer than the test: only the analysis can end it.
    started = _start(stack, flavours.commits["bad"], canary=[10, 100], step_seconds=600)
    pipeline = stack.wait_pipeline(started, timeout=120)
    ended = time.time()
    assert pipeline["status"] == "failed"
    assert "canary aborted at 10 %" in pipeline["error"], pipeline["error"]
    assert "error rate" in pipeline["error"]

    after = _answers_after(traffic, ended, 200, stack)
    assert all(body == "v1 good" for body in after), set(after)
    traffic.stop()
    assert traffic.errors == []
    failed = [a for a in traffic.answers if a[2] != 200]
    canary = [a for a in traffic.answers if a[3].startswith("v2 ")]
    # Only ever the canary's requests failed, one in five of them.
    assert failed and all(a[3] == "v2 bad" for a in failed), failed[:5]
    assert 0.1 <= len(failed) / len(canary) <= 0.3, (len(failed), len(canary))
    # The canary had its share of the requests sent while it ran, no more.
    began = min(a[0] for a in canary)
    during = [a for a in traffic.answers if began <= a[0] <= max(b[0] for b in canary)]
    assert len(canary) / len(during) < 0.25, (len(canary), len(during))

    deployment = _deployment(stack, pipeline)
    assert deployment["status"] == "failed"
    rollout = deployment["rollout"]
    assert rollout["state"] == "aborted" and rollout["share"] == 0
    step = rollout["steps"][0]
    assert (step["phase"], step["share"], step["outcome"]) == ("canary", 10, "breached")
    assert step["canary"]["errors"] > 0 and step["canary"]["error_rate"] > 0.01
    assert step["stable"]["errors"] == 0 and step["stable"]["requests"] > step["canary"]["requests"]
    assert stack.current("web", "staging")["release"]["version"] == 1


@pytest.mark.timeout(300)
def test_a_good_canary_goes_through_its_steps_with_no_failed_request_and_a_deploy_waits_behind(
    start_up: UpFactory, flavours: Flavours, load: list[Load]
) -> None:
    stack = _stack(start_up, flavours)
    traffic = _serving(stack, "good")
    load.append(traffic)

    first = _start(stack, flavours.commits["good2"], canary=[20, 50, 100], step_seconds=6)
    wait_for(
        lambda: (_canary_state(stack) or {}).get("share") == 20,
        "the canary's first step",
        stack,
    )
    # A deploy asked for during the canary waits for it (the environment's queue).
    second = _start(stack, flavours.commits["good"])
    assert stack.api("GET", f"/v1/pipelines/{second}", 200)["status"] in ("queued", "running")
    done = stack.wait_pipeline(first, timeout=120)
    assert done["status"] == "succeeded", done
    later = stack.wait_pipeline(second, timeout=120)
    assert later["status"] == "succeeded", later
    run_of = {p["id"]: next(s for s in p["stages"] if s["name"] == "run") for p in (done, later)}
    assert run_of[second]["started_at"] >= run_of[first]["finished_at"]
    traffic.stop()

    assert traffic.errors == []
    assert [a for a in traffic.answers if a[2] != 200] == []
    rollout = _deployment(stack, done)["rollout"]
    assert rollout["state"] == "done" and rollout["share"] == 100
    steps = [(s["phase"], s["share"], s["outcome"]) for s in rollout["steps"]]
    assert steps == [("canary", 20, "passed"), ("canary", 50, "passed")]
    # The share of requests each step sent to the new release (v2), within a tolerance.
    for step in rollout["steps"]:
        requests = step["canary"]["requests"] + step["stable"]["requests"]
        assert abs(100 * step["canary"]["requests"] / requests - step["share"]) < 10, step


@pytest.mark.timeout(300)
def test_the_watch_rolls_back_a_release_that_starts_failing_after_the_switch(
    start_up: UpFactory, flavours: Flavours, load: list[Load]
) -> None:
    stack = _stack(start_up, flavours)
    traffic = _serving(stack, "good")
    load.append(traffic)

    started = _start(stack, flavours.commits["late"], watch_seconds=60, step_seconds=10)
    pipeline = stack.wait_pipeline(started, timeout=120)
    assert pipeline["status"] == "failed"
    assert "the watch saw the new release fail" in pipeline["error"], pipeline["error"]
    assert "rolling back to v1" in pipeline["error"]

    def rolled_back() -> bool:
        history = stack.api("GET", "/v1/apps/web/environments/staging/deployments", 200)
        return any(d["cause"] == "auto-rollback" and d["status"] == "live" for d in history)

    wait_for(rolled_back, "the automatic rollback to go live", stack)
    ended = time.time()
    after = _answers_after(traffic, ended, 100, stack)
    assert all(body == "v1 good" for body in after), set(after)
    deployment = _deployment(stack, pipeline)
    assert deployment["rollout"]["state"] == "rolled_back"
    assert deployment["rollout"]["steps"][-1]["outcome"] == "breached"
    traffic.stop()
    assert all(a[3] == "v2 late" for a in traffic.answers if a[2] != 200)


@pytest.mark.timeout(300)
def test_a_run_worker_sigkilled_mid_step_leaves_the_live_release_serving_all_requests(
    start_up: UpFactory, flavours: Flavours, load: list[Load]
) -> None:
    stack = _stack(start_up, flavours, **FAST)
    traffic = _serving(stack, "good")
    load.append(traffic)

    started = _start(stack, flavours.commits["good2"], canary=[50, 100], step_seconds=600)
    wait_for(lambda: (_canary_state(stack) or {}).get("share") == 50, "the canary", stack)
    wait_for(
        lambda: any(a[3].startswith("v2 ") for a in list(traffic.answers)),
        "the canary to answer",
        stack,
    )
    pools = [pid for name, pid in up_children(stack.data_dir).items() if name == "worker-run"]
    assert pools, up_children(stack.data_dir)
    # The run pool's processes, not the apps it started (they run on, as after an OOM kill).
    sigkill([p for pid in pools for p in [*descendants(pid), pid] if _is_worker(p)])

    pipeline = stack.wait_pipeline(started, timeout=120)
    ended = time.time()
    assert pipeline["status"] == "failed"
    assert "the run worker running the canary stopped at 50 %" in pipeline["error"]
    after = _answers_after(traffic, ended, 200, stack)
    assert all(body == "v1 good" for body in after), set(after)
    traffic.stop()
    assert traffic.errors == []
    assert [a for a in traffic.answers if a[2] != 200] == []
    deployment = _deployment(stack, pipeline)
    assert deployment["rollout"]["state"] == "aborted"
    assert deployment["status"] == "failed"


def _pids(processes: list[dict[str, Any]]) -> set[int]:
    return {int(p["pid"]) for p in processes if p["type"] == "web"}


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


@pytest.mark.timeout(300)
def test_a_rollback_inside_the_standby_window_takes_the_old_processes_back_with_no_start(
    start_up: UpFactory, flavours: Flavours, load: list[Load]
) -> None:
    stack = _stack(start_up, flavours)
    first = _pids(stack.current("web", "staging")["processes"])
    traffic = _serving(stack, "good")
    load.append(traffic)
    assert stack.wait_pipeline(_start(stack, flavours.commits["good2"]))["status"] == "succeeded"

    now = stack.current("web", "staging")
    assert now["release"]["version"] == 2
    [standing] = now["standby"]
    assert standing["release_version"] == 1 and _pids(standing["processes"]) == first
    assert all(_alive(pid) for pid in first)  # out of rotation, running
    moved = time.time()
    body = {"to_version": 1}
    rollback = stack.api("POST", "/v1/apps/web/environments/staging/rollback", 202, json=body)
    assert stack.wait_pipeline(rollback["id"])["status"] == "succeeded"

    back = stack.current("web", "staging")
    assert back["release"]["version"] == 1
    assert _pids(back["processes"]) == first  # the same processes: taken back, not started
    assert [s["release_version"] for s in back["standby"]] == [2]
    after = _answers_after(traffic, moved + 5, 100, stack)
    assert all(answer == "v1 good" for answer in after), set(after)
    traffic.stop()
    assert traffic.errors == []
    assert [a for a in traffic.answers if a[2] != 200] == []


@pytest.mark.timeout(300)
def test_a_release_standing_by_is_stopped_once_its_window_is_past(
    start_up: UpFactory, flavours: Flavours
) -> None:
    stack = start_up()
    stack.create_app("web", flavours.repo, envs=())
    body = {"name": "staging", "health_timeout": 10, "standby_seconds": 3}
    stack.api("POST", "/v1/apps/web/environments", 201, json=body)
    assert stack.wait_pipeline(_start(stack, flavours.commits["good"]))["status"] == "succeeded"
    first = _pids(stack.current("web", "staging")["processes"])
    assert stack.wait_pipeline(_start(stack, flavours.commits["good2"]))["status"] == "succeeded"
    assert [s["release_version"] for s in stack.current("web", "staging")["standby"]] == [1]

    wait_for(lambda: not any(_alive(pid) for pid in first), "v1 to stop after 3 s", stack)
    assert stack.current("web", "staging")["standby"] == []
    history = stack.api("GET", "/v1/apps/web/environments/staging/deployments", 200)
    replaced = next(d for d in history if d["release_version"] == 1)
    assert replaced["status"] == "superseded" and replaced["retired_at"] is not None


@pytest.mark.timeout(300)
def test_a_rollback_during_a_canary_ends_it_and_keeps_the_live_release_as_it_runs(
    start_up: UpFactory, flavours: Flavours, load: list[Load]
) -> None:
    stack = _stack(start_up, flavours)
    live_pids = _pids(stack.current("web", "staging")["processes"])
    traffic = _serving(stack, "good")
    load.append(traffic)
    started = _start(stack, flavours.commits["good2"], canary=[50, 100], step_seconds=600)
    wait_for(lambda: (_canary_state(stack) or {}).get("share") == 50, "the canary", stack)

    rollback = stack.api("POST", "/v1/apps/web/environments/staging/rollback", 202, json={})
    canary = stack.wait_pipeline(started, timeout=120)
    done = stack.wait_pipeline(rollback["id"], timeout=120)
    ended = time.time()

    assert canary["status"] == "failed" and "a rollback was asked for" in canary["error"]
    assert done["status"] == "succeeded", done
    now = stack.current("web", "staging")
    assert now["release"]["version"] == 1
    assert _pids(now["processes"]) == live_pids  # nothing started again
    after = _answers_after(traffic, ended, 100, stack)
    assert all(body == "v1 good" for body in after), set(after)
    traffic.stop()
    assert [a for a in traffic.answers if a[2] != 200] == []
