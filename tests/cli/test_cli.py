"""The `shipyard` command line as a client of the API."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlmodel import Session
from typer.testing import CliRunner

from shipyard.cli.client import ApiError, CliError
from shipyard.cli.main import app as shipyard_app
from shipyard.cli.main import main
from shipyard.shared.db import get_engine
from shipyard.shared.events import Event
from shipyard.shared.services import apps, stage_runs
from shipyard.shared.settings import Settings
from tests.cli.conftest import Shipyard
from tests.shared.factories import make_artifact, make_pipeline, make_release

SECRET = "hunter2-database-password"


def _run_main(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """Run the real entry point; returns its exit code."""
    monkeypatch.setattr(sys, "argv", ["shipyard", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    return int(exited.value.code or 0)


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_apps_create_sends_a_relative_repo_as_an_absolute_path(
    run: Shipyard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    created = run("apps", "create", "web", "--repo", "checkout")

    assert created.exit_code == 0, created.output
    assert f"Created app web ({tmp_path / 'checkout'}; builder local)" in created.output


def test_apps_create_and_ls(run: Shipyard) -> None:
    created = run("apps", "create", "web", "--repo", "/srv/web", "--path", "site")

    assert created.exit_code == 0, created.output
    assert "Created app web (/srv/web, path site; builder local)" in created.output
    listed = run("apps", "ls")
    assert listed.exit_code == 0
    assert "web" in listed.output and "/srv/web" in listed.output and "site" in listed.output


def test_apps_update_changes_the_builder_and_says_when_it_applies(run: Shipyard) -> None:
    run("apps", "create", "web", "--repo", "/srv/web", "--builder", "docker")

    updated = run("apps", "update", "web", "--builder", "python", "--path", "site")
    nothing = run("apps", "update", "web")

    assert updated.exit_code == 0, updated.output
    assert "Updated app web (/srv/web, path site; builder python)" in updated.output
    assert "the next deploy builds with it" in updated.output
    assert isinstance(nothing.exception, CliError)


def test_apps_destroy_asks_for_the_name_and_frees_it(run: Shipyard) -> None:
    run("apps", "create", "web", "--repo", "/srv/web")
    run("envs", "create", "staging", "--app", "web")

    refused = run("apps", "destroy", "web", input="wbe\n")
    kept = run("apps", "ls")
    destroyed = run("apps", "destroy", "web", input="web\n")

    assert isinstance(refused.exception, ApiError) and "confirm with its name" in str(
        refused.exception
    )
    assert "web" in kept.output
    assert destroyed.exit_code == 0, destroyed.output
    assert "cannot be undone" in destroyed.output
    assert "Destroyed web (staging): 0 live release(s) stop" in destroyed.output
    assert "web" not in run("apps", "ls").output
    assert run("apps", "create", "web", "--repo", "/srv/web").exit_code == 0


def test_apps_destroy_with_confirm_does_not_ask(run: Shipyard) -> None:
    run("apps", "create", "web", "--repo", "/srv/web")

    destroyed = run("apps", "destroy", "web", "--confirm", "web")

    assert destroyed.exit_code == 0, destroyed.output
    assert "Type web" not in destroyed.output
    assert "Destroyed web (no environment)" in destroyed.output


def test_envs_create_and_ls(run: Shipyard) -> None:
    run("apps", "create", "web", "--repo", "/srv/web")

    created = run("envs", "create", "staging", "--app", "web", "--health-path", "/healthz")

    assert created.exit_code == 0, created.output
    assert "Created environment staging of web (runner local)" in created.output
    listed = run("envs", "ls", "--app", "web")
    assert "staging" in listed.output and "/healthz within 30s" in listed.output


@pytest.mark.usefixtures("staging")
def test_config_set_and_show(run: Shipyard) -> None:
    result = run("config", "set", "DEBUG=1", "GREETING=hello=world", "-a", "web", "-e", "staging")

    assert result.exit_code == 0, result.output
    assert "Config version 2" in result.output
    shown = run("config", "--app", "web", "--env", "staging")
    assert shown.exit_code == 0, shown.output
    assert "  DEBUG=1\n" in shown.output
    assert "  GREETING=hello=world\n" in shown.output


@pytest.mark.usefixtures("staging")
@pytest.mark.parametrize("columns", [80, 200])
def test_a_long_config_value_is_printed_on_one_line_whatever_the_width(
    run: Shipyard, columns: int
) -> None:
    url = "postgresql://blog:not-a-secret@db.internal.example.com:5432/blog?" + "a=b&" * 40
    assert run("config", "set", f"DATABASE_URL={url}", "-a", "web", "-e", "staging").exit_code == 0

    shown = run("config", "-a", "web", "-e", "staging", columns=columns)

    assert f"  DATABASE_URL={url}\n" in shown.output  # copied from the terminal, it is the value


@pytest.mark.usefixtures("staging")
def test_a_secret_is_shown_redacted_and_never_printed(run: Shipyard) -> None:
    result = run(
        "config", "set", f"DATABASE_PASSWORD={SECRET}", "--secret", "-a", "web", "-e", "staging"
    )
    shown = run("config", "-a", "web", "-e", "staging")

    for output in (result.output, shown.output):
        assert "  DATABASE_PASSWORD=<redacted> (secret)\n" in output
        assert SECRET not in output


@pytest.mark.usefixtures("staging")
def test_control_characters_in_a_value_are_shown_escaped_never_sent_to_the_terminal(
    run: Shipyard,
) -> None:
    # A deploy token may set any value; printed raw, ESC ] 0 ; would retitle the admin's
    # terminal and ESC [ 2 J clear it.
    result = run(
        "config", "set", "BANNER=\x1b]0;pwned\x07\x1b[2Jhi\x9bx", "-a", "web", "-e", "staging"
    )
    shown = run("config", "-a", "web", "-e", "staging")

    for output in (result.output, shown.output):
        assert "  BANNER=\\x1b]0;pwned\\x07\\x1b[2Jhi\\x9bx\n" in output
        assert "\x1b" not in output and "\x07" not in output and "\x9b" not in output


@pytest.mark.usefixtures("staging")
def test_a_value_with_a_nul_character_is_refused(run: Shipyard) -> None:
    result = run("config", "set", "BAD=a\x00b", "-a", "web", "-e", "staging")

    assert isinstance(result.exception, CliError)
    assert "vars.BAD: Value error, a config value cannot contain a NUL character" in str(
        result.exception
    )


@pytest.mark.usefixtures("staging")
def test_config_unset(run: Shipyard) -> None:
    run("config", "set", "DEBUG=1", "KEEP=1", "-a", "web", "-e", "staging")

    result = run("config", "unset", "DEBUG", "-a", "web", "-e", "staging")

    assert result.exit_code == 0, result.output
    assert "Config version 3" in result.output
    assert "DEBUG" not in result.output and "KEEP=1" in result.output


@pytest.mark.usefixtures("staging")
def test_a_bare_key_without_a_value_on_standard_input_is_refused_before_any_request(
    run: Shipyard,
) -> None:
    result = run("config", "set", "DEBUG", "-a", "web", "-e", "staging")

    assert result.exit_code == 1
    assert isinstance(result.exception, CliError)
    assert str(result.exception) == (
        "no value for DEBUG: give KEY=value, or the value on standard input"
    )


def test_config_without_app_and_env_is_an_error(run: Shipyard) -> None:
    result = run("config")

    assert isinstance(result.exception, CliError)
    assert str(result.exception) == "config needs --app and --env"


def test_an_api_error_is_one_line_on_stderr_and_exit_code_1(
    run: Shipyard, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run("apps", "create", "web", "--repo", "/srv/web")

    code = _run_main(monkeypatch, "apps", "create", "web", "--repo", "/srv/web")

    assert code == 1
    captured = capsys.readouterr()
    assert captured.err == "error: app 'web' already exists (HTTP 409)\n"
    assert captured.out == ""


def test_an_api_error_message_is_printed_verbatim(
    run: Shipyard, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The 422 detail quotes the name pattern, whose "[a-z0-9]" must not be read as markup.
    code = _run_main(monkeypatch, "apps", "create", "Web", "--repo", "/srv/web")

    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: name: String should match pattern ")
    assert "'^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'" in err
    assert err.endswith("(HTTP 422)\n")
    assert err.count("\n") == 1


def test_an_unreachable_api_gives_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{_unused_port()}"
    monkeypatch.setenv("SHIPYARD_URL", url)
    monkeypatch.setenv("SHIPYARD_TOKEN", "any-token-at-all")

    code = _run_main(monkeypatch, "apps", "ls")

    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot reach Shipyard at {url} (ConnectError); ")
    assert "is `shipyard up` (or `shipyard api`) running, and SHIPYARD_URL right?" in err
    assert err.count("\n") == 1


def test_a_wrong_token_is_reported(
    run: Shipyard, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SHIPYARD_TOKEN", "not-the-admin-token")

    code = _run_main(monkeypatch, "apps", "ls")

    assert code == 1
    assert capsys.readouterr().err in (
        "error: invalid token (HTTP 401)\n",
        "error: invalid or revoked token (HTTP 401)\n",
    )


@pytest.mark.usefixtures("staging")
def test_deploy_gives_up_following_after_its_timeout(run: Shipyard, events: list[Event]) -> None:
    result = run("deploy", "-a", "web", "-e", "staging", "--ref", "main", "--timeout", "0")

    assert isinstance(result.exception, CliError)
    assert str(result.exception).startswith("gave up following pipeline ")
    assert [e.type for e in events] == ["pipeline.queued"]
    assert "-----> build    queued" in result.output


class TestWhenTheBrokerIsAway:
    @pytest.fixture
    def publisher(self) -> Callable[[Event], None]:
        def unreachable(_event: Event) -> None:
            raise ConnectionRefusedError("broker down")

        return unreachable

    @pytest.mark.usefixtures("staging")
    def test_deploy_fails_with_the_apis_reason(self, run: Shipyard) -> None:
        result = run("deploy", "-a", "web", "-e", "staging")

        assert isinstance(result.exception, CliError)
        message = str(result.exception)
        assert message.startswith("the broker is unavailable; pipeline ")
        assert message.endswith("was recorded as failed, try again shortly (HTTP 503)")


@pytest.mark.usefixtures("staging")
def test_pipelines_show_prints_a_stage_error_verbatim(run: Shipyard, settings: Settings) -> None:
    # Build output often holds brackets ("[/app/dist]", "[notice]"): text, not markup.
    error = "cp: cannot stat [/app/dist]: No such file [notice]"
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        app = apps.get_app(session=session, name="web")
        environment = apps.get_environment(session=session, app=app, name="staging")
        pipeline = make_pipeline(session, app, environment)
        stage_runs.fail_stage(session=session, pipeline=pipeline, stage="build", error=error)
        session.commit()
        pipeline_id = str(pipeline.id)

    result = run("pipelines", "show", pipeline_id)

    assert result.exit_code == 0, result.exception
    assert f"Pipeline {pipeline_id} (deploy) of web/staging: failed" in result.output
    assert error in result.output


@pytest.mark.usefixtures("staging")
def test_pipelines_show_of_an_unknown_pipeline(run: Shipyard) -> None:
    result = run("pipelines", "show", "00000000-0000-0000-0000-000000000000")

    assert isinstance(result.exception, CliError)
    assert str(result.exception) == (
        "pipeline 00000000-0000-0000-0000-000000000000 not found (HTTP 404)"
    )


@pytest.mark.usefixtures("staging")
def test_releases_lists_versions_newest_first(run: Shipyard, settings: Settings) -> None:
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        app = apps.get_app(session=session, name="web")
        environment = apps.get_environment(session=session, app=app, name="staging")
        for label in ("one", "two"):
            make_release(session, app, environment, make_artifact(session, app, label))

    result = run("releases", "-a", "web", "-e", "staging")

    assert result.exit_code == 0, result.exception
    assert result.output.index("v2") < result.output.index("v1 ")


@pytest.mark.usefixtures("staging")
def test_a_bare_key_reads_its_secret_from_standard_input_not_the_arguments(
    api: FastAPI,
) -> None:
    result = CliRunner().invoke(
        shipyard_app,
        ["config", "set", "API_TOKEN", "--secret", "-a", "web", "-e", "staging"],
        input=f"{SECRET}\n",
        env={"COLUMNS": "200"},
    )

    assert result.exit_code == 0, result.output
    assert "  API_TOKEN=<redacted> (secret)\n" in result.output
    assert SECRET not in result.output


def test_envs_spread_over_hosts_and_placed_elsewhere(
    run: Shipyard, live_workers: dict[str, list[str]]
) -> None:
    live_workers.update({"run.alpha": ["run@alpha"], "run.beta": ["run@beta"]})
    run("apps", "create", "web", "--repo", "/srv/web")

    created = run("envs", "create", "staging", "-a", "web", "--hosts", "beta, alpha")
    placed = run("envs", "place", "-a", "web", "-e", "staging", "--spread", "1")
    both = run("envs", "place", "-a", "web", "-e", "staging", "--host", "a", "--spread", "2")
    neither = run("envs", "place", "-a", "web", "-e", "staging")
    bad = run("envs", "place", "-a", "web", "-e", "staging", "--spread", "many")

    assert created.exit_code == 0, created.output
    assert "on run hosts beta, alpha" in created.output
    assert placed.exit_code == 0, placed.output
    assert "staging of web is placed, on run host alpha" in placed.output
    assert "run hosts" in run("envs", "ls", "-a", "web").output
    assert "give one of --host, --hosts and --spread" in str(both.exception)
    assert "say where" in str(neither.exception)
    assert "--spread takes a number" in str(bad.exception)
