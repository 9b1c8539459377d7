"""Reading app output: the last lines, then only what is new; labelled, redacted."""

from __future__ import annotations

from pathlib import Path

from shipyard.shared.app_logs import FileSource, Follower, sources_for


def test_a_file_source_gives_its_last_lines_then_only_complete_new_ones(tmp_path: Path) -> None:
    path = tmp_path / "web.log"
    path.write_text("one\ntwo\nthree\npart")
    source = FileSource("web.1", path)

    assert source.tail(2) == ["two", "three"]
    assert source.poll() == []  # "part" has no end yet
    with path.open("a") as handle:
        handle.write("ial\nfour\n")
    assert source.poll() == ["partial", "four"]
    assert source.poll() == []


def test_a_truncated_file_is_read_again_from_its_top(tmp_path: Path) -> None:
    path = tmp_path / "web.log"
    path.write_text("a long first line\n")
    source = FileSource("web.1", path)
    source.tail(10)

    path.write_text("new\n")

    assert source.poll() == ["new"]


def test_a_missing_file_has_no_lines_yet(tmp_path: Path) -> None:
    source = FileSource("web.1", tmp_path / "not-yet.log")

    assert source.tail(5) == [] and source.poll() == []


def test_the_follower_labels_each_line_and_redacts_the_releases_secrets(tmp_path: Path) -> None:
    web, worker = tmp_path / "web.log", tmp_path / "worker.log"
    web.write_text("listening\nDATABASE_URL=postgres://u:hunter2@db\n")
    worker.write_text("idle\n")
    records = [
        {"type": "web", "log": str(web)},
        {"type": "worker", "log": str(worker)},
        {"type": "web", "log": str(web)},
    ]
    follower = Follower(secrets={"hunter2"})

    first = [
        line
        for index, source in enumerate(sources_for(records, None, lambda: None))
        for line in follower.add(str(index), source, 1)
    ]

    assert first == [
        "web.1: DATABASE_URL=postgres://u:<redacted>@db\n",
        "worker.1: idle\n",
        "web.2: DATABASE_URL=postgres://u:<redacted>@db\n",
    ]
    with worker.open("a") as handle:
        handle.write("job done\n")
    assert follower.poll() == ["worker.1: job done\n"]


def test_sources_can_be_limited_to_one_process_type_and_are_added_once(tmp_path: Path) -> None:
    records = [{"type": "web", "log": str(tmp_path / "w")}, {"type": "worker", "log": "x"}]
    (tmp_path / "w").write_text("hello\n")
    follower = Follower()

    (source,) = sources_for(records, "web", lambda: None)
    assert follower.add("k", source, 5) == ["web.1: hello\n"]
    assert follower.add("k", source, 5) == []  # a key already followed is not added twice
