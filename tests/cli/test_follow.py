"""`deploy`, `config set`, `rollback` and `promote` follow their pipeline until it is live."""

from __future__ import annotations

import re
import sys

import pytest
import redis
from fastapi import FastAPI

from shipyard.cli.client import CliError
from shipyard.cli.main import main
from shipyard.shared.services.workers import WorkersProbe
from shipyard.shared.settings import Settings
from tests.cli.conftest import Shipyard
from tests.cli.fake_workers import FakeWorkers

BUILD_ERROR = "npm ERR! enoent: no such file [/app/package.json]"
TRACEBACK = 'Traceback (most recent call last):\n  File "app.py", line 3\nOSError: [Errno 98]'
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
SHORT_DIGEST = r"sha256:[0-9a-f]{8}"
# Where an environment answers through the routers: the same whatever runs it.
STAGING_URL = "http://staging.web.localhost:8080"
PRODUCTION_URL = "http://production.web.localhost:8080"


@pytest.fixture
def workers(settings: Settings, broker: redis.Redis) -> FakeWorkers:
    return FakeWorkers(settings, broker)


@pytest.fixture
def publisher(workers: FakeWorkers) -> FakeWorkers:
    return workers


@pytest.fixture
def deployed(run: Shipyard, staging: None) -> None:
    """Release v1 of `web` live in staging, deployed through the CLI."""
    result = run("deploy", "-a", "web", "-e", "staging", "--ref", "main")
    assert result.exit_code == 0, result.output


@pytest.fixture
def quick_follow(monkeypatch: pytest.MonkeyPatch) -> None:
    """`follow` polls often and asks about workers as soon as a stage is queued."""
    monkeypatch.setattr("shipyard.cli.follow.POLL_SECONDS", 0.01)
    monkeypatch.setattr("shipyard.cli.follow.QUEUED_WARNING_SECONDS", 0.0)


