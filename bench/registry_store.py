"""8. Artifacts through a registry: an OCI registry as the artifact store (issue 14).

The harness starts Debian's `docker-registry` (CNCF distribution 2.8, bench/registry.py) on a
free loopback port, storage in its work folder, and measures in its own process:

- Push: `RegistryStore.put` of a 50 MB file of random bytes (a tar.gz does not compress), which
  hashes the file, asks whether the blob is there (HEAD), uploads it (POST, PUT `?digest=`) and
  puts its manifest; beside it, a plain httpx upload of another 50 MB of random bytes to the
  same registry (POST `/v2/<repo>/blobs/uploads/`, PUT `<location>?digest=…` streaming the
  file; its digest computed beforehand, outside its time). Every upload is of fresh bytes, so
  none is a no-op (the registry keeps one copy per digest); each is checked to have made the
  registry write the whole blob.
- Pull: `RegistryStore.fetch` of a freshly pushed 50 MB artifact into an empty cache (streamed
  to a file and hashed on the way, then made the cache's read-only copy), and a plain httpx GET
  of the same blob streamed to a file.
- A run host's second fetch of that artifact: a cache hit. The store's client goes through a
  transport that counts its requests and the bytes it received, and the registry's own
  `/proc/PID/io` says how many bytes it wrote (to sockets and files) meanwhile: both must stay
  at 0. The time is that of re-verifying the cached file's digest.

Push and pull pairs alternate which goes first. MB/s figures are 10^6 bytes per second, from the
median time of a repetition's samples; ratios are plain-transfer time ÷ store time (the store's
share of the plain transfer's throughput).

Then the build farm of scenario 4 again (bench/farm.py's `scale`, same sizes) on a second stack
whose every process has `SHIPYARD_ARTIFACT_STORE=oci://…` (its own API, release and run pools,
data folder and broker namespace; the same PostgreSQL and Redis): the noop builder pushes each
artifact through the registry, the run pool pulls it into its cache and verifies it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import structlog

from bench import farm
from bench import registry as registry_server
from bench.context import Bench
from bench.registry import Registry
from bench.stack import Stack, free_port
from shipyard.shared import constants
from shipyard.shared.artifacts import FileStore, parse_store_url
from shipyard.shared.artifacts.oci import RegistryStore
from shipyard.shared.artifacts.registry import RegistryClient

SCENARIO = "8. Artifacts through a registry"
NAMESPACE = "bench"  # oci://host:port/bench: each app is a repository bench/<app>
FARM_APP = "regfarm"
MB = 1_000_000
_CHUNK = 1 << 20


class CountingTransport(httpx.BaseTransport):
    """An HTTP transport that counts the requests sent and the response bytes received."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport(retries=3)
        self.requests = 0
        self.received = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        response = self._inner.handle_request(request)
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_Counted(response.stream, self),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._inner.close()


class _Counted(httpx.SyncByteStream):
    def __init__(
        self, stream: httpx.SyncByteStream | httpx.AsyncByteStream, meter: CountingTransport
    ) -> None:
        assert isinstance(stream, httpx.SyncByteStream)
        self._stream = stream
        self._meter = meter

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._stream:
            self._meter.received += len(chunk)
            yield chunk

    def close(self) -> None:
        self._stream.close()


def run(bench: Bench) -> None:
    if not registry_server.available():
        print(
            f"skipped: no {registry_server.BINARY} (apt-get install docker-registry);",
            file=sys.stderr,
            end=" ",
        )
        return
    work = bench.stack.root / "registry"
    with quiet_store_logs(), registry_server.running_registry(work / "server") as server:
        Transfers(bench, server, work).measure()
        _farm(bench, server)


@contextmanager
def quiet_store_logs() -> Iterator[None]:
    """The store logs each push and pull at info level: not on the harness's stderr."""
    previous = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    try:
        yield
    finally:
        structlog.configure(**previous)


def fresh_artifact(path: Path, size: int) -> str:
    """Write `size` new random bytes to `path`; their digest."""
    data = os.urandom(size)
    path.write_bytes(data)
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def timed(work: Callable[[], object]) -> float:
    began = time.perf_counter()
    work()
    return time.perf_counter() - began


