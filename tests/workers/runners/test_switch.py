"""The health-gated switch: new processes healthy first, recorded live, old ones stopped after."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import cast

import httpx
import pytest

from shipyard.router.runtime import RouterError
from shipyard.router.traffic import Traffic
from shipyard.shared.exceptions import StageFailed
from shipyard.shared.models import Environment
from shipyard.shared.process_record import ProcessRecord
from shipyard.workers.runners.base import CancelCheck, OneOffEnd, OutputSink, ReleaseSpec
from shipyard.workers.runners.switch import switch, wait_healthy
from shipyard.workers.stages.spec import health_host


class HealthServer:
    """A real HTTP endpoint on 127.0.0.1 whose status code a test sets."""

    def __init__(self) -> None:
        self.status = 200
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(server.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"


@pytest.fixture
def health() -> Iterator[HealthServer]:
    server = HealthServer()
    thread = threading.Thread(target=server.http.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield server
    server.http.shutdown()
    server.http.server_close()
    thread.join()


class FakeRunner:
    """A runner at the edge: it records starts and stops instead of running anything."""

    name = "fake"

    def __init__(self, url: str) -> None:
        self.url = url
        self.running: set[str] = set()
        self.stopped: list[list[str]] = []

    def start(self, spec: ReleaseSpec) -> list[ProcessRecord]:
        self.running.add(spec.deployment_id)
        return [{"type": "web", "status": "running", "url": self.url, "id": spec.deployment_id}]

    def is_running(self, process: ProcessRecord) -> bool:
        return process["id"] in self.running

    def output_tail(self, process: ProcessRecord, lines: int) -> str:
        return f"output of {process['id']}"

    def stop(self, processes: list[ProcessRecord]) -> None:
        self.stopped.append([p["id"] for p in processes])
        self.running -= {p["id"] for p in processes}

    def stream_once(
        self,
        spec: ReleaseSpec,
        command: str,
        timeout: float,
        output: OutputSink,
        cancelled: CancelCheck,
    ) -> OneOffEnd:
        raise AssertionError("the switch never runs one-off commands")


def make_spec(deployment_id: str = "new", health_timeout: float = 5.0) -> ReleaseSpec:
    return ReleaseSpec(
        app="web",
        environment="staging",
        release_id="r2",
        release_version=2,
        deployment_id=deployment_id,
        artifact_id="sha256:" + "0" * 64,
        health_path="/health",
        health_timeout=health_timeout,
        env={},
    )


class Recorder:
    """What the switch records, as a list of steps (the run stage writes them to the store)."""

    def __init__(
        self,
        runner: FakeRunner,
        previous: list[ProcessRecord] | None = None,
        standby: bool = False,
    ) -> None:
        self.runner = runner
        self.previous = previous  # the processes of what going live replaces
        self.standby = standby  # whether the environment keeps what it replaces standing by
        self.steps: list[str] = []
        self.replaced: uuid.UUID | None = None

    def started(self, processes: list[ProcessRecord]) -> None:
        self.steps.append(f"started {processes[0]['id']}")

    def go_live(self, processes: list[ProcessRecord]) -> list[ProcessRecord] | None:
        old_runs = "old" in self.runner.running
        self.steps.append(f"live {processes[0]['id']} while old runs: {old_runs}")
        return self.previous

    def switched(self) -> None:
        self.steps.append("switched")

    def retired(self) -> None:
        self.steps.append("retired")

    def stand_by(self) -> bool:
        if self.standby:
            self.steps.append("standing by")
        return self.standby


def test_a_healthy_release_goes_live_and_then_the_previous_one_stops(
    health: HealthServer,
) -> None:
    runner = FakeRunner(health.url)
    runner.running.add("old")
    recorder = Recorder(runner, previous=[{"type": "web", "id": "old"}])

    processes = switch(runner, make_spec(), recorder)

    assert [p["id"] for p in processes] == ["new"]
    assert recorder.steps == ["started new", "live new while old runs: True", "retired"]
    assert runner.stopped == [["old"]]
    assert runner.running == {"new"}


@pytest.mark.parametrize(
    ("previous", "retired"),
    [(None, False), ([], True)],
    ids=["nothing-replaced", "replaced-without-processes"],
)
def test_only_a_replaced_deployment_is_retired_even_one_without_processes(
    health: HealthServer, previous: list[ProcessRecord] | None, retired: bool
) -> None:
    runner = FakeRunner(health.url)
    recorder = Recorder(runner, previous)

    switch(runner, make_spec(), recorder)

    assert ("retired" in recorder.steps) is retired
    assert runner.stopped == []


class FakeTraffic:
    """The router at the edge: it records what it was told to serve and retire."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.told: list[str] = []
        self.drained_in: float | None = None

    def serve(self, processes: list[ProcessRecord]) -> None:
        if self.refuse:
            raise RouterError("the router is away")
        self.told.append(f"serve {processes[0]['id']}")

    def drain(self, processes: list[ProcessRecord]) -> set[str]:
        self.told.append(f"drain {processes[0]['id']}")
        return set()

    def retire(self, processes: list[ProcessRecord]) -> None:
        self.told.append(f"retire {processes[0]['id']}")


@pytest.mark.parametrize("refuse", [False, True], ids=["served", "router-away"])
def test_with_a_router_the_switch_is_recorded_once_served_and_old_stops_after_its_drain(
    health: HealthServer, refuse: bool
) -> None:
    runner = FakeRunner(health.url)
    runner.running.add("old")
    recorder = Recorder(runner, previous=[{"type": "web", "id": "old"}])
    traffic = FakeTraffic(refuse)

    switch(runner, make_spec(), recorder, cast(Traffic, traffic))

    # Refused, it is live in the store all the same: the router catches up at its next restore.
    assert recorder.steps == [
        "started new",
        "live new while old runs: True",
        "switched",
        "retired",
    ]
    # The old one drained as soon as the new one serves, before the switch is recorded.
    assert traffic.told == ([] if refuse else ["serve new", "drain old", "retire old"])
    assert runner.stopped == [["old"]]


