"""The live build log on Redis: appended line by line, read from where the reader stopped."""

from __future__ import annotations

import uuid

import fakeredis

from shipyard.shared import build_stream


def test_lines_are_read_in_order_from_where_the_reader_stopped() -> None:
    client = fakeredis.FakeRedis()
    key = build_stream.stream_key("shipyard", uuid.uuid4())
    for line in ("one\n", "two\n"):
        build_stream.append(client, key, line)

    first, position = build_stream.read_after(client, key, build_stream.START)
    build_stream.append(client, key, "three\n")
    second, later = build_stream.read_after(client, key, position)
    nothing, same = build_stream.read_after(client, key, later)

    assert first == ["one\n", "two\n"]
    assert second == ["three\n"]
    assert nothing == [] and same == later
    assert 0 < client.ttl(key) <= build_stream.STREAM_TTL_SECONDS


def test_a_stream_that_does_not_exist_reads_as_empty() -> None:
    client = fakeredis.FakeRedis()

    assert build_stream.read_after(client, "shipyard:buildlog:none", "0-0") == ([], "0-0")