class Transfers:
    """Push, pull and cache-hit samples against one registry."""

    def __init__(self, bench: Bench, server: Registry, work: Path) -> None:
        self.bench = bench
        self.server = server
        self.work = work
        self.size = bench.plan.registry_artifact_mb * MB
        self.meter = CountingTransport()
        address = parse_store_url(server.url(NAMESPACE)).registry
        assert address is not None
        self.client = RegistryClient(address, transport=self.meter)
        self.store = RegistryStore(self.client, FileStore(work / "build-host-cache"))
        self.plain = httpx.Client(base_url=server.base_url, trust_env=False, timeout=120)
        self.samples = 0  # every sample so far: who goes first alternates

    def measure(self) -> None:
        plan, add = self.bench.plan, self.bench.figures.add
        try:
            self.push()  # warm-up: connections, the registry's first repositories
            self.pull()
            for _ in range(plan.repetitions):
                pushes = [self.push() for _ in range(plan.registry_samples)]
                pulls = [self.pull() for _ in range(plan.registry_samples)]
                store_push = statistics.median(store for store, _ in pushes)
                plain_push = statistics.median(plain for _, plain in pushes)
                store_pull = statistics.median(pull.store for pull in pulls)
                plain_pull = statistics.median(pull.plain for pull in pulls)
                mb = plan.registry_artifact_mb
                add(
                    SCENARIO,
                    f"push {mb} MB, RegistryStore.put",
                    "MB/s",
                    self.size / MB / store_push,
                )
                add(
                    SCENARIO,
                    f"push {mb} MB, plain HTTP upload (POST, PUT ?digest=)",
                    "MB/s",
                    self.size / MB / plain_push,
                )
                add(
                    SCENARIO,
                    "push throughput ratio, put / plain upload",
                    "×",
                    plain_push / store_push,
                    target="≥ 0.8×",
                    check=(">=", 0.8),
                )
                add(
                    SCENARIO,
                    f"pull {mb} MB into an empty cache, RegistryStore.fetch (verified)",
                    "MB/s",
                    self.size / MB / store_pull,
                )
                add(
                    SCENARIO,
                    f"pull {mb} MB, plain HTTP GET to a file",
                    "MB/s",
                    self.size / MB / plain_pull,
                )
                add(
                    SCENARIO,
                    "pull throughput ratio, fetch / plain GET",
                    "×",
                    plain_pull / store_pull,
                    target="≥ 0.8×",
                    check=(">=", 0.8),
                )
                add(
                    SCENARIO,
                    "first fetch: bytes received from the registry",
                    "MB",
                    statistics.median(pull.received for pull in pulls) / MB,
                )
                add(
                    SCENARIO,
                    "second fetch (cache hit): requests to the registry",
                    "requests",
                    sum(pull.hit_requests for pull in pulls),
                    target="0 (each repetition)",
                    check=("<=", 0.0),
                    every=True,
                )
                add(
                    SCENARIO,
                    "second fetch (cache hit): bytes the registry wrote (sockets, files)",
                    "bytes",
                    sum(pull.hit_written for pull in pulls),
                    target="0 (each repetition)",
                    check=("<=", 0.0),
                    every=True,
                )
                add(
                    SCENARIO,
                    "second fetch (cache hit), digest verified again, p50",
                    "ms",
                    1000 * statistics.median(pull.hit_seconds for pull in pulls),
                )
        finally:
            self.client.close()
            self.plain.close()

    def _pair(
        self, store: Callable[[], object], plain: Callable[[], object]
    ) -> tuple[float, float]:
        """(store seconds, plain seconds), the first going first in every other sample."""
        self.samples += 1
        if self.samples % 2:
            return timed(store), timed(plain)
        plain_seconds = timed(plain)
        return timed(store), plain_seconds

    def _written_during(self, work: Callable[[], object]) -> int:
        before = self.server.bytes_written()
        work()
        return self.server.bytes_written() - before

    def push(self) -> tuple[float, float]:
        """(seconds of RegistryStore.put, seconds of a plain upload), each of fresh bytes."""
        store_file = self.work / "push-store.tar.gz"
        plain_file = self.work / "push-plain.tar.gz"
        fresh_artifact(store_file, self.size)
        plain_digest = fresh_artifact(plain_file, self.size)
        written: list[int] = []

        def by_store() -> None:
            written.append(self._written_during(lambda: self.store.put(store_file, app="push")))

        def by_plain() -> None:
            written.append(
                self._written_during(
                    lambda: plain_upload(
                        self.plain, f"{NAMESPACE}/push-plain", plain_digest, plain_file
                    )
                )
            )

        seconds = self._pair(by_store, by_plain)
        if min(written) < self.size:  # the registry kept a copy it had: not a real upload
            raise RuntimeError(f"a push wrote only {min(written)} bytes in the registry")
        store_file.unlink()
        plain_file.unlink()
        return seconds

    def pull(self) -> Pull:
        """A fresh artifact pushed, then fetched into an empty cache, GET plainly, fetched again."""
        artifact = self.work / "pull.tar.gz"
        fresh_artifact(artifact, self.size)
        digest = self.store.put(artifact, app="pull").digest
        artifact.unlink()
        cache = self.work / f"run-host-cache-{self.samples}"
        run_host = RegistryStore(self.client, FileStore(cache))  # its cache is empty
        downloaded = self.work / "pull-plain.tar.gz"
        received: list[int] = []

        def by_store() -> None:
            before = self.meter.received
            run_host.fetch(digest, app="pull")
            received.append(self.meter.received - before)

        def by_plain() -> None:
            plain_download(self.plain, f"{NAMESPACE}/pull", digest, downloaded)

        store_seconds, plain_seconds = self._pair(by_store, by_plain)
        requests = self.meter.requests
        began = time.perf_counter()
        written = self._written_during(lambda: run_host.fetch(digest, app="pull"))
        hit_seconds = time.perf_counter() - began
        shutil.rmtree(cache)
        downloaded.unlink()
        return Pull(
            store=store_seconds,
            plain=plain_seconds,
            received=received[0],
            hit_seconds=hit_seconds,
            hit_requests=self.meter.requests - requests,
            hit_written=written,
        )


