"""Keep child processes running: start them in order, restart the ones that exit with backoff,
report the ones that keep crashing, stop them all in reverse order.

Why not a library: honcho and foreman stop every child when one exits (the opposite of what is
needed), supervisord is a second daemon whose config files would hold the environment (secrets
included), and circus brings ZeroMQ and an arbiter of its own. What is needed is small: poll,
restart with capped exponential backoff, and say so.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from filelock import FileLock, Timeout

from shipyard.shared import processes
from shipyard.shared.exceptions import ConfigurationError

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RestartPolicy:
    """How a child that exits is started again.

    The delay doubles from `initial` up to `maximum` while the child keeps exiting; a child that
    stayed up for `stable_after` seconds starts again from `initial`. `crash_loop` exits within
    `crash_window` seconds mark it as crashing: reported as an error with its output, and still
    restarted at the capped delay, never given up on silently.
    """

    initial: float = 0.5
    maximum: float = 30.0
    stable_after: float = 30.0
    crash_loop: int = 5
    crash_window: float = 60.0

    def delay(self, recent_exits: int) -> float:
        """Seconds to wait before the restart that follows `recent_exits` quick exits."""
        return float(min(self.maximum, self.initial * 2 ** max(0, recent_exits - 1)))


@dataclass
class Backoff:
    """One supervised process's recent exits under a policy: when it may start again, and
    whether it is crashing. Shared by `shipyard up`'s children and the apps on a run host."""

    policy: RestartPolicy
    exits: list[float] = field(default_factory=list)
    crashing: bool = False

    def exited(self, now: float, started_at: float) -> tuple[float, bool]:
        """Record an exit at `now` of a process started at `started_at`: the delay before its
        restart, and whether it has just begun crashing (to be reported once)."""
        if now - started_at >= self.policy.stable_after:
            self.exits.clear()
        self.exits = [t for t in self.exits if now - t < self.policy.crash_window] + [now]
        was_crashing, self.crashing = self.crashing, len(self.exits) >= self.policy.crash_loop
        return self.policy.delay(len(self.exits)), self.crashing and not was_crashing