def _run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """Run the real entry point; its exit code, standard output and standard error."""
    monkeypatch.setattr(sys, "argv", ["shipyard", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out, captured.err


@pytest.mark.usefixtures("staging")
def test_deploy_follows_the_stages_and_reports_where_it_runs(run: Shipyard) -> None:
    result = run("deploy", "-a", "web", "-e", "staging", "--ref", "main")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert re.fullmatch(f"Pipeline {UUID}: web main → staging", lines[0])
    assert re.fullmatch(f"-----> build    succeeded: {SHORT_DIGEST}", lines[1])
    assert lines[2].startswith("-----> release  succeeded: ")
    assert lines[3].startswith("-----> run      succeeded: ")
    assert lines[4:] == [f"Deployed release v1 to staging at {STAGING_URL}"]


@pytest.mark.usefixtures("staging")
def test_deploy_prints_the_release_commands_output_as_it_comes_and_only_once(
    run: Shipyard, workers: FakeWorkers
) -> None:
    workers.printed["release"] = ["Running release command: flask db upgrade", "upgraded to 42"]
    result = run("deploy", "-a", "web", "-e", "staging", "--ref", "main")
    workers.failures["release"] = "the release command exited with status 1; v2 will not run"
    failed = run("deploy", "-a", "web", "-e", "staging", "--ref", "main")

    assert result.exit_code == 0, result.output
    # (Every stage of the fake ends at once, so its lines come before the build's line here.)
    assert (
        "       Running release command: flask db upgrade\n       upgraded to 42\n" in result.output
    )
    assert failed.exit_code == 1
    assert failed.output.count("upgraded to 42") == 1


@pytest.mark.usefixtures("api", "staging")
def test_a_failed_deploy_prints_its_error_once_and_exits_1_naming_the_stage(
    workers: FakeWorkers, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    workers.failures["build"] = BUILD_ERROR
    capsys.readouterr()

    code, out, err = _run_main(monkeypatch, capsys, "deploy", "-a", "web", "-e", "staging")

    assert code == 1
    pipeline_id = out.split()[1].rstrip(":")
    assert f"-----> build    failed\n{BUILD_ERROR}\n" in out
    assert "-----> release  skipped\n-----> run      skipped\n" in out
    assert (out + err).count(BUILD_ERROR) == 1
    assert err == f"error: deploy failed at the build stage (pipeline {pipeline_id})\n"


@pytest.mark.usefixtures("staging")
def test_deploy_no_wait_returns_once_the_pipeline_is_queued(
    run: Shipyard, workers: FakeWorkers
) -> None:
    workers.paused = True

    result = run("deploy", "-a", "web", "-e", "staging", "--ref", "main", "--no-wait")

    assert result.exit_code == 0, result.output
    assert re.fullmatch(f"Pipeline {UUID}: web main → staging\n", result.output)
    assert [event.type for event in workers.events] == ["pipeline.queued"]


@pytest.mark.usefixtures("deployed")
def test_config_set_follows_the_new_release_until_it_is_live(run: Shipyard) -> None:
    result = run("config", "set", "GREETING=hi", "-a", "web", "-e", "staging")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[:2] == ["Config version 2", "  GREETING=hi"]
    assert re.fullmatch(f"Releasing with the new config: pipeline {UUID}", lines[2])
    assert [line.split()[1:3] for line in lines[3:5]] == [
        ["release", "succeeded:"],
        ["run", "succeeded:"],
    ]
    assert lines[5:] == [f"Released v2 to staging at {STAGING_URL}"]


@pytest.mark.usefixtures("deployed")
def test_config_unset_follows_its_release_too(run: Shipyard) -> None:
    run("config", "set", "GREETING=hi", "-a", "web", "-e", "staging")

    result = run("config", "unset", "GREETING", "-a", "web", "-e", "staging")

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == f"Released v3 to staging at {STAGING_URL}"


@pytest.mark.usefixtures("deployed")
def test_a_config_release_that_fails_exits_1_with_its_error_printed_once(
    run: Shipyard, workers: FakeWorkers
) -> None:
    workers.failures["run"] = TRACEBACK

    result = run("config", "set", "GREETING=hi", "-a", "web", "-e", "staging")

    assert result.exit_code == 1
    assert isinstance(result.exception, CliError)
    assert re.fullmatch(
        f"config release failed at the run stage \\(pipeline {UUID}\\)", str(result.exception)
    )
    assert f"-----> run      failed\n{TRACEBACK}\n" in result.output
    assert result.output.count(TRACEBACK) == 1


@pytest.mark.usefixtures("deployed")
def test_config_set_no_wait_returns_before_the_release_runs(
    run: Shipyard, workers: FakeWorkers
) -> None:
    workers.paused = True

    result = run("config", "set", "GREETING=hi", "-a", "web", "-e", "staging", "--no-wait")

    assert result.exit_code == 0, result.output
    assert re.search(f"Releasing with the new config: pipeline {UUID}\n$", result.output)
    assert "----->" not in result.output


@pytest.mark.usefixtures("deployed")
def test_rollback_follows_and_says_what_runs_now(run: Shipyard) -> None:
    run("config", "set", "GREETING=hi", "-a", "web", "-e", "staging")

    result = run("rollback", "-a", "web", "-e", "staging")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert re.fullmatch(
        f"Pipeline {UUID}: rolling web/staging back to the previous release", lines[0]
    )
    assert lines[1].startswith("-----> run      succeeded: ")
    assert re.fullmatch(
        f"staging now runs release v1 \\({SHORT_DIGEST}\\) at {STAGING_URL}", lines[2]
    )


@pytest.mark.usefixtures("deployed")
def test_rollback_no_wait_returns_before_the_run(run: Shipyard, workers: FakeWorkers) -> None:
    run("config", "set", "GREETING=hi", "-a", "web", "-e", "staging")
    workers.paused = True

    result = run("rollback", "-a", "web", "-e", "staging", "--to", "1", "--no-wait")

    assert result.exit_code == 0, result.output
    assert re.fullmatch(f"Pipeline {UUID}: rolling web/staging back to v1\n", result.output)


@pytest.mark.usefixtures("deployed")
def test_promote_follows_and_says_what_the_target_runs_now(run: Shipyard) -> None:
    assert run("envs", "create", "production", "--app", "web").exit_code == 0

    result = run("promote", "-a", "web", "staging", "production")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert re.fullmatch(f"Pipeline {UUID}: promoting web staging → production", lines[0])
    assert [line.split()[1:3] for line in lines[1:3]] == [
        ["release", "succeeded:"],
        ["run", "succeeded:"],
    ]
    assert re.fullmatch(
        f"production now runs release v1 \\({SHORT_DIGEST}\\) at {PRODUCTION_URL}", lines[3]
    )


@pytest.mark.usefixtures("deployed")
def test_a_failed_promotion_exits_1_naming_its_stage(run: Shipyard, workers: FakeWorkers) -> None:
    assert run("envs", "create", "production", "--app", "web").exit_code == 0
    workers.failures["release"] = "release command exited 2"

    result = run("promote", "-a", "web", "staging", "production")

    assert result.exit_code == 1
    assert re.fullmatch(
        f"promotion failed at the release stage \\(pipeline {UUID}\\)", str(result.exception)
    )


class TestAQueuedStage:
    @pytest.mark.usefixtures("staging", "quick_follow")
    def test_with_no_worker_on_its_queue_is_named_once_with_the_command_to_start_one(
        self, run: Shipyard, workers: FakeWorkers, workers_asked: list[dict[str, list[str]]]
    ) -> None:
        workers.paused = True

        result = run("deploy", "-a", "web", "-e", "staging", "--timeout", "0.5")

        assert isinstance(result.exception, CliError)
        assert str(result.exception).startswith("gave up following pipeline ")
        warning = (
            "-----> build    queued for 0 s and no worker is consuming the 'build' queue:\n"
            "       start one with `shipyard worker build` (or check `shipyard up`'s logs)\n"
        )
        assert result.output.count(warning) == 1
        assert len(workers_asked) == 1

    @pytest.mark.usefixtures("deployed", "quick_follow")
    def test_names_its_own_queue_when_other_queues_have_workers(
        self, run: Shipyard, workers: FakeWorkers, live_workers: dict[str, list[str]]
    ) -> None:
        workers.paused = True
        live_workers.update({"build": ["build@host"], "run": ["run@host"]})

        result = run("config", "set", "A=1", "-a", "web", "-e", "staging", "--timeout", "0")

        assert (
            "-----> release  queued for 0 s and no worker is consuming the 'release' queue:\n"
            "       start one with `shipyard worker release` (or check `shipyard up`'s logs)\n"
        ) in result.output
        assert "'build' queue" not in result.output and "'run' queue" not in result.output

    @pytest.mark.usefixtures("staging", "quick_follow")
    def test_with_a_live_worker_on_its_queue_gets_no_warning(
        self,
        run: Shipyard,
        workers: FakeWorkers,
        live_workers: dict[str, list[str]],
        workers_asked: list[dict[str, list[str]]],
    ) -> None:
        workers.paused = True
        live_workers["build"] = ["build@host"]

        result = run("deploy", "-a", "web", "-e", "staging", "--timeout", "0.5")

        assert "no worker" not in result.output
        assert workers_asked == [{"build": ["build@host"]}]

    @pytest.mark.usefixtures("staging")
    def test_does_not_make_follow_ask_about_workers_before_it_has_waited_that_long(
        self, run: Shipyard, workers: FakeWorkers, workers_asked: list[dict[str, list[str]]]
    ) -> None:
        workers.paused = True

        result = run("deploy", "-a", "web", "-e", "staging", "--timeout", "0")

        assert "-----> build    queued\n" in result.output
        assert "no worker" not in result.output
        assert workers_asked == []


class TestWhenTheApiCannotTellWhichWorkersAreLive:
    @pytest.fixture
    def workers_probe(self) -> WorkersProbe:
        def broker_away() -> dict[str, list[str]]:
            raise redis.ConnectionError("broker down")

        return broker_away

    @pytest.mark.usefixtures("staging", "quick_follow")
    def test_follow_says_nothing_about_workers_and_keeps_following(
        self, run: Shipyard, workers: FakeWorkers, api: FastAPI
    ) -> None:
        workers.paused = True

        result = run("deploy", "-a", "web", "-e", "staging", "--timeout", "0.2")

        assert str(result.exception).startswith("gave up following pipeline ")
        assert "no worker" not in result.output


@pytest.mark.usefixtures("deployed")
def test_ps_restart_of_one_type_asks_for_it_says_so_and_pipelines_show_names_it(
    run: Shipyard,
) -> None:
    result = run("ps:restart", "web", "-a", "web", "-e", "staging")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    match = re.fullmatch(
        f"Pipeline ({UUID}): restarting the web processes of web/staging", lines[0]
    )
    assert match is not None
    assert re.fullmatch(
        f"staging now runs release v1 \\({SHORT_DIGEST}\\) at {STAGING_URL}", lines[2]
    )
    shown = run("pipelines", "show", match.group(1))
    assert f"Pipeline {match.group(1)} (restart web) of web/staging: succeeded" in shown.output


@pytest.mark.usefixtures("deployed")
def test_ps_restart_of_a_type_that_does_not_run_fails_naming_what_runs(run: Shipyard) -> None:
    result = run("ps:restart", "worker", "-a", "web", "-e", "staging")

    assert result.exit_code == 1
    assert "staging runs no 'worker' process (it runs: web)" in str(result.exception)
