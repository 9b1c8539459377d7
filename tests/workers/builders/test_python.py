"""The Python buildpack: real pip from PyPI, relocatable artifacts, and the runner's side of it.

Most tests install tabulate (one pure-Python module with a `tabulate` console script, 35 kB);
one builds and runs examples/flask-blog, the app a user would deploy.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import httpx
import pytest

from shipyard.shared.artifacts import FileStore
from shipyard.shared.exceptions import StageFailed
from shipyard.shared.manifest import read_procfile, release_command
from shipyard.shared.process_record import ProcessRecord
from shipyard.shared.schemas import AppCreate
from shipyard.workers.archives import first_layer
from shipyard.workers.build_log import BuildLog
from shipyard.workers.builders import BUILDERS, get_builder
from shipyard.workers.builders.base import Builder, BuildRequest, BuiltArtifact
from shipyard.workers.builders.local import pack_reproducibly
from shipyard.workers.builders.python import (
    PROFILE_SCRIPT,
    declared_dependencies,
    is_django,
    pinned_python,
)
from shipyard.workers.context import WorkerContext
from shipyard.workers.runners.base import ReleaseSpec, run_to_end
from shipyard.workers.runners.local import LocalRunner
from shipyard.workers.runners.switch import health_gated_start
from shipyard.workers.runtime import find_python3, with_profile
from shipyard.workers.sandbox import Bind, Sandbox
from tests.django_app import DJANGO_APP
from tests.python_packages import (
    GREETING_MODULE,
    GREETING_OUTPUT,
    GREETING_PYPROJECT,
    GREETING_REQUIREMENT,
    write_greeting_sdist,
)

COMMIT_TIME = 1_700_000_000
FLASK_BLOG = Path(__file__).resolve().parents[3] / "examples" / "flask-blog"
TABULATE_APP = {"requirements.txt": "tabulate==0.9.0\n", "Procfile": "web: tabulate\n"}


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "artifacts")


def _builder(name: str, store: FileStore, tmp_path: Path) -> Builder:
    # The registry's own drivers; builders only take the store and the sandbox (the default,
    # auto: confined where bubblewrap works) from the worker's context. A test's wheelhouse
    # is shown to the build as an operator would show one (SHIPYARD_SANDBOX_PATHS).
    wheelhouse = tmp_path / "wheelhouse"
    sandbox = Sandbox("auto", data_dir=tmp_path / "data", extra_paths=[wheelhouse])
    return get_builder(name, cast(WorkerContext, SimpleNamespace(store=store, sandbox=sandbox)))


def _source(tmp_path: Path, build: str, files: dict[str, str]) -> BuildRequest:
    """A build laid out as the build stage lays it: `<scratch>/src` is the exported commit."""
    source = tmp_path / build / "src"
    for name, content in files.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(content)
    return BuildRequest(
        app="web",
        commit_sha="a" * 40,
        commit_timestamp=COMMIT_TIME,
        source_dir=source,
        work_dir=source.parent,
        timeout=300,
        cache_dir=tmp_path / "data" / "cache",
        layer_dir=tmp_path / "data" / "layers",
    )


def _build(
    builder_name: str, store: FileStore, request: BuildRequest, log: BuildLog | None = None
) -> BuiltArtifact:
    builder = _builder(builder_name, store, request.work_dir.parent)
    return builder.build(request, log or BuildLog(limit=1_000_000))


def _unpack(artifact: Path, target: Path) -> Path:
    target.mkdir(parents=True)
    with tarfile.open(artifact) as tar:
        tar.extractall(target, filter="data")
    return target


def _members(artifact: Path) -> dict[str, bytes]:
    with tarfile.open(artifact) as tar:
        return {
            m.name: (tar.extractfile(m) or io.BytesIO()).read()
            for m in tar.getmembers()
            if m.isfile()
        }


def _run_in(app_dir: Path, command: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`command` as the local runner starts one: in the app's root, after its .profile.d."""
    env = {"PATH": os.environ["PATH"], "HOME": str(app_dir), "LANG": "C.UTF-8"}
    return subprocess.run(
        ["/bin/sh", "-c", with_profile(command)],
        cwd=app_dir,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _host_python_version(tmp_path: Path) -> str:
    sandbox = Sandbox("auto", data_dir=tmp_path)
    (tmp_path / "probe").mkdir(exist_ok=True)
    sandbox.give("web", tmp_path / "probe")
    place = Bind(tmp_path / "probe", str(tmp_path / "probe"))
    return find_python3(sandbox.jail("web", [place], place), {"PATH": os.environ["PATH"]}).version


# --- the buildpack ------------------------------------------------------------------------------


@pytest.mark.timeout(300)
@pytest.mark.network
def test_the_default_builder_detects_a_python_app_and_installs_it_relocatably(
    tmp_path: Path, store: FileStore
) -> None:
    log = BuildLog(limit=1_000_000)

    built = _build("local", store, _source(tmp_path, "build", TABULATE_APP), log)

    files = _members(Path(built.location))
    assert "-----> Python app detected" in log.text()
    assert "tabulate/__init__.py" in {n.removeprefix(".python/site-packages/") for n in files}
    script = files[".python/bin/tabulate"].decode()
    assert script.splitlines()[0] == "#!/usr/bin/env python3"
    assert files[".profile.d/python.sh"].decode() == PROFILE_SCRIPT
    assert files[".shipyard/python-version"].decode() == _host_python_version(tmp_path) + "\n"
    _assert_bytecode_only_of_the_dependencies(files)


def _assert_bytecode_only_of_the_dependencies(files: dict[str, bytes]) -> None:
    """The dependencies' modules compiled at build time, with relative paths and never checked
    against a time; nothing else of the build left bytecode."""
    compiled = {name: data for name, data in files.items() if name.endswith(".pyc")}
    assert compiled, "the dependencies were not compiled"
    assert all(name.startswith(".python/site-packages/") for name in compiled)
    # PEP 552: flags 0b01, hash-based and unchecked.
    assert {int.from_bytes(data[4:8], "little") for data in compiled.values()} == {0b01}


@pytest.mark.timeout(300)
@pytest.mark.network
def test_the_console_script_and_the_package_work_wherever_the_artifact_is_unpacked(
    tmp_path: Path, store: FileStore
) -> None:
    request = _source(tmp_path, "build", TABULATE_APP)
    built = _build("local", store, request)
    shutil.rmtree(request.work_dir)  # nothing may still point into the build

    for place in ("host-a/app", "somewhere/else/entirely"):
        app_dir = _unpack(Path(built.location), tmp_path / place)

        table = _run_in(app_dir, "tabulate", stdin="1 2\n33 4\n")
        module = _run_in(app_dir, "python3 -c 'import tabulate; print(tabulate.__file__)'")

        assert table.returncode == 0, table.stderr
        assert table.stdout.splitlines() == ["--  -", " 1  2", "33  4", "--  -"]
        assert module.stdout.strip() == str(app_dir / ".python/site-packages/tabulate/__init__.py")


@pytest.mark.timeout(300)
@pytest.mark.network
def test_the_same_commit_built_twice_gives_the_same_digest(
    tmp_path: Path, store: FileStore
) -> None:
    first_request = _source(tmp_path, "first-build", TABULATE_APP)
    first_request = BuildRequest(**{**first_request.__dict__, "cache_dir": None})  # cold, no cache
    second_request = _source(tmp_path, "second-build", TABULATE_APP)

    first = _build("local", store, first_request)
    second = _build("local", store, second_request)

    assert first.digest == second.digest
    assert first.location == second.location


@pytest.mark.timeout(300)
@pytest.mark.network
def test_a_code_only_commit_reuses_the_installed_dependencies_and_the_digest_stays_reproducible(
    tmp_path: Path, store: FileStore
) -> None:
    logs = [BuildLog(limit=1_000_000) for _ in range(4)]
    code_change = {**TABULATE_APP, "app.py": "print('new code')\n"}
    first = _build("local", store, _source(tmp_path, "first", TABULATE_APP), logs[0])
    again = _build("local", store, _source(tmp_path, "again", TABULATE_APP), logs[1])
    code_only = _build("local", store, _source(tmp_path, "code", code_change), logs[2])
    # Without the cache (another build host, or one whose cache was cleared): pip again.
    elsewhere = _source(tmp_path, "elsewhere", TABULATE_APP)
    elsewhere = BuildRequest(**{**elsewhere.__dict__, "layer_dir": tmp_path / "other-host"})
    cold = _build("local", store, elsewhere, logs[3])

    installed = ["-----> Installing requirements.txt" in log.text() for log in logs]
    assert installed == [True, False, False, True]
    assert "-----> Reusing the dependencies installed for requirements.txt" in logs[1].text()
    assert first.digest == again.digest == cold.digest  # the same commit, the same artifact
    assert code_only.digest != first.digest
    layers = [first_layer(Path(b.location)) for b in (first, code_only)]
    assert layers[0] is not None and layers[0] == layers[1]  # the same bytes, packed once
    files = _members(Path(code_only.location))
    assert files["app.py"] == b"print('new code')\n"
    assert any(name.startswith(".python/site-packages/tabulate/") for name in files)
    assert _run_in(_unpack(Path(code_only.location), tmp_path / "run"), "tabulate").returncode == 0


@pytest.mark.timeout(300)
@pytest.mark.network
def test_changed_requirements_or_requirements_that_read_app_files_install_again(
    tmp_path: Path, store: FileStore
) -> None:
    changed = {**TABULATE_APP, "requirements.txt": "tabulate==0.9.0\n# a comment\n"}
    reads_files = {
        **TABULATE_APP,
        "requirements.txt": "-r more.txt\n",
        "more.txt": "tabulate==0.9.0\n",
    }
    logs = [BuildLog(limit=1_000_000) for _ in range(4)]

    _build("local", store, _source(tmp_path, "first", TABULATE_APP), logs[0])
    _build("local", store, _source(tmp_path, "changed", changed), logs[1])
    _build("local", store, _source(tmp_path, "reads", reads_files), logs[2])
    _build("local", store, _source(tmp_path, "reads-again", reads_files), logs[3])

    assert ["-----> Installing" in log.text() for log in logs] == [True, True, True, True]


@pytest.mark.timeout(300)
@pytest.mark.network
def test_a_build_command_that_changes_the_dependencies_gets_them_packed_with_the_code(
    tmp_path: Path, store: FileStore
) -> None:
    patch = "echo PATCHED = True >> .python/site-packages/tabulate/__init__.py"
    app = {**TABULATE_APP, "shipyard.toml": f'[build]\ncommand = "{patch}"\n'}
    logs = [BuildLog(limit=1_000_000) for _ in range(2)]

    first = _build("python", store, _source(tmp_path, "first", app), logs[0])
    second = _build("python", store, _source(tmp_path, "second", app), logs[1])

    for log in logs:
        assert "-----> The build changed .python/: packed with the code" in log.text()
    assert first.digest == second.digest
    assert first_layer(Path(first.location)) is None  # one member: all of it packed together
    # Python loads the shipped bytecode without looking at the source: it was compiled again.
    app_dir = _unpack(Path(first.location), tmp_path / "run")
    patched = _run_in(app_dir, "python3 -c 'import tabulate; print(tabulate.PATCHED)'")
    assert patched.stdout == "True\n", patched.stderr


@pytest.mark.timeout(300)
@pytest.mark.network
def test_pips_cache_is_in_the_data_dir_and_the_next_build_uses_it(
    tmp_path: Path, store: FileStore
) -> None:
    # pip keys its wheel cache by the sdist's URL: a folder outside the (random) build dirs.
    wheelhouse = write_greeting_sdist(tmp_path / "wheelhouse")
    requirements = f"--find-links {wheelhouse}\n{GREETING_REQUIREMENT}\n"
    app = {"requirements.txt": requirements, "Procfile": "web: greet\n"}
    first_request = _source(tmp_path, "first", app)
    second_request = _source(tmp_path, "second", app)
    first_log, second_log = BuildLog(limit=1_000_000), BuildLog(limit=1_000_000)

    first = _build("local", store, first_request, first_log)
    second = _build("local", store, second_request, second_log)

    cache = tmp_path / "data" / "cache" / "pip"
    (wheel,) = cache.rglob("*.whl")  # the one pip built from the sdist
    assert wheel.name.startswith("shipyard_greeting-1.0.0-")
    assert not (first_request.work_dir / "home" / ".cache").exists()  # nothing in a home
    assert "Building wheel for shipyard-greeting" in first_log.text()
    assert "Building wheel for shipyard-greeting" not in second_log.text()  # the cached wheel
    assert first.digest == second.digest
    greet = _run_in(_unpack(Path(first.location), tmp_path / "run"), "greet")
    assert greet.stdout == GREETING_OUTPUT


@pytest.mark.timeout(300)
@pytest.mark.network
def test_a_pyproject_app_is_installed_with_its_own_script_and_no_trace_of_the_build(
    tmp_path: Path, store: FileStore
) -> None:
    app = {
        "pyproject.toml": GREETING_PYPROJECT,
        "shipyard_greeting.py": GREETING_MODULE,
        "Procfile": "web: greet\n",
    }
    request = _source(tmp_path, "build", app)

    built = _build("local", store, request)

    files = _members(Path(built.location))
    assert ".python/bin/greet" in files
    # pip records where the project came from (file:///<build>/src); that record is dropped.
    assert not [name for name in files if name.endswith("direct_url.json")]
    greet = _run_in(_unpack(Path(built.location), tmp_path / "run"), "greet")
    assert greet.stdout == GREETING_OUTPUT


@pytest.mark.timeout(300)
@pytest.mark.network
def test_a_dockerfile_does_not_turn_the_python_build_off_and_the_log_says_so(
    tmp_path: Path, store: FileStore
) -> None:
    log = BuildLog(limit=100_000)
    source = _source(tmp_path, "build", {**TABULATE_APP, "Dockerfile": "FROM scratch\n"})

    built = _build("local", store, source, log)

    assert "Python app detected (requirements.txt)" in log.text()
    assert "Dockerfile present: the local builder does not use it" in log.text()
    assert [name for name in _members(Path(built.location)) if name.startswith(".python/site")]


def test_an_own_build_command_that_installs_none_of_the_declared_dependencies_fails_the_build(
    tmp_path: Path, store: FileStore
) -> None:
    log = BuildLog(limit=100_000)
    own = {"shipyard.toml": "[build]\ncommand = 'echo own > built.txt'\n"}

    with pytest.raises(StageFailed, match=r"declares Python dependencies \(requirements.txt\)"):
        _build("local", store, _source(tmp_path, "build", {**TABULATE_APP, **own}), log)

    assert "Python app detected" not in log.text()
    assert "Running build command" in log.text()


def test_an_own_build_command_that_installs_the_dependencies_elsewhere_is_fine(
    tmp_path: Path, store: FileStore
) -> None:
    # The command installs into vendor/ (pip --target writes a *.dist-info per package); a fake
    # of it here, as the test has no network.
    command = "mkdir -p vendor/tabulate-0.9.0.dist-info && echo own > built.txt"
    own = {"shipyard.toml": f"[build]\ncommand = '{command}'\n"}

    built = _build("local", store, _source(tmp_path, "build", {**TABULATE_APP, **own}))

    assert "built.txt" in _members(Path(built.location))


def test_an_app_that_declares_no_dependency_builds_with_its_own_command(
    tmp_path: Path, store: FileStore
) -> None:
    files = {
        "pyproject.toml": "[tool.ruff]\nline-length = 100\n",  # configuration, no project
        "shipyard.toml": "[build]\ncommand = 'echo own > built.txt'\n",
        "Procfile": "web: python3 -m http.server $PORT\n",
    }

    built = _build("local", store, _source(tmp_path, "build", files), BuildLog(limit=100_000))

    assert "built.txt" in _members(Path(built.location))


@pytest.mark.timeout(300)
@pytest.mark.network
def test_the_python_builder_installs_first_then_runs_the_apps_build_command(
    tmp_path: Path, store: FileStore
) -> None:
    command = (
        "python3 -m compileall -q . && "
        "PYTHONPATH=.python/site-packages python3 -c 'import tabulate'"
    )
    app = {
        **TABULATE_APP,
        "app.py": "print('hi')\n",
        "shipyard.toml": f'[build]\ncommand = "{command}"\n',
    }
    log = BuildLog(limit=1_000_000)

    built = _build("python", store, _source(tmp_path, "build", app), log)

    lines = log.text().splitlines()
    assert lines.index(f"-----> Running build command: {command}") > next(
        i for i, line in enumerate(lines) if line.startswith("-----> Installing requirements.txt")
    )
    # compileall of "." writes relative paths and (with SOURCE_DATE_EPOCH) hash-checked .pyc files.
    assert any(name.startswith("__pycache__/app.") for name in _members(Path(built.location)))


def test_the_python_builder_needs_something_to_install(tmp_path: Path, store: FileStore) -> None:
    request = _source(tmp_path, "build", {"Procfile": "web: python3 app.py\n"})

    with pytest.raises(StageFailed, match="no requirements.txt, pyproject.toml or uv.lock"):
        _build("python", store, request)


def test_a_python_folder_in_the_source_is_refused_before_installing(
    tmp_path: Path, store: FileStore
) -> None:
    request = _source(tmp_path, "build", {**TABULATE_APP, ".python/bin/tool": "#!/bin/sh\n"})
    log = BuildLog(limit=100_000)

    with pytest.raises(StageFailed, match="the app's source has a .python folder"):
        _build("local", store, request, log)

    assert "Installing" not in log.text()


def test_python_is_a_builder_an_app_can_choose() -> None:
    assert "python" in BUILDERS
    assert AppCreate(name="blog", repo="/srv/repo", builder="python").builder == "python"


# --- Python versions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({}, None),
        ({".python-version": "3.12\n"}, ("3.12", ".python-version")),
        ({".python-version": "# pinned\n3.10.4\n"}, ("3.10", ".python-version")),
        ({"runtime.txt": "python-3.11.7\n"}, ("3.11", "runtime.txt")),
        ({".python-version": "3.12", "runtime.txt": "python-3.9.1"}, ("3.12", ".python-version")),
    ],
)
def test_the_pin_is_read_as_major_minor_from_python_version_then_runtime_txt(
    tmp_path: Path, files: dict[str, str], expected: tuple[str, str] | None
) -> None:
    for name, content in files.items():
        (tmp_path / name).write_text(content)

    pin = pinned_python(tmp_path)

    assert (None if pin is None else (pin.version, pin.file)) == expected


