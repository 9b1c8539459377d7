"""Rollback, promotion, release phase, history, queueing and gc on real workers and services."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tests.conftest import commit_file
from tests.integration.stack import Stack, fetch

PROCFILE = "web: python3 app.py\n"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def releases_of(stack: Stack, app: str, env: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = stack.api(
        "GET", f"/v1/apps/{app}/environments/{env}/releases", 200
    )
    return result


def test_rollback_serves_exactly_the_previous_release(distributed: Stack, hello_repo: Path) -> None:
    app = unique("rollback")
    distributed.create_app(app, hello_repo, envs=("staging",))
    first = distributed.deploy(app, "staging")
    change = distributed.patch_config(app, "staging", {"vars": {"GREETING": "Version two"}})
    assert distributed.wait_pipeline(change["pipeline_id"])["status"] == "succeeded"
    assert fetch(distributed.web_url(app, "staging")) == "Version two"

    pipeline = distributed.api(
        "POST", f"/v1/apps/{app}/environments/staging/rollback", 202, json={}
    )
    done = distributed.wait_pipeline(pipeline["id"])

    assert done["status"] == "succeeded", done
    assert done["kind"] == "rollback"
    assert [s["name"] for s in done["stages"]] == ["run"]
    current = distributed.current(app, "staging")
    assert current["release"]["id"] == first["release_id"]
    assert current["release"]["config_version"] == 1
    assert current["deployment"]["cause"] == "rollback"
    assert fetch(distributed.web_url(app, "staging")) == "Hello from Shipyard"
    assert [r["version"] for r in releases_of(distributed, app, "staging")] == [2, 1]


def test_rollback_is_refused_clearly_when_it_cannot_run(
    distributed: Stack, hello_repo: Path
) -> None:
    app = unique("norollback")
    distributed.create_app(app, hello_repo, envs=("staging",))
    path = f"/v1/apps/{app}/environments/staging/rollback"
    assert "no earlier release" in distributed.api("POST", path, 409, json={})["detail"]
    distributed.deploy(app, "staging")
    commit_file(hello_repo, "app.py", "import sys\nsys.exit(1)\n", "broken")
    failed = distributed.deploy(app, "staging")
    assert failed["status"] == "failed"

    assert "already live" in distributed.api("POST", path, 409, json={"to_version": 1})["detail"]
    never = distributed.api("POST", path, 409, json={"to_version": 2})["detail"]
    assert "never ran successfully" in never
    assert "no release v9" in distributed.api("POST", path, 404, json={"to_version": 9})["detail"]


def test_promotion_moves_the_artifact_with_the_target_config(
    distributed: Stack, hello_repo: Path
) -> None:
    app = unique("promote")
    distributed.create_app(app, hello_repo, envs=("staging", "production"))
    promotions = f"/v1/apps/{app}/promotions"
    refused = distributed.api("POST", promotions, 409, json={"from": "staging", "to": "production"})
    assert "no live" in refused["detail"]
    staging = distributed.deploy(app, "staging")
    distributed.patch_config(app, "production", {"vars": {"GREETING": "Hello, production"}})

    pipeline = distributed.api(
        "POST", promotions, 202, json={"from": "staging", "to": "production"}
    )
    done = distributed.wait_pipeline(pipeline["id"])

    assert done["status"] == "succeeded", done
    (release,) = releases_of(distributed, app, "production")
    assert release["cause"] == "promotion"
    assert release["artifact_id"] == staging["artifact_id"]
    assert release["source_release_id"] == staging["release_id"]
    assert fetch(distributed.web_url(app, "production")) == "Hello, production"
    assert fetch(distributed.web_url(app, "staging")) == "Hello from Shipyard"


def test_a_failing_release_command_blocks_the_run_and_the_live_release_keeps_serving(
    distributed: Stack, hello_repo: Path
) -> None:
    app = unique("phase")
    distributed.create_app(app, hello_repo, envs=("staging",))
    commit_file(hello_repo, "Procfile", PROCFILE + "release: echo migrating to v2\n", "phase")
    good = distributed.deploy(app, "staging")
    assert good["status"] == "succeeded", good
    release_stage = next(s for s in good["stages"] if s["name"] == "release")
    assert "migrating to v2" in release_stage["output"]
    commit_file(
        hello_repo,
        "Procfile",
        PROCFILE + "release: echo migration 0042 failed; exit 4\n",
        "failing migration",
    )

    failed = distributed.deploy(app, "staging")

    assert failed["status"] == "failed"
    stages = {s["name"]: s for s in failed["stages"]}
    assert stages["release"]["status"] == "failed"
    assert "exited with status 4" in stages["release"]["error"]
    assert "migration 0042 failed" in stages["release"]["output"]
    assert stages["run"]["status"] == "skipped"
    assert distributed.current(app, "staging")["release"]["id"] == good["release_id"]
    assert fetch(distributed.web_url(app, "staging")) == "Hello from Shipyard"
    statuses = [(r["version"], r["status"]) for r in releases_of(distributed, app, "staging")]
    assert statuses == [(2, "failed"), (1, "succeeded")]


def test_pipelines_of_one_environment_queue_and_release_phases_never_overlap(
    distributed: Stack, hello_repo: Path
) -> None:
    app = unique("queue")
    # The release phases' shared storage is where a confined release command can write.
    phase_log = distributed.data_dir / "storage" / app / "staging" / "phases.log"
    stamp = "$(date +%s.%N)"
    marks = '"$SHIPYARD_STORAGE_DIR/phases.log"'
    command = f"echo start {stamp} >> {marks}; sleep 0.5; echo end {stamp} >> {marks}"
    commit_file(hello_repo, "Procfile", PROCFILE + f"release: {command}\n", "slow phase")
    distributed.create_app(app, hello_repo, envs=("staging",))

    ids = [distributed.start_pipeline(app, "staging") for _ in range(3)]
    done = [distributed.wait_pipeline(pipeline_id) for pipeline_id in ids]

    assert [p["status"] for p in done] == ["succeeded"] * 3, done
    releases = {r["pipeline_id"]: r["version"] for r in releases_of(distributed, app, "staging")}
    assert [releases[pipeline_id] for pipeline_id in ids] == [1, 2, 3]  # in order
    assert distributed.current(app, "staging")["release"]["version"] == 3
    marks = [line.split() for line in phase_log.read_text().splitlines()]
    assert [kind for kind, _ in marks] == ["start", "end"] * 3  # never two starts in a row
    times = [float(t) for _, t in marks]
    assert times == sorted(times)
    windows = [
        (_time(s, "started_at"), _time(s, "finished_at"))
        for p in done
        for s in p["stages"]
        if s["name"] == "release"
    ]
    for (_, end), (start, _) in zip(windows, windows[1:], strict=False):
        assert end <= start


def test_history_answers_before_at_and_after_a_switch(distributed: Stack, hello_repo: Path) -> None:
    app = unique("history")
    distributed.create_app(app, hello_repo, envs=("staging",))
    distributed.deploy(app, "staging")
    second = distributed.wait_pipeline(
        distributed.patch_config(app, "staging", {"vars": {"GREETING": "two"}})["pipeline_id"]
    )
    assert second["status"] == "succeeded"
    deployments = distributed.api("GET", f"/v1/apps/{app}/environments/staging/deployments", 200)
    assert [d["release_version"] for d in deployments] == [2, 1]
    v2_start = datetime.fromisoformat(deployments[0]["started_at"])
    v1_start = datetime.fromisoformat(deployments[1]["started_at"])
    assert datetime.fromisoformat(deployments[1]["ended_at"]) == v2_start

    def live_at(instant: datetime, expect: int = 200) -> Any:
        return distributed.api(
            "GET",
            f"/v1/apps/{app}/environments/staging/history",
            expect,
            params={"at": instant.isoformat()},
        )

    tick = timedelta(microseconds=1)
    assert "nothing was live" in live_at(v1_start - tick, 404)["detail"]
    assert live_at(v1_start)["release"]["version"] == 1
    assert live_at(v2_start - tick)["release"]["version"] == 1
    assert live_at(v2_start)["release"]["version"] == 2
    assert live_at(v2_start + timedelta(days=1))["release"]["version"] == 2
    naive = distributed.client.get(
        f"/v1/apps/{app}/environments/staging/history", params={"at": "2026-01-01T00:00:00"}
    )
    assert naive.status_code == 422


def test_release_diff_shows_artifact_and_config_changes_but_no_secret(
    distributed: Stack, hello_repo: Path
) -> None:
    app = unique("diff")
    secret = f"pw-{uuid.uuid4().hex}"
    distributed.create_app(app, hello_repo, envs=("staging",))
    distributed.patch_config(
        app,
        "staging",
        {"vars": {"A": "1", "GONE": "x", "PASSWORD": secret}, "secrets": ["PASSWORD"]},
    )
    first = distributed.deploy(app, "staging")
    commit_file(hello_repo, "README", "new commit\n")
    change = distributed.patch_config(
        app,
        "staging",
        {
            "vars": {"A": "2", "GONE": None, "B": "new", "PASSWORD": secret + "!"},
            "secrets": ["PASSWORD"],
            "deploy": False,
        },
    )
    assert change["pipeline_id"] is None
    second = distributed.deploy(app, "staging")
    assert second["status"] == "succeeded"

    response = distributed.client.get(
        f"/v1/apps/{app}/environments/staging/releases/2/diff", params={"against": 1}
    )

    assert response.status_code == 200
    assert secret not in response.text
    diff = response.json()
    assert diff["artifact_changed"] is True
    assert diff["artifact_from"]["id"] == first["artifact_id"]
    assert diff["artifact_to"]["id"] == second["artifact_id"]
    changes = {c["key"]: c for c in diff["config"]}
    assert changes["A"] == {
        "key": "A",
        "change": "changed",
        "secret": False,
        "from": "1",
        "to": "2",
    }
    assert changes["B"]["change"] == "added" and changes["B"]["to"] == "new"
    assert changes["GONE"]["change"] == "removed"
    assert changes["PASSWORD"] == {
        "key": "PASSWORD",
        "change": "changed",
        "secret": True,
        "from": "<redacted>",
        "to": "<redacted>",
    }
    cli = distributed.run_cli("releases", "diff", "1", "2", "--app", app, "--env", "staging")
    assert "~ A: 1 → 2" in cli.stdout and secret not in cli.stdout


def test_gc_keeps_live_and_recent_artifacts_and_expires_the_rest(
    distributed: Stack, hello_repo: Path
) -> None:
    app = unique("gc")
    distributed.create_app(app, hello_repo, envs=("staging",))
    built = []
    for number in range(3):
        commit_file(hello_repo, "VERSION", f"{number}\n")
        pipeline = distributed.deploy(app, "staging")
        assert pipeline["status"] == "succeeded"
        built.append(pipeline["artifact_id"])
    store = distributed.data_dir / "artifacts" / "sha256"

    result = distributed.api("POST", "/v1/gc", 200, json={"keep": 2})

    assert built[0] in result["removed_artifacts"]
    assert (
        built[1] not in result["removed_artifacts"] and built[2] not in result["removed_artifacts"]
    )
    statuses = {r["version"]: r["status"] for r in releases_of(distributed, app, "staging")}
    assert statuses == {1: "expired", 2: "succeeded", 3: "succeeded"}
    for digest in built[1:]:
        assert (store / f"{digest.removeprefix('sha256:')}.tar.gz").is_file()
    gone = store / f"{built[0].removeprefix('sha256:')}.tar.gz"
    for _ in range(100):
        if not gone.exists():
            break
        time.sleep(0.1)
    assert not gone.exists()
    refused = distributed.api(
        "POST", f"/v1/apps/{app}/environments/staging/rollback", 409, json={"to_version": 1}
    )
    assert "expired" in refused["detail"]
    assert distributed.api(
        "POST", f"/v1/apps/{app}/environments/staging/rollback", 202, json={"to_version": 2}
    )


def _time(stage: dict[str, Any], key: str) -> datetime:
    return datetime.fromisoformat(stage[key])


def test_cli_rolls_back_promotes_and_answers_history(distributed: Stack, hello_repo: Path) -> None:
    app = unique("cliops")
    distributed.create_app(app, hello_repo, envs=("staging", "production"))
    distributed.deploy(app, "staging")
    distributed.wait_pipeline(
        distributed.patch_config(app, "staging", {"vars": {"GREETING": "two"}})["pipeline_id"]
    )

    rolled = distributed.run_cli("rollback", "--app", app, "--env", "staging")
    promoted = distributed.run_cli("promote", "--app", app, "staging", "production")
    now = datetime.now().astimezone().isoformat()
    at_now = distributed.run_cli("history", "--app", app, "--env", "staging", "--at", now)
    zulu = distributed.run_cli(
        "history", "--app", app, "--env", "staging", "--at", "2000-01-01T00:00:00Z", check=False
    )

    assert "staging now runs release v1" in rolled.stdout
    assert "production now runs release v1" in promoted.stdout
    assert "ran release v1 (sha256:" in at_now.stdout  # one line, whatever the width
    assert "live by: rollback, asked by cli (admin)" in at_now.stdout  # why it was live then
    assert "the release was made by: deploy" in at_now.stdout
    assert zulu.returncode == 1 and "nothing was live" in zulu.stderr
    assert fetch(distributed.web_url(app, "production")) == "Hello from Shipyard"
