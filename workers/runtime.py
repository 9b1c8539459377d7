"""What an unpacked artifact asks of the host that runs it: its `.profile.d` scripts sourced
first (Heroku's buildpack convention), and the Python version it was built for."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shipyard.shared.exceptions import StageFailed
from shipyard.workers.sandbox import Jail

# Shell scripts a buildpack (or the app) leaves for the run host, sourced before each process.
PROFILE_DIR = ".profile.d"
# The major.minor of the Python an artifact's packages were installed for, written at build time.
PYTHON_VERSION_FILE = ".shipyard/python-version"
# A cold python3 (through a pyenv shim, on a busy host) tells its version well within this.
_PROBE_TIMEOUT_SECONDS = 60.0
# How long an answer of the probe is reused for the same question (the same sandbox, user, PATH
# and pyenv pin): every release command and process start asks, and a pyenv shim alone takes
# ~0.2 s to answer; a python3 installed or upgraded on the host is seen within this.
PROBE_REUSE_SECONDS = 60.0
# Sources every readable .profile.d/*.sh of the current directory (the app's root): the scripts
# may change PATH and the like, while the config stays in the environment, never on this line.
_SOURCE_PROFILE = (
    f'for _shipyard_profile in {PROFILE_DIR}/*.sh; do [ -r "$_shipyard_profile" ] '
    '&& . "$_shipyard_profile"; done; unset _shipyard_profile; '
)
# Run isolated (-I: no PYTHON* variables, no user site) so the config cannot bend the answer.
_PROBE = (
    "import importlib.util, sys; "
    "print('%d.%d' % sys.version_info[:2]); "
    "print(importlib.util.find_spec('pip') is not None); "
    "print(sys.executable)"
)


@dataclass(frozen=True)
class HostPython:
    """The `python3` a process gets on this host: its major.minor, whether it has pip, its path."""

    version: str
    has_pip: bool
    executable: str


def with_profile(command: str) -> str:
    """`command` for `/bin/sh -c` in the app's root, after its `.profile.d` scripts."""
    return _SOURCE_PROFILE + command


class _Answers:
    """Answers of the probe, by question, each for PROBE_REUSE_SECONDS."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: dict[tuple[object, ...], tuple[float, HostPython]] = {}

    def get(self, question: tuple[object, ...]) -> HostPython | None:
        with self._lock:
            answered = self._answers.get(question)
        if answered is None or time.monotonic() - answered[0] > PROBE_REUSE_SECONDS:
            return None
        return answered[1]

    def put(self, question: tuple[object, ...], python: HostPython) -> None:
        with self._lock:
            self._answers[question] = (time.monotonic(), python)


_answers = _Answers()


def _pyenv_pin(folder: Path) -> str | None:
    try:
        return (folder / ".python-version").read_text(errors="replace")[:200]
    except OSError:
        return None


def find_python3(jail: Jail, env: Mapping[str, str]) -> HostPython:
    """The `python3` that `env`'s PATH gives in the jail's working directory (pyenv reads
    `.python-version` there), asked inside the jail, as the app's own programs will ask."""
    question = (
        jail.bwrap,
        jail.uid,
        env.get("PATH"),
        env.get("PYENV_VERSION"),  # pyenv reads it before .python-version
        _pyenv_pin(jail.workdir.source),
    )
    answered = _answers.get(question)
    if answered is not None:
        return answered
    python = _probe(jail, env)
    _answers.put(question, python)
    return python


def _probe(jail: Jail, env: Mapping[str, str]) -> HostPython:
    try:
        with jail.launch(["python3", "-I", "-c", _PROBE], env, die_with_parent=True) as launch:
            probe = subprocess.run(
                launch.argv,
                cwd=jail.workdir.source,
                env=launch.env,
                stdin=launch.stdin,
                capture_output=True,
                timeout=_PROBE_TIMEOUT_SECONDS,
            )
    except FileNotFoundError:
        raise StageFailed("there is no python3 on this host's PATH") from None
    except subprocess.TimeoutExpired:
        raise StageFailed(f"python3 did not answer within {_PROBE_TIMEOUT_SECONDS:g}s") from None
    lines = probe.stdout.decode(errors="replace").splitlines()
    if probe.returncode != 0 or len(lines) != 3:
        detail = probe.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise StageFailed(f"python3 does not run on this host ({' '.join(detail) or 'no output'})")
    version, has_pip, executable = lines
    return HostPython(version=version, has_pip=has_pip == "True", executable=executable)


def check_python_version(jail: Jail, env: Mapping[str, str]) -> None:
    """Refuse to run an artifact (the jail's working directory) whose packages were installed
    for another Python than the one its processes get."""
    record = jail.workdir.source / PYTHON_VERSION_FILE
    if not record.is_file():
        return
    wanted = record.read_text(encoding="utf-8", errors="replace").strip()
    try:
        host = find_python3(jail, {"PATH": env.get("PATH", ""), "LANG": "C.UTF-8"})
    except StageFailed as exc:
        raise StageFailed(f"the artifact needs Python {wanted}, but {exc.message}") from exc
    if host.version != wanted:
        raise StageFailed(
            f"the artifact was built for Python {wanted} ({PYTHON_VERSION_FILE}) but this host's "
            f"python3 is {host.version}: run it on a host with Python {wanted}, or pin "
            f"{host.version} in the app's .python-version and deploy again"
        )
