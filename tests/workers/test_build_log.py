"""BuildLog: keeps the head and the tail of a long build's output within its limit."""

from __future__ import annotations

import threading

from shipyard.workers.build_log import BuildLog


def test_lines_are_kept_in_order_with_a_newline_each() -> None:
    log = BuildLog(limit=1000)

    log.write("-----> Building")
    log.write("done\n")

    assert log.text() == "-----> Building\ndone\n"


def test_a_long_log_keeps_its_head_and_tail_and_says_what_was_cut() -> None:
    log = BuildLog(limit=200)
    lines = [f"line {n:04d}" for n in range(100)]  # 10 bytes each with the newline

    for line in lines:
        log.write(line)

    text = log.text()
    kept = [line for line in text.splitlines() if line.startswith("line ")]
    assert kept[:10] == lines[:10]
    assert kept[-10:] == lines[-10:]
    assert "... 80 lines cut (log limit) ...\n" in text
    assert len(text.replace("... 80 lines cut (log limit) ...\n", "")) <= 200
    assert text.index("line 0009") < text.index("lines cut") < text.index("line 0090")


def test_a_log_within_its_limit_has_no_marker() -> None:
    log = BuildLog(limit=10_000)

    for n in range(50):
        log.write(f"line {n}")

    assert "cut" not in log.text()
    assert log.text().count("\n") == 50


def test_a_single_line_larger_than_half_the_limit_is_cut() -> None:
    log = BuildLog(limit=100)
    log.write("head")

    log.write("x" * 500)

    assert log.text() == "head\n... 1 lines cut (log limit) ...\n"


def test_concurrent_writers_lose_no_line() -> None:
    log = BuildLog(limit=10_000_000)

    def write(prefix: str) -> None:
        for n in range(2000):
            log.write(f"{prefix}{n}")

    threads = [threading.Thread(target=write, args=(p,)) for p in "abcd"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(log.text().splitlines()) == sorted(f"{p}{n}" for p in "abcd" for n in range(2000))


def test_each_line_also_reaches_the_live_view_as_it_is_written() -> None:
    seen: list[str] = []
    log = BuildLog(limit=1000, sink=seen.append)

    log.write("-----> Installing")
    log.write("done\n")

    assert seen == ["-----> Installing\n", "done\n"]


def test_a_failing_live_view_is_dropped_and_the_stored_log_is_whole() -> None:
    calls: list[str] = []

    def broken(line: str) -> None:
        calls.append(line)
        raise ConnectionError("broker gone")

    log = BuildLog(limit=1000, sink=broken)
    log.write("one")
    log.write("two")

    assert calls == ["one\n"]  # tried once, then left alone
    assert log.text() == "one\ntwo\n"
