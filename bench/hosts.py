"""9. Run hosts: one environment spread over 1, 2 and 4 run hosts (issue 23).

Each run host is what docs/operations.md says one is: a `shipyard worker run` and a `shipyard
router` with a data dir, a host name (SHIPYARD_HOST_NAME) and a router port of their own,
sharing the stack's PostgreSQL, Redis and artifact store. For each host count N, N fresh hosts
start and an environment of scenario 7's app is spread over all of them (`hosts`, `web=N`: one
web process per host). Then, while keep-alive clients GET the stable URL through the routers
(`serving_clients` in all, spread evenly over the routers as a load balancer in front of them
would), `hosts_samples` times per repetition:

- deploy a new commit, timed from before `POST …/pipelines` until every router answers with
  that commit's body (a probe per router, on its own keep-alive connection);
- roll back to the release live before it, timed the same way;

each awaited to its end. A failed request is a connection error or a non-2xx answer, of the
load or of the probes. Then, for N ≥ 2, one host is lost: its run pool and router are SIGKILLed
(its apps run on, cut off), and the time is taken from the kill until the environment's
`failover` deployment is live without that host and every remaining router answers. The
scenario's own beat and notify pool look every second with SHIPYARD_HOST_LOST_SECONDS=3; a run
pool's heartbeat takes 15 s to lapse, so the bound is 15 + 3 s.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.context import Bench
from bench.serving import ROUTER_READY, ROUTER_START_SECONDS, ServedCommits
from bench.stable_url import Load, Probe, StableURL
from bench.stack import Stack, free_port
from bench.stats import percentile
from shipyard.shared import processes
from shipyard.shared.services.workers import HEARTBEAT_TTL_SECONDS

SCENARIO = "9. Run hosts"
APP = "spread"
LOST_SECONDS = 3
LOSS_BOUND = HEARTBEAT_TTL_SECONDS + LOST_SECONDS
SERVED_TIMEOUT = 180.0
PROBE_PAUSE_SECONDS = 0.005


@dataclass
class RunHost:
    name: str
    router_port: int
    env: dict[str, str]


@dataclass
class Round:
    """One host count's environment: its hosts and a probe of each host's router."""

    stack: Stack
    env: str
    hosts: list[RunHost]
    probes: dict[str, Probe] = field(default_factory=dict)

    def target(self, host: RunHost) -> StableURL:
        return StableURL(f"http://{self.env}.{APP}.localhost:{host.router_port}")

    def until_everywhere(self, pipeline_id: str, wanted: str, hosts: list[RunHost]) -> float:
        """The monotonic time every router of `hosts` first answered `wanted` (each stops
        being asked once it has)."""
        deadline = time.monotonic() + SERVED_TIMEOUT
        pending = {host.name for host in hosts}
        while pending:
            for name in sorted(pending):
                if self.probes[name].body() == wanted:
                    pending.discard(name)
            if not pending:
                return time.monotonic()
            if self.stack.pipeline_status(pipeline_id) == "failed":
                error = self.stack.pipeline_error(pipeline_id)
                raise RuntimeError(f"pipeline {pipeline_id} failed: {error}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"routers {sorted(pending)} did not serve {wanted!r} in time")
            time.sleep(PROBE_PAUSE_SECONDS)
        return time.monotonic()


def run(bench: Bench) -> None:
    stack, plan = bench.stack, bench.plan
    per_count = plan.repetitions * plan.hosts_samples * 2 + 2
    commits = ServedCommits(stack.root / "hosts-repo", per_count * len(plan.hosts_counts))
    stack.api("POST", "/v1/apps", 201, json={"name": APP, "repo": str(commits.repo)})
    watchers = {"SHIPYARD_HOST_LOST_SECONDS": str(LOST_SECONDS), "SHIPYARD_RECONCILE_SECONDS": "1"}
    stack.shipyard("hosts-notify", "worker", "notify", extra_env=watchers)
    stack.shipyard("hosts-beat", "beat", extra_env=watchers)
    deploys: dict[int, list[float]] = {}
    try:
        stack.wait_workers(["hosts-notify"])
        for count in plan.hosts_counts:
            deploys[count] = measure(bench, commits, count)
    finally:
        stack.stop_many(["hosts-beat", "hosts-notify"])
    if 1 in deploys and 2 in deploys:
        ratio = percentile(deploys[2], 50) / percentile(deploys[1], 50)
        bench.figures.add(
            SCENARIO,
            "deploy and rollback p50, 2 hosts ÷ 1 host",
            "×",
            ratio,
            target="≤ 1.3",
            check=("<=", 1.3),
        )


def measure(bench: Bench, commits: ServedCommits, count: int) -> list[float]:
    """The switches of an environment spread over `count` fresh hosts, then a host lost."""
    stack, plan, figures = bench.stack, bench.plan, bench.figures
    hosts = [_host(stack, f"n{count}h{number}") for number in range(1, count + 1)]
    env = f"n{count}"
    with ExitStack() as cleanup:
        cleanup.callback(_stop_environment, stack, env)
        for host in hosts:
            cleanup.enter_context(_running(stack, host))
        _await_up(stack, [h.name for h in hosts])
        body = {"name": env, "hosts": [h.name for h in hosts], "health_timeout": 20}
        stack.api("POST", f"/v1/apps/{APP}/environments", 201, json=body)
        formation = {"processes": {"web": count}}
        stack.api("PATCH", f"/v1/apps/{APP}/environments/{env}/formation", 200, json=formation)
        round_ = Round(stack, env, hosts)
        for host in hosts:
            round_.probes[host.name] = Probe(round_.target(host))
            cleanup.callback(round_.probes[host.name].close)
        _switch(round_, commits, [])  # the first deploy, and its build
        switches: list[float] = []
        failed_before = sum(p.failed for p in round_.probes.values())
        with ExitStack() as loads:
            # The same traffic over more hosts, as a load balancer in front would spread it.
            per_router = max(1, plan.serving_clients // count)
            running = [loads.enter_context(Load(round_.target(host), per_router)) for host in hosts]
            for _ in range(plan.repetitions * plan.hosts_samples):
                _switch(round_, commits, switches)
        failed = sum(load.failed for load in running)
        failed += sum(p.failed for p in round_.probes.values()) - failed_before
        if failed:
            first = [f for load in running for f in load.failures][:10]
            print(f"bench: {SCENARIO}: {failed} failed requests: {first}", file=sys.stderr)
        label = f"{count} host{'s' if count > 1 else ''}"
        for q in (50, 95):
            figures.add(
                SCENARIO,
                f"{label}: deploy or rollback until every router serves it, p{q}",
                "ms",
                percentile(switches, q) * 1000,
            )
        figures.add(
            SCENARIO,
            f"{label}: switches measured (under {plan.serving_clients} keep-alive clients "
            "spread over the routers, and a probe per router)",
            "switches",
            len(switches),
        )
        figures.add(
            SCENARIO,
            f"{label}: failed requests during the switches",
            "requests",
            failed,
            target="0",
            check=("<=", 0.0),
            every=True,
        )
        started, switched = _stage_parts(stack, env, count)
        for name, values in (
            (
                "run stage started → live in the store (every host's share started, healthy)",
                started,
            ),
            ("live in the store → every host's router switched", switched),
        ):
            figures.add(SCENARIO, f"{label}: {name}, p50", "ms", percentile(values, 50) * 1000)
        if count >= 2:
            seconds = _lose(round_, hosts[-1], hosts[:-1])
            figures.add(
                SCENARIO,
                f"{label}: a host lost → its share serving on the others",
                "s",
                seconds,
                target=f"≤ {LOSS_BOUND + 5} s (heartbeat {HEARTBEAT_TTL_SECONDS} s + "
                f"SHIPYARD_HOST_LOST_SECONDS {LOST_SECONDS} s + 5 s)",
                check=("<=", float(LOSS_BOUND + 5)),
            )
    return switches


def _await_up(stack: Stack, names: list[str], timeout: float = 60) -> None:
    """Until `shipyard hosts` says every one of `names` is up (its run pool's heartbeat)."""
    deadline = time.monotonic() + timeout
    while True:
        up = {h["name"] for h in stack.api("GET", "/v1/hosts", 200) if h["state"] == "up"}
        if up >= set(names):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"run hosts {sorted(set(names) - up)} not up in {timeout:g}s")
        time.sleep(0.05)


