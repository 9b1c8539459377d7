"""Shipyard as users install it: the wheel in a clean venv beside another distribution that has
top-level `shared` and `workers` modules, and `shipyard up` run from inside an app repository that
has its own `api/`, `cli/`, `workers/`, `shared/` and `shipyard/` packages. Nothing of the user's
is imported by Shipyard's processes, and the other distribution still imports."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.stack import Stack, fetch, free_port, stack_environment
from tests.integration.up import restart_up
from tests.repos import git

ROOT = Path(__file__).resolve().parents[2]
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".shipyard",
    "test-output",
)  # fmt: skip
# The packages an app repository may hold that Shipyard's own parts were once named after.
USER_PACKAGES = ("api", "cli", "workers", "shared", "shipyard")


def _run(*argv: str | Path, cwd: Path | None = None) -> str:
    # Nothing of the test run's own import path: the venv must stand on its own.
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    result = subprocess.run(
        [str(part) for part in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{argv} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _build_wheel(project: Path, name: str, out: Path) -> Path:
    # No build isolation: the dev venv's setuptools builds it, so the test needs no network.
    _run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", out, project)  # fmt: skip
    (wheel,) = out.glob(f"{name}-*.whl")
    return wheel


def _other_distribution(where: Path) -> Path:
    """A distribution named `collide` providing top-level `shared` and `workers` packages."""
    project = where / "collide"
    for package in ("shared", "workers"):
        (project / package).mkdir(parents=True)
        (project / package / "__init__.py").write_text(f'ORIGIN = "collide.{package}"\n')
    (project / "pyproject.toml").write_text(
        textwrap.dedent("""\
            [build-system]
            requires = ["setuptools"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "collide"
            version = "1.0"

            [tool.setuptools]
            packages = ["shared", "workers"]
            """)
    )
    return project


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean venv holding Shipyard's wheel and `collide`; returns its `bin/` directory.

    Shipyard's dependencies come from the test venv's site-packages through a `.pth` line (its
    `.pth` files, the editable install's among them, are not run from there), so that the venv's
    own site-packages holds just the two wheels."""
    where = tmp_path_factory.mktemp("install")
    wheels = where / "wheels"
    # Built from a copy of the tree (its links kept): setuptools' build/ stays out of the checkout.
    tree = where / "shipyard-source"
    shutil.copytree(ROOT, tree, symlinks=True, ignore=_NOT_SOURCE)
    shipyard_wheel = _build_wheel(tree, "shipyard", wheels)
    other_wheel = _build_wheel(_other_distribution(where), "collide", wheels)
    venv = where / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps",
         "--no-index", shipyard_wheel, other_wheel)  # fmt: skip
    site = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    (Path(site.strip()) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv / "bin"


@pytest.fixture
def user_repo(hello_repo: Path, tmp_path: Path) -> tuple[Path, Path]:
    """examples/hello with packages named like Shipyard's parts; each leaves a mark if imported."""
    marks = tmp_path / "imported"
    marks.mkdir()
    for package in USER_PACKAGES:
        (hello_repo / package).mkdir()
        (hello_repo / package / "__init__.py").write_text(
            f"open({str(marks / package)!r}, 'w').write('imported')\n"
            f"raise ImportError('the app repository\\'s {package} package was imported')\n"
        )
    git(hello_repo, "add", "-A")
    git(hello_repo, "commit", "--quiet", "-m", "packages named like Shipyard's")
    return hello_repo, marks


@pytest.fixture
def up_in_user_repo(
    installed: Path, user_repo: tuple[Path, Path], tmp_path: Path
) -> Iterator[Stack]:
    """The installed `shipyard up`, started from inside the app repository."""
    repo, _marks = user_repo
    port = free_port()
    env = stack_environment(tmp_path / "data", SHIPYARD_URL=f"http://127.0.0.1:{port}")
    env.pop("PYTHONPATH", None)
    stack = Stack(
        url=f"http://127.0.0.1:{port}",
        token="",
        env=env,
        data_dir=tmp_path / "data",
        executable=str(installed / "shipyard"),
        cwd=repo,
    )
    try:
        restart_up(stack)
        yield stack
    finally:
        stack.stop_all()


def test_the_wheel_installs_one_import_package(installed: Path) -> None:
    found = _run(
        installed / "python", "-c",
        "import shipyard, shared, workers; "
        "print(shipyard.__file__); print(shared.ORIGIN, workers.ORIGIN)",
        cwd=installed,  # `python -c` imports from its working directory first
    ).split()  # fmt: skip
    assert Path(found[0]).is_relative_to(installed.parent), found
    assert found[1:] == ["collide.shared", "collide.workers"]


def test_up_from_an_app_repository_imports_none_of_its_packages(
    up_in_user_repo: Stack, user_repo: tuple[Path, Path], installed: Path
) -> None:
    stack = up_in_user_repo
    repo, marks = user_repo
    stack.run_cli("apps", "create", "hello", "--repo", str(repo))
    stack.run_cli("envs", "create", "staging", "--app", "hello")

    deploy = stack.run_cli("deploy", "--app", "hello", "--env", "staging", check=False)

    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    assert "Deployed release v1 to staging" in deploy.stdout
    ps = json.loads(stack.run_cli("ps", "-a", "hello", "-e", "staging", "--json").stdout)
    assert fetch(ps["processes"][0]["url"]) == "Hello from Shipyard"
    assert sorted(path.name for path in marks.iterdir()) == []
    # The other distribution's modules are untouched by Shipyard's install.
    other = _run(installed / "python", "-c", "import shared; print(shared.ORIGIN)", cwd=installed)
    assert other.strip() == "collide.shared"
