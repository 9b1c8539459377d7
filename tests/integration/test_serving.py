"""Serving through the router: one stable URL per environment, and not one failed request while
it is deployed, rolled back, or handed a release that never gets healthy."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.conftest import commit_file
from tests.integration.stack import Stack
from tests.integration.traffic import Load, router_client
from tests.integration.up import UpFactory, wait_for

# Answers with the release it belongs to and the commit's flavour; /slow takes six seconds.
APP = """\
import os, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FLAVOUR = "{flavour}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status, body):
        # Head and body in one write: a process killed while it answers has sent all of it or
        # nothing (which the router retries elsewhere), never a head without its body.
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self._headers_buffer.append(b"\\r\\n" + body)
        self.flush_headers()

    def do_GET(self):
        if self.path == "/slow":
            time.sleep(6)
        if self.path == "/id":  # which process answered (its pid is 2 in every sandbox)
            self.answer(200, os.environ["PORT"].encode())
            return
        if os.environ.get("BROKEN") and self.path == "/":
            self.answer(500, b"")
            return
        body = f"v{{os.environ['SHIPYARD_RELEASE_VERSION']}} {{FLAVOUR}}".encode()
        self.answer(200, body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


@pytest.fixture
def served_repo(hello_repo: Path) -> tuple[Path, str, str]:
    """An app in two commits (flavours a and b), started by a plain Procfile."""
    commit_file(hello_repo, "Procfile", "web: python3 server.py\n", "serve")
    (hello_repo / "shipyard.toml").unlink()
    first = commit_file(hello_repo, "server.py", APP.format(flavour="a"), "flavour a")
    second = commit_file(hello_repo, "server.py", APP.format(flavour="b"), "flavour b")
    return hello_repo, first, second


@pytest.fixture
def load() -> Iterator[list[Load]]:
    started: list[Load] = []
    yield started
    for each in started:
        each.stop()


def _deploy(stack: Stack, app: str, ref: str) -> None:
    assert stack.deploy(app, "staging", ref=ref)["status"] == "succeeded"


def _rollback(stack: Stack, app: str, version: int) -> None:
    body = {"to_version": version}
    started = stack.api("POST", f"/v1/apps/{app}/environments/staging/rollback", 202, json=body)
    assert stack.wait_pipeline(started["id"])["status"] == "succeeded"


def _windows(stack: Stack, app: str) -> dict[int, tuple[float, float]]:
    """Each release's time on the router: from its switch until its processes were stopped."""
    deployments = stack.api("GET", f"/v1/apps/{app}/environments/staging/deployments", 200)
    windows: dict[int, tuple[float, float]] = {}
    for deployment in deployments:
        if not deployment.get("switched_at"):
            continue
        begin = datetime.fromisoformat(deployment["switched_at"]).timestamp()
        end_at = deployment.get("retired_at")
        end = datetime.fromisoformat(end_at).timestamp() if end_at else time.time() + 60
        version = deployment["release_version"]
        old = windows.get(version, (begin, end))
        windows[version] = (min(old[0], begin), max(old[1], end))
    return windows


@pytest.mark.timeout(600)
def test_ten_deploys_and_five_rollbacks_under_load_fail_no_request(
    start_up: UpFactory, served_repo: tuple[Path, str, str], load: list[Load]
) -> None:
    repo, first, second = served_repo
    stack = start_up()
    stack.create_app("web", repo, envs=("staging",))
    _deploy(stack, "web", first)
    url = stack.current("web", "staging")["url"]
    assert url.startswith("http://staging.web.localhost:")
    traffic = Load(url)
    load.append(traffic)
    traffic.start()

    for n in range(10):
        _deploy(stack, "web", second if n % 2 == 0 else first)
        if n % 2 == 1:
            _rollback(stack, "web", 1 + n)  # back one release, every other deploy
    traffic.stop()

    assert traffic.errors == []
    assert len(traffic.answers) > 100, "the load generator hardly ran"
    failed = [a for a in traffic.answers if a[2] != 200]
    assert failed == []
    windows = _windows(stack, "web")
    for began, ended, _, body in traffic.answers:
        version = int(body.split()[0].removeprefix("v"))
        start, end = windows[version]
        # The release answered while it was on the router (a second's slack for the clocks
        # of two processes and the recording after the switch).
        assert start - 1 <= ended and began <= end + 1, (body, began, ended, windows[version])
    versions = {a[3] for a in traffic.answers}
    assert len(versions) >= 6, versions  # the traffic really moved from release to release


@pytest.mark.timeout(300)
def test_a_request_in_flight_during_a_switch_finishes_on_the_old_release(
    start_up: UpFactory, served_repo: tuple[Path, str, str]
) -> None:
    repo, first, second = served_repo
    stack = start_up()
    # Stopped once drained, not left standing by: its retirement tells when its drain ended.
    stack.create_app("web", repo, envs=("staging",), standby_seconds=0)
    _deploy(stack, "web", first)
    url = stack.current("web", "staging")["url"]
    answer: list[httpx.Response] = []
    sent = time.time()
    slow = threading.Thread(target=lambda: answer.append(router_client(url).get("/slow")))
    slow.start()
    time.sleep(0.3)  # the request is in the old process now (it takes six seconds)

    _deploy(stack, "web", second)
    slow.join(timeout=30)

    assert answer and answer[0].status_code == 200
    assert answer[0].text == "v1 a"
    assert router_client(url).get("/").text == "v2 b"
    deployments = stack.api("GET", "/v1/apps/web/environments/staging/deployments", 200)
    old = next(d for d in deployments if d["release_version"] == 1)
    new = next(d for d in deployments if d["release_version"] == 2)
    switched = datetime.fromisoformat(new["switched_at"]).timestamp()
    retired = datetime.fromisoformat(old["retired_at"]).timestamp()
    assert switched < sent + 6, "the switch came after the slow request: nothing was in flight"
    assert retired >= sent + 5.5  # drained: the old release lived until its request was done


@pytest.mark.timeout(300)
def test_a_release_that_never_gets_healthy_never_takes_traffic(
    start_up: UpFactory, served_repo: tuple[Path, str, str], load: list[Load]
) -> None:
    repo, first, _ = served_repo
    stack = start_up()
    stack.create_app("web", repo, envs=("staging",))
    _deploy(stack, "web", first)
    url = stack.current("web", "staging")["url"]
    traffic = Load(url, clients=2)
    load.append(traffic)
    traffic.start()

    result = stack.patch_config("web", "staging", {"vars": {"BROKEN": "yes"}})
    failed = stack.wait_pipeline(result["pipeline_id"])
    traffic.stop()

    assert failed["status"] == "failed"
    assert traffic.errors == []
    assert {(status, body) for _, _, status, body in traffic.answers} == {(200, "v1 a")}
    assert router_client(url).get("/").text == "v1 a"


@pytest.mark.timeout(300)
def test_scaled_web_processes_share_the_url_and_a_killed_one_comes_back(
    start_up: UpFactory, served_repo: tuple[Path, str, str], load: list[Load]
) -> None:
    repo, first, _ = served_repo
    stack = start_up()
    stack.create_app("web", repo, envs=("staging",))
    _deploy(stack, "web", first)
    url = stack.current("web", "staging")["url"]

    scaled = stack.api(
        "PATCH", "/v1/apps/web/environments/staging/formation", 200, json={"processes": {"web": 3}}
    )
    assert stack.wait_pipeline(scaled["pipeline_id"])["status"] == "succeeded"
    webs = [p for p in stack.current("web", "staging")["processes"] if p["type"] == "web"]
    assert sorted(p["index"] for p in webs) == [1, 2, 3]
    with router_client(url) as client:
        answering = {client.get("/id").text for _ in range(30)}
    assert len(answering) == 3  # the router spreads the requests over the three
    traffic = Load(url)
    load.append(traffic)
    traffic.start()

    victim = httpx.get(f"{webs[1]['url']}/id", trust_env=False).text
    # The app itself (not the shell that leads its sandbox) crashes.
    os.kill(_server_on(int(victim)), signal.SIGKILL)

    def restarted() -> bool:
        processes = stack.current("web", "staging")["processes"]
        second = next(p for p in processes if p["type"] == "web" and p["index"] == 2)
        return bool(second["restarts"] == 1 and second["status"] == "running")

    wait_for(restarted, "web.2 to be started again", stack, timeout=60)
    time.sleep(1)  # the restarted process takes traffic too
    traffic.stop()
    assert traffic.errors == []
    assert [a for a in traffic.answers if a[2] != 200] == []
    second = next(p for p in stack.current("web", "staging")["processes"] if p["index"] == 2)
    assert second["last_exit"] == 128 + signal.SIGKILL
    with router_client(url) as client:
        assert victim not in {client.get("/id").text for _ in range(30)}
    ps = stack.run_cli("ps", "-a", "web", "-e", "staging").stdout
    assert "web.2" in ps and "1 (exit 137" in ps


@pytest.mark.timeout(300)
def test_ps_restart_replaces_every_process_with_no_failed_request_and_says_who_asked(
    start_up: UpFactory, served_repo: tuple[Path, str, str], load: list[Load]
) -> None:
    repo, first, _ = served_repo
    stack = start_up()
    stack.create_app("web", repo, envs=("staging",))
    _deploy(stack, "web", first)
    before = stack.current("web", "staging")
    traffic = Load(before["url"])
    load.append(traffic)
    traffic.start()

    restarted = stack.run_cli("ps:restart", "-a", "web", "-e", "staging")

    traffic.stop()
    after = stack.current("web", "staging")
    assert "restarting web/staging" in restarted.stdout
    assert after["release"]["version"] == before["release"]["version"]  # no new release
    assert after["deployment"]["cause"] == "restart"
    assert {p["pid"] for p in after["processes"]}.isdisjoint(p["pid"] for p in before["processes"])
    assert traffic.answers and traffic.errors == []
    assert [a for a in traffic.answers if a[2] != 200] == []
    history = stack.api("GET", "/v1/apps/web/environments/staging/deployments", 200)
    assert (history[0]["cause"], history[0]["trigger"]) == ("restart", "cli")
    assert history[0]["requested_by"] == "admin"
    ps = stack.run_cli("ps", "-a", "web", "-e", "staging").stdout
    assert str(after["processes"][0]["pid"]) in ps


# A second process type: it serves nothing and runs until it is stopped.
WORKER = """\
import time

print("worker up", flush=True)
while True:
    time.sleep(1)
"""


@pytest.mark.timeout(300)
def test_ps_restart_of_one_type_restarts_only_it_while_the_others_keep_running_and_serving(
    start_up: UpFactory, served_repo: tuple[Path, str, str], load: list[Load]
) -> None:
    repo, _, _ = served_repo
    commit_file(repo, "worker.py", WORKER, "a worker")
    both = commit_file(repo, "Procfile", "web: python3 server.py\nworker: python3 worker.py\n")
    stack = start_up()
    stack.create_app("web", repo, envs=("staging",))
    _deploy(stack, "web", both)
    before = _pids(stack)
    traffic = Load(stack.current("web", "staging")["url"])
    load.append(traffic)
    traffic.start()

    workers = stack.run_cli("ps:restart", "worker", "-a", "web", "-e", "staging")

    restarted = _pids(stack)
    assert "restarting the worker processes of web/staging" in workers.stdout
    assert restarted["web"] == before["web"]  # untouched: not stopped, not started again
    assert restarted["worker"] != before["worker"]
    wait_for(lambda: not _alive(before["worker"]), "the old worker to be stopped", stack)
    # Past the supervision's next look for processes of replaced deployments (every 5 s): the
    # web process carried over to the new deployment is not one of them.
    _stays(lambda: _alive(restarted["web"]) and _pids(stack) == restarted, seconds=8)
    pipeline_id = workers.stdout.split()[1].rstrip(":")
    shown = stack.run_cli("pipelines", "show", pipeline_id).stdout
    assert "(restart worker)" in shown

    webs = stack.run_cli("ps:restart", "web", "-a", "web", "-e", "staging")

    traffic.stop()
    final = _pids(stack)
    assert "restarting the web processes of web/staging" in webs.stdout
    assert final["worker"] == restarted["worker"]
    assert final["web"] != restarted["web"]
    wait_for(lambda: not _alive(restarted["web"]), "the old web to be stopped", stack)
    assert _alive(final["worker"])
    assert traffic.answers and traffic.errors == []
    assert [a for a in traffic.answers if a[2] != 200] == []
    current = stack.current("web", "staging")
    assert current["deployment"]["cause"] == "restart"
    assert current["release"]["version"] == 1  # no new release either time
    history = stack.api("GET", "/v1/apps/web/environments/staging/deployments", 200)
    assert [d["cause"] for d in history[:3]] == ["restart", "restart", "deploy"]


def _pids(stack: Stack) -> dict[str, int]:
    """The pid of each process type's one process in staging."""
    processes = stack.current("web", "staging")["processes"]
    assert sorted(p["type"] for p in processes) == ["web", "worker"]
    return {p["type"]: int(p["pid"]) for p in processes}


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie left to be reaped does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _stays(condition: Callable[[], bool], seconds: float) -> None:
    """`condition` holds whenever it is looked at for `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert condition()
        time.sleep(0.2)


def _server_on(port: int) -> int:
    """The host pid of the test app's `python3 server.py` given `port` (not the shell,
    bubblewrap or setpriv around it, whose arguments name it too; inside its sandbox it is
    pid 2)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit():
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if b"python" not in Path(argv[0].decode()).name.encode() or b"server.py" not in argv:
                continue
            if f"PORT={port}".encode() in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    assert len(found) == 1, f"one server.py process with PORT={port}, found {found}"
    return found[0]
