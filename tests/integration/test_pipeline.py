"""A commit goes in, a running, health-checked app comes out: distributed mode, real services."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx

from tests.conftest import commit_file
from tests.integration.stack import Stack, fetch

BROKEN_APP = """import sys
print("starting, but the database is missing", flush=True)
sys.exit(3)
"""


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_pipeline_runs_each_stage_on_its_own_pool_and_the_app_answers(
    distributed: Stack, hello_repo: Path
) -> None:
    app = unique("hello")
    distributed.create_app(app, hello_repo, envs=("staging",))

    pipeline = distributed.deploy(app, "staging")

    assert pipeline["status"] == "succeeded", pipeline
    stages = {stage["name"]: stage for stage in pipeline["stages"]}
    assert list(stages) == ["build", "release", "run"]
    for name, stage in stages.items():
        assert stage["status"] == "succeeded"
        assert stage["hostname"].startswith(f"{name}@"), stage
        assert stage["attempt"] == 1
    assert stages["build"]["result_id"] == pipeline["artifact_id"]
    assert pipeline["artifact_id"].startswith("sha256:")
    assert stages["release"]["result_id"] == pipeline["release_id"]
    assert stages["run"]["result_id"] == pipeline["deployment_id"]
    assert fetch(distributed.web_url(app, "staging")) == "Hello from Shipyard"
    current = distributed.current(app, "staging")
    assert current["release"]["version"] == 1
    assert current["deployment"]["status"] == "live"


def test_same_commit_twice_reuses_the_artifact_and_records_a_cache_hit(
    distributed: Stack, hello_repo: Path
) -> None:
    app = unique("cache")
    distributed.create_app(app, hello_repo, envs=("staging",))

    first = distributed.deploy(app, "staging")
    second = distributed.deploy(app, "staging")

    assert first["status"] == second["status"] == "succeeded"
    assert second["artifact_id"] == first["artifact_id"]
    assert [s["cache_hit"] for s in first["stages"] if s["name"] == "build"] == [False]
    assert [s["cache_hit"] for s in second["stages"] if s["name"] == "build"] == [True]
    artifacts = distributed.api("GET", f"/v1/apps/{app}/artifacts", 200)
    assert [a["id"] for a in artifacts] == [first["artifact_id"]]
    log = distributed.api("GET", f"/v1/pipelines/{second['id']}/log", 200)
    assert log["cache_hit"] is True and "Cache hit" in log["log"]
    releases = distributed.api("GET", f"/v1/apps/{app}/environments/staging/releases", 200)
    assert [r["version"] for r in releases] == [2, 1]


def test_config_change_makes_a_new_release_with_the_same_artifact(
    distributed: Stack, hello_repo: Path
) -> None:
    app = unique("config")
    distributed.create_app(app, hello_repo, envs=("staging",))
    first = distributed.deploy(app, "staging")

    result = distributed.patch_config(app, "staging", {"vars": {"GREETING": "Bonjour"}})
    pipeline = distributed.wait_pipeline(result["pipeline_id"])

    assert pipeline["status"] == "succeeded", pipeline
    assert [s["name"] for s in pipeline["stages"]] == ["release", "run"]
    releases = distributed.api("GET", f"/v1/apps/{app}/environments/staging/releases", 200)
    assert [(r["version"], r["cause"], r["config_version"]) for r in releases] == [
        (2, "config", 2),
        (1, "deploy", 1),
    ]
    assert releases[0]["artifact_id"] == releases[1]["artifact_id"] == first["artifact_id"]
    assert fetch(distributed.web_url(app, "staging")) == "Bonjour"


def test_unhealthy_release_fails_and_the_previous_one_keeps_serving(
    distributed: Stack, hello_repo: Path
) -> None:
    app = unique("broken")
    distributed.create_app(app, hello_repo, envs=("staging",))
    good = distributed.deploy(app, "staging")
    good_url = distributed.web_url(app, "staging")
    broken_sha = commit_file(hello_repo, "app.py", BROKEN_APP, "break the app")

    failed = distributed.deploy(app, "staging", ref=broken_sha)

    assert failed["status"] == "failed"
    run = next(s for s in failed["stages"] if s["name"] == "run")
    assert run["status"] == "failed"
    assert "exited during the health check" in run["error"]
    assert "the database is missing" in run["error"]  # the tail of the process output
    assert "run stage failed" in failed["error"]
    current = distributed.current(app, "staging")
    assert current["release"]["id"] == good["release_id"]
    assert fetch(good_url) == "Hello from Shipyard"
    releases = distributed.api("GET", f"/v1/apps/{app}/environments/staging/releases", 200)
    assert [(r["version"], r["status"]) for r in releases] == [(2, "failed"), (1, "succeeded")]


def test_secrets_reach_the_app_but_never_the_api_the_build_or_the_logs(
    distributed: Stack, hello_repo: Path
) -> None:
    app = unique("secret")
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    commit_file(
        hello_repo,
        "shipyard.toml",
        '[build]\ncommand = "env | grep -v -e ^PWD= -e ^HOME= > build-env.txt && echo built"\n',
        "dump the build environment",
    )
    # A release command that prints a secret and succeeds: its output is kept redacted.
    commit_file(
        hello_repo, "Procfile", "web: python3 app.py\nrelease: echo releasing with $API_KEY\n"
    )
    distributed.create_app(app, hello_repo, envs=("staging",))
    distributed.patch_config(
        app,
        "staging",
        {"vars": {"GREETING": secret, "API_KEY": secret}, "secrets": ["GREETING", "API_KEY"]},
    )

    pipeline = distributed.deploy(app, "staging")

    assert pipeline["status"] == "succeeded", pipeline
    assert fetch(distributed.web_url(app, "staging")) == secret  # the app does get it
    responses = [
        distributed.client.get(f"/v1/apps/{app}/environments/staging/config"),
        distributed.client.get(f"/v1/pipelines/{pipeline['id']}"),
        distributed.client.get(f"/v1/pipelines/{pipeline['id']}/log"),
        distributed.client.get(f"/v1/apps/{app}/environments/staging/releases"),
        distributed.client.get(f"/v1/apps/{app}/environments/staging/current"),
    ]
    for response in responses:
        assert response.status_code == 200
        assert secret not in response.text
    config = responses[0].json()
    assert config["vars"]["GREETING"] == "<redacted>"
    (release,) = [s for s in responses[1].json()["stages"] if s["name"] == "release"]
    assert release["output"] == "releasing with <redacted>\n"
    assert "SHIPYARD_SECRET_KEY" not in responses[2].text
    artifact = distributed.data_dir / "artifacts" / "sha256"
    assert secret.encode() not in _gunzip(
        artifact / f"{pipeline['artifact_id'].removeprefix('sha256:')}.tar.gz"
    )
    for log in (distributed.data_dir / "logs").glob("*.log"):
        assert secret not in log.read_text(errors="replace"), log.name
    build_env = _file_in_artifact(distributed, pipeline["artifact_id"], "build-env.txt")
    assert "SHIPYARD" not in build_env and secret not in build_env
    assert "SOURCE_VERSION=" in build_env


def test_worker_logs_are_json_lines_carrying_the_pipeline_id(
    distributed: Stack, hello_repo: Path
) -> None:
    app = unique("logs")
    distributed.create_app(app, hello_repo, envs=("staging",))
    pipeline = distributed.deploy(app, "staging")
    assert pipeline["status"] == "succeeded"

    for queue in ("build", "release", "run"):
        lines = distributed.log_path(f"worker-{queue}").read_text().splitlines()
        ours = [
            json.loads(line) for line in lines if line.startswith("{") and pipeline["id"] in line
        ]
        events = {entry["event"] for entry in ours}
        assert {"stage.started", "stage.succeeded"} <= events, (queue, events)
        assert all(entry["pipeline_id"] == pipeline["id"] for entry in ours)
        assert all(entry["stage"] == queue for entry in ours)
    release_lines = [
        json.loads(line)
        for line in distributed.log_path("worker-release").read_text().splitlines()
        if line.startswith("{") and pipeline["id"] in line
    ]
    succeeded = next(e for e in release_lines if e["event"] == "stage.succeeded")
    assert succeeded["release_id"] == pipeline["release_id"]


def test_api_rejects_requests_without_the_token(distributed: Stack) -> None:
    response = httpx.get(f"{distributed.url}/v1/apps", timeout=5, trust_env=False)
    assert response.status_code == 401
    assert "token" in response.json()["detail"]


def _gunzip(path: Path) -> bytes:
    import gzip

    return gzip.decompress(path.read_bytes())


def _file_in_artifact(stack: Stack, digest: str, name: str) -> str:
    import tarfile

    path = stack.data_dir / "artifacts" / "sha256" / f"{digest.removeprefix('sha256:')}.tar.gz"
    with tarfile.open(path) as tar:
        member = tar.extractfile(name)
        assert member is not None
        return member.read().decode()


def test_two_apps_with_byte_identical_builds_share_the_artifact_and_each_gets_its_cache_hit(
    distributed: Stack, hello_repo: Path
) -> None:
    first_app, second_app = unique("twin"), unique("twin")
    for app in (first_app, second_app):
        distributed.create_app(app, hello_repo, envs=("staging",))

    one = distributed.deploy(first_app, "staging")
    two = distributed.deploy(second_app, "staging")
    again = distributed.deploy(second_app, "staging")

    assert one["artifact_id"] == two["artifact_id"] == again["artifact_id"]  # same content
    build = [next(s for s in p["stages"] if s["name"] == "build") for p in (one, two, again)]
    assert [b["cache_hit"] for b in build] == [False, False, True]  # the cache is per app
    for app in (first_app, second_app):
        listed = distributed.api("GET", f"/v1/apps/{app}/artifacts", 200)
        assert [a["id"] for a in listed] == [one["artifact_id"]]
