"""`shipyard run` and `shipyard runs` against the in-process API; a thread plays the run host
(tests/integration/test_one_offs.py has the real one)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import fakeredis
import pytest
from sqlmodel import Session

from shipyard.cli import one_offs as cli_one_offs
from shipyard.cli.client import CliError
from shipyard.shared import build_stream, one_off_stream
from shipyard.shared.db import get_engine
from shipyard.shared.host_inbox import Inbox, OneOffMessage
from shipyard.shared.models import OneOffStatus
from shipyard.shared.schemas.one_offs import MAX_STDIN_BYTES
from shipyard.shared.services import apps, one_offs
from shipyard.shared.settings import Settings
from tests.cli.conftest import Shipyard
from tests.shared.factories import make_artifact, make_release


@pytest.fixture
def placed(run: Shipyard, settings: Settings, live_workers: dict[str, list[str]]) -> None:
    """web/staging on run host alpha (up), with a release v1."""
    live_workers["run.alpha"] = ["run@alpha"]
    assert run("apps", "create", "web", "--repo", "/srv/web").exit_code == 0
    assert run("envs", "create", "staging", "--app", "web", "--host", "alpha").exit_code == 0
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        owner = apps.get_app(session=session, name="web")
        staging = apps.get_environment(session=session, app=owner, name="staging")
        make_release(session, owner, staging, make_artifact(session, owner))


@pytest.fixture
def host(broker: fakeredis.FakeRedis, settings: Settings) -> Iterator[list[uuid.UUID]]:
    """Run host alpha: takes each run from its inbox, prints two lines and exits 5."""
    taken: list[uuid.UUID] = []
    stop = threading.Event()

    def serve() -> None:
        inbox = Inbox(broker, settings.broker_namespace)
        while not stop.is_set():
            message = inbox.receive("alpha", timeout=0.1)
            if not isinstance(message, OneOffMessage):
                continue
            taken.append(message.run_id)
            key = one_off_stream.output_key(settings.broker_namespace, message.run_id)
            with Session(get_engine(settings.sqlalchemy_url)) as session:
                one_offs.claim(session=session, run_id=message.run_id, host="alpha")
                session.commit()
                build_stream.append(broker, key, "creating tables")
                build_stream.append(broker, key, "done")
                one_offs.finish(
                    session=session,
                    run_id=message.run_id,
                    status=OneOffStatus.FAILED,
                    exit_code=5,
                    output="creating tables\ndone",
                )
                session.commit()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield taken
    stop.set()
    thread.join(timeout=10)


@pytest.mark.usefixtures("placed")
def test_run_prints_the_output_as_it_comes_and_exits_with_the_commands_code(
    run: Shipyard, host: list[uuid.UUID]
) -> None:
    result = run("run", "-a", "web", "-e", "staging", "--", "flask", "--app", "blog", "init-db")

    assert result.exit_code == 5, result.output
    assert "creating tables\ndone\n" in result.stdout
    assert len(host) == 1
    listed = run("runs", "-a", "web", "-e", "staging")
    assert "flask --app blog init-db" in listed.output and "failed" in listed.output


@pytest.mark.usefixtures("placed")
def test_run_with_stdin_sends_what_it_reads_and_refuses_too_much(
    run: Shipyard, host: list[uuid.UUID], broker: fakeredis.FakeRedis, settings: Settings
) -> None:
    sent = run("run", "-a", "web", "-e", "staging", "--stdin", "--", "cat", input="rows\n")
    too_much = run(
        "run",
        "-a",
        "web",
        "-e",
        "staging",
        "--stdin",
        "--",
        "cat",
        input="x" * (MAX_STDIN_BYTES + 1),
    )

    assert sent.exit_code == 5, sent.output
    assert len(host) == 1  # the second was never sent
    assert host_inputs(broker, settings, host) == [b"rows\n"]
    assert isinstance(too_much.exception, CliError)
    assert "--stdin: the input is over 3 MiB" in str(too_much.exception)


def host_inputs(
    broker: fakeredis.FakeRedis, settings: Settings, runs: list[uuid.UUID]
) -> list[bytes | None]:
    return [one_off_stream.take_input(broker, settings.broker_namespace, r) for r in runs]


def test_an_ended_run_maps_to_the_exit_code_a_shell_would_give() -> None:
    def ended(status: str, code: int | None) -> dict[str, object]:
        return {"status": status, "exit_code": code, "timeout": 5.0, "error": "it broke"}

    assert cli_one_offs.exit_code(ended("succeeded", 0)) == 0
    assert cli_one_offs.exit_code(ended("failed", 7)) == 7
    assert cli_one_offs.exit_code(ended("timed_out", None)) == 124
    assert cli_one_offs.exit_code(ended("cancelled", None)) == 130
    assert cli_one_offs.exit_code(ended("failed", None)) == 1
