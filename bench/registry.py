"""An OCI registry for the bench: Debian's `docker-registry` (CNCF distribution 2.8) on a free
loopback port, storage in the harness's work folder, deletes enabled, plain HTTP.

It dies with the harness (PR_SET_PDEATHSIG, as the stack's processes do) and is stopped on leaving
`running_registry`, whatever happened inside.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench.stack import free_port
from shipyard.shared import processes

BINARY = os.environ.get("SHIPYARD_BENCH_REGISTRY_BINARY", "/usr/bin/docker-registry")


def available() -> bool:
    """Whether the registry binary is installed (`apt-get install docker-registry`)."""
    return shutil.which(BINARY) is not None


class Registry:
    """One `docker-registry serve` process and where it keeps its files."""

    def __init__(self, directory: Path, extra_config: str = "") -> None:
        """`extra_config`: more of the registry's YAML configuration (an `auth:` section)."""
        self.directory = directory
        self.storage = directory / "storage"
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.base_url = f"http://{self.host}"
        self.log_path = directory / "registry.log"
        self.config = directory / "config.yml"
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.storage}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.host}\n  secret: {secrets.token_hex(16)}\n" + extra_config
        )

    def url(self, namespace: str) -> str:
        """The SHIPYARD_ARTIFACT_STORE value naming `namespace` in this registry."""
        return f"oci://{self.host}/{namespace}"

    def start(self, timeout: float = 30) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [BINARY, "serve", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_the_harness,
            )
        deadline = time.monotonic() + timeout
        with httpx.Client(trust_env=False, timeout=2) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    tail = self.log_path.read_text(errors="replace")[-2000:]
                    raise RuntimeError(
                        f"docker-registry exited with {self.process.returncode}:\n{tail}"
                    )
                try:
                    # 200, or 401 from one that wants credentials: it answers either way.
                    if client.get(f"{self.base_url}/v2/").status_code in (200, 401):
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        raise RuntimeError(f"docker-registry did not answer on {self.host} within {timeout:g}s")

    def bytes_written(self) -> int:
        """Bytes the registry process has written so far, sockets included (`/proc/PID/io`
        wchar: write(2) and sendfile(2) both count): what it sent, give or take its log."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/io").read_text().splitlines():
            name, _, value = line.partition(":")
            if name == "wchar":
                return int(value)
        raise RuntimeError("no wchar in /proc/PID/io")

    def cpu_seconds(self) -> float:
        """User and system CPU the registry process has used so far."""
        assert self.process is not None
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        # Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, timeout: float = 10) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def running_registry(directory: Path) -> Iterator[Registry]:
    """A started registry, stopped on exit whatever happened."""
    registry = Registry(directory)
    try:
        registry.start()
        yield registry
    finally:
        registry.stop()


def _die_with_the_harness() -> None:
    processes.die_with_parent(signal.SIGTERM)
