"""A build's log while it is written: each line appended to a Redis stream on the broker, which
`shipyard deploy` reads as it goes. The stored log (SQL, with the build's result) stays the
record; the stream is a live view that expires."""

from __future__ import annotations

import uuid

import redis

# Lines kept per build in the stream (approximately: Redis trims in whole nodes), and how long
# the stream lives after its last line: long enough for anyone following the build.
STREAM_MAX_LINES = 20_000
STREAM_TTL_SECONDS = 24 * 3600
# What a reader gets per request at most; it asks again from where it stopped.
READ_COUNT = 1_000
# The position before the first line.
START = "0-0"


def stream_key(namespace: str, pipeline_id: uuid.UUID) -> str:
    """The Redis key of a pipeline's live build log."""
    return f"{namespace}:buildlog:{pipeline_id}"


def append(client: redis.Redis, key: str, line: str) -> None:
    """Add one line to the stream (and keep the stream alive for a day after it)."""
    pipe = client.pipeline(transaction=False)
    pipe.xadd(key, {"line": line}, maxlen=STREAM_MAX_LINES, approximate=True)
    pipe.expire(key, STREAM_TTL_SECONDS)
    pipe.execute()


def read_after(client: redis.Redis, key: str, after: str) -> tuple[list[str], str]:
    """The lines after position `after`, and the position to ask from next time."""
    entries = client.xrange(key, min=f"({after}", count=READ_COUNT)
    if not entries:
        return [], after
    lines = [_text((fields or {}).get(b"line", b"")) for _id, fields in entries]
    return lines, _text(entries[-1][0])


def _text(value: bytes | str | None) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value or ""
