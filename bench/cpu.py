"""CPU seconds spent by processes of the stack and by the shared servers (psutil).

On two shared cores, throughput is bounded by CPU per unit of work: the CPU a pipeline costs
in every process that serves it, against the CPU a raw chain costs, says how far throughput
can go before any tuning of waits.
"""

from __future__ import annotations

from collections.abc import Iterable

import psutil

from bench.stack import Stack


def _tree_seconds(process: psutil.Process) -> float:
    """CPU of the living processes of the tree, and of the children they reaped already (a
    build's short-lived git processes are counted in their worker's children_* times)."""
    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        try:
            times = member.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def stack_seconds(stack: Stack, names: Iterable[str]) -> float:
    """CPU seconds used so far by the named stack processes and their children (pool workers)."""
    return sum(_tree_seconds(psutil.Process(stack.processes[name].pid)) for name in names)


def server_seconds(name: str) -> float:
    """CPU seconds used so far by every process called `name` (`postgres`, `redis-server`)."""
    total = 0.0
    for process in psutil.process_iter(["name"]):
        if process.info["name"] != name:
            continue
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


class CpuMeter:
    """CPU seconds used by groups of processes between `start()` and `stop()`."""

    SERVERS = ("postgres", "redis-server")

    def __init__(self, stack: Stack, groups: dict[str, list[str]]) -> None:
        self.stack = stack
        self.groups = groups
        self._start: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def _read(self) -> dict[str, float]:
        readings = {group: stack_seconds(self.stack, names) for group, names in self.groups.items()}
        readings.update({server: server_seconds(server) for server in self.SERVERS})
        return readings

    def start(self) -> None:
        self._start = self._read()

    def stop(self) -> None:
        end = self._read()
        self.used = {key: end[key] - self._start[key] for key in end}
