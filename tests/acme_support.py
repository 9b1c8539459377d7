"""A real ACME CA for tests: Debian's `pebble` (Let's Encrypt's test CA) with its mock DNS,
`pebble-challtestsrv`, on free loopback ports.

Pebble validates HTTP-01 challenges at `http://DOMAIN:<http_port>/.well-known/acme-challenge/…`,
with every domain resolved to 127.0.0.1 by the mock DNS: point `http_port` at what answers the
challenges (a router's HTTP port, or a test's own responder). Its directory's HTTPS certificate
is signed by a CA of the test's own (`ca_bundle`, SHIPYARD_ACME_CA_BUNDLE); the certificates it
issues chain to a root it makes at each start (`root_pem()`).

With SHIPYARD_REQUIRE_SERVICES=1 (as in CI) a missing pebble fails the test instead of
skipping it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.certificate_support import TestCA
from tests.conftest import REQUIRE_SERVICES

PEBBLE = os.environ.get("SHIPYARD_TEST_PEBBLE", "/usr/bin/pebble")
CHALLTESTSRV = os.environ.get("SHIPYARD_TEST_CHALLTESTSRV", "/usr/bin/pebble-challtestsrv")
START_SECONDS = 15.0
# Read once, at import: the tests' autouse fixture clears SHIPYARD_* variables before each test.
REQUIRED = REQUIRE_SERVICES


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_pebble() -> None:
    """Skip the test without pebble, or fail it when SHIPYARD_REQUIRE_SERVICES=1."""
    missing = [path for path in (PEBBLE, CHALLTESTSRV) if shutil.which(path) is None]
    if not missing:
        return
    message = f"{', '.join(missing)} not installed (Debian: apt-get install pebble)"
    if REQUIRED:
        pytest.fail(message + "; SHIPYARD_REQUIRE_SERVICES=1 makes this a failure")
    pytest.skip(message)


@dataclass
class Pebble:
    """A pebble CA (and its mock DNS) that a test can stop and start again."""

    directory: Path
    http_port: int
    certificate_validity_seconds: int | None = None
    port: int = field(default_factory=free_port)
    management_port: int = field(default_factory=free_port)
    dns_port: int = field(default_factory=free_port)
    dns_management_port: int = field(default_factory=free_port)
    _processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        ca = TestCA("Pebble's front door CA")
        served = ca.issue("localhost", ips=("127.0.0.1",))
        (self.directory / "cert.pem").write_text(served.cert)
        (self.directory / "key.pem").write_text(served.key)
        self.ca_bundle.write_text(ca.pem)
        config: dict[str, object] = {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.management_port}",
            "certificate": str(self.directory / "cert.pem"),
            "privateKey": str(self.directory / "key.pem"),
            "httpPort": self.http_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
        if self.certificate_validity_seconds is not None:
            config["certificateValidityPeriod"] = self.certificate_validity_seconds
        (self.directory / "pebble.json").write_text(json.dumps({"pebble": config}))

    @property
    def ca_bundle(self) -> Path:
        """The CA that signed pebble's own HTTPS certificate: what a client must trust."""
        return self.directory / "front-door-ca.pem"

    @property
    def directory_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    def _ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_bundle))

    def start(self) -> None:
        """Start the mock DNS and pebble, and wait until the directory answers."""
        log = (self.directory / "pebble.log").open("ab")
        self._processes.append(
            subprocess.Popen(
                [
                    CHALLTESTSRV,
                    "-dns01",
                    f"127.0.0.1:{self.dns_port}",
                    "-management",
                    f"127.0.0.1:{self.dns_management_port}",
                    "-http01",
                    "",
                    "-https01",
                    "",
                    "-tlsalpn01",
                    "",
                    "-defaultIPv6",
                    "",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        environment = {
            **os.environ,
            "PEBBLE_VA_NOSLEEP": "1",  # no random wait before each validation
            "PEBBLE_WFE_NONCEREJECT": "0",  # no random badNonce refusals
        }
        self._processes.append(
            subprocess.Popen(
                [
                    PEBBLE,
                    "-config",
                    str(self.directory / "pebble.json"),
                    "-dnsserver",
                    f"127.0.0.1:{self.dns_port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
            )
        )
        log.close()
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                with urllib.request.urlopen(self.directory_url, context=self._ssl(), timeout=2):
                    return
            except OSError:
                if time.monotonic() > deadline or any(
                    p.poll() is not None for p in self._processes
                ):
                    self.stop()
                    raise RuntimeError(
                        "pebble did not start: " + (self.directory / "pebble.log").read_text()
                    ) from None
                time.sleep(0.1)

    def stop(self) -> None:
        """Stop pebble and its mock DNS (they forget every account and order)."""
        for process in reversed(self._processes):
            process.terminate()
        for process in self._processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes.clear()

    def root_pem(self) -> str:
        """The root the certificates pebble issues chain to (new at each start)."""
        url = f"https://127.0.0.1:{self.management_port}/roots/0"
        with urllib.request.urlopen(url, context=self._ssl(), timeout=5) as response:
            return str(response.read().decode())


@contextmanager
def running_pebble(
    directory: Path, *, http_port: int, certificate_validity_seconds: int | None = None
) -> Iterator[Pebble]:
    """A started pebble that validates HTTP-01 on `http_port`; always stopped on exit."""
    require_pebble()
    pebble = Pebble(
        directory, http_port=http_port, certificate_validity_seconds=certificate_validity_seconds
    )
    pebble.start()
    try:
        yield pebble
    finally:
        pebble.stop()
