"""What the CLI prints at 80 columns: snapshots of `releases`, `pipelines show`, `ps` and
`history`, and the lists whose short IDs the commands take back.

Rows are made through the services, then given fixed timestamps; the CLI's clock is frozen at
NOW, so relative times ("5 min ago") are the same on every run.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlmodel import Session

from shipyard.shared.db import get_engine
from shipyard.shared.models import App, Build, Environment, Pipeline, Release, utcnow
from shipyard.shared.services import (
    apps,
    deployments,
    notifications,
    pipelines,
    rollbacks,
    schedules,
    stage_runs,
)
from shipyard.shared.settings import Settings
from tests.cli.conftest import NOW, Shipyard
from tests.shared.factories import make_artifact, make_pipeline, make_release

WEB = {
    "type": "web",
    "status": "running",
    "url": "http://127.0.0.1:41234",
    "host": "alpha",
    "pid": 48213,
}
WORKER = {
    "type": "worker",
    "status": "crashed",
    "url": None,
    "restarts": 5,
    "last_exit": 1,
    "host": "alpha",
    "container": "3f9c2a1b7d4e0c55aa",
}
TRACEBACK = """\
Traceback (most recent call last):
  File "/srv/app/manage.py", line 22, in <module>
    main()
  File "/srv/app/migrations/0042_add_a_very_long_column_name_to_the_orders_table.py", line 7
psycopg.errors.UndefinedTable: relation "orders" does not exist"""


def _ago(**delta: float) -> datetime:
    return NOW - timedelta(**delta)


def _snapshot(output: str, expected: str, verbatim: str = "") -> None:
    """Compare line by line, ignoring the spaces rich pads lines with; no line is over 80
    columns but those of `verbatim`, a text the CLI prints as it is (a traceback)."""
    lines = [line.rstrip() for line in output.splitlines()]
    exempt = set(verbatim.splitlines())
    assert all(len(line) <= 80 for line in lines if line not in exempt), output
    assert "\n".join(lines) + "\n" == expected, "\n" + output


@pytest.fixture
def session(settings: Settings, staging: None) -> Iterator[Session]:
    with Session(get_engine(settings.sqlalchemy_url), expire_on_commit=False) as session:
        yield session


@pytest.fixture
def web(session: Session) -> tuple[App, Environment]:
    app = apps.get_app(session=session, name="web")
    staging = apps.get_environment(session=session, app=app, name="staging")
    # SQLite transactions take the write lock when they begin (shared.db): end this one, or
    # the API the CLI calls would wait for it.
    session.commit()
    return app, staging


def _go_live(
    session: Session, release: Release, pipeline_id: uuid.UUID, cause: str, at: datetime
) -> None:
    deployment = deployments.begin_deployment(
        session=session, pipeline_id=pipeline_id, release=release, cause=cause
    )
    assert deployment is not None
    superseded = deployments.go_live(session=session, deployment=deployment, processes=[WEB])
    deployment.started_at = at
    if superseded is not None:
        superseded.ended_at = at
        session.add(superseded)
    session.add(deployment)
    session.commit()


@pytest.mark.usefixtures("frozen_now")
def test_releases_marks_the_live_release_and_one_that_never_ran(
    run: Shipyard, session: Session, web: tuple[App, Environment]
) -> None:
    app, staging = web
    v1 = make_release(session, app, staging, make_artifact(session, app, "one"))
    v2 = make_release(session, app, staging, make_artifact(session, app, "two"))
    v3 = make_release(session, app, staging, make_artifact(session, app, "two"))
    for release, created in ((v1, _ago(days=2, hours=1)), (v2, _ago(hours=3, minutes=2))):
        release.created_at = created
        assert release.pipeline_id is not None
        _go_live(session, release, release.pipeline_id, "deploy", created + timedelta(minutes=1))
    v3.created_at = _ago(minutes=40)
    never_run = pipelines.get_pipeline(session=session, pipeline_id=v3.pipeline_id)
    stage_runs.fail_stage(session=session, pipeline=never_run, stage="run", error="no web process")
    session.commit()
    rollback = rollbacks.create_rollback_pipeline(
        session=session, app=app, environment=staging, to_version=1, trigger="cli"
    )
    session.commit()
    _go_live(session, v1, rollback.id, "rollback", _ago(minutes=5))

    result = run("releases", "-a", "web", "-e", "staging", columns=80)

    assert result.exit_code == 0, result.output
    _snapshot(
        result.output,
        """\