def test_a_replaced_release_kept_standing_by_is_drained_out_of_the_router_and_runs_on(
    health: HealthServer,
) -> None:
    runner = FakeRunner(health.url)
    runner.running.add("old")
    recorder = Recorder(runner, previous=[{"type": "web", "id": "old"}], standby=True)
    traffic = FakeTraffic()

    switch(runner, make_spec(), recorder, cast(Traffic, traffic))

    assert traffic.told == ["serve new", "drain old", "retire old"]
    assert recorder.steps[-1] == "standing by" and "retired" not in recorder.steps
    assert runner.stopped == []
    assert runner.running == {"old", "new"}


def test_without_a_router_a_replaced_release_never_stands_by(health: HealthServer) -> None:
    runner = FakeRunner(health.url)
    runner.running.add("old")
    recorder = Recorder(runner, previous=[{"type": "web", "id": "old"}], standby=True)

    switch(runner, make_spec(), recorder)  # each release on its own port: the old one must go

    assert runner.stopped == [["old"]] and recorder.steps[-1] == "retired"


def test_warm_processes_that_answer_go_live_with_no_start(health: HealthServer) -> None:
    runner = FakeRunner(health.url)
    runner.running.add("standby")
    warm: list[ProcessRecord] = [
        {"type": "web", "status": "running", "url": health.url, "id": "standby"}
    ]
    recorder = Recorder(runner)

    processes = switch(runner, make_spec(), recorder, warm=warm)

    assert processes == warm
    assert recorder.steps == ["live standby while old runs: False"]  # nothing started
    assert runner.running == {"standby"} and runner.stopped == []


def test_warm_processes_that_do_not_answer_are_stopped_and_the_release_started_anew(
    health: HealthServer,
) -> None:
    runner = FakeRunner(health.url)
    warm: list[ProcessRecord] = [  # exited while standing by
        {"type": "web", "status": "running", "url": health.url, "id": "standby"}
    ]
    recorder = Recorder(runner)

    processes = switch(runner, make_spec(), recorder, warm=warm)

    assert [p["id"] for p in processes] == ["new"]
    assert runner.stopped == [["standby"]]
    assert recorder.steps[0] == "started new"


def test_when_recording_live_fails_the_new_processes_are_stopped(health: HealthServer) -> None:
    runner = FakeRunner(health.url)

    class Unrecorded(Recorder):
        def go_live(self, processes: list[ProcessRecord]) -> list[ProcessRecord] | None:
            raise RuntimeError("database went away")

    with pytest.raises(RuntimeError, match="database went away"):
        switch(runner, make_spec(), Unrecorded(runner))

    assert runner.stopped == [["new"]]
    assert runner.running == set()


def test_an_unhealthy_release_never_goes_live(health: HealthServer) -> None:
    health.status = 500
    runner = FakeRunner(health.url)
    recorder = Recorder(runner)

    with pytest.raises(StageFailed) as caught:
        switch(runner, make_spec(health_timeout=0.3), recorder)

    assert caught.value.message == (
        "web did not become healthy within 0.3s (GET /health answered 500)\n"
        "--- last output of web ---\n"
        "output of new"
    )
    assert recorder.steps == ["started new"]
    assert runner.stopped == [["new"]]


def test_wait_healthy_reports_a_process_that_exited() -> None:
    runner = FakeRunner("http://127.0.0.1:9")
    processes = runner.start(make_spec())
    runner.running.clear()
    never_called = httpx.Client(
        transport=httpx.MockTransport(lambda request: pytest.fail("no request expected"))
    )

    with never_called:
        problem = wait_healthy(runner, processes, make_spec(), never_called)

    assert problem == "the web process exited during the health check"


def test_wait_healthy_accepts_a_redirect_and_asks_the_health_path() -> None:
    runner = FakeRunner("http://app.invalid")
    processes = runner.start(make_spec())
    asked: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return httpx.Response(302, headers={"Location": "/login"})

    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        assert wait_healthy(runner, processes, make_spec(), client) is None

    assert asked == ["http://app.invalid/health"]


def test_the_health_check_sends_the_environments_host_name_and_reports_what_the_app_said() -> None:
    runner = FakeRunner("http://app.invalid")
    processes = runner.start(make_spec())
    hosts: list[str] = []

    def django(request: httpx.Request) -> httpx.Response:
        hosts.append(request.headers["host"])
        if request.headers["host"] == "www.example.com":
            return httpx.Response(200)
        page = "<!doctype html>\n<html lang=en>\n<h1>Bad Request (400)</h1>\n</html>"
        return httpx.Response(400, text=page)

    allowed = replace(make_spec(), health_host="www.example.com")
    refused = replace(make_spec(health_timeout=0.2), health_host="staging.web.localhost")
    with httpx.Client(transport=httpx.MockTransport(django)) as client:
        assert wait_healthy(runner, processes, allowed, client) is None
        problem = wait_healthy(runner, processes, refused, client)

    assert hosts[0] == "www.example.com"
    assert problem == (
        "web did not become healthy within 0.2s (GET /health (Host: staging.web.localhost) "
        "answered 400: Bad Request (400))"
    )


def test_the_health_host_is_the_first_domain_else_the_stable_host_name() -> None:
    environment = Environment(app_id=uuid.uuid4(), name="production")
    assert health_host("blog", environment) == "production.blog.localhost"
    environment.domains = ["www.example.com", "example.com"]
    assert health_host("blog", environment) == "www.example.com"