def _stage_parts(stack: Stack, env: str, count: int) -> tuple[list[float], list[float]]:
    """Per deployment of the environment's switches, from the store's clocks: its run stage's
    start until it went live, and from then until the last host's router switched (a share's
    last change; one host's own `switched_at`)."""
    rows = stack.db.execute(
        "SELECT EXTRACT(EPOCH FROM d.started_at - r.started_at),"
        " EXTRACT(EPOCH FROM COALESCE("
        "   (SELECT max(s.updated_at) FROM deployment_share s WHERE s.deployment_id = d.id),"
        "   d.switched_at) - d.started_at)"
        " FROM deployment d JOIN stage_run r ON r.pipeline_id = d.pipeline_id AND r.name = 'run'"
        " JOIN environment e ON e.id = d.environment_id JOIN app a ON a.id = e.app_id"
        " WHERE a.name = %s AND e.name = %s AND d.cause IN ('deploy', 'rollback')"
        " AND d.started_at IS NOT NULL ORDER BY d.created_at OFFSET 1",
        (APP, env),
    ).fetchall()
    return [float(row[0]) for row in rows], [float(row[1]) for row in rows]


def _switch(round_: Round, commits: ServedCommits, seconds: list[float]) -> None:
    """Deploy a new commit until every router serves it, then (once one is live) roll back
    until every router serves the release before it again."""
    stack, hosts = round_.stack, round_.hosts
    before = round_.probes[hosts[0].name].body()
    sha, number = commits.next()
    started = time.monotonic()
    pipeline_id = stack.start_pipeline(APP, round_.env, sha)
    wanted = _body(stack, round_.env, pipeline_id, number)
    seconds.append(round_.until_everywhere(pipeline_id, wanted, hosts) - started)
    stack.wait_pipeline(pipeline_id, poll=0.01)
    if not before.startswith("v"):
        return  # the first deploy: nothing to roll back to
    earlier = int(before.split()[0].removeprefix("v"))
    path = f"/v1/apps/{APP}/environments/{round_.env}/rollback"
    started = time.monotonic()
    rollback_id = str(stack.api("POST", path, 202, json={"to_version": earlier})["id"])
    seconds.append(round_.until_everywhere(rollback_id, before, hosts) - started)
    stack.wait_pipeline(rollback_id, poll=0.01)


