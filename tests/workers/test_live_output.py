"""A followed command's output: redacted even when its lines arrive on another thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import fakeredis
import pytest

from shipyard.shared import build_stream
from shipyard.shared.logging import forget_secrets, register_secrets
from shipyard.workers.live_output import LiveOutput

SECRET = "hunter2-secret-value"


@pytest.fixture(autouse=True)
def _forget() -> Iterator[None]:
    yield
    forget_secrets()


def test_lines_from_a_reader_thread_are_redacted_on_the_stream_and_in_the_tail() -> None:
    broker = fakeredis.FakeRedis()
    register_secrets([SECRET])
    output = LiveOutput(broker, "stream")

    reader = threading.Thread(target=lambda: [output(f"password is {SECRET}"), output("ok")])
    reader.start()
    reader.join()

    lines, _ = build_stream.read_after(broker, "stream", build_stream.START)
    assert lines == ["password is <redacted>", "ok"]
    assert output.tail == "password is <redacted>\nok\n"
