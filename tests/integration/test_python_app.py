"""A Python app deployed as on Heroku: requirements.txt and a Procfile, nothing else."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO_ROOT, commit_file
from tests.django_app import DJANGO_APP
from tests.integration.stack import Stack
from tests.integration.traffic import router_client
from tests.python_packages import GREETING_REQUIREMENT, write_greeting_sdist
from tests.repos import git

FLASK_BLOG = REPO_ROOT / "examples" / "flask-blog"


@pytest.mark.timeout(600)
def test_the_flask_blog_deploys_and_keeps_its_posts_across_config_code_and_rollback(
    distributed: Stack, tmp_path: Path
) -> None:
    # One dependency pip must build from source, so that its wheel cache shows where it is;
    # it comes with the app (a confined build sees the commit, not the test's folders).
    repo = tmp_path / "blog-repo"
    shutil.copytree(FLASK_BLOG, repo)
    write_greeting_sdist(repo / "wheelhouse")
    with (repo / "requirements.txt").open("a") as requirements:
        requirements.write(f"--find-links ./wheelhouse\n{GREETING_REQUIREMENT}\n")
    git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", "blog")
    app = f"blog-{uuid.uuid4().hex[:8]}"
    distributed.create_app(app, repo, envs=("staging",))

    pipeline = distributed.wait_pipeline(distributed.start_pipeline(app, "staging"), timeout=300)

    assert pipeline["status"] == "succeeded", pipeline
    build_log = distributed.api("GET", f"/v1/pipelines/{pipeline['id']}/log", 200)["log"]
    assert "-----> Python app detected" in build_log
    release = next(s for s in pipeline["stages"] if s["name"] == "release")
    assert "database ready" in (release.get("output") or ""), release
    pip_cache = distributed.data_dir / "cache" / "builds" / app / "pip"  # the app's own
    wheels = list((pip_cache / "wheels").rglob("*.whl"))
    assert [w.name.split("-")[0] for w in wheels] == ["shipyard_greeting"]
    url = distributed.web_url(app, "staging")
    with httpx.Client(base_url=url, trust_env=False, timeout=10) as client:
        created = client.post("/posts", data={"title": "First post"}, follow_redirects=False)
        page = client.get("/")
    assert created.status_code == 303
    assert page.status_code == 200 and "First post" in page.text

    # The database lives in the environment's persistent storage, not in the release.
    storage = distributed.data_dir / "storage" / app / "staging"
    assert (storage / "blog.db").is_file()
    assert not list((distributed.data_dir / "run" / app).rglob("blog.db"))

    # A one-time step, run once in the live release (`shipyard run`), not at every release.
    seeded = distributed.run_cli(
        "run", "-a", app, "-e", "staging", "--", "flask", "--app", "blog", "seed-db"
    )
    assert seeded.stdout == "welcome post written\n"
    assert "Welcome to the blog" in _page(distributed, app)

    # A config change is a new release (v2): the post is still there.
    distributed.wait_pipeline(
        distributed.patch_config(app, "staging", {"vars": {"BLOG_TITLE": "Notes"}})["pipeline_id"]
    )
    assert _live_version(distributed, app) == 2
    assert "First post" in _page(distributed, app)

    # A code change (v3), deployed: new code, same posts.
    blog = (repo / "blog.py").read_text().replace("<h1>Blog</h1>", "<h1>Blog, v3</h1>")
    commit_file(repo, "blog.py", blog, "a new heading")
    assert distributed.deploy(app, "staging")["status"] == "succeeded"
    page_v3 = _page(distributed, app)
    assert "Blog, v3" in page_v3 and "First post" in page_v3

    # Rolled back to v1: the old code, and still the post.
    rollback = distributed.api(
        "POST", f"/v1/apps/{app}/environments/staging/rollback", 202, json={"to_version": 1}
    )
    assert distributed.wait_pipeline(rollback["id"])["status"] == "succeeded"
    page_v1 = _page(distributed, app)
    assert "Blog, v3" not in page_v1 and "First post" in page_v1
    assert page_v1.count("Welcome to the blog") == 1  # written once, by the one-off
    assert distributed.api("GET", f"/v1/apps/{app}/environments/staging/storage", 200) == {
        "variable": "SHIPYARD_STORAGE_DIR",
        "configured": None,
        "location": str(storage),
    }


def _live_version(stack: Stack, app: str) -> int:
    return int(stack.current(app, "staging")["release"]["version"])


def _page(stack: Stack, app: str) -> str:
    response = httpx.get(stack.web_url(app, "staging"), trust_env=False, timeout=10)
    response.raise_for_status()
    return response.text


@pytest.mark.timeout(600)
def test_a_django_app_deploys_with_the_default_builder_and_serves_its_collected_static_files(
    distributed: Stack, tmp_path: Path
) -> None:
    repo = tmp_path / "bakery"
    for name, content in DJANGO_APP.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(content)
    git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "-m", "bakery")
    app = f"bakery-{uuid.uuid4().hex[:8]}"
    distributed.create_app(app, repo, envs=("production",))
    host = f"production.{app}.localhost"
    # Django answers 400 to a Host it does not list: the health check sends this one.
    config = {"ALLOWED_HOSTS": host, "SECRET_KEY": uuid.uuid4().hex}
    distributed.patch_config(
        app, "production", {"vars": config, "secrets": ["SECRET_KEY"], "deploy": False}
    )

    pipeline = distributed.wait_pipeline(distributed.start_pipeline(app, "production"), timeout=300)

    build_log = distributed.api("GET", f"/v1/pipelines/{pipeline['id']}/log", 200)["log"]
    errors = [(s["name"], s["error"]) for s in pipeline["stages"] if s["error"]]
    assert pipeline["status"] == "succeeded", (errors, build_log[-3000:])
    assert "-----> Python app detected (requirements.txt)" in build_log
    assert "-----> Django app: python3 manage.py collectstatic --noinput" in build_log
    url = distributed.api("GET", f"/v1/apps/{app}/environments", 200)[0]["url"]
    with router_client(url) as client:
        page = client.get("/")
        css = client.get("/static/site.css")
    assert (page.status_code, page.text) == (200, "bakery is open")
    assert (css.status_code, css.text) == (200, "body { color: saddlebrown; }\n")
