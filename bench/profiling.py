"""Optional sampling profiles (py-spy) of the stack's processes while a scenario runs."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.stack import Stack


@contextmanager
def profiled(stack: Stack, folder: Path | None, label: str, names: list[str]) -> Iterator[None]:
    """py-spy the named processes (and their children) for the block, if `folder` is set.

    Writes collapsed stacks (`<folder>/<label>-<name>.txt`, for flamegraph.pl or speedscope).
    """
    if folder is None:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    beside = Path(sys.executable).parent / "py-spy"  # installed in the venv, or on PATH
    py_spy = str(beside) if beside.exists() else (shutil.which("py-spy") or "py-spy")
    recorders = []
    for name in names:
        pid = stack.processes[name].pid
        output = folder / f"{label}-{name}.txt"
        recorders.append(
            subprocess.Popen(
                [py_spy, "record", "--pid", str(pid), "--subprocesses", "--rate", "100",
                 "--format", "raw", "--output", str(output), "--nonblocking"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )  # fmt: skip
    try:
        yield
    finally:
        for recorder in recorders:
            recorder.send_signal(signal.SIGINT)
        for recorder in recorders:
            try:
                recorder.wait(timeout=30)
            except subprocess.TimeoutExpired:
                recorder.kill()