def test_a_pin_that_names_no_version_fails_clearly(tmp_path: Path) -> None:
    (tmp_path / "runtime.txt").write_text("latest\n")

    with pytest.raises(StageFailed, match=r"runtime.txt says 'latest', which names no Python"):
        pinned_python(tmp_path)


@pytest.mark.parametrize(
    ("name", "content"), [(".python-version", "3.99\n"), ("runtime.txt", "python-3.99.1\n")]
)
def test_a_pinned_python_the_build_host_does_not_have_fails_the_build_clearly(
    tmp_path: Path, store: FileStore, name: str, content: str
) -> None:
    request = _source(tmp_path, "build", {**TABULATE_APP, name: content})

    with pytest.raises(StageFailed, match=rf"the app pins Python 3\.99 \({name}\)") as caught:
        _build("local", store, request)

    assert "python3" in caught.value.message
    assert not (tmp_path / "artifacts").exists()


@pytest.mark.slow  # pip runs, with nothing to install
def test_a_pin_matching_the_build_hosts_python_builds(tmp_path: Path, store: FileStore) -> None:
    version = _host_python_version(tmp_path)
    app = {"requirements.txt": "", "Procfile": "web: python3 app.py\n", ".python-version": version}

    built = _build("local", store, _source(tmp_path, "build", app))

    assert _members(Path(built.location))[".shipyard/python-version"] == f"{version}\n".encode()


