"""A small HTTP/1.1 load generator: keep-alive connections on asyncio streams, loopback only.

Bounded in time and in count; it reads Content-Length bodies only (what the API sends).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

MAX_REQUESTS = 2_000_000  # a bound on top of the time bound


@dataclass
class LoadResult:
    """What one load run saw."""

    seconds: float
    latencies: list[float] = field(default_factory=list)  # successful requests only
    errors: int = 0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds


async def _connection(
    port: int, request: bytes, stop_at: float, result: LoadResult, budget: list[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.monotonic() < stop_at and budget[0] > 0:
            budget[0] -= 1
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            if head[9:12] == b"200":
                result.latencies.append(time.perf_counter() - started)
            else:
                result.errors += 1
    finally:
        writer.close()
        await writer.wait_closed()


async def _load(port: int, path: str, token: str, connections: int, seconds: float) -> LoadResult:
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\nAccept: application/json\r\n\r\n"
    ).encode()
    result = LoadResult(seconds=seconds)
    budget = [MAX_REQUESTS]
    started = time.monotonic()
    stop_at = started + seconds
    await asyncio.gather(
        *(_connection(port, request, stop_at, result, budget) for _ in range(connections))
    )
    result.seconds = time.monotonic() - started
    return result


def generate_load(port: int, path: str, token: str, connections: int, seconds: float) -> LoadResult:
    """GET `path` on 127.0.0.1:`port` over `connections` connections for `seconds`."""
    return asyncio.run(_load(port, path, token, connections, seconds))