Releases of web/staging
version   status      cause    artifact          config   created
────────────────────────────────────────────────────────────────────
  v3      never ran   deploy   sha256:3fc4ccfe   v1       40 min ago
  v2      succeeded   deploy   sha256:3fc4ccfe   v1       3 h ago
● v1      succeeded   deploy   sha256:7692c3ad   v1       2 days ago
● live: v1 since 5 min ago (rollback)
""",
    )


@pytest.mark.usefixtures("frozen_now")
def test_pipelines_show_puts_a_multi_line_stage_error_below_the_table(
    run: Shipyard, session: Session, web: tuple[App, Environment]
) -> None:
    app, staging = web
    pipeline = make_pipeline(session, app, staging)
    pipeline.created_at = _ago(minutes=3)
    claim = stage_runs.claim_stage(
        session=session,
        pipeline_id=pipeline.id,
        stage="build",
        hostname="build@ci-runner-7.example.internal",
        stale_after=45,
    )
    assert claim.run is not None
    artifact = make_artifact(session, app, "one")
    stage_runs.complete_stage(
        session=session,
        pipeline=pipeline,
        stage="build",
        result_id=artifact.id,
        cache_hit=True,
        artifact_id=artifact.id,
    )
    stage_runs.claim_stage(
        session=session,
        pipeline_id=pipeline.id,
        stage="release",
        hostname="release@ci-runner-7.example.internal",
        stale_after=45,
    )
    stage_runs.fail_stage(
        session=session, pipeline=pipeline, stage="release", error=TRACEBACK, output="migrating"
    )
    session.commit()
    stages = {
        run.name: run for run in stage_runs.stages_of(session=session, pipeline_id=pipeline.id)
    }
    times = {"build": (180, 176.8), "release": (176, 113)}
    for name, (started, finished) in times.items():
        stages[name].started_at = _ago(seconds=started)
        stages[name].finished_at = _ago(seconds=finished)
        session.add(stages[name])
    session.add(pipeline)
    session.commit()

    result = run("pipelines", "show", str(pipeline.id), columns=80)

    assert result.exit_code == 0, result.output
    _snapshot(
        result.output.replace(str(pipeline.id), "<id>"),
        f"""\
Pipeline <id> (deploy) of web/staging: failed
ref HEAD, by api, created 2026-12-01 21:31:56 UTC
Stages
stage     status               worker                result            took
────────────────────────────────────────────────────────────────────────────────
build     succeeded (cached)   build@ci-runner-7     sha256:7692c3ad   3.2 s
release   failed               release@ci-runner-7                     1 min 3 s
run       skipped

release failed:
{TRACEBACK}

release output:
migrating
""",
        verbatim=TRACEBACK,
    )


@pytest.mark.usefixtures("frozen_now")
def test_ps_shows_the_live_release_and_its_processes(
    run: Shipyard, session: Session, web: tuple[App, Environment]
) -> None:
    app, staging = web
    release = make_release(session, app, staging, make_artifact(session, app, "one"))
    assert release.pipeline_id is not None
    deployment = deployments.begin_deployment(
        session=session, pipeline_id=release.pipeline_id, release=release, cause="deploy"
    )
    assert deployment is not None
    deployments.go_live(session=session, deployment=deployment, processes=[WEB, WORKER])
    deployment.started_at = _ago(hours=2, minutes=10)
    session.add(deployment)
    session.commit()

    result = run("ps", "-a", "web", "-e", "staging", columns=80)

    assert result.exit_code == 0, result.output
    _snapshot(
        result.output,
        """\
