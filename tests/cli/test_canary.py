"""Canary releases from the command line: `deploy --canary`, `envs update`, `canary`, and a
pipeline's rollout in `pipelines show`, against the API in-process."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlmodel import Session, select

from shipyard.cli.client import CliError
from shipyard.cli.follow import follow
from shipyard.shared.db import get_engine
from shipyard.shared.models import Deployment, Pipeline
from shipyard.shared.schemas import RolloutPlan, RolloutRecord
from shipyard.shared.schemas.rollouts import ReleaseFigures, RolloutStep
from shipyard.shared.services import apps, deployments, rollouts
from shipyard.shared.settings import Settings
from tests.cli.conftest import Shipyard
from tests.shared.factories import make_artifact, make_release

WEB = {"type": "web", "status": "running", "url": "http://127.0.0.1:5000"}
FIRST = RolloutStep(
    phase="canary",
    share=10,
    started_at=datetime(2026, 12, 1, 21, 30, tzinfo=UTC),
    ended_at=datetime(2026, 12, 1, 21, 31, tzinfo=UTC),
    canary=ReleaseFigures(requests=523, errors=0, error_rate=0.0, p95_ms=25.0),
    stable=ReleaseFigures(requests=4701, errors=0, error_rate=0.0, p95_ms=25.0),
    outcome="passed",
)
SECOND = RolloutStep(
    phase="canary",
    share=50,
    started_at=datetime(2026, 12, 1, 21, 31, tzinfo=UTC),
    ended_at=datetime(2026, 12, 1, 21, 31, 12, tzinfo=UTC),
    canary=ReleaseFigures(requests=212, errors=31, error_rate=31 / 212, p95_ms=40.0),
    stable=ReleaseFigures(requests=230, errors=0, error_rate=0.0, p95_ms=25.0),
    outcome="breached",
    reason="error rate 14.6 % above 1 % and 2× the live release's 0.0 %",
)


def _canary(settings: Settings, *steps: RolloutStep, state: str = "canary") -> uuid.UUID:
    """v1 live in web/staging and v2 in a canary (its pipeline carrying the plan); its
    pipeline's id."""
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        app = apps.get_app(session=session, name="web")
        environment = apps.get_environment(session=session, app=app, name="staging")
        live = make_release(session, app, environment, make_artifact(session, app, "one"))
        assert live.pipeline_id is not None
        first = deployments.begin_deployment(
            session=session, pipeline_id=live.pipeline_id, release=live, cause="deploy"
        )
        assert first is not None
        deployments.go_live(session=session, deployment=first, processes=[WEB])  # type: ignore[list-item]
        release = make_release(session, app, environment, make_artifact(session, app, "two"))
        assert release.pipeline_id is not None
        plan = RolloutPlan(canary=[10, 50], step_seconds=60)
        pipeline = session.get(Pipeline, release.pipeline_id)
        assert pipeline is not None
        pipeline.rollout = plan.model_dump(mode="json")
        session.add(pipeline)
        deployment = deployments.begin_deployment(
            session=session, pipeline_id=release.pipeline_id, release=release, cause="deploy"
        )
        assert deployment is not None
        record = RolloutRecord(
            plan=plan,
            state=state,  # type: ignore[arg-type]
            share=steps[-1].share if steps else 10,
            steps=list(steps),
            reason=SECOND.reason if state == "aborted" else None,
        )
        rollouts.record(session=session, deployment_id=deployment.id, record=record)
        session.commit()
        return release.pipeline_id