# --- the relocatability check, for every local build --------------------------------------------


@pytest.mark.timeout(300)
@pytest.mark.network
def test_a_virtualenv_build_fails_at_build_time_naming_its_absolute_link(
    tmp_path: Path, store: FileStore
) -> None:
    command = "python3 -m venv .venv && .venv/bin/pip install --quiet tabulate==0.9.0"
    app = {**TABULATE_APP, "shipyard.toml": f'[build]\ncommand = "{command}"\n'}

    with pytest.raises(StageFailed) as caught:
        _build("local", store, _source(tmp_path, "build", app))

    message = caught.value.message
    assert "'.venv/bin/python3' is a link to an absolute path" in message
    assert "virtual environments are not relocatable" in message
    assert "pip install --target" in message
    assert not (tmp_path / "artifacts").exists()


def test_a_copied_virtualenv_fails_naming_a_file_that_holds_the_build_path(
    tmp_path: Path, store: FileStore
) -> None:
    command = "python3 -m venv --copies --without-pip .venv"
    app = {**TABULATE_APP, "shipyard.toml": f'[build]\ncommand = "{command}"\n'}
    request = _source(tmp_path, "build", app)

    with pytest.raises(StageFailed) as caught:
        _build("local", store, request)

    message = caught.value.message
    assert (
        f"'.venv/bin/activate' contains the build directory's path ({request.work_dir})" in message
    )
    assert "virtual environments are not relocatable" in message