web/staging runs release v1 (sha256:7692c3ad, config v1)
live since 2 h ago (deploy)
answers at http://staging.web.localhost:8080
Processes
process    status    restarts     host    pid            url
───────────────────────────────────────────────────────────────────────────────
web.1      running   0            alpha   48213          http://127.0.0.1:41234
worker.1   crashed   5 (exit 1)   alpha   3f9c2a1b7d4e
""",
    )


@pytest.mark.usefixtures("frozen_now")
def test_history_lists_deployments_to_the_second_and_who_asked_with_a_failure_below(
    run: Shipyard, session: Session, web: tuple[App, Environment]
) -> None:
    app, staging = web
    v1 = make_release(session, app, staging, make_artifact(session, app, "one"))
    v2 = make_release(session, app, staging, make_artifact(session, app, "two"))
    assert v1.pipeline_id is not None and v2.pipeline_id is not None
    _go_live(session, v1, v1.pipeline_id, "deploy", _ago(hours=5))
    failed = deployments.begin_deployment(
        session=session, pipeline_id=v2.pipeline_id, release=v2, cause="deploy"
    )
    assert failed is not None
    deployments.fail_deployment(
        session=session, deployment=failed, error="web did not answer /healthz within 30 s"
    )
    failed.ended_at = _ago(hours=1)
    session.add(failed)
    by_cli = session.get(Pipeline, v1.pipeline_id)
    assert by_cli is not None
    by_cli.trigger, by_cli.requested_by = "cli", "ci-deployer"
    session.add(by_cli)
    session.commit()

    result = run("history", "-a", "web", "-e", "staging", columns=80)

    assert result.exit_code == 0, result.output
    _snapshot(
        result.output,
        """\
Deployments of web/staging, newest first
release   status   cause    at (UTC)              by
───────────────────────────────────────────────────────────────────
v2        failed   deploy   2026-12-01 20:34:56   api
v1        live     deploy   2026-12-01 16:34:56   cli (ci-deployer)

