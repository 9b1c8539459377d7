"""Detached OS processes, identified by pid *and* start time so a reused pid is never signalled."""

from __future__ import annotations

import ctypes
import os
import signal
import time
from pathlib import Path


def die_with_parent(signum: int = signal.SIGKILL) -> None:
    """For `preexec_fn`: the child gets `signum` when the process that started it dies, even by
    SIGKILL (Linux PR_SET_PDEATHSIG); elsewhere it does nothing."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signum)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def start_time(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot), or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may contain spaces; fields after it are space-separated.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has exited; only its parent's wait() is left
        return None
    return int(fields[19])


def is_alive(pid: int, started: int | None) -> bool:
    """Whether the process `pid` that started at `started` still runs."""
    _reap(pid)
    current = start_time(pid)
    return current is not None and (started is None or current == started)


def terminate_group(pid: int, started: int | None, grace: float) -> None:
    """SIGTERM the process group led by `pid`, then SIGKILL it after `grace` seconds. It waits
    for the whole group, not only its leader: a sandboxed app outlives the shell that leads
    its group while it drains."""
    if not is_alive(pid, started) and not _orphaned_group(pid):
        return
    _signal_group(pid, signal.SIGTERM)
    if _wait_group(pid, grace):
        return
    _signal_group(pid, signal.SIGKILL)
    _wait_group(pid, 2.0)


def _orphaned_group(pid: int) -> bool:
    """Whether the group `pid` led outlives its leader (a sandbox whose shell was killed): no
    process has the number `pid` now, so it was not reused, and the group still has members,
    so the number still names that group (Linux gives no new process a number in use as a
    process group's)."""
    return start_time(pid) is None and _group_alive(pid)


def _wait_group(pid: int, timeout: float) -> bool:
    """Whether the group led by `pid` is empty within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while _group_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _group_alive(pid: int) -> bool:
    """Whether any process of group `pid` is left running (its number is not reused while
    one is); a zombie another process has yet to reap does not count."""
    _reap(pid)
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # members of another user's: fall back to the leader
        return is_alive(pid, None)
    return any(group == pid and state != "Z" for state, group in _states_and_groups())


def _states_and_groups() -> list[tuple[str, int]]:
    """(state, process group) of every process on this host (its /proc)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        found.append((fields[0], int(fields[2])))
    return found


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, signum)


def _reap(pid: int) -> None:
    """Collect the exit status if `pid` is our child, so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