def test_a_file_holding_the_build_directorys_path_fails_the_build_naming_it(
    tmp_path: Path, store: FileStore
) -> None:
    command = "mkdir config && echo root=$PWD > config/paths.ini && echo ok > config/fine.ini"
    app = {"Procfile": "web: ./serve\n", "shipyard.toml": f"[build]\ncommand = '{command}'\n"}

    with pytest.raises(StageFailed) as caught:
        _build("local", store, _source(tmp_path, "build", app))

    message = caught.value.message
    assert message.startswith("the build is not relocatable: 'config/paths.ini' contains")
    assert "fine.ini" not in message and "(and" not in message
    assert "relative paths" in message
    assert not (tmp_path / "artifacts").exists()


@pytest.mark.parametrize(
    ("link", "problem"),
    [
        ("/etc/hostname", "a link to an absolute path"),
        ("../../outside", "a link that leaves the app"),
    ],
)
def test_a_link_out_of_the_tree_fails_the_build(
    tmp_path: Path, store: FileStore, link: str, problem: str
) -> None:
    command = f"ln -s {link} escape && mkdir lib && ln -s ../Procfile lib/inside"
    app = {"Procfile": "web: ./serve\n", "shipyard.toml": f"[build]\ncommand = '{command}'\n"}

    with pytest.raises(StageFailed, match=f"'escape' is {problem} \\({link}\\)") as caught:
        _build("local", store, _source(tmp_path, "build", app))

    assert "lib/inside" not in caught.value.message  # a relative link inside the app is fine