@pytest.mark.usefixtures("staging")
def test_deploy_sends_the_canary_it_is_given_and_says_how_it_goes_live(run: Shipyard) -> None:
    result = run(
        "deploy", "-a", "web", "-e", "staging", "--canary", "10,50", "--step-time", "90",
        "--watch", "5m", "--no-wait",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "Going live: canary 10 → 50 → 100 %, 90s a step, watched 5m" in result.output


@pytest.mark.usefixtures("staging")
def test_deploy_with_a_bad_duration_is_a_usage_error(run: Shipyard) -> None:
    result = run("deploy", "-a", "web", "-e", "staging", "--step-time", "5 minutes")

    assert result.exit_code == 2
    assert "'5 minutes' is not a duration" in result.output
    assert "--step-time" in result.output


@pytest.mark.usefixtures("staging")
def test_deploy_with_shares_that_do_not_rise_says_what_the_api_said(run: Shipyard) -> None:
    result = run("deploy", "-a", "web", "-e", "staging", "--canary", "50,10", "--no-wait")

    assert isinstance(result.exception, CliError)
    assert str(result.exception) == (
        "rollout: canary: canary shares must rise, e.g. 10,50,100 (HTTP 422)"
    )


@pytest.mark.usefixtures("staging")
def test_envs_update_sets_the_default_changes_one_part_and_clears_it(run: Shipyard) -> None:
    set_ = run("envs", "update", "staging", "-a", "web", "--canary", "10,50", "--step-time", "1m")
    watched = run("envs", "update", "staging", "-a", "web", "--watch", "5m")
    deployed = run("deploy", "-a", "web", "-e", "staging", "--no-wait")
    cleared = run("envs", "update", "staging", "-a", "web", "--no-rollout")
    nothing = run("envs", "update", "staging", "-a", "web")

    assert set_.exit_code == 0, set_.output
    assert "Deploys of web/staging go live canary 10 → 50 → 100 %, 60s a step, unwatched" in (
        set_.output
    )
    assert "canary 10 → 50 → 100 %, 60s a step, watched 5m by default" in watched.output
    assert "Going live: canary 10 → 50 → 100 %, 60s a step, watched 5m" in deployed.output
    assert "go live at once, unwatched by default" in cleared.output
    assert isinstance(nothing.exception, CliError)


@pytest.mark.usefixtures("staging")
def test_canary_status_shows_the_steps_and_their_figures(run: Shipyard, settings: Settings) -> None:
    _canary(settings, FIRST)

    result = run("canary", "status", "-a", "web", "-e", "staging")
    bare = run("canary", "-a", "web", "-e", "staging")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("web/staging: v2 canary at 10 % of requests (deployment ")
    assert lines[1] == "plan: canary 10 → 50 → 100 %, 60s a step, unwatched"
    assert lines[2] == (
        "  canary  10 %    60s  passed       new: 0.0 % errors of 523 requests, p95 25 ms"
        " · live: 0.0 % of 4,701, p95 25 ms"
    )
    assert bare.output == result.output


@pytest.mark.usefixtures("staging")
def test_canary_status_without_one_says_how_deploys_go_live(run: Shipyard) -> None:
    run("envs", "update", "staging", "-a", "web", "--watch", "10m")

    result = run("canary", "status", "-a", "web", "-e", "staging")

    assert result.exit_code == 0, result.output
    assert result.output == (
        "No canary or watch runs in web/staging; its deploys go live at once, watched 10m by "
        "default\n"
    )


@pytest.mark.usefixtures("staging")
@pytest.mark.parametrize(
    ("command", "said"),
    [
        ("promote", "Promoting v2 in web/staging (was canary at 10 %): it takes all the requests"),
        ("abort", "Aborting v2 in web/staging (was canary at 10 %): the live release takes all"),
    ],
)
def test_canary_promote_and_abort_give_the_command(
    run: Shipyard, settings: Settings, command: str, said: str
) -> None:
    pipeline_id = _canary(settings, FIRST)

    result = run("canary", command, "-a", "web", "-e", "staging")
    status = run("canary", "-a", "web", "-e", "staging")

    assert result.exit_code == 0, result.output
    assert said in result.output
    assert status.output.splitlines()[-1] == (
        f"{command} asked: the run stage takes it at its next look"
    )
    with Session(get_engine(settings.sqlalchemy_url)) as session:
        command_given = session.exec(
            select(Deployment.rollout_command).where(Deployment.pipeline_id == pipeline_id)
        ).one()
    assert command_given == command


@pytest.mark.usefixtures("staging")
def test_canary_abort_when_none_runs_says_so(run: Shipyard) -> None:
    result = run("canary", "abort", "-a", "web", "-e", "staging")

    assert isinstance(result.exception, CliError)
    assert str(result.exception) == (
        "no canary or watch runs in staging now: nothing to abort (HTTP 409)"
    )


@pytest.mark.usefixtures("staging")
def test_pipelines_show_renders_the_plan_and_each_step_with_its_reason(
    run: Shipyard, settings: Settings
) -> None:
    pipeline_id = _canary(settings, FIRST, SECOND, state="aborted")

    result = run("pipelines", "show", str(pipeline_id))

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    start = lines.index("Rollout: canary 10 → 50 → 100 %, 60s a step, unwatched")
    assert lines[start + 1 : start + 6] == [
        "  aborted",
        "  canary  10 %    60s  passed       new: 0.0 % errors of 523 requests, p95 25 ms"
        " · live: 0.0 % of 4,701, p95 25 ms",
        "  canary  50 %    12s  breached     new: 14.6 % errors of 212 requests, p95 40 ms"
        " · live: 0.0 % of 230, p95 25 ms",
        "      breached: error rate 14.6 % above 1 % and 2× the live release's 0.0 %",
        "  aborted: error rate 14.6 % above 1 % and 2× the live release's 0.0 %",
    ]


@pytest.mark.usefixtures("staging")
def test_pipelines_show_of_a_pipeline_without_a_plan_shows_no_rollout(
    run: Shipyard, settings: Settings
) -> None:
    deployed = run("deploy", "-a", "web", "-e", "staging", "--no-wait")
    pipeline_id = deployed.output.split()[1].rstrip(":")

    result = run("pipelines", "show", pipeline_id)

    assert result.exit_code == 0, result.output
    assert "Rollout" not in result.output


class _ScriptedApi:
    """What `follow` reads, one pipeline after another (the last one repeated)."""

    def __init__(self, pipelines: list[dict[str, Any]]) -> None:
        self.pipelines = pipelines

    def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        if path.endswith("/log/live"):
            return {"lines": [], "after": "0-0"}
        return self.pipelines.pop(0) if len(self.pipelines) > 1 else self.pipelines[0]


def _pipeline(status: str, run: str, record: dict[str, Any] | None) -> dict[str, Any]:
    stage = {
        "name": "run", "status": run, "hostname": None, "result_id": None,
        "cache_hit": False, "error": None, "output": None,
    }  # fmt: skip
    return {"id": "p", "kind": "deploy", "status": status, "stages": [stage],
            "rollout_record": record}  # fmt: skip


def test_a_followed_deploy_shows_its_canary_as_it_goes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("shipyard.cli.follow.POLL_SECONDS", 0)
    first = FIRST.model_dump(mode="json")
    running = {**SECOND.model_dump(mode="json"), "outcome": "running", "ended_at": None}
    at_10 = {"state": "canary", "share": 10, "steps": [{**first, "outcome": "running"}]}
    at_50 = {"state": "canary", "share": 50, "steps": [first, running]}
    second = {**SECOND.model_dump(mode="json"), "outcome": "passed", "reason": None}
    done = {"state": "done", "share": 100, "steps": [first, second]}
    api = _ScriptedApi(
        [
            _pipeline("running", "running", None),
            _pipeline("running", "running", at_10),
            _pipeline("running", "running", at_10),
            _pipeline("running", "running", at_50),
            _pipeline("succeeded", "succeeded", done),
        ]
    )

    follow(api, "p", timeout=10)  # type: ignore[arg-type]

    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    assert lines == [
        "-----> run      running",
        "canary at 10 % of requests",
        "rollout canary at 10 %",
        "canary  10 %    60s  passed       new: 0.0 % errors of 523 requests, p95 25 ms"
        " · live: 0.0 % of 4,701, p95 25 ms",
        "canary at 50 % of requests",
        "canary  50 %    12s  passed       new: 14.6 % errors of 212 requests, p95 40 ms"
        " · live: 0.0 % of 230, p95 25 ms",
        "rollout done",
        "-----> run      succeeded",
    ]