@dataclass(frozen=True)
class Pull:
    """One pull sample: seconds of the fetch and of the plain GET, and the cache hit after."""

    store: float
    plain: float
    received: int  # bytes the fetch received
    hit_seconds: float
    hit_requests: int  # requests the second fetch sent
    hit_written: int  # bytes the registry wrote during the second fetch


def plain_upload(http: httpx.Client, repository: str, digest: str, path: Path) -> None:
    """A monolithic blob upload with nothing around it: POST, then PUT the file's bytes."""
    started = http.post(f"/v2/{repository}/blobs/uploads/")
    if started.status_code != 202:
        raise RuntimeError(f"upload start: {started.status_code} {started.text[:300]}")
    url = http.base_url.join(started.headers["Location"]).copy_merge_params({"digest": digest})
    headers = {
        "Content-Type": "application/octet-stream",
        "Content-Length": str(path.stat().st_size),
    }
    with path.open("rb") as handle:
        finished = http.put(url, content=handle, headers=headers)
    if finished.status_code != 201:
        raise RuntimeError(f"upload: {finished.status_code} {finished.text[:300]}")


def plain_download(http: httpx.Client, repository: str, digest: str, target: Path) -> None:
    """GET a blob, streamed to `target`."""
    with http.stream("GET", f"/v2/{repository}/blobs/{digest}") as response:
        if response.status_code != 200:
            raise RuntimeError(f"download: {response.status_code}")
        with target.open("wb") as out:
            for chunk in response.iter_bytes(_CHUNK):
                out.write(chunk)


def _farm(bench: Bench, server: Registry) -> None:
    """Scenario 4's farm on a second stack whose artifact store is the registry."""
    stack = bench.stack
    host = Stack(
        root=stack.root / "registry-stack",
        services=stack.services,
        dsn=stack.dsn,
        namespace=f"{stack.namespace}-registry",
        settings={"SHIPYARD_ARTIFACT_STORE": server.url(NAMESPACE)},
        owns_deployments=False,  # the first stack's apps are its own to stop
    )
    try:
        pools = [f"worker-{queue}" for queue in (constants.RELEASE_QUEUE, constants.RUN_QUEUE)]
        for name in pools:
            host.shipyard(name, "worker", name.removeprefix("worker-"))
        host.api_url = f"http://127.0.0.1:{free_port()}"
        host.shipyard("api", "api", "--port", host.api_url.rsplit(":", 1)[1])
        host.wait_workers(pools)
        host.wait_api(host.api_url, "api")
        cpu_before = server.cpu_seconds()
        farm.scale(replace(bench, stack=host), SCENARIO, FARM_APP, label="build farm: ")
        registry_cpu = server.cpu_seconds() - cpu_before
        # Every build pushed its own artifact (a new commit each): the registry has them all.
        with httpx.Client(base_url=server.base_url, trust_env=False, timeout=30) as http:
            tags = http.get(f"/v2/{NAMESPACE}/{FARM_APP}/tags/list", params={"n": 100_000})
            tags.raise_for_status()
        pulled = list((host.data_dir / "cache" / "artifacts").rglob("*.tar.gz"))
        builds = sum(
            k * (bench.plan.farm_rounds * bench.plan.repetitions + 1)
            for k in bench.plan.farm_workers
        )
        if len(tags.json().get("tags") or []) != builds or len(pulled) != builds:
            raise RuntimeError(
                f"{builds} farm builds, but {len(tags.json().get('tags') or [])} artifacts in "
                f"the registry and {len(pulled)} pulled into the run host's cache"
            )
        bench.figures.add(
            SCENARIO,
            "build farm: artifacts pushed to the registry, and pulled by the run pool",
            "artifacts",
            builds,
        )
        bench.figures.add(
            SCENARIO,
            "build farm: the registry's CPU per build (push, then pull)",
            "ms",
            1000 * registry_cpu / builds,
        )
    finally:
        host.close()
