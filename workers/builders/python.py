"""The Python buildpack: the app's dependencies installed into the artifact, relocatable.

`pip install --target .python/site-packages` puts the packages beside the app, and their console
scripts, moved to `.python/bin`, start with `#!/usr/bin/env python3`; `.profile.d/python.sh` puts
both on the paths of every process, from wherever the artifact is unpacked. So the artifact holds
no virtual environment (whose links and scripts name the build's own directory) and runs on any
host whose `python3` has the major.minor recorded in `.shipyard/python-version`.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import stat
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from shipyard.shared.artifacts import ArtifactStore
from shipyard.shared.exceptions import StageFailed
from shipyard.shared.manifest import BuildManifest
from shipyard.workers.build_log import BuildLog
from shipyard.workers.builders.base import BuildRequest
from shipyard.workers.builders.layers import Layer, LayerCache, layer_key, pack_layer, snapshot
from shipyard.workers.builders.local import (
    Buildpack,
    LocalBuilder,
    build_environment,
    run_build_command,
)
from shipyard.workers.runtime import (
    PROFILE_DIR,
    PYTHON_VERSION_FILE,
    HostPython,
    find_python3,
    with_profile,
)
from shipyard.workers.sandbox import Jail, Sandbox

REQUIREMENTS = "requirements.txt"
PYPROJECT = "pyproject.toml"
UV_LOCK = "uv.lock"
# An app with its own Dockerfile is the docker builder's, even with a requirements.txt.
# Where the packages and their commands go, relative to the app's root.
INSTALL_DIR = ".python"
SITE_PACKAGES = f"{INSTALL_DIR}/site-packages"
SCRIPTS = f"{INSTALL_DIR}/bin"
PORTABLE_SHEBANG = b"#!/usr/bin/env python3\n"
# Sourced from the app's root (the runner's working directory), so it needs neither $HOME nor
# the path the artifact was unpacked at.
PROFILE_SCRIPT = f"""\
# Written by Shipyard's python builder; sourced from the app's root before each process starts.
PATH="$PWD/{SCRIPTS}:$PATH"
PYTHONPATH="$PWD/{SITE_PACKAGES}${{PYTHONPATH:+:$PYTHONPATH}}"
export PATH PYTHONPATH
"""
# Where an app pins its Python: pyenv's file (which Heroku reads too), then Heroku's older one.
_PINS = (
    (".python-version", re.compile(r"(\d+)\.(\d+)")),
    ("runtime.txt", re.compile(r"^python-(\d+)\.(\d+)")),
)
# What the buildpack itself writes, renames or rewrites in the tree after pip has run.
_WRITTEN = (
    f"{SITE_PACKAGES}/bin",
    SCRIPTS,
    f"{PROFILE_DIR}/python.sh",
    PYTHON_VERSION_FILE,
)
# pip's launcher for an interpreter path too long for a shebang: `#!/bin/sh` and two lines.
_SH_LAUNCHER = b"#!/bin/sh"


@dataclass(frozen=True)
class PythonPin:
    """The Python major.minor an app asks for, and the file that says so."""

    version: str
    file: str


class PythonBuildpack:
    """Detects a Python app and installs its dependencies with pip into `.python/`."""

    name = "Python"

    def detect(self, source_dir: Path) -> str | None:
        return next(
            (name for name in (REQUIREMENTS, PYPROJECT, UV_LOCK) if (source_dir / name).is_file()),
            None,
        )

    def declared(self, source_dir: Path) -> str | None:
        return declared_dependencies(source_dir)

    def check_built(self, source_dir: Path, declared: str) -> None:
        check_dependencies_installed(source_dir, declared)

    def finish(
        self,
        request: BuildRequest,
        manifest: BuildManifest,
        jail: Jail,
        timeout: float,
        log: BuildLog,
    ) -> None:
        """A Django app's static files, collected at build time as on Heroku (`collectstatic
        = false` in shipyard.toml's [build] turns it off)."""
        if not is_django(request.source_dir):
            return
        if not manifest.collectstatic:
            log.write("-----> Django app: collectstatic turned off ([build] collectstatic = false)")
            return
        log.write("-----> Django app: python3 manage.py collectstatic --noinput")
        try:
            run_build_command(
                with_profile("python3 manage.py collectstatic --noinput"),
                request,
                jail,
                timeout,
                log,
                step="collectstatic",
            )
        except StageFailed as exc:
            raise StageFailed(
                f"{exc.message}. It runs at build time, where the app gets no config: give its "
                "settings a default for what they read from the environment at import (SECRET_KEY, "
                "…), or turn it off with `collectstatic = false` under [build] in shipyard.toml"
            ) from exc

    def uses_installed(self, source_dir: Path, manifest: BuildManifest) -> bool:
        return manifest.collectstatic and is_django(source_dir)

    def compile(
        self,
        request: BuildRequest,
        jail: Jail,
        timeout: float,
        log: BuildLog,
        layers: LayerCache | None,
    ) -> Layer | None:
        deadline = time.monotonic() + timeout
        source = request.source_dir
        if (source / INSTALL_DIR).exists():
            raise StageFailed(
                f"the app's source has a {INSTALL_DIR} folder, where the python builder installs "
                "its dependencies: remove it from the repository"
            )
        what, arguments = _what_to_install(source)
        python = _build_python(jail, build_environment(request), pinned_python(source))
        key = dependencies_key(source, python.version)
        layer = layers.get(key, INSTALL_DIR) if layers is not None and key is not None else None
        if layer is not None:
            log.write(
                f"-----> Reusing the dependencies installed for {what} by an earlier build "
                f"(the same {what} and Python {python.version})"
            )
        else:
            self._install(request, jail, python, what, arguments, deadline, log)
            layer = pack_layer(source, INSTALL_DIR, request.work_dir / "dependencies.tar.gz")
            layer.key = key
            layer.state = snapshot(source / INSTALL_DIR)
        (source / PROFILE_DIR).mkdir(exist_ok=True)
        (source / PROFILE_DIR / "python.sh").write_text(PROFILE_SCRIPT)
        version_file = source / PYTHON_VERSION_FILE
        version_file.parent.mkdir(parents=True, exist_ok=True)
        version_file.write_text(python.version + "\n")
        # Written by the worker (umask 077): the app's user reads them in the build's own later
        # steps (collectstatic, the build command source the profile), as its processes will.
        for written in (source / PROFILE_DIR, version_file.parent):
            written.chmod(0o755)
        for written in (source / PROFILE_DIR / "python.sh", version_file):
            written.chmod(0o644)
        log.write(f"-----> Python {python.version} recorded in {PYTHON_VERSION_FILE}")
        return layer

    def _install(
        self,
        request: BuildRequest,
        jail: Jail,
        python: HostPython,
        what: str,
        arguments: list[str],
        deadline: float,
        log: BuildLog,
    ) -> None:
        """pip install into `.python/`, then made portable."""
        source = request.source_dir
        log.write(
            f"-----> Installing {what} with pip for Python {python.version} ({SITE_PACKAGES})"
        )
        command = [
            "env",
            *_pip_settings(request.cache_dir),
            python.executable,
            *("-m", "pip", "install", "--target", SITE_PACKAGES),
            "--no-compile",  # pip's .pyc files would name the build's directory
            "--no-warn-script-location",
            *arguments,
        ]
        run_build_command(
            shlex.join(command),
            request,
            jail,
            max(deadline - time.monotonic(), 0.0),
            log,
            step="pip install",
        )
        # pip ran the packages' own build code as the app's user, in this tree; the worker now
        # writes here as itself: never through a link that code may have left.
        _refuse_links(source, *_WRITTEN)
        _make_portable(source)
        if not (source / INSTALL_DIR).is_dir():
            (source / INSTALL_DIR).mkdir()  # nothing to install (a requirements.txt of comments)
            return
        _compile_bytecode(request, jail, python, max(deadline - time.monotonic(), 0.0), log)

    def changed(self, request: BuildRequest, jail: Jail, timeout: float, log: BuildLog) -> None:
        """The app's build command changed `.python/`: its bytecode, which Python never checks
        against the sources, is compiled again."""
        python = _build_python(jail, build_environment(request), pinned_python(request.source_dir))
        _compile_bytecode(request, jail, python, timeout, log, force=True)


def _compile_bytecode(
    request: BuildRequest,
    jail: Jail,
    python: HostPython,
    timeout: float,
    log: BuildLog,
    *,
    force: bool = False,
) -> None:
    """Bytecode, once here rather than at every start of every process (the release is
    read-only where it runs, so Python could never keep what it compiles there). Paths relative
    to the app (relocatable); hash-based, never checked against the source's time or content
    (the artifact never changes); a fixed hash seed (the same bytes every build). A module that
    does not compile (one for another Python) is left to its source. Run with no user site and
    without the app's root on the import path (`del sys.path[0]`, before any import): a module of
    the app named like one of the standard library's cannot take its place."""
    program = (
        "import sys; del sys.path[0]; import compileall, py_compile; compileall.compile_dir("
        f"{SITE_PACKAGES!r}, quiet=2, force={force!r}, "
        "invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)"
    )
    command = ["env", "PYTHONHASHSEED=0", python.executable, "-s", "-c", program]
    run_build_command(
        shlex.join(command),
        request,
        jail,
        timeout,
        log,
        step="compiling the dependencies' bytecode",
    )


class PythonBuilder(LocalBuilder):
    """The local builder with the Python buildpack always on, before any build command."""

    name = "python"

    def __init__(self, store: ArtifactStore, sandbox: Sandbox) -> None:
        super().__init__(store, sandbox, (PythonBuildpack(),))

    def buildpack_for(self, source_dir: Path, manifest: BuildManifest) -> Buildpack | None:
        return self._buildpacks[0]


# Bump when what the buildpack makes of an install changes: earlier layers are then not reused.
LAYER_FORMAT = "python-1"
# Lines of a requirements file that bring in more than its own text: other files (`-r`, `-c`),
# local packages or folders of them (`-e .`, `-f ./wheels`, a path, a file: URL). Dependencies
# read through them are installed by every build.
_REFERS_TO_FILES = re.compile(
    r"^\s*(-r|--requirement|-c|--constraint|-e|--editable|-f|--find-links|\.|/|~|file:)"
    r"|(--index-url|--extra-index-url|-i)[=\s]+(?!https?://)|@\s*file:",
    re.IGNORECASE,
)


def _refers_to_files(line: str) -> bool:
    first = line.split("#", 1)[0].strip().split(";", 1)[0].split()
    named = first[0] if first else ""
    # A requirement that is a path (`vendor/pkg-1.0-py3-none-any.whl`), not a URL.
    return bool(_REFERS_TO_FILES.search(line)) or ("/" in named and "://" not in named)


def dependencies_key(source_dir: Path, python_version: str) -> str | None:
    """What decides the installed dependencies: requirements.txt's text, the Python version, the
    host's kind and this buildpack's way of installing. None: they cannot be reused (installed
    from pyproject.toml, or the requirements bring in files of the app)."""
    text = _small_text(source_dir / REQUIREMENTS)
    if text is None or any(_refers_to_files(line) for line in text.splitlines()):
        return None
    return layer_key(LAYER_FORMAT, python_version, platform.machine(), text)


def pinned_python(source_dir: Path) -> PythonPin | None:
    """The major.minor the app pins in `.python-version` or `runtime.txt`, if it pins one."""
    for name, pattern in _PINS:
        path = source_dir / name
        if not path.is_file():
            continue
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        wanted = next((ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")), "")
        match = pattern.search(wanted)
        if match is None:
            raise StageFailed(f"{name} says {wanted!r}, which names no Python version (e.g. 3.12)")
        return PythonPin(version=f"{match.group(1)}.{match.group(2)}", file=name)
    return None


_DJANGO = re.compile(r"^\s*django\s*(?:[<>=!~;\[@ ]|$)", re.IGNORECASE)


def is_django(source_dir: Path) -> bool:
    """A Django app: a manage.py, and Django among the requirements (or the project's
    dependencies)."""
    if not (source_dir / "manage.py").is_file():
        return False
    requirements = _small_text(source_dir / REQUIREMENTS) or ""
    if any(_DJANGO.match(line) for line in requirements.splitlines()):
        return True
    dependencies = _project(source_dir).get("dependencies")
    return isinstance(dependencies, list) and any(
        isinstance(d, str) and _DJANGO.match(d) for d in dependencies
    )


def declared_dependencies(source_dir: Path) -> str | None:
    """The file by which the app declares dependencies to install (a requirements.txt with a
    requirement in it, a pyproject.toml listing dependencies), if any. Read before anything of
    the app's runs, and only as a small regular file (never through a link)."""
    requirements = _small_text(source_dir / REQUIREMENTS)
    if requirements is not None and any(
        line.strip() and not line.lstrip().startswith("#") for line in requirements.splitlines()
    ):
        return REQUIREMENTS
    if _project(source_dir).get("dependencies"):
        return PYPROJECT
    return None


def installed_anything(source_dir: Path) -> bool:
    """Whether the build installed Python packages into the app's tree, wherever (pip records
    each installed package in a `*.dist-info` folder, with `--target` too)."""
    return any(path.is_dir() for path in source_dir.rglob("*.dist-info"))


def check_dependencies_installed(source_dir: Path, declared: str) -> None:
    """Refuse an artifact of an app that declares Python dependencies and got none: it would
    only fail at its release, with a `No module named …`."""
    if not installed_anything(source_dir):
        raise StageFailed(
            f"the app declares Python dependencies ({declared}) but this build installed none: "
            "its [build] command ran instead of the Python buildpack. Create the app with "
            "`--builder python` (it installs them, then runs the command), or install them in "
            "the command"
        )


def _small_text(path: Path, limit: int = 1_000_000) -> str | None:
    """The text of `path` if it is a regular file (not a link) of at most `limit` bytes."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return None
        data = handle.read(limit + 1)
    return None if len(data) > limit else data.decode("utf-8", errors="replace")


def _project(source_dir: Path) -> dict[str, object]:
    """pyproject.toml's [project] table (empty when there is none, or it cannot be read)."""
    text = _small_text(source_dir / PYPROJECT)
    if text is None:
        return {}
    try:
        project = tomllib.loads(text).get("project", {})
    except tomllib.TOMLDecodeError:
        return {}  # pip says what is wrong with it when it installs
    return project if isinstance(project, dict) else {}


def _what_to_install(source_dir: Path) -> tuple[str, list[str]]:
    """requirements.txt if there is one (as Heroku), else the project of pyproject.toml."""
    if (source_dir / REQUIREMENTS).is_file():
        return REQUIREMENTS, ["-r", REQUIREMENTS]
    if (source_dir / PYPROJECT).is_file():
        # uv.lock's pins are not read: pip resolves pyproject.toml's dependencies itself.
        return f"the project of {PYPROJECT}", ["."]
    if (source_dir / UV_LOCK).is_file():
        raise StageFailed(f"{UV_LOCK} without a {PYPROJECT}: nothing says what to install")
    raise StageFailed(
        f"no {REQUIREMENTS}, {PYPROJECT} or {UV_LOCK} at the root of the app "
        "(the python builder installs the dependencies they list)"
    )


def _build_python(jail: Jail, env: dict[str, str], pin: PythonPin | None) -> HostPython:
    """The build host's python3, as the app's processes will find it; refused if it cannot do."""
    try:
        python = find_python3(jail, env)
    except StageFailed as exc:
        if pin is None:
            raise StageFailed(f"the python builder needs python3: {exc.message}") from exc
        raise StageFailed(
            f"the app pins Python {pin.version} ({pin.file}), but {exc.message}"
        ) from exc
    if pin is not None and pin.version != python.version:
        raise StageFailed(
            f"the app pins Python {pin.version} ({pin.file}) but the build host's python3 is "
            f"{python.version} ({python.executable}): install Python {pin.version} as python3 on "
            "the build and run hosts, or change the pin"
        )
    if not python.has_pip:
        raise StageFailed(
            f"python3 {python.version} ({python.executable}) on the build host has no pip: "
            "install it (e.g. apt-get install python3-pip)"
        )
    return python


def _pip_settings(cache_dir: Path | None) -> list[str]:
    """pip's settings as variables, so the pip that installs a package's build requirements
    (PEP 517 isolation) gets them too; without a cache dir, pip caches in the build's home."""
    settings = {
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
        "PIP_PROGRESS_BAR": "off",
        "PIP_ROOT_USER_ACTION": "ignore",
    }
    if cache_dir is not None:
        settings["PIP_CACHE_DIR"] = str(cache_dir / "pip")
    return [f"{name}={value}" for name, value in settings.items()]


def _make_portable(source_dir: Path) -> None:
    """Scripts to `.python/bin` with a PATH-found python3; no record of the build's directory."""
    site_packages = source_dir / SITE_PACKAGES
    installed_scripts = site_packages / "bin"  # where `pip install --target` puts them
    if installed_scripts.is_dir():
        installed_scripts.rename(source_dir / SCRIPTS)
    scripts = source_dir / SCRIPTS
    if scripts.is_dir():
        for script in sorted(scripts.iterdir()):
            if script.is_file() and not script.is_symlink():
                _rewrite_shebang(script)
    # PEP 610 records where a package came from; for the app itself that is the build's own
    # directory (file:///…/src), which means nothing once the artifact is elsewhere.
    for direct_url in sorted(site_packages.glob("*.dist-info/direct_url.json")):
        if direct_url.parent.is_symlink() or direct_url.is_symlink():
            continue  # not pip's: never followed
        try:
            url = json.loads(direct_url.read_text(encoding="utf-8")).get("url", "")
        except (ValueError, AttributeError):
            continue
        if isinstance(url, str) and url.startswith("file:"):
            direct_url.unlink()


def _rewrite_shebang(script: Path) -> None:
    """`#!/usr/bin/env python3` instead of the build host's interpreter path."""
    content = script.read_bytes()
    first, _, rest = content.partition(b"\n")
    if first == _SH_LAUNCHER and rest.startswith(b"'''exec' "):
        rest = rest.split(b"\n", 2)[-1]  # drop the launcher's two lines: the script follows
    elif not (first.startswith(b"#!") and b"python" in first):
        return
    script.write_bytes(PORTABLE_SHEBANG + rest)


def _refuse_links(root: Path, *relative: str) -> None:
    """Fail the build if any part of these paths below `root` is a link (nothing of the build
    runs any more, so what is checked here stays so)."""
    for name in relative:
        path = root
        for part in Path(name).parts:
            path = path / part
            if path.is_symlink():
                raise StageFailed(
                    f"the build left a link at {path.relative_to(root)}, where the python "
                    "builder writes: remove it (a package's build must not make one)"
                )
