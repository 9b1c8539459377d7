"""Two run hosts on one machine: each environment is placed on one (or spread over both), its
run stages go to its host's own queue, and its processes start, switch and retire there and
nowhere else.

Each run host is what docs/operations.md says one is: a `shipyard worker run` and a `shipyard
router` with a data dir and a router port of their own, sharing only PostgreSQL, Redis and the
artifact store with the API and the build and release pools; and each is a host of its own
(tests/integration/machines.py): its own host name, which names the run host (no
SHIPYARD_HOST_NAME is set), and its own process table, so that no host can see, let alone stop,
another's processes by pid. The apps' pids in the store are pids of their host's table.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
from cryptography.fernet import Fernet
from sqlmodel import col, select

from shipyard.router import haproxy
from shipyard.router.runtime import RuntimeAPI
from shipyard.shared.db import session_scope
from shipyard.shared.models import App, Deployment, DeploymentShare, Environment, Release
from shipyard.shared.process_record import ProcessRecord
from shipyard.shared.settings import Settings
from tests.conftest import REQUIRE_SERVICES, commit_file, fresh_database
from tests.docker_support import DOCKERFILE, PROCFILE, containers_of, unique_app, write_app
from tests.integration.machines import Machine
from tests.integration.machines import available as machines_available
from tests.integration.stack import SHIPYARD, Stack, descendants, free_port, stack_environment
from tests.integration.traffic import Load, router_client
from tests.repos import git

pytest_plugins = ["tests.docker_support"]

HOSTS = ("alpha", "beta")


@dataclass
class RunHosts:
    stack: Stack  # the API, build and release pools, beat; every host's processes
    router_ports: dict[str, int]  # run host → its router's port
    host_envs: dict[str, dict[str, str]]  # run host → its processes' environment
    machines: dict[str, Machine]  # run host → the simulated host it runs on

    def start_host(self, host: str, parts: tuple[str, ...] = ("worker-run", "router")) -> None:
        """The host's run pool and router (again; or those of them `parts` names), on the host."""
        prefix = self.machines[host].enter()
        env = self.host_envs[host]
        if "worker-run" in parts:
            self.stack.spawn(f"{host}-worker-run", "worker", "run", env=env, prefix=prefix)
        if "router" in parts:
            self.stack.spawn(f"{host}-router", "router", env=env, prefix=prefix)

    def kill_host(self, host: str, parts: tuple[str, ...] = ("worker-run", "router")) -> None:
        """SIGKILL the host's run pool and router (or those of them `parts` names) with what
        they started in their own session (pool processes, HAProxy); its apps, in sessions of
        their own, run on as strays would on a host cut off from the others."""
        for name in (f"{host}-{part}" for part in parts):
            entered = self.stack.processes[name]
            for leader in _children(entered.pid):  # the program nsenter started on the host
                session = os.getsid(leader)
                for pid in [leader, *descendants(leader)]:
                    with contextlib.suppress(ProcessLookupError):
                        if os.getsid(pid) == session:
                            os.kill(pid, signal.SIGKILL)
            entered.wait(timeout=30)

    def stop_host(self, host: str) -> None:
        """Stop the host's run pool and router as their supervisor would (SIGTERM to each; nsenter
        does not pass signals on), then end the host with everything still on it."""
        names = [n for n in (f"{host}-worker-run", f"{host}-router") if n in self.stack.processes]
        for name in names:
            for leader in _children(self.stack.processes[name].pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(leader, signal.SIGTERM)
        for name in names:
            entered = self.stack.processes.pop(name)
            try:
                entered.wait(timeout=30)
            except subprocess.TimeoutExpired:
                entered.kill()
        self.machines[host].stop()

    def alive(self, process: ProcessRecord) -> bool:
        """Whether a process recorded in the store still runs on its host."""
        machine = self.machines[str(process["host"])]
        return machine.alive(int(process["pid"]), process.get("started"))

    def wait(self, condition: Callable[[], bool], what: str, timeout: float = 90) -> None:
        """Poll `condition`; on timeout fail saying what was awaited, with the hosts' logs."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                logs = "".join(
                    f"\n--- {name} ---\n" + self.stack.log_path(name).read_text()[-1500:]
                    for name in self.stack.processes
                    if "run" in name or "router" in name or name == "worker-notify"
                )
                raise AssertionError(f"timed out after {timeout} s waiting for {what}{logs}")
            time.sleep(0.1)

    def answer(self, host: str, app: str, env: str) -> str:
        """What the router of `host` answers for the environment's stable host name."""
        with router_client(f"http://{env}.{app}.localhost:{self.router_ports[host]}") as client:
            response = client.get("/")
        return f"{response.status_code} {response.text.strip()}"

    def router_servers(self, host: str, app: str, env: str) -> list[str]:
        """The servers `host`'s router has for the environment (its runtime API's view)."""
        with session_scope(self.stack.env["SHIPYARD_DATABASE_URL"]) as session:
            slot = session.exec(
                select(Environment.route_slot)
                .join(App, col(App.id) == col(Environment.app_id))
                .where(App.name == app, Environment.name == env)
            ).one()
        assert slot is not None, f"{app}/{env} has no route slot"
        settings = Settings(data_dir=Path(self.host_envs[host]["SHIPYARD_DATA_DIR"]))
        return list(RuntimeAPI(settings.router_socket).servers(haproxy.backend_name(slot)))

    def run_host_of(self, app: str, env: str) -> str | None:
        envs = self.stack.api("GET", f"/v1/apps/{app}/environments", 200)
        return next(e["run_host"] for e in envs if e["name"] == env)

    def deployments(self, app: str, env: str) -> list[tuple[int, str, list[ProcessRecord]]]:
        """Each deployment of the environment: release version, status, process records (from
        the store: the API shows no pid)."""
        with session_scope(self.stack.env["SHIPYARD_DATABASE_URL"]) as session:
            rows = session.exec(
                select(Release.version, Deployment.status, Deployment.processes)
                .join(Release, col(Release.id) == col(Deployment.release_id))
                .join(Environment, col(Environment.id) == col(Deployment.environment_id))
                .join(App, col(App.id) == col(Environment.app_id))
                .where(App.name == app, Environment.name == env)
            ).all()
        return [(version, status, list(records)) for version, status, records in rows]


@pytest.fixture(scope="module")
def run_hosts(
    redis_url: str,
    broker_namespace: str,
    postgres_server: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunHosts]:
    if not machines_available():
        message = "simulated hosts need root, unshare and nsenter (util-linux)"
        if REQUIRE_SERVICES:
            pytest.fail(message + "; SHIPYARD_REQUIRE_SERVICES=1 makes this a failure")
        pytest.skip(message)
    root = tmp_path_factory.mktemp("run-hosts")
    with fresh_database(postgres_server) as database_url:
        token = secrets.token_urlsafe(24)
        shared = {
            "SHIPYARD_BROKER_URL": redis_url,
            "SHIPYARD_BROKER_NAMESPACE": f"{broker_namespace}-hosts",
            "SHIPYARD_DATABASE_URL": database_url,
            "SHIPYARD_SECRET_KEY": Fernet.generate_key().decode(),
            "SHIPYARD_ADMIN_TOKEN": token,
            "SHIPYARD_ARTIFACT_STORE": f"file://{root / 'artifacts'}",
            # A run host down 2 s (after its heartbeat's 15 s) is lost; the beat looks each second.
            "SHIPYARD_HOST_LOST_SECONDS": "2",
            "SHIPYARD_RECONCILE_SECONDS": "1",
        }
        env = stack_environment(root / "central", SHIPYARD_HOST_NAME="central", **shared)
        subprocess.run([SHIPYARD, "db", "upgrade"], env=env, check=True, capture_output=True)
        port = free_port()
        stack = Stack(url=f"http://127.0.0.1:{port}", token=token, env=env, data_dir=root)
        router_ports = {host: free_port() for host in HOSTS}
        host_envs = {
            host: stack_environment(
                root / host, SHIPYARD_ROUTER_PORT=str(router_ports[host]), **shared
            )
            for host in HOSTS
        }
        machines = {host: Machine(host) for host in HOSTS}
        hosts = RunHosts(stack, router_ports, host_envs, machines)
        try:
            for machine in machines.values():
                machine.start()
            for queue in ("build", "release", "notify"):
                stack.spawn(f"worker-{queue}", "worker", queue)
            stack.spawn("beat", "beat")
            stack.spawn("api", "api", "--port", str(port))
            for host in HOSTS:
                hosts.start_host(host)
            stack.wait_healthy()
            hosts.wait(lambda: _up(stack) >= set(HOSTS), "both run hosts' run pools to be up")
            yield hosts
        finally:
            for host in HOSTS:
                hosts.stop_host(host)
            stack.stop_all()


def test_each_environment_runs_only_on_its_run_host_across_deploys_and_a_rollback(
    run_hosts: RunHosts, hello_repo: Path
) -> None:
    stack = run_hosts.stack
    stack.api("POST", "/v1/apps", 201, json={"name": "placed", "repo": str(hello_repo)})
    for env, host in (("staging", "alpha"), ("production", "beta")):
        stack.api(
            "POST",
            "/v1/apps/placed/environments",
            201,
            json={"name": env, "run_host": host},
        )

    for round_ in range(3):
        commit_file(hello_repo, "VERSION", f"{round_}\n", f"round {round_}")
        for env in ("staging", "production"):
            assert stack.deploy("placed", env)["status"] == "succeeded"
    rollback = stack.api(
        "POST", "/v1/apps/placed/environments/staging/rollback", 202, json={"to_version": 1}
    )
    assert stack.wait_pipeline(rollback["id"])["status"] == "succeeded"

    for env, host, other in (("staging", "alpha", "beta"), ("production", "beta", "alpha")):
        assert run_hosts.run_host_of("placed", env) == host
        deployments = run_hosts.deployments("placed", env)
        # Every process of every deployment ran on its host; only the live one's still run,
        # and the one that stands by (the last replaced: a rollback to it is warm).
        recorded = [p for _, _, records in deployments for p in records]
        assert len(deployments) >= 3 and {p["host"] for p in recorded} == {host}
        live = next(version for version, status, _ in deployments if status == "live")
        current = stack.current("placed", env)
        standing_by = [s["release_version"] for s in current["standby"]]
        assert len(standing_by) == 1

        def running(app_env: str = env) -> list[int]:
            return sorted(
                version
                for version, _, records in run_hosts.deployments("placed", app_env)
                for p in records
                if run_hosts.alive(p)
            )

        # One that stood by before it is stopped by its host's supervision (within seconds).
        expected = sorted([live, *standing_by])
        run_hosts.wait(
            lambda expected=expected: running() == expected,  # type: ignore[misc]
            f"only {env}'s live and standby releases to run on {host}",
        )
        assert [p["host"] for p in current["processes"]] == [host]
        assert run_hosts.answer(host, "placed", env) == "200 Hello from Shipyard"
        # The other host's router serves none of it, and says why.
        elsewhere = run_hosts.answer(other, "placed", env)
        assert elsewhere.startswith("404 no environment answers") or elsewhere.startswith(
            f"503 no process of this environment runs on run host {other}: it is placed on another"
        ), elsewhere
    hosts = {h["name"]: h for h in stack.api("GET", "/v1/hosts", 200)}
    assert hosts["alpha"]["environments"] == ["placed/staging"]
    assert hosts["beta"]["environments"] == ["placed/production"]
    assert hosts["alpha"]["processes"] == hosts["beta"]["processes"] == 1


def _children(pid: int) -> list[int]:
    with contextlib.suppress(FileNotFoundError):
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def _up(stack: Stack) -> set[str]:
    return {h["name"] for h in stack.api("GET", "/v1/hosts", 200) if h["state"] == "up"}


def test_a_lost_hosts_environments_run_on_the_other_and_its_strays_stop_when_it_returns(
    run_hosts: RunHosts, hello_repo: Path
) -> None:
    stack = run_hosts.stack
    stack.api("POST", "/v1/apps", 201, json={"name": "moving", "repo": str(hello_repo)})
    stack.api(
        "POST",
        "/v1/apps/moving/environments",
        201,
        json={"name": "production", "run_host": "beta"},
    )
    # And one spread over both hosts, a web on each.
    stack.api(
        "POST", "/v1/apps/moving/environments", 201, json={"name": "wide", "hosts": list(HOSTS)}
    )
    stack.api(
        "PATCH", "/v1/apps/moving/environments/wide/formation", 200, json={"processes": {"web": 2}}
    )
    assert stack.deploy("moving", "production")["status"] == "succeeded"
    assert stack.deploy("moving", "wide")["status"] == "succeeded"
    ((_, _, (stray,)),) = run_hosts.deployments("moving", "production")
    assert stray["host"] == "beta"
    ((_, _, spread),) = run_hosts.deployments("moving", "wide")
    (wide_stray,) = [p for p in spread if p["host"] == "beta"]

    run_hosts.kill_host("beta")

    def served_by_alpha(env: str, webs: int) -> Callable[[], bool]:
        def served() -> bool:
            current = stack.current("moving", env)
            return [p["host"] for p in current["processes"]] == ["alpha"] * webs and (
                run_hosts.answer("alpha", "moving", env).startswith("200")
            )

        return served

    # Its heartbeat lapses (15 s), the bound passes (2 s), the beat moves it (each second).
    run_hosts.wait(served_by_alpha("production", 1), "production to answer on alpha", timeout=90)
    # The spread one has no other host to take beta's place: alpha runs its whole formation.
    run_hosts.wait(served_by_alpha("wide", 2), "both webs of wide on alpha", timeout=90)
    assert run_hosts.run_host_of("moving", "production") == "alpha"
    envs = {e["name"]: e for e in stack.api("GET", "/v1/apps/moving/environments", 200)}
    assert (envs["wide"]["run_host"], envs["wide"]["extra_hosts"]) == ("alpha", [])
    assert run_hosts.alive(stray) and run_hosts.alive(wide_stray)  # beta is cut off, not dead
    history = stack.api("GET", "/v1/apps/moving/environments/production/deployments", 200)
    assert [d["cause"] for d in history][:1] == ["failover"]

    run_hosts.start_host("beta")

    run_hosts.wait(
        lambda: not run_hosts.alive(stray) and not run_hosts.alive(wide_stray),
        "beta to stop the strays of its former placements once back",
        timeout=60,
    )
    assert run_hosts.answer("alpha", "moving", "production").startswith("200")
    assert run_hosts.answer("alpha", "moving", "wide").startswith("200")
    run_hosts.wait(lambda: _up(stack) >= set(HOSTS), "beta's run pool to be up again")


def test_a_drained_host_hands_its_environments_over_and_stops_their_processes(
    run_hosts: RunHosts, hello_repo: Path
) -> None:
    stack = run_hosts.stack
    stack.api("POST", "/v1/apps", 201, json={"name": "drained", "repo": str(hello_repo)})
    stack.api(
        "POST", "/v1/apps/drained/environments", 201, json={"name": "staging", "run_host": "alpha"}
    )
    assert stack.deploy("drained", "staging")["status"] == "succeeded"
    ((_, _, (before,)),) = run_hosts.deployments("drained", "staging")

    drained = stack.run_cli("hosts", "drain", "alpha")

    assert "placed there will move" in drained.stdout
    try:
        run_hosts.wait(
            lambda: (
                run_hosts.run_host_of("drained", "staging") == "beta"
                and run_hosts.answer("beta", "drained", "staging").startswith("200")
                and not run_hosts.alive(before)
            ),
            "staging to answer on beta and its process on alpha to stop",
        )
        listed = {h["name"]: h for h in stack.api("GET", "/v1/hosts", 200)}
        assert listed["alpha"]["state"] == "draining"
        assert "drained/staging" not in listed["alpha"]["environments"]
    finally:
        stack.run_cli("hosts", "resume", "alpha")


# An app that says which release answers, and whose health check fails on a host whose storage
# holds `sick-<version>` (each host has storage of its own): a release unhealthy on one host.
SPREAD_APP = """\
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

VERSION = (Path(__file__).parent / "VERSION").read_text().strip()
SICK = Path(os.environ["SHIPYARD_STORAGE_DIR"]) / f"sick-{VERSION}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a browser would

    def do_GET(self):
        body = f"v{VERSION}\\n".encode()
        self.send_response(500 if SICK.exists() else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


@pytest.fixture
def spread_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "spread-repo"
    repo.mkdir()
    (repo / "app.py").write_text(SPREAD_APP)
    (repo / "Procfile").write_text("web: python3 app.py\n")
    (repo / "VERSION").write_text("1\n")
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    commit_file(repo, "VERSION", "1\n", "v1")
    return repo


def _pids(run_hosts: RunHosts, app: str, env: str, version: int) -> set[tuple[str, int]]:
    """(host, pid) of the processes the store records for release `version` of the environment."""
    return {
        (str(p["host"]), int(p["pid"]))
        for v, _, records in run_hosts.deployments(app, env)
        if v == version
        for p in records
    }


def _answers(run_hosts: RunHosts, app: str, env: str) -> dict[str, str]:
    return {host: run_hosts.answer(host, app, env) for host in HOSTS}


def _alive(run_hosts: RunHosts, app: str, env: str) -> list[tuple[int, str]]:
    """(release version, host) of every process of the environment still running anywhere."""
    return sorted(
        (version, str(p["host"]))
        for version, _, records in run_hosts.deployments(app, env)
        for p in records
        if run_hosts.alive(p)
    )


def test_an_environment_spread_over_both_hosts_runs_a_share_on_each_and_switches_them_together(
    run_hosts: RunHosts, spread_repo: Path
) -> None:
    stack = run_hosts.stack
    stack.api("POST", "/v1/apps", 201, json={"name": "wide", "repo": str(spread_repo)})
    stack.api("POST", "/v1/apps/wide/environments", 201, json={"name": "web", "run_host": "alpha"})
    stack.api(
        "PATCH", "/v1/apps/wide/environments/web/formation", 200, json={"processes": {"web": 2}}
    )
    assert stack.deploy("wide", "web")["status"] == "succeeded"
    assert _alive(run_hosts, "wide", "web") == [(1, "alpha"), (1, "alpha")]

    # Moved onto both hosts under load through alpha's router: no request fails.
    load = Load(f"http://web.wide.localhost:{run_hosts.router_ports['alpha']}")
    load.start()
    try:
        moved = stack.api(
            "PUT", "/v1/apps/wide/environments/web/placement", 202, json={"hosts": list(HOSTS)}
        )
        assert stack.wait_pipeline(moved["pipeline_id"])["status"] == "succeeded"
    finally:
        load.stop()
    assert load.errors == [] and {status for _, _, status, _ in load.answers} == {200}
    assert _alive(run_hosts, "wide", "web") == [(1, "alpha"), (1, "beta")]
    assert _answers(run_hosts, "wide", "web") == {"alpha": "200 v1", "beta": "200 v1"}

    # Deploys and a rollback under keep-alive load through both routers. Each replaced release
    # stands by on both hosts (the one before it stops), and the rollback to v2 inside its
    # window takes v2's processes back on both hosts, starting none.
    loads = [Load(f"http://web.wide.localhost:{port}") for port in run_hosts.router_ports.values()]
    for each in loads:
        each.start()
    try:
        for version in (2, 3):
            commit_file(spread_repo, "VERSION", f"{version}\n", f"v{version}")
            assert stack.deploy("wide", "web")["status"] == "succeeded"
            both = [(v, host) for v in (version - 1, version) for host in HOSTS]
            run_hosts.wait(
                lambda both=both: _alive(run_hosts, "wide", "web") == both,
                f"v{version} live and v{version - 1} standing by on both hosts, nothing else",
            )
        standing = stack.current("wide", "web")["standby"]
        assert [s["release_version"] for s in standing] == [2], standing
        warm = _pids(run_hosts, "wide", "web", version=2)
        rollback = stack.api(
            "POST", "/v1/apps/wide/environments/web/rollback", 202, json={"to_version": 2}
        )
        assert stack.wait_pipeline(rollback["id"])["status"] == "succeeded"
        assert _alive(run_hosts, "wide", "web") == [
            (2, "alpha"),
            (2, "beta"),
            (3, "alpha"),
            (3, "beta"),
        ]
        assert _pids(run_hosts, "wide", "web", version=2) == warm  # taken back, none started
    finally:
        for each in loads:
            each.stop()
    for each in loads:
        assert each.errors == [], each.errors[:3]
        assert {status for _, _, status, _ in each.answers} == {200}
        assert len(each.answers) > 20
    assert _answers(run_hosts, "wide", "web") == {"alpha": "200 v2", "beta": "200 v2"}
    current = stack.current("wide", "web")
    assert sorted(p["host"] for p in current["processes"]) == ["alpha", "beta"]
    listed = {h["name"]: h for h in stack.api("GET", "/v1/hosts", 200)}
    assert "wide/web" in listed["alpha"]["environments"]
    assert "wide/web" in listed["beta"]["environments"]


def test_a_release_unhealthy_on_one_host_is_switched_on_neither(
    run_hosts: RunHosts, spread_repo: Path
) -> None:
    stack = run_hosts.stack
    stack.api("POST", "/v1/apps", 201, json={"name": "guarded", "repo": str(spread_repo)})
    stack.api(
        "POST",
        "/v1/apps/guarded/environments",
        201,
        json={"name": "web", "hosts": list(HOSTS), "health_timeout": 5},
    )
    stack.api(
        "PATCH", "/v1/apps/guarded/environments/web/formation", 200, json={"processes": {"web": 2}}
    )
    assert stack.deploy("guarded", "web")["status"] == "succeeded"
    assert _alive(run_hosts, "guarded", "web") == [(1, "alpha"), (1, "beta")]
    beta_storage = Path(run_hosts.host_envs["beta"]["SHIPYARD_DATA_DIR"]) / "storage"
    (beta_storage / "guarded" / "web" / "sick-2").write_text("")

    commit_file(spread_repo, "VERSION", "2\n", "v2")
    failed = stack.deploy("guarded", "web")

    assert failed["status"] == "failed"
    assert "run host beta" in failed["error"] and "500" in failed["error"], failed["error"]
    assert _answers(run_hosts, "guarded", "web") == {"alpha": "200 v1", "beta": "200 v1"}
    assert _alive(run_hosts, "guarded", "web") == [(1, "alpha"), (1, "beta")]
    with session_scope(stack.env["SHIPYARD_DATABASE_URL"]) as session:
        started = [
            p
            for share in session.exec(select(DeploymentShare))
            for p in share.processes
            if share.status != "live"
        ]
    assert started, "the failed release started processes somewhere"
    run_hosts.wait(
        lambda: not any(run_hosts.alive(p) for p in started),
        "the failed release's processes to stop on both hosts",
        timeout=60,
    )


def test_a_restart_of_one_type_of_a_spread_environment_restarts_only_it_on_every_host(
    run_hosts: RunHosts, spread_repo: Path
) -> None:
    stack = run_hosts.stack
    commit_file(spread_repo, "worker.py", "import time\nwhile True:\n    time.sleep(1)\n", "worker")
    commit_file(spread_repo, "Procfile", "web: python3 app.py\nworker: python3 worker.py\n", "ps")
    stack.api("POST", "/v1/apps", 201, json={"name": "parts", "repo": str(spread_repo)})
    stack.api(
        "POST", "/v1/apps/parts/environments", 201, json={"name": "web", "hosts": list(HOSTS)}
    )
    counts = {"web": 2, "worker": 2}
    path = "/v1/apps/parts/environments/web"
    stack.api("PATCH", f"{path}/formation", 200, json={"processes": counts})
    assert stack.deploy("parts", "web")["status"] == "succeeded"
    before = _processes(stack, "parts", "web")
    assert sorted(before) == [("web", 1), ("web", 2), ("worker", 1), ("worker", 2)]
    loads = [Load(f"http://web.parts.localhost:{port}") for port in run_hosts.router_ports.values()]
    for each in loads:
        each.start()
    try:
        workers = stack.api("POST", f"{path}/restart", 202, json={"process_type": "worker"})
        assert stack.wait_pipeline(workers["id"])["status"] == "succeeded"
        restarted = _processes(stack, "parts", "web")
        webs = stack.api("POST", f"{path}/restart", 202, json={"process_type": "web"})
        assert stack.wait_pipeline(webs["id"])["status"] == "succeeded"
    finally:
        for each in loads:
            each.stop()
    final = _processes(stack, "parts", "web")

    for kind, index in before:  # each still on its host, one of each type on each
        assert before[kind, index]["host"] == final[kind, index]["host"]
    assert {before["worker", i]["host"] for i in (1, 2)} == set(HOSTS)
    # The workers restarted on both hosts, the webs untouched; then the other way round.
    for index in (1, 2):
        assert restarted["web", index]["pid"] == before["web", index]["pid"]
        assert restarted["worker", index]["pid"] != before["worker", index]["pid"]
        assert final["worker", index]["pid"] == restarted["worker", index]["pid"]
        assert final["web", index]["pid"] != restarted["web", index]["pid"]
    replaced = [before["worker", i] for i in (1, 2)] + [restarted["web", i] for i in (1, 2)]
    run_hosts.wait(
        lambda: not any(run_hosts.alive(p) for p in replaced),
        "the replaced processes to stop on both hosts",
        timeout=60,
    )
    assert all(run_hosts.alive(p) for p in final.values())
    for each in loads:
        assert each.errors == [], each.errors[:3]
        assert {status for _, _, status, _ in each.answers} == {200}
    assert _answers(run_hosts, "parts", "web") == {"alpha": "200 v1", "beta": "200 v1"}


def _tally(run_hosts: RunHosts, host: str, app: str, env: str, requests: int) -> Counter[str]:
    """What `host`'s router answered to each of `requests` requests on one keep-alive
    connection (the router balances every request)."""
    url = f"http://{env}.{app}.localhost:{run_hosts.router_ports[host]}"
    with router_client(url) as client:
        answered = (client.get("/") for _ in range(requests))
        return Counter(f"{r.status_code} {r.text.strip()}" for r in answered)


def test_a_canary_on_a_spread_environment_takes_its_share_on_every_hosts_router(
    run_hosts: RunHosts, spread_repo: Path
) -> None:
    stack = run_hosts.stack
    path = "/v1/apps/tried/environments/web"
    stack.api("POST", "/v1/apps", 201, json={"name": "tried", "repo": str(spread_repo)})
    environment = {"name": "web", "hosts": list(HOSTS), "standby_seconds": 0}
    stack.api("POST", "/v1/apps/tried/environments", 201, json=environment)
    stack.api("PATCH", f"{path}/formation", 200, json={"processes": {"web": 2}})
    assert stack.deploy("tried", "web")["status"] == "succeeded"
    assert _alive(run_hosts, "tried", "web") == [(1, "alpha"), (1, "beta")]

    def canary(version: int) -> str:
        """Deploy `version` as a canary at 50 % whose step outlasts the test."""
        commit_file(spread_repo, "VERSION", f"{version}\n", f"v{version}")
        rollout = {"canary": [50, 100], "step_seconds": 600}
        body = {"environment": "web", "ref": "HEAD", "rollout": rollout}
        started = stack.api("POST", "/v1/apps/tried/pipelines", 202, json=body)
        run_hosts.wait(
            lambda: all(len(_tally(run_hosts, host, "tried", "web", 20)) == 2 for host in HOSTS),
            f"both routers to answer with v{version} and the live release alike",
        )
        return str(started["id"])

    # A good release: half of each router's requests during its step, then promoted.
    promoted = canary(2)
    status = stack.api("GET", f"{path}/canary", 200)
    assert (status["state"], status["share"]) == ("canary", 50), status
    for host in HOSTS:
        tally = _tally(run_hosts, host, "tried", "web", 200)
        assert set(tally) == {"200 v1", "200 v2"}, (host, tally)
        assert 25 <= tally["200 v2"] / 2 <= 75, (host, tally)  # 50 %, within 25 points
    stack.api("POST", f"{path}/canary/promote", 202)
    assert stack.wait_pipeline(promoted)["status"] == "succeeded"
    assert _answers(run_hosts, "tried", "web") == {"alpha": "200 v2", "beta": "200 v2"}
    run_hosts.wait(
        lambda: _alive(run_hosts, "tried", "web") == [(2, "alpha"), (2, "beta")],
        "v1 to stop on both hosts",
    )

    # Aborted: every router back to the live release alone, the canary stopped everywhere.
    aborted = canary(3)
    stack.api("POST", f"{path}/canary/abort", 202)
    failed = stack.wait_pipeline(aborted)
    assert failed["status"] == "failed" and "canary aborted at 50 %" in failed["error"], failed
    for host in HOSTS:
        assert _tally(run_hosts, host, "tried", "web", 100) == {"200 v2": 100}, host
    run_hosts.wait(
        lambda: _alive(run_hosts, "tried", "web") == [(2, "alpha"), (2, "beta")],
        "the aborted canary's processes to stop on both hosts",
    )
    for host in HOSTS:
        servers = run_hosts.router_servers(host, "tried", "web")
        assert len(servers) == 1, (host, servers)  # v3's drained out of every router


def test_a_spread_canary_whose_coordinator_is_sigkilled_is_aborted_on_every_router(
    run_hosts: RunHosts, spread_repo: Path
) -> None:
    stack = run_hosts.stack
    stack.api("POST", "/v1/apps", 201, json={"name": "orphan", "repo": str(spread_repo)})
    stack.api(
        "POST", "/v1/apps/orphan/environments", 201, json={"name": "web", "hosts": list(HOSTS)}
    )
    path = "/v1/apps/orphan/environments/web"
    stack.api("PATCH", f"{path}/formation", 200, json={"processes": {"web": 2}})
    assert stack.deploy("orphan", "web")["status"] == "succeeded"
    commit_file(spread_repo, "VERSION", "2\n", "v2")
    rollout = {"canary": [50, 100], "step_seconds": 600}
    body = {"environment": "web", "ref": "HEAD", "rollout": rollout}
    started = stack.api("POST", "/v1/apps/orphan/pipelines", 202, json=body)["id"]
    run_hosts.wait(
        lambda: all(len(_tally(run_hosts, host, "orphan", "web", 20)) == 2 for host in HOSTS),
        "both routers to answer with the canary and the live release alike",
    )

    # The coordinator's run pool dies mid-step (its apps run on); beta's router is left at 50 %
    # until the stage is taken over, once alpha's pool is back.
    run_hosts.kill_host("alpha", parts=("worker-run",))
    run_hosts.start_host("alpha", parts=("worker-run",))
    pipeline = stack.wait_pipeline(started, timeout=240)

    assert pipeline["status"] == "failed"
    assert "the run worker running the canary stopped at 50 %" in pipeline["error"], pipeline
    for host in HOSTS:
        assert _tally(run_hosts, host, "orphan", "web", 100) == {"200 v1": 100}, host
    run_hosts.wait(
        lambda: _alive(run_hosts, "orphan", "web") == [(1, "alpha"), (1, "beta")],
        "the canary's processes to stop on both hosts",
    )
    for host in HOSTS:
        assert len(run_hosts.router_servers(host, "orphan", "web")) == 1, host
    stack.api("GET", f"{path}/canary", 404)  # no canary runs there any more


def _processes(stack: Stack, app: str, env: str) -> dict[tuple[str, int], ProcessRecord]:
    """The live deployment's process records by (type, index), from the store (with their
    start times, which tell a pid reused apart)."""
    with session_scope(stack.env["SHIPYARD_DATABASE_URL"]) as session:
        live = session.exec(
            select(Deployment)
            .join(Environment, col(Environment.id) == col(Deployment.environment_id))
            .join(App, col(App.id) == col(Environment.app_id))
            .where(App.name == app, Environment.name == env, Deployment.status == "live")
        ).one()
        return {(str(p["type"]), int(p["index"])): p for p in live.processes}


@pytest.mark.timeout(600)
def test_the_docker_runner_spreads_an_environment_too(
    run_hosts: RunHosts, docker_engine: docker.DockerClient, tmp_path: Path
) -> None:
    stack = run_hosts.stack
    repo = write_app(tmp_path / "docker-repo", procfile=PROCFILE, dockerfile=DOCKERFILE)
    git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", "busybox app")
    app = unique_app()
    stack.api("POST", "/v1/apps", 201, json={"name": app, "repo": str(repo), "builder": "docker"})
    environment = {
        "name": "web",
        "runner": "docker",
        "hosts": list(HOSTS),
        "health_timeout": 20,
        "standby_seconds": 0,  # a replaced release's containers stop once drained
    }
    stack.api("POST", f"/v1/apps/{app}/environments", 201, json=environment)
    stack.api(
        "PATCH", f"/v1/apps/{app}/environments/web/formation", 200, json={"processes": {"web": 2}}
    )
    stack.patch_config(app, "web", {"vars": {"GREETING": "one"}, "deploy": False})

    first = stack.deploy(app, "web")
    stack.patch_config(app, "web", {"vars": {"GREETING": "two"}, "deploy": False})
    second = stack.deploy(app, "web")

    errors = [s["error"] for p in (first, second) for s in p["stages"] if s["error"]]
    assert (first["status"], second["status"]) == ("succeeded", "succeeded"), errors
    current = stack.current(app, "web")
    # web dealt out over both hosts; the worker (one of it) on the first.
    placed = sorted((p["type"], p["host"]) for p in current["processes"])
    assert placed == [("web", "alpha"), ("web", "beta"), ("worker", "alpha")]
    assert _answers(run_hosts, app, "web") == {"alpha": "200 two", "beta": "200 two"}
    # Only the live release's containers run, one per host's share.
    running = containers_of(docker_engine, f"shipyard.app={app}")
    (live,) = [
        records for _, status, records in run_hosts.deployments(app, "web") if status == "live"
    ]
    assert sorted(c.id for c in running) == sorted(str(p["container"]) for p in live)
    assert {c.labels["shipyard.host"] for c in running} == {"alpha", "beta"}
