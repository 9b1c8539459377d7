"""The supervisor with real child processes: restarts with backoff, crash loops, stopping."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from shipyard.serve.supervisor import ChildSpec, RestartPolicy, Supervisor
from shipyard.shared import processes

FAST = RestartPolicy(initial=0.05, maximum=0.2, stable_after=5, crash_loop=3, crash_window=30)


def python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(autouse=True)
def _structlog() -> Iterator[None]:
    """capture_logs needs a configured structlog, whatever ran before; put it back after."""
    before = structlog.get_config()
    structlog.configure()
    yield
    structlog.configure(**before)


@pytest.fixture
def supervisors() -> Iterator[list[Supervisor]]:
    """Supervisors made by a test; every child they still run is stopped afterwards."""
    made: list[Supervisor] = []
    yield made
    for supervisor in made:
        supervisor.stop()


def test_a_child_that_exits_is_restarted_and_its_exit_code_is_logged(
    tmp_path: Path, supervisors: list[Supervisor]
) -> None:
    marker = tmp_path / "starts"
    spec = ChildSpec(
        name="flaky",
        argv=python(f"""
            import sys, time
            with open({str(marker)!r}, "a") as f: f.write("x")
            if open({str(marker)!r}).read() == "x": sys.exit(3)
            time.sleep(60)
        """),
        log_path=tmp_path / "flaky.log",
    )
    supervisor = Supervisor([spec], policy=FAST)
    supervisors.append(supervisor)

    with capture_logs() as logs:
        supervisor.start()
        wait_for(
            lambda: supervisor.check() or (marker.exists() and marker.read_text() == "xx"),
            "the second start",
        )

    child = supervisor.children["flaky"]
    assert child.restarts == 1
    assert child.last_exit == 3
    assert child.running
    exited = [e for e in logs if e["event"] == "supervisor.exited"]
    assert exited and exited[0]["exit_code"] == 3 and exited[0]["child"] == "flaky"


def test_a_child_that_keeps_crashing_is_reported_with_its_output_and_still_restarted(
    tmp_path: Path, supervisors: list[Supervisor]
) -> None:
    spec = ChildSpec(
        name="broken",
        argv=python("import sys; print('cannot open the thing', flush=True); sys.exit(7)"),
        log_path=tmp_path / "broken.log",
    )
    supervisor = Supervisor([spec], policy=FAST)
    supervisors.append(supervisor)

    with capture_logs() as logs:
        supervisor.start()
        wait_for(
            lambda: supervisor.check() or supervisor.children["broken"].restarts >= 4,
            "four restarts of a child that always exits",
        )

    child = supervisor.children["broken"]
    assert child.crashing
    (crash_loop,) = [e for e in logs if e["event"] == "supervisor.crash_loop"]
    assert crash_loop["log_level"] == "error"
    assert crash_loop["exit_code"] == 7
    assert "cannot open the thing" in crash_loop["output"]


def test_the_delay_doubles_up_to_its_cap() -> None:
    policy = RestartPolicy(initial=0.5, maximum=4)

    assert [policy.delay(n) for n in range(1, 7)] == [0.5, 1, 2, 4, 4, 4]


def test_stop_sends_sigterm_then_sigkill_after_the_grace_period(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    stubborn = ChildSpec(
        name="stubborn",
        argv=python(f"""
            import signal, time
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            open({str(ready)!r}, "w").close()
            time.sleep(60)
        """),
        log_path=tmp_path / "stubborn.log",
        grace=0.5,
    )
    polite = ChildSpec(name="polite", argv=["sleep", "60"], log_path=tmp_path / "polite.log")
    supervisor = Supervisor([polite, stubborn], policy=FAST)
    supervisor.start()
    wait_for(ready.exists, "the stubborn child to ignore SIGTERM")
    pids = {name: child.process.pid for name, child in supervisor.children.items() if child.process}

    with capture_logs() as logs:
        supervisor.stop()

    assert not any(processes.is_alive(pid, None) for pid in pids.values())
    assert [e["child"] for e in logs if e["event"] == "supervisor.killed"] == ["stubborn"]
    assert supervisor.children["polite"].process is None


def test_a_stopped_child_is_not_started_again(
    tmp_path: Path, supervisors: list[Supervisor]
) -> None:
    spec = ChildSpec(name="sleeper", argv=["sleep", "60"], log_path=tmp_path / "sleeper.log")
    supervisor = Supervisor([spec], policy=FAST)
    supervisors.append(supervisor)
    supervisor.start()
    pid = supervisor.children["sleeper"].process.pid  # type: ignore[union-attr]

    supervisor.stop()
    deadline = time.monotonic() + FAST.initial * 4  # longer than any restart delay
    while time.monotonic() < deadline:
        supervisor.check()
        time.sleep(0.01)

    assert not processes.is_alive(pid, None)
    assert supervisor.children["sleeper"].process is None
    assert supervisor.children["sleeper"].restarts == 0


SUPERVISOR_SCRIPT = """
import sys, time
from pathlib import Path
from shipyard.serve.supervisor import ChildSpec, Supervisor
state = Path(sys.argv[1])
spec = ChildSpec(name="sleeper", argv=["sleep", "300"], log_path=state.with_suffix(".log"))
supervisor = Supervisor([spec], state_file=state)
supervisor.start()
print(supervisor.children["sleeper"].process.pid, flush=True)
time.sleep(300)
"""


def _killed_supervisor(tmp_path: Path) -> tuple[Path, int]:
    """Run a supervisor in its own process, SIGKILL it, return its state file and child pid."""
    state = tmp_path / "children.json"
    supervisor = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR_SCRIPT, str(state)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert supervisor.stdout is not None
        child = int(supervisor.stdout.readline())
    finally:
        supervisor.kill()
        supervisor.wait()
        if supervisor.stdout is not None:
            supervisor.stdout.close()
    return state, child


def test_children_are_signalled_when_the_supervisor_is_sigkilled(tmp_path: Path) -> None:
    state, child = _killed_supervisor(tmp_path)
    try:
        wait_for(lambda: not processes.is_alive(child, None), "the orphaned child to exit", 10)
    finally:
        if processes.is_alive(child, None):
            os.kill(child, signal.SIGKILL)
    assert json.loads(state.read_text())["sleeper"][0] == child


def test_the_next_supervisor_stops_what_a_killed_one_left_running(tmp_path: Path) -> None:
    leftover = subprocess.Popen(
        python(
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"
        ),
        start_new_session=True,
    )
    state = tmp_path / "children.json"
    state.write_text(json.dumps({"old": [leftover.pid, processes.start_time(leftover.pid)]}))
    try:
        with capture_logs() as logs:
            stopped = Supervisor([], state_file=state).stop_leftovers(grace=0.5)
        assert stopped == ["old"]
        assert not processes.is_alive(leftover.pid, None)
        assert not state.exists()
        assert [e["child"] for e in logs if e["event"] == "supervisor.leftover"] == ["old"]
    finally:
        if leftover.poll() is None:
            leftover.kill()
            leftover.wait()


def test_a_recorded_pid_now_used_by_another_process_is_left_alone(tmp_path: Path) -> None:
    state = tmp_path / "children.json"
    other = subprocess.Popen(["sleep", "60"])
    try:
        # Same pid, another start time: the pid was reused after the recorded child died.
        state.write_text(json.dumps({"old": [other.pid, 1]}))
        assert Supervisor([], state_file=state).stop_leftovers(grace=0.5) == []
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
