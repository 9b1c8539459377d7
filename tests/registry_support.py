"""A real OCI registry for tests (a pytest plugin: `pytest_plugins`): Debian's `docker-registry`
(CNCF distribution 2.8) on a free loopback port, with deletes enabled and its storage in a
temporary folder the tests may damage.

Without the binary these tests skip; with SHIPYARD_REQUIRE_SERVICES=1 (as in CI) they fail.

PYTEST_DONT_REWRITE: test modules import from here before `pytest_plugins` registers it.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import bcrypt
import pytest

import bench.registry
from shipyard.shared.artifacts import FileStore, parse_store_url
from shipyard.shared.artifacts.oci import RegistryStore
from shipyard.shared.artifacts.registry import RegistryClient
from tests.conftest import REQUIRE_SERVICES

BINARY = bench.registry.BINARY
USERNAME = "shipyard-ci"


class Registry(bench.registry.Registry):
    """The bench's registry process, with what tests need besides: credentials, its storage's
    layout, and its offline garbage collection. `stop()` and `start()` again keep its storage."""

    def __init__(self, directory: Path, *, password: str | None = None) -> None:
        self.password = password
        auth = ""
        if password is not None:
            directory.mkdir(parents=True, exist_ok=True)
            htpasswd = directory / "htpasswd"
            hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
            htpasswd.write_text(f"{USERNAME}:{hashed}\n")
            auth = f"auth:\n  htpasswd:\n    realm: shipyard-tests\n    path: {htpasswd}\n"
        super().__init__(directory, extra_config=auth)

    def url(self, namespace: str = "shipyard") -> str:
        return super().url(namespace)

    def blob_file(self, digest: str) -> Path:
        """Where the registry keeps blob `digest`'s bytes (its filesystem layout)."""
        hexdigest = digest.removeprefix("sha256:")
        return self.storage / "docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest / "data"

    def garbage_collect(self) -> str:
        """The registry's offline garbage collection; returns what it printed."""
        result = subprocess.run(
            [BINARY, "garbage-collect", str(self.config)],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return result.stdout + result.stderr


def require_registry_binary() -> None:
    if shutil.which(BINARY) is None:
        message = f"{BINARY} is not installed (apt-get install docker-registry)"
        if REQUIRE_SERVICES:
            pytest.fail(message + "; SHIPYARD_REQUIRE_SERVICES=1 makes this a failure")
        pytest.skip(message)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry shared by the session's tests (each uses apps of its own)."""
    require_registry_binary()
    server = Registry(tmp_path_factory.mktemp("registry"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_registry(tmp_path: Path) -> Iterator[Registry]:
    """A registry of this test's own, which it may stop, restart or damage."""
    require_registry_binary()
    server = Registry(tmp_path / "registry")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def secured_registry(tmp_path: Path) -> Iterator[Registry]:
    """A registry of this test's own that wants a user name and password (HTTP Basic)."""
    require_registry_binary()
    server = Registry(tmp_path / "registry", password=secrets.token_urlsafe(12))
    server.start()
    try:
        yield server
    finally:
        server.stop()


StoreFactory = Callable[..., RegistryStore]


@pytest.fixture
def registry_store() -> Iterator[StoreFactory]:
    """`registry_store(registry, cache_dir, **credentials)`: a store on that registry, as a worker
    makes one; its connections are closed at the end of the test."""
    made: list[RegistryStore] = []

    def make(registry: Registry, cache: Path, **credentials: str) -> RegistryStore:
        address = parse_store_url(registry.url()).registry
        assert address is not None
        store = RegistryStore(RegistryClient(address, **credentials), FileStore(cache))
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()