def _body(stack: Stack, env: str, pipeline_id: str, number: str) -> str:
    """What the release of `pipeline_id` answers: `v{its version} {commit number}`."""
    deadline = time.monotonic() + SERVED_TIMEOUT
    while time.monotonic() < deadline:
        row = stack.db.execute(
            "SELECT r.version FROM release r WHERE r.pipeline_id = %s", (pipeline_id,)
        ).fetchone()
        if row is not None:
            return f"v{row[0]} {number}"
        if stack.pipeline_status(pipeline_id) == "failed":
            raise RuntimeError(
                f"pipeline {pipeline_id} failed: {stack.pipeline_error(pipeline_id)}"
            )
        time.sleep(0.01)
    raise RuntimeError(f"pipeline {pipeline_id} made no release in time")


def _lose(round_: Round, lost: RunHost, others: list[RunHost]) -> float:
    """SIGKILL `lost`'s run pool and router; seconds until a failover deployment without it is
    live and every other router answers."""
    stack = round_.stack
    serving = round_.probes[others[0].name].body()
    killed = time.monotonic()
    for name in (f"{lost.name}-run", f"{lost.name}-router"):
        _kill_session(stack, name)
    deadline = killed + LOSS_BOUND + 120
    while time.monotonic() < deadline:
        row = stack.db.execute(
            "SELECT d.processes FROM deployment d JOIN environment e ON e.id = d.environment_id"
            " JOIN app a ON a.id = e.app_id WHERE a.name = %s AND e.name = %s"
            " AND d.status = 'live' AND d.cause = 'failover'",
            (APP, round_.env),
        ).fetchone()
        if row is not None and lost.name not in {p.get("host") for p in row[0]}:
            if all(round_.probes[h.name].body() == serving for h in others):
                seconds = time.monotonic() - killed
                _await_failover(stack, round_.env)
                return seconds
        time.sleep(0.05)
    raise RuntimeError(f"{round_.env}'s share on {lost.name} did not serve elsewhere in time")