# --- the run side -------------------------------------------------------------------------------


def _spec(artifact_id: str, version: int = 1) -> ReleaseSpec:
    return ReleaseSpec(
        app="blog",
        environment="staging",
        release_id=f"release-{version}",
        release_version=version,
        deployment_id=f"deployment-{version}",
        artifact_id=artifact_id,
        health_path="/",
        health_timeout=60.0,
        env={},
    )


@pytest.fixture
def started() -> Iterator[list[tuple[LocalRunner, list[ProcessRecord]]]]:
    """Processes a test started, by runner; all are stopped at the end."""
    records: list[tuple[LocalRunner, list[ProcessRecord]]] = []
    yield records
    for runner, processes in records:
        runner.stop(processes)


def test_the_runner_refuses_an_artifact_built_for_another_python(
    tmp_path: Path, store: FileStore, sandbox: Sandbox
) -> None:
    app_dir = tmp_path / "app"
    (app_dir / ".shipyard").mkdir(parents=True)
    (app_dir / ".shipyard" / "python-version").write_text("2.7\n")
    (app_dir / "Procfile").write_text("web: python3 -m http.server $PORT\nrelease: touch ran\n")
    pack_reproducibly(app_dir, tmp_path / "artifact.tar.gz", mtime=COMMIT_TIME)
    digest = store.put(tmp_path / "artifact.tar.gz", app="app").digest
    runner = LocalRunner(store, tmp_path / "run", tmp_path / "storage", sandbox)
    host = _host_python_version(tmp_path)
    refusal = (
        rf"built for Python 2\.7 \(\.shipyard/python-version\) but this host's python3 is {host}"
    )

    with pytest.raises(StageFailed, match=refusal):
        run_to_end(runner, _spec(digest), "touch ran", timeout=60)
    with pytest.raises(StageFailed, match=refusal):
        runner.stop(runner.start(_spec(digest)))

    assert not (runner.release_dir(_spec(digest)) / "ran").exists()  # the release command
    assert not (tmp_path / "run" / "blog" / "staging" / "logs").exists()  # made before any process


