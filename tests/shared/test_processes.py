"""Detached processes: identified by pid and start time, stopped as a group."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shipyard.shared import processes

Spawn = Callable[[str], subprocess.Popen[bytes]]


def _wait_for_file(path: Path, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.01)
    raise AssertionError(f"{path} was not written within {timeout}s")


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start shell commands as process-group leaders; kill whatever is left at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(command: str) -> subprocess.Popen[bytes]:
        child = subprocess.Popen(["/bin/sh", "-c", command], start_new_session=True)
        started.append(child)
        return child

    yield start
    for child in started:
        processes.terminate_group(child.pid, None, grace=0)
        if child.poll() is None:
            child.kill()
        child.wait()


def test_start_time_of_a_running_process_is_a_number() -> None:
    started = processes.start_time(os.getpid())

    assert isinstance(started, int)
    assert processes.start_time(os.getpid()) == started


def test_start_time_of_a_process_that_does_not_exist_is_none() -> None:
    assert processes.start_time(2**22 + 1) is None


def test_a_running_child_is_alive_and_an_exited_one_is_not(spawn: Spawn) -> None:
    child = spawn("sleep 30")
    started = processes.start_time(child.pid)

    assert processes.is_alive(child.pid, started)

    child.kill()
    deadline = time.monotonic() + 5
    while processes.is_alive(child.pid, started) and time.monotonic() < deadline:
        time.sleep(0.01)
    # is_alive reaped the exited child: no zombie is left behind.
    assert not processes.is_alive(child.pid, started)
    assert processes.start_time(child.pid) is None


def test_a_pid_with_another_start_time_is_not_the_same_process(spawn: Spawn) -> None:
    child = spawn("sleep 30")
    started = processes.start_time(child.pid)
    assert started is not None

    assert not processes.is_alive(child.pid, started + 1)


def test_terminate_group_stops_the_leader_and_its_children(spawn: Spawn, tmp_path: Path) -> None:
    grandchild_pid_file = tmp_path / "grandchild.pid"
    leader = spawn(f"sleep 30 & echo $! > {grandchild_pid_file}; wait")
    grandchild = int(_wait_for_file(grandchild_pid_file))
    assert processes.start_time(grandchild) is not None

    processes.terminate_group(leader.pid, processes.start_time(leader.pid), grace=5)

    assert leader.poll() is not None
    deadline = time.monotonic() + 5
    while processes.start_time(grandchild) is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert processes.start_time(grandchild) is None


def test_terminate_group_kills_a_process_that_ignores_sigterm(spawn: Spawn, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    leader = spawn(f"trap '' TERM; echo ready > {ready}; sleep 30")
    _wait_for_file(ready)
    before = time.monotonic()

    processes.terminate_group(leader.pid, processes.start_time(leader.pid), grace=0.2)

    assert leader.poll() is not None
    assert time.monotonic() - before < 5  # the grace period, not 30 s of sleep


def test_terminate_group_leaves_a_reused_pid_alone(spawn: Spawn) -> None:
    child = spawn("sleep 30")
    started = processes.start_time(child.pid)
    assert started is not None

    # A record whose start time does not match is an older process that had this pid.
    processes.terminate_group(child.pid, started - 1, grace=0)

    assert processes.is_alive(child.pid, started)


def test_terminate_group_stops_a_group_that_outlived_its_leader(
    spawn: Spawn, tmp_path: Path
) -> None:
    # A sandboxed app whose shell was killed: the app runs on in the shell's group.
    child_pid_file = tmp_path / "child.pid"
    leader = spawn(f"sleep 30 & echo $! > {child_pid_file}; wait")
    child = int(_wait_for_file(child_pid_file))
    started = processes.start_time(leader.pid)
    os.kill(leader.pid, signal.SIGKILL)
    leader.wait()
    assert processes.start_time(child) is not None

    processes.terminate_group(leader.pid, started, grace=5)

    deadline = time.monotonic() + 5
    while processes.start_time(child) is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert processes.start_time(child) is None, "the orphaned group's sleep still runs"


def test_terminate_group_waits_for_the_group_not_only_its_leader(
    spawn: Spawn, tmp_path: Path
) -> None:
    # The leader ends at SIGTERM at once; its child takes a moment to drain, then ends.
    drained = tmp_path / "drained"
    ready = tmp_path / "ready"
    leader = spawn(
        f'sh -c \'trap "sleep 0.5; echo done > {drained}; exit 0" TERM; '
        f"echo ready > {ready}; while :; do sleep 0.1; done' & wait"
    )
    _wait_for_file(ready)

    processes.terminate_group(leader.pid, processes.start_time(leader.pid), grace=10)

    assert drained.read_text() == "done\n"  # the stop returned once the child had drained


def test_terminate_group_does_not_wait_for_a_zombie_it_cannot_reap(tmp_path: Path) -> None:
    # The leader's parent is another process (a run pool's), which has not reaped it yet.
    pid_file = tmp_path / "leader.pid"
    holder = subprocess.Popen(
        [
            "python3",
            "-c",
            "import subprocess, sys, time; "
            "p = subprocess.Popen(['sleep', '30'], start_new_session=True); "
            f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(60)",
        ]
    )
    try:
        leader = int(_wait_for_file(pid_file))
        started = processes.start_time(leader)
        before = time.monotonic()

        processes.terminate_group(leader, started, grace=20)

        assert time.monotonic() - before < 10  # not the 20 s grace: its zombie is no member
    finally:
        holder.kill()
        holder.wait()
