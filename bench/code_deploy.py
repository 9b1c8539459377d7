"""10. Code-only deploy: examples/flask-blog, a commit that changes only its code, deployed until
the stable URL serves it.

The app is examples/flask-blog (Flask and gunicorn from requirements.txt, a release command)
with the local builder and runner, behind this host's router (`shipyard router`). Each commit
changes only `static/VERSION` (Flask serves it at /static/VERSION): its requirements and Python
are those of the commit before, so its build reuses the dependencies installed by the first one.

- deploy: from before `POST …/pipelines` until a GET of /static/VERSION through the stable URL
  answers that commit's number (a probe on its own keep-alive connection, every 5 ms);
- its stages, from the store's clocks: build, release (which runs the release command), and run
  stage start → live (the processes started and healthy);
- the app's own parts, measured apart on the same artifact without Shipyard: its release command
  (`flask --app blog init-db`, run to its end) and its start-up (gunicorn, from exec until
  `GET /health` answers 200), each in the unpacked artifact with its profile sourced;
- Shipyard's part: the deploy less those two.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import httpx

from bench.context import Bench
from bench.repos import make_app_repo
from bench.serving import router_running, until_served
from bench.stable_url import Probe, StableURL
from bench.stack import REPO_ROOT, free_port
from bench.stats import percentile

SCENARIO = "10. Code-only deploy"
APP = "blog"
ENV = "production"
FLASK_BLOG = REPO_ROOT / "examples" / "flask-blog"
VERSION_FILE = "static/VERSION"
START_TIMEOUT = 60.0
PROFILE = "for f in .profile.d/*.sh; do . ./$f; done; "


def run(bench: Bench) -> None:
    stack, plan, figures = bench.stack, bench.plan, bench.figures
    repo = stack.root / "blog-repo"
    shas = make_app_repo(
        repo, FLASK_BLOG, plan.repetitions * plan.code_deploy_samples + 2, version_file=VERSION_FILE
    )
    commits = iter(enumerate(shas, start=1))
    with router_running(stack):
        stack.api(
            "POST", "/v1/apps", 201, json={"name": APP, "repo": str(repo), "builder": "local"}
        )
        bench.create_environments(APP, [ENV], runner="local", health_path="/health")
        _, first_sha = next(commits)
        first = stack.start_pipeline(APP, ENV, first_sha)
        stack.wait_pipeline(first, timeout=600, poll=0.01)
        figures.add(
            SCENARIO,
            "first build (pip install), build stage",
            "ms",
            stage(bench, first, "build") * 1000,
        )
        current = stack.api("GET", f"/v1/apps/{APP}/environments/{ENV}/current", 200)
        probe = Probe(StableURL(current["url"]), path=f"/{VERSION_FILE}")
        try:
            _deploy(bench, probe, *next(commits))  # warm-up: the first code-only build
            for _ in range(plan.repetitions):
                deploys: list[float] = []
                parts: dict[str, list[float]] = {"build": [], "release": [], "run": []}
                for _ in range(plan.code_deploy_samples):
                    pipeline_id, seconds = _deploy(bench, probe, *next(commits))
                    deploys.append(seconds)
                    for name, values in parts.items():
                        values.append(stage(bench, pipeline_id, name))
                release_command, start_up = app_parts(bench, pipeline_id, plan.code_deploy_samples)
                own = percentile(release_command, 50) + percentile(start_up, 50)
                ms = 1000.0
                add = figures.add
                add(
                    SCENARIO,
                    "deploy until the stable URL serves it, p50",
                    "ms",
                    percentile(deploys, 50) * ms,
                )
                add(SCENARIO, "deploy until the stable URL serves it, max", "ms", max(deploys) * ms)
                add(
                    SCENARIO, "of which build stage, p50", "ms", percentile(parts["build"], 50) * ms
                )
                add(
                    SCENARIO,
                    "of which release stage, p50",
                    "ms",
                    percentile(parts["release"], 50) * ms,
                )
                add(SCENARIO, "of which run stage, p50", "ms", percentile(parts["run"], 50) * ms)
                add(
                    SCENARIO,
                    "the app's release command alone, p50",
                    "ms",
                    percentile(release_command, 50) * ms,
                )
                add(
                    SCENARIO,
                    "the app's start-up alone (exec → /health 200), p50",
                    "ms",
                    percentile(start_up, 50) * ms,
                )
                add(
                    SCENARIO,
                    "Shipyard's part: deploy p50 less the app's release command and start-up",
                    "ms",
                    (percentile(deploys, 50) - own) * ms,
                    target="≤ 1 s",
                    check=("<=", 1000.0),
                )
        finally:
            probe.close()


def _deploy(bench: Bench, probe: Probe, number: int, sha: str) -> tuple[str, float]:
    """Deploy commit `sha` until the stable URL serves its number; (pipeline id, seconds)."""
    stack = bench.stack
    started = time.monotonic()
    pipeline_id = stack.start_pipeline(APP, ENV, sha)
    served = until_served(stack, probe, pipeline_id, lambda body: body.strip() == str(number))
    stack.wait_pipeline(pipeline_id, poll=0.01)  # the old release drained and stopped
    return pipeline_id, served - started


def stage(bench: Bench, pipeline_id: str, name: str) -> float:
    """Seconds of one stage of a pipeline, as its worker recorded it."""
    row = bench.stack.db.execute(
        "SELECT EXTRACT(EPOCH FROM finished_at - started_at) FROM stage_run"
        " WHERE pipeline_id = %s AND name = %s ORDER BY attempt DESC LIMIT 1",
        (pipeline_id, name),
    ).fetchone()
    if row is None:
        raise RuntimeError(f"pipeline {pipeline_id} recorded no {name} stage")
    return float(row[0])


def app_parts(bench: Bench, pipeline_id: str, samples: int) -> tuple[list[float], list[float]]:
    """The app's release command and its start-up, each timed `samples` times on pipeline
    `pipeline_id`'s artifact unpacked here, without Shipyard."""
    row = bench.stack.db.execute(
        "SELECT a.location FROM artifact a JOIN pipeline p ON p.artifact_id = a.id WHERE p.id = %s",
        (pipeline_id,),
    ).fetchone()
    if row is None:
        raise RuntimeError(f"pipeline {pipeline_id} has no artifact")
    work = Path(tempfile.mkdtemp(prefix="code-deploy-", dir=bench.stack.root))
    try:
        app_dir, storage = work / "app", work / "storage"
        storage.mkdir()
        with tarfile.open(row[0]) as tar:
            tar.extractall(app_dir, filter="data")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(app_dir),
            "LANG": "C.UTF-8",
            "SHIPYARD_STORAGE_DIR": str(storage),
        }
        release, start_up = [], []
        for _ in range(samples):
            began = time.monotonic()
            subprocess.run(
                ["/bin/sh", "-c", PROFILE + "exec flask --app blog init-db"],
                cwd=app_dir,
                env=env,
                check=True,
                capture_output=True,
            )
            release.append(time.monotonic() - began)
            start_up.append(_start_up(app_dir, env))
        return release, start_up
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _start_up(app_dir: Path, env: dict[str, str]) -> float:
    """Seconds from exec of the web process until its /health answers 200 (polled every 5 ms)."""
    port = free_port()
    command = PROFILE + f"exec gunicorn --bind 127.0.0.1:{port} blog:app"
    began = time.monotonic()
    process = subprocess.Popen(
        ["/bin/sh", "-c", command],
        cwd=app_dir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = began + START_TIMEOUT
        with httpx.Client(trust_env=False, timeout=2) as client:
            while time.monotonic() < deadline:
                try:
                    if client.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                        return time.monotonic() - began
                except httpx.HTTPError:
                    pass
                if process.poll() is not None:
                    raise RuntimeError(
                        f"gunicorn exited with {process.returncode} before answering"
                    )
                time.sleep(0.005)
        raise RuntimeError(f"gunicorn did not answer /health within {START_TIMEOUT:g}s")
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