@pytest.mark.timeout(300)
@pytest.mark.network
def test_the_flask_blog_builds_once_and_runs_from_two_directories(
    tmp_path: Path,
    store: FileStore,
    sandbox: Sandbox,
    started: list[tuple[LocalRunner, list[ProcessRecord]]],
) -> None:
    request = _source(tmp_path, "build", {})
    shutil.copytree(FLASK_BLOG, request.source_dir, dirs_exist_ok=True)
    log = BuildLog(limit=1_000_000)
    built = _build("local", store, request, log)  # the default builder, detecting the app
    assert "-----> Python app detected" in log.text()
    procfile = read_procfile(request.source_dir)
    shutil.rmtree(request.work_dir)  # the build's directory is gone before anything runs

    release_dirs = []
    for host in ("host-a", "host-b"):
        runner = LocalRunner(store, tmp_path / host / "run", tmp_path / host / "storage", sandbox)
        spec = _spec(built.digest)

        release = run_to_end(runner, spec, release_command(procfile) or "", timeout=120)
        assert release.exit_code == 0, release.output
        assert "database ready" in release.output
        started.append((runner, health_gated_start(runner, spec)))

        (web,) = started[-1][1]
        with httpx.Client(base_url=web["url"], trust_env=False, timeout=10) as client:
            created = client.post("/posts", json={"title": f"Hello from {host}"})
            page = client.get("/")
        assert created.status_code == 201, created.text
        assert page.status_code == 200
        assert f"Hello from {host}" in page.text
        release_dirs.append(runner.release_dir(spec))

    assert release_dirs[0] != release_dirs[1]
    assert not any(d.is_relative_to(request.work_dir) for d in release_dirs)