@dataclass(frozen=True)
class ChildSpec:
    """One supervised program: its name, command line, environment and output file."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] | None = None
    # Called after each start; returns once the child is ready or raises if it never is.
    ready: Callable[[subprocess.Popen[bytes]], None] | None = None
    # Seconds between SIGTERM and SIGKILL when the child is stopped.
    grace: float = 10.0
    # Where it starts (None: the supervisor's own working directory).
    cwd: Path | None = None


@dataclass
class ChildState:
    """What the supervisor knows of one child, for its own decisions and for status reports."""

    spec: ChildSpec
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    last_exit: int | None = None
    restart_at: float | None = None
    backoff: Backoff = field(default_factory=lambda: Backoff(RestartPolicy()))

    @property
    def crashing(self) -> bool:
        return self.backoff.crashing

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Supervisor:
    """Runs a set of children and keeps them running until `stop` is called."""

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        *,
        policy: RestartPolicy | None = None,
        state_file: Path | None = None,
    ) -> None:
        self.policy = policy or RestartPolicy()
        self.children = {
            spec.name: ChildState(spec, backoff=Backoff(self.policy)) for spec in specs
        }
        # Pid and start time of each running child, so that the next supervisor of the same
        # state file can stop what this one left behind if it is killed without a chance to.
        self._state_file = state_file

    def stop_leftovers(self, grace: float) -> list[str]:
        """Stop the children a killed predecessor left running; return their names."""
        if self._state_file is None or not self._state_file.exists():
            return []
        try:
            recorded: dict[str, list[int]] = json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            recorded = {}
        stopped = []
        for name, (pid, started) in recorded.items():
            if processes.is_alive(pid, started):
                log.warning("supervisor.leftover", child=name, pid=pid)
                processes.terminate_group(pid, started, grace)
                stopped.append(name)
        self._state_file.unlink(missing_ok=True)
        return stopped

    def start(self) -> None:
        """Start every child in order, each one ready before the next starts."""
        for child in self.children.values():
            self._spawn(child)

    def check(self) -> None:
        """Notice children that exited and restart those whose delay has passed; call often."""
        now = time.monotonic()
        for child in self.children.values():
            if child.process is not None and child.process.poll() is not None:
                self._exited(child, now)
            if child.process is None and child.restart_at is not None and now >= child.restart_at:
                child.restarts += 1
                log.warning("supervisor.restarting", child=child.spec.name, restarts=child.restarts)
                try:
                    self._spawn(child)
                except Exception as exc:  # a start that fails counts as one more exit
                    log.error("supervisor.start_failed", child=child.spec.name, error=str(exc))
                    self._exited(child, time.monotonic())

    def stop(self, names: Collection[str] | None = None) -> None:
        """Stop the children (`names`, or all) together: SIGTERM, their grace, then SIGKILL."""
        stopping = [
            child for child in self.children.values() if names is None or child.spec.name in names
        ]
        for child in stopping:
            child.restart_at = None
            if child.running:
                assert child.process is not None
                child.process.send_signal(signal.SIGTERM)
        for child in stopping:
            process, child.process = child.process, None
            if process is None:
                continue
            try:
                process.wait(timeout=child.spec.grace)
            except subprocess.TimeoutExpired:
                log.warning("supervisor.killed", child=child.spec.name, grace=child.spec.grace)
                process.kill()
                process.wait()
        self._record()

    def _spawn(self, child: ChildState) -> None:
        spec = child.spec
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        with spec.log_path.open("ab") as output:
            child.process = subprocess.Popen(
                list(spec.argv),
                env=dict(spec.env) if spec.env is not None else None,
                cwd=spec.cwd,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                # Each child gets SIGTERM when the supervisor dies, even by SIGKILL.
                preexec_fn=_die_with_supervisor,
            )
        child.started_at = time.monotonic()
        child.restart_at = None
        self._record()
        if spec.ready is not None:
            try:
                spec.ready(child.process)
            except BaseException:
                child.process.kill()
                child.process.wait()
                raise

    def _record(self) -> None:
        if self._state_file is None:
            return
        running = {
            name: [child.process.pid, processes.start_time(child.process.pid)]
            for name, child in self.children.items()
            if child.process is not None and child.running
        }
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(running))
        os.replace(tmp, self._state_file)

    def _exited(self, child: ChildState, now: float) -> None:
        process, child.process = child.process, None
        child.last_exit = process.returncode if process is not None else None
        delay, began_crashing = child.backoff.exited(now, child.started_at)
        child.restart_at = now + delay
        event = dict(
            child=child.spec.name,
            exit_code=child.last_exit,
            restart_in=round(delay, 2),
            log=str(child.spec.log_path),
        )
        if began_crashing:
            log.error(
                "supervisor.crash_loop",
                exits=len(child.backoff.exits),
                window=self.policy.crash_window,
                output=tail(child.spec.log_path),
                **event,
            )
        else:
            log.warning("supervisor.exited", **event)


def _die_with_supervisor() -> None:
    processes.die_with_parent(signal.SIGTERM)
    # Ctrl-C in a terminal reaches the whole foreground group; the supervisor alone decides
    # when and in which order its children stop.
    os.setpgrp()


def tail(path: Path, lines: int = 20) -> str:
    """The last `lines` lines of a log file, or '' when there is none yet."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 16_384))
            text = handle.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def hold_exclusive(path: Path, refusal: str) -> FileLock:
    """Take the lock at `path`, held until released or this process dies (the kernel drops it,
    even on SIGKILL); if another process holds it, refuse to start with `refusal`."""
    lock = FileLock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ConfigurationError(refusal) from None
    return lock
