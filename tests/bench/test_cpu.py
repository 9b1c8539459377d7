"""The CPU meter the throughput figures divide by: CPU seconds of a process tree, read by psutil."""

from __future__ import annotations

import subprocess
import sys
import time
from types import SimpleNamespace
from typing import Any

import pytest

from bench.cpu import CpuMeter, server_seconds

# A parent that runs a child spinning 0.6 s of CPU, reaps it and sleeps: the meter must count the
# child's CPU, as it must count a build worker's git processes.
_SPINNING_CHILD = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', "
    "'import time\\nend = time.process_time() + 0.6\\nwhile time.process_time() < end: pass'])\n"
    "child.wait()\n"
    "time.sleep(30)\n"
)


@pytest.mark.slow
def test_the_meter_counts_the_cpu_of_a_process_and_its_children() -> None:
    parent = subprocess.Popen([sys.executable, "-c", _SPINNING_CHILD])
    stack: Any = SimpleNamespace(processes={"busy": parent})
    meter = CpuMeter(stack, {"busy": ["busy"]})
    try:
        meter.start()
        time.sleep(2.5)  # the child spins 0.6 s of CPU and is reaped; the parent sleeps
        meter.stop()
    finally:
        parent.kill()
        parent.wait()

    assert 0.55 <= meter.used["busy"] <= 1.2
    assert set(meter.used) == {"busy", "postgres", "redis-server"}


def test_a_server_that_is_not_running_used_no_cpu() -> None:
    assert server_seconds("no-such-server-process") == 0.0
