"""7. Serving: an environment's stable URL through the router (HAProxy) while releases change.

The stack gets this run host's router (`shipyard router`, on the stack's SHIPYARD_ROUTER_PORT)
for this scenario only, so that no other scenario pays for its switch. A small app (local
builder and runner) answers `v{SHIPYARD_RELEASE_VERSION} {commit number}` over HTTP/1.1
keep-alive. Each repetition, while `serving_clients` keep-alive clients GET the stable URL:

- deploy a new commit, timed from before `POST …/pipelines` until a GET through the router
  answers with that commit's body (a probe on its own keep-alive connection, every 5 ms);
- roll back to the release live before it, timed from before `POST …/rollback` until the
  router answers with that release's body again;

each awaited to its end (the old release drained and stopped) before the next. A failed
request is a connection error or a non-2xx answer, of the load or of the probe. Drain time is,
per switch, the new deployment's `switched_at` to the old one's `retired_at` (from
`GET …/deployments`). Then, without the load, the router's added latency: `GET /` on one
keep-alive connection to the web process's own port and on one to the router, alternately.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.context import Bench
from bench.repos import make_repo
from bench.stable_url import Load, Probe, StableURL, TimedGet
from bench.stack import Stack
from bench.stats import percentile

SCENARIO = "7. Serving"
APP = "served"
ENV = "production"
ROUTER = "router"
ROUTER_READY = b"router.ready"  # what `shipyard router` logs once its routes are restored
ROUTER_START_SECONDS = 60.0
# How often a wait for the stable URL's body looks at the pipeline too (a failed one ends it).
STATUS_EVERY_SECONDS = 0.05
PROBE_PAUSE_SECONDS = 0.005
LATENCY_WARM_UP = 50  # requests on each path before the timed ones

# The app: its release's version and its commit's number, over HTTP/1.1 keep-alive.
SERVER = b"""\
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BODY = "v{} {}".format(
    os.environ["SHIPYARD_RELEASE_VERSION"],
    (Path(__file__).parent / "VERSION").read_text().strip(),
).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One write per response (flushed after each request): headers and body written apart on
    # a keep-alive connection meet the client's delayed ACK, and wait 40 ms for it (Nagle).
    wbufsize = -1
    disable_nagle_algorithm = True

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


class ServedCommits:
    """The app's commits, handed out once each, with the number its body carries."""

    def __init__(self, repo: Path, count: int) -> None:
        self.repo = repo
        self._shas = make_repo(
            repo, count, {"Procfile": b"web: python3 server.py\n", "server.py": SERVER}
        )
        self._next = 0

    def next(self) -> tuple[str, str]:
        """(sha, the number its body ends with)."""
        if self._next >= len(self._shas):
            raise RuntimeError(f"{self.repo} ran out of commits; make it with more")
        self._next += 1
        return self._shas[self._next - 1], str(self._next)