EVIL_BACKEND = """
import base64, hashlib, os, zipfile

def get_requires_for_build_wheel(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    # Run as the app's user, in its tree: a link where the builder writes next, as root.
    os.symlink(os.environ.get("VICTIM", "VICTIM_PATH"), ".profile.d")
    files = {
        "evil/__init__.py": b"",
        "evil-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\\nName: evil\\nVersion: 1.0\\n",
        "evil-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
        ),
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append("evil-1.0.dist-info/RECORD,,")
    name = "evil-1.0-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)
        wheel.writestr("evil-1.0.dist-info/RECORD", "\\n".join(record) + "\\n")
    return name
"""


def test_a_link_a_package_build_leaves_where_the_builder_writes_fails_the_build(
    tmp_path: Path, store: FileStore
) -> None:
    victim = tmp_path / "data" / "victim"  # stands for /etc/profile.d, or the data dir
    victim.mkdir(parents=True)
    app = {
        "pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "backend"\n'
        'backend-path = ["."]\n\n[project]\nname = "evil"\nversion = "1.0"\n',
        "backend.py": EVIL_BACKEND.replace("VICTIM_PATH", str(victim)),
        "Procfile": "web: true\n",
    }
    log = BuildLog(limit=1_000_000)

    with pytest.raises(StageFailed, match=r"left a link at \.profile\.d"):
        _build("local", store, _source(tmp_path, "build", app), log)

    assert list(victim.iterdir()) == []  # nothing written through it