v2 failed:
web did not answer /healthz within 30 s
""",
    )


@pytest.mark.usefixtures("staging")
def test_tokens_ls_shows_short_ids_that_revoke_takes_back(run: Shipyard) -> None:
    created = run("tokens", "create", "--scope", "read", "--name", "dashboard")
    token_id = created.output.split()[1]

    listed = run("tokens", "ls", columns=80)
    revoked = run("tokens", "revoke", token_id[:8])

    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.output.splitlines() if "dashboard" in line)
    assert row.split()[:5] == [token_id[:8], "dashboard", "read", row.split()[3], "active"]
    assert row.split()[3].startswith("shp_") and row.split()[3].endswith("…")
    assert row.rstrip().endswith("never")
    assert revoked.exit_code == 0, revoked.output
    assert revoked.output == f"revoked {token_id}\n"
    assert "revoked" in run("tokens", "ls").output


@pytest.mark.usefixtures("staging")
def test_schedules_ls_puts_a_skip_reason_below_the_table_and_runs_takes_a_short_id(
    run: Shipyard, session: Session
) -> None:
    assert run("envs", "create", "production", "--app", "web").exit_code == 0
    added = run(
        "schedules", "add", "--app", "web", "--from", "staging", "--to", "production",
        "--cron", "* * * * *",
    )  # fmt: skip
    schedule_id = added.output.split()[1].rstrip(":")
    schedules.fire_due(session=session, now=utcnow() + timedelta(minutes=2))
    session.commit()

    listed = run("schedules", "ls", "--app", "web", columns=80)
    runs = run("schedules", "runs", schedule_id[:8], "--app", "web", columns=80)

    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.output.splitlines() if line.startswith(schedule_id[:8]))
    assert "skipped" in row
    reason = "staging has nothing live"
    assert f"\n\n{schedule_id[:8]} last skipped:\n" in listed.output
    assert reason in listed.output.split("last skipped:")[1]
    assert runs.exit_code == 0, runs.output
    assert f"Runs of schedule {schedule_id[:8]} (UTC), newest first" in runs.output
    assert "skipped" in runs.output and reason in runs.output


@pytest.mark.usefixtures("staging")
def test_subscriptions_deliveries_puts_attempt_errors_below_the_table(
    run: Shipyard, session: Session, web: tuple[App, Environment], settings: Settings
) -> None:
    added = run(
        "subscriptions", "add", "--app", "web", "--url", "http://127.0.0.1:9/hook",
        "--event", "pipeline.failed",
    )  # fmt: skip
    subscription_id = added.output.split()[1].rstrip(":")
    app, _ = web
    (queued,) = notifications.emit(session=session, app=app, event="pipeline.failed", data={})
    session.commit()
    outgoing = notifications.claim_attempt(
        session=session,
        box=settings.secret_box(),
        notification_id=queued.notification_id,
        now=utcnow(),
        stale_after=60,
    )
    assert outgoing is not None
    error = "ConnectError: [Errno 111] Connection refused (http://127.0.0.1:9/hook)"
    notifications.record_attempt(
        session=session,
        outgoing=outgoing,
        status_code=None,
        error=error,
        duration_ms=12.3,
        max_attempts=8,
    )
    session.commit()

    result = run("subscriptions", "deliveries", subscription_id[:8], "--app", "web", columns=80)

    assert result.exit_code == 0, result.output
    short = str(queued.notification_id)[:8]
    row = next(line for line in result.output.splitlines() if line.startswith(short))
    assert "pipeline.failed" in row and "#1 error 12ms" in row and error not in row
    assert f"\n\n{short} errors:\n#1: {error}\n" in result.output


@pytest.mark.usefixtures("frozen_now")
@pytest.mark.parametrize("columns", [80, 200])
def test_a_value_wider_than_its_column_is_cut_with_a_marker_never_broken(
    run: Shipyard, session: Session, web: tuple[App, Environment], columns: int
) -> None:
    app, staging = web
    artifact = make_artifact(session, app, "long")
    location = "registry.internal.example.com:5000/shipyard/web@" + artifact.id
    artifact.location = location
    artifact.created_at = _ago(minutes=3)
    pipeline = make_pipeline(session, app, staging)
    build = Build(
        pipeline_id=pipeline.id,
        app_id=app.id,
        ref="main",
        commit_sha=artifact.commit_sha,
        builder="local",
        artifact_id=artifact.id,
    )
    session.add_all([artifact, build])
    session.commit()

    result = run("artifacts", "-a", "web", columns=columns)

    assert result.exit_code == 0, result.output
    rows = [line.rstrip() for line in result.output.splitlines()]
    (row,) = [line for line in rows if line.startswith("sha256:")]
    assert len(rows) == 4 and all(len(line) <= columns for line in rows), result.output
    if columns == 200:
        assert row.endswith(location)  # room enough: whole
    else:
        assert row.endswith("…") and "   registry.internal." in row  # cut, on its one line


def test_config_that_did_not_go_live_is_shown_as_such(
    run: Shipyard, session: Session, web: tuple[App, Environment]
) -> None:
    app, staging = web
    release = make_release(session, app, staging, make_artifact(session, app, "one"))
    assert release.pipeline_id is not None
    _go_live(session, release, release.pipeline_id, "deploy", _ago(hours=1))
    live = run("config", "-a", "web", "-e", "staging")
    changed = run("config", "set", "MODE=new", "--no-deploy", "-a", "web", "-e", "staging")
    assert changed.exit_code == 0, changed.output

    shown = run("config", "-a", "web", "-e", "staging")

    assert "Config version 1" in live.output and "Not live" not in live.output
    assert "Config version 2" in shown.output and "  MODE=new" in shown.output
    assert "Not live: the live release runs config v1; these values (v2) go live" in shown.output