@contextmanager
def router_running(
    stack: Stack, name: str = ROUTER, extra_env: dict[str, str] | None = None
) -> Iterator[None]:
    """`shipyard router` as the stack's process `name`, from once its routes are restored
    until the block ends (stopped then, whatever happened)."""
    try:
        stack.shipyard(name, "router", extra_env=extra_env)
        deadline = time.monotonic() + ROUTER_START_SECONDS
        while ROUTER_READY not in stack.log_path(name).read_bytes():
            process = stack.processes[name]
            if process.poll() is not None:
                tail = stack.log_path(name).read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the router exited with {process.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the router was not ready in {ROUTER_START_SECONDS:g}s")
            time.sleep(0.05)
        yield
    finally:
        if name in stack.processes:
            stack.stop(name)


def until_served(
    stack: Stack,
    probe: Probe,
    pipeline_id: str,
    wanted: Callable[[str], bool],
    timeout: float = 120,
) -> float:
    """The monotonic time the stable URL first answered a body that `wanted` accepts."""
    deadline = time.monotonic() + timeout
    look_at_status = 0.0
    while time.monotonic() < deadline:
        if wanted(probe.body()):
            return time.monotonic()
        if time.monotonic() >= look_at_status:
            if stack.pipeline_status(pipeline_id) == "failed":
                raise RuntimeError(
                    f"pipeline {pipeline_id} failed: {stack.pipeline_error(pipeline_id)}"
                )
            look_at_status = time.monotonic() + STATUS_EVERY_SECONDS
        time.sleep(PROBE_PAUSE_SECONDS)
    raise RuntimeError(f"the stable URL did not serve pipeline {pipeline_id}'s release in time")


@dataclass
class Switches:
    """One repetition's deploys and rollbacks: seconds until the stable URL served each."""

    deploys: list[float] = field(default_factory=list)
    rollbacks: list[float] = field(default_factory=list)
    rollback_pipelines: list[str] = field(default_factory=list)


def deploy_and_roll_back(
    stack: Stack, probe: Probe, commits: ServedCommits, switches: Switches
) -> None:
    """Deploy a new commit until the stable URL serves it, then roll back until it serves the
    release before it again; each awaited to its end (the old release drained and stopped)."""
    before = probe.body()
    if not before.startswith("v"):
        raise RuntimeError(f"the stable URL answered {before!r} before the deploy")
    sha, number = commits.next()
    started = time.monotonic()
    pipeline_id = stack.start_pipeline(APP, ENV, sha)
    served = until_served(stack, probe, pipeline_id, lambda body: body.endswith(f" {number}"))
    switches.deploys.append(served - started)
    stack.wait_pipeline(pipeline_id, poll=0.01)

    earlier = int(before.split()[0].removeprefix("v"))
    path = f"/v1/apps/{APP}/environments/{ENV}/rollback"
    started = time.monotonic()
    rollback_id = str(stack.api("POST", path, 202, json={"to_version": earlier})["id"])
    served = until_served(stack, probe, rollback_id, lambda body: body == before)
    switches.rollbacks.append(served - started)
    switches.rollback_pipelines.append(rollback_id)
    stack.wait_pipeline(rollback_id, poll=0.01)


def run_stage_parts(stack: Stack, pipeline_ids: list[str]) -> tuple[list[float], list[float]]:
    """Per pipeline, from the store's clocks: seconds from its run stage's start until its
    deployment was live in the store (the new processes started and healthy), and from then
    until the router switched to it."""
    rows = stack.db.execute(
        "SELECT EXTRACT(EPOCH FROM d.started_at - s.started_at),"
        " EXTRACT(EPOCH FROM d.switched_at - d.started_at) FROM deployment d"
        " JOIN stage_run s ON s.pipeline_id = d.pipeline_id AND s.name = 'run'"
        " WHERE d.pipeline_id = ANY(%s)",
        (pipeline_ids,),
    ).fetchall()
    return [float(row[0]) for row in rows], [float(row[1]) for row in rows]


def drain_times(stack: Stack, switches: int) -> list[float]:
    """Seconds from each of the last `switches` switches to the replaced release's retirement."""
    path = f"/v1/apps/{APP}/environments/{ENV}/deployments"
    newest_first = stack.api("GET", path, 200, params={"limit": switches + 1})
    seconds = []
    for new, old in zip(newest_first, newest_first[1:], strict=False):
        if not new.get("switched_at") or not old.get("retired_at"):
            raise RuntimeError(f"switch or retirement not recorded: {new}, {old}")
        retired = datetime.fromisoformat(old["retired_at"])
        seconds.append((retired - datetime.fromisoformat(new["switched_at"])).total_seconds())
    return seconds


def router_latency(
    stack: Stack, target: StableURL, requests: int
) -> tuple[list[float], list[float]]:
    """Wall times of `GET /` straight to the web process and through the router, alternated."""
    current = stack.api("GET", f"/v1/apps/{APP}/environments/{ENV}/current", 200)
    web_url = next(p["url"] for p in current["processes"] if p["type"] == "web")
    direct = TimedGet(int(httpx.URL(web_url).port or 80))
    routed = TimedGet(target.port, target.host_header)
    direct_times: list[float] = []
    routed_times: list[float] = []
    try:
        for _ in range(LATENCY_WARM_UP):
            direct()
            routed()
        for number in range(requests):
            # Each goes first every other time, so neither always follows the other.
            if number % 2:
                direct_times.append(direct())
                routed_times.append(routed())
            else:
                routed_times.append(routed())
                direct_times.append(direct())
    finally:
        direct.close()
        routed.close()
    return direct_times, routed_times


def run(bench: Bench) -> None:
    stack, plan = bench.stack, bench.plan
    commits = ServedCommits(stack.root / "served-repo", plan.repetitions * plan.serving_samples + 2)
    with router_running(stack):
        body = {"name": APP, "repo": str(commits.repo), "builder": "local"}
        stack.api("POST", "/v1/apps", 201, json=body)
        # Each switch here ends with the replaced release stopped (its retirement is what the
        # drain figure measures): no standby (scenario 13 measures the warm rollback it gives).
        bench.create_environments(APP, [ENV], runner="local", health_timeout=20, standby_seconds=0)
        first = stack.start_pipeline(APP, ENV, commits.next()[0])
        stack.wait_pipeline(first, poll=0.01)
        current = stack.api("GET", f"/v1/apps/{APP}/environments/{ENV}/current", 200)
        target = StableURL(current["url"])
        probe = Probe(target)
        try:
            deploy_and_roll_back(stack, probe, commits, Switches())  # warm-up: first switches
            for _ in range(plan.repetitions):
                measure(bench, probe, target, commits)
        finally:
            probe.close()


def measure(bench: Bench, probe: Probe, target: StableURL, commits: ServedCommits) -> None:
    """One repetition: the switches under load, their drains, then the router's latency."""
    stack, plan, figures = bench.stack, bench.plan, bench.figures
    switches = Switches()
    probe_requests, probe_failed, probe_kept = probe.requests, probe.failed, len(probe.failures)
    with Load(target, plan.serving_clients) as load:
        for _ in range(plan.serving_samples):
            deploy_and_roll_back(stack, probe, commits, switches)
    failed = load.failed + probe.failed - probe_failed
    if failed:
        described = "\n  ".join([*load.failures, *probe.failures[probe_kept:]])
        print(
            f"bench: {SCENARIO}: {failed} failed requests, first ones:\n  {described}",
            file=sys.stderr,
        )

    def add(name: str, seconds: list[float], q: float, **target: Any) -> None:
        label = "max" if q == 100 else f"p{q:g}"
        figures.add(SCENARIO, f"{name}, {label}", "ms", percentile(seconds, q) * 1000, **target)

    add("deploy until the stable URL serves it", switches.deploys, 50)
    add("deploy until the stable URL serves it", switches.deploys, 95)
    rollback = "rollback until the stable URL serves it"
    add(rollback, switches.rollbacks, 50, target="< 0.5 s", check=("<=", 500.0))
    add(rollback, switches.rollbacks, 95)
    healthy, switched = run_stage_parts(stack, switches.rollback_pipelines)
    add("rollback, of which run stage started → live in the store (start, health)", healthy, 50)
    add("rollback, of which live in the store → router switched", switched, 50)
    clients = f"{plan.serving_clients} keep-alive clients + the probe"
    figures.add(
        SCENARIO,
        f"requests to the stable URL meanwhile ({clients})",
        "requests",
        load.requests + probe.requests - probe_requests,
    )
    figures.add(
        SCENARIO,
        "failed requests meanwhile (connection error or non-2xx)",
        "requests",
        failed,
        target="0 (each repetition)",
        check=("<=", 0.0),
        every=True,
    )
    drains = drain_times(stack, 2 * plan.serving_samples)
    add("drain: switch → old release retired", drains, 50)
    add("drain: switch → old release retired", drains, 100)

    direct, routed = router_latency(stack, target, plan.router_latency_requests)
    for q in (50, 99):
        add("GET straight to the web process", direct, q)
        add("GET through the router", routed, q)
        figures.add(
            SCENARIO,
            f"router's added latency, p{q}",
            "ms",
            (percentile(routed, q) - percentile(direct, q)) * 1000,
            target="< 1 ms" if q == 50 else "",
            check=("<=", 1.0) if q == 50 else None,
        )