@pytest.mark.timeout(300)
@pytest.mark.network
def test_a_django_apps_static_files_are_collected_at_build_time_without_its_bytecode(
    tmp_path: Path, store: FileStore
) -> None:
    log = BuildLog(limit=1_000_000)
    source = _source(tmp_path, "build", DJANGO_APP)

    previous = os.umask(0o077)  # the worker's own (shipyard keeps its files private)
    try:
        built = _build("local", store, source, log)
    finally:
        os.umask(previous)

    assert "Django app: python3 manage.py collectstatic --noinput" in log.text()
    files = _members(Path(built.location))
    assert files["staticfiles/site.css"] == b"body { color: saddlebrown; }\n"
    _assert_bytecode_only_of_the_dependencies(files)


def test_a_django_app_is_known_by_its_manage_py_and_its_requirement(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("djangorestframework==3.15\n")
    assert not is_django(tmp_path)  # no manage.py
    (tmp_path / "manage.py").write_text("")
    assert not is_django(tmp_path)  # a Django package, not Django
    (tmp_path / "requirements.txt").write_text("# web\nDjango>=5.1,<5.2\n")
    assert is_django(tmp_path)


@pytest.mark.timeout(300)
@pytest.mark.network
def test_a_failing_collectstatic_fails_the_build_saying_how_to_turn_it_off(
    tmp_path: Path, store: FileStore
) -> None:
    strict = {
        **DJANGO_APP,
        "mysite/settings.py": DJANGO_APP["mysite/settings.py"].replace(
            'os.environ.get("SECRET_KEY", "only-for-collectstatic")', 'os.environ["SECRET_KEY"]'
        ),
    }
    with pytest.raises(StageFailed, match="collectstatic exited with status 1") as caught:
        _build("local", store, _source(tmp_path, "build", strict))
    assert "`collectstatic = false` under [build]" in caught.value.message

    off = {**strict, "shipyard.toml": "[build]\ncollectstatic = false\n"}
    log = BuildLog(limit=1_000_000)
    _build("local", store, _source(tmp_path, "off", off), log)
    assert "collectstatic turned off" in log.text()


def test_declared_dependencies_are_read_only_from_a_small_regular_file(tmp_path: Path) -> None:
    secret = tmp_path / "elsewhere.txt"
    secret.write_text("root-only-package==1\n")
    app = tmp_path / "app"
    app.mkdir()
    (app / "requirements.txt").symlink_to(secret)
    assert declared_dependencies(app) is None  # a link is never followed
    (app / "requirements.txt").unlink()
    (app / "requirements.txt").write_text("# nothing yet\n")
    assert declared_dependencies(app) is None
    (app / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = ["flask"]\n')
    assert declared_dependencies(app) == "pyproject.toml"