def _await_failover(stack: Stack, env: str, timeout: float = 120) -> None:
    """Until the environment's failover pipeline has ended (its old processes stopped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = stack.db.execute(
            "SELECT p.status FROM pipeline p JOIN environment e ON e.id = p.environment_id"
            " JOIN app a ON a.id = e.app_id WHERE a.name = %s AND e.name = %s"
            " AND p.kind = 'failover' ORDER BY p.created_at DESC LIMIT 1",
            (APP, env),
        ).fetchone()
        if row is not None and row[0] in ("succeeded", "failed"):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{env}'s failover pipeline did not end in {timeout:g}s")


def _kill_session(stack: Stack, name: str) -> None:
    """SIGKILL process `name` and what it started in its own session (pool children, HAProxy)."""
    process = stack.processes[name]
    with contextlib.suppress(ProcessLookupError):
        session = os.getsid(process.pid)
        for pid in [process.pid, *_descendants(process.pid)]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if os.getsid(pid) == session:
                    os.kill(pid, signal.SIGKILL)
    process.wait(timeout=30)


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, pending = [], [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def _host(stack: Stack, name: str) -> RunHost:
    port = free_port()
    store = stack.env.get("SHIPYARD_ARTIFACT_STORE", f"file://{stack.data_dir / 'artifacts'}")
    env = {
        "SHIPYARD_HOST_NAME": name,
        "SHIPYARD_DATA_DIR": str(stack.data_dir / "hosts" / name),
        "SHIPYARD_ROUTER_PORT": str(port),
        "SHIPYARD_ARTIFACT_STORE": store,
    }
    return RunHost(name, port, env)


@contextmanager
def _running(stack: Stack, host: RunHost) -> Iterator[None]:
    """The host's run pool and router, ready, until the block ends (then stopped)."""
    names = [f"{host.name}-run", f"{host.name}-router"]
    try:
        stack.shipyard(names[0], "worker", "run", extra_env=host.env)
        stack.shipyard(names[1], "router", extra_env=host.env)
        stack.wait_workers([names[0]])
        deadline = time.monotonic() + ROUTER_START_SECONDS
        while ROUTER_READY not in stack.log_path(names[1]).read_bytes():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{names[1]} was not ready in {ROUTER_START_SECONDS:g}s")
            time.sleep(0.05)
        yield
    finally:
        stack.stop_many([n for n in names if n in stack.processes])


def _stop_environment(stack: Stack, env: str) -> None:
    """Every app process any deployment or share of the environment recorded, stopped."""
    rows = stack.db.execute(
        "SELECT d.processes FROM deployment d JOIN environment e ON e.id = d.environment_id"
        " JOIN app a ON a.id = e.app_id WHERE a.name = %s AND e.name = %s"
        " UNION ALL SELECT s.processes FROM deployment_share s"
        " JOIN deployment d ON d.id = s.deployment_id JOIN environment e"
        " ON e.id = d.environment_id JOIN app a ON a.id = e.app_id"
        " WHERE a.name = %s AND e.name = %s",
        (APP, env, APP, env),
    ).fetchall()
    for (records,) in rows:
        for record in records or []:
            if record.get("pid"):
                processes.terminate_group(int(record["pid"]), record.get("started"), 5)
