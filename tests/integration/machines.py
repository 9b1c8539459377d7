"""Hosts simulated on this machine: each a UTS and PID namespace of its own (its host name, its
process table, `/proc` mounted for it), kept alive by an idle init, entered with `nsenter` by
whatever runs "on" that host (REFERENCE.md, "Hosts on one machine"; root only).

The network stays the machine's: Redis, PostgreSQL and the routers' ports on 127.0.0.1 are
reached as from any process. A pid that a host's processes record (an app's, in the store) is a
pid of that host's table; `outer_pid` finds the same process in the tests' own table.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from shipyard.shared import processes


def available() -> bool:
    """Whether hosts can be simulated here: root, with util-linux's unshare and nsenter."""
    return os.geteuid() == 0 and all(shutil.which(t) for t in ("unshare", "nsenter"))


@dataclass
class Machine:
    """One simulated host, from `start` until `stop` (which ends everything that ran on it)."""

    name: str
    _unshare: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _init: int | None = field(default=None, init=False)  # its pid 1, as the tests see it

    def start(self, timeout: float = 30) -> None:
        self._unshare = subprocess.Popen(
            [
                "unshare", "--uts", "--pid", "--fork", "--mount-proc", "--kill-child",
                "sh", "-c", f"hostname {self.name} && exec sleep infinity",
            ],
            stdin=subprocess.DEVNULL,
            # If the tests die, the host dies with them (and its pid 1 takes everything on it).
            preexec_fn=lambda: processes.die_with_parent(signal.SIGKILL),
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            init = next(iter(_children(self._unshare.pid)), None)
            if init is not None and _host_name(init) == self.name and _command(init) == "sleep":
                self._init = init
                return
            if self._unshare.poll() is not None:
                raise AssertionError(
                    f"unshare for host {self.name} exited {self._unshare.returncode}"
                )
            time.sleep(0.02)
        raise AssertionError(f"host {self.name}'s namespace was not ready in {timeout} s")

    @property
    def init(self) -> int:
        assert self._init is not None, f"host {self.name} is not started"
        return self._init

    def enter(self) -> tuple[str, ...]:
        """The command prefix that runs a program on this host."""
        return ("nsenter", f"--target={self.init}", "--uts", "--pid", "--mount", "--")

    def outer_pid(self, pid: int) -> int | None:
        """The tests' pid of the process that is `pid` on this host (None: no such process)."""
        namespace = os.readlink(f"/proc/{self.init}/ns/pid")
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if os.readlink(entry / "ns/pid") != namespace:
                    continue
                nspid = _status(int(entry.name)).get("NSpid", "").split()
                if len(nspid) >= 2 and int(nspid[-1]) == pid:
                    return int(entry.name)
        return None

    def alive(self, pid: int, started: int | None) -> bool:
        """Whether this host's process `pid` (started at `started`, as recorded) still runs."""
        outer = self.outer_pid(pid)
        return outer is not None and processes.is_alive(outer, started)

    def stop(self) -> None:
        """End the host: its pid 1 dies, and the kernel kills everything on it."""
        if self._init is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._init, signal.SIGKILL)
        if self._unshare is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._unshare.wait(timeout=30)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def _host_name(pid: int) -> str | None:
    """The host name the process sees (its UTS namespace's)."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return subprocess.run(
            ["nsenter", f"--target={pid}", "--uts", "hostname"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    return None


def _command(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/comm").read_text().strip()
    return ""
