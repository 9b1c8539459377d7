"""The app's own declarations: `Procfile` (processes) and `shipyard.toml` (build settings)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from shipyard.shared import constants
from shipyard.shared.exceptions import StageFailed

_PROCESS_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")


@dataclass(frozen=True)
class BuildManifest:
    """`[build]` of shipyard.toml: an optional command, its time limit, and whether a Django
    app's static files are collected at build time (`collectstatic = false` turns it off)."""

    command: str | None = None
    timeout: float | None = None
    collectstatic: bool = True


def read_procfile(app_dir: Path) -> dict[str, str]:
    """Process types and their commands; a missing, binary or web-less Procfile fails clearly."""
    path = app_dir / constants.PROCFILE
    if not path.is_file():
        raise StageFailed("no Procfile at the root of the app (expected e.g. 'web: python app.py')")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StageFailed("the Procfile is not UTF-8 text") from exc
    processes: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _PROCESS_LINE.match(stripped)
        if match is None or "\0" in stripped:
            raise StageFailed(f"Procfile line {number} is not 'type: command'")
        processes[match.group(1)] = match.group(2)
    if "web" not in processes:
        raise StageFailed(
            "the Procfile declares no 'web' process, so nothing can be health-checked"
        )
    return processes


def release_command(procfile: dict[str, str]) -> str | None:
    """The `release:` entry: the release phase's command, run before the run stage."""
    return procfile.get(constants.RELEASE_PROCESS)


def process_types(procfile: dict[str, str]) -> dict[str, str]:
    """The long-running process types: every entry but `release:`."""
    return {
        name: command for name, command in procfile.items() if name != constants.RELEASE_PROCESS
    }


def read_build_manifest(app_dir: Path) -> BuildManifest:
    """The `[build]` table of shipyard.toml, or an empty manifest when there is no file."""
    path = app_dir / constants.MANIFEST_FILE
    if not path.is_file():
        return BuildManifest()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise StageFailed(f"{constants.MANIFEST_FILE} is not valid TOML: {exc}") from exc
    build = data.get("build", {})
    if not isinstance(build, dict):
        raise StageFailed(f"[build] in {constants.MANIFEST_FILE} must be a table")
    command = build.get("command")
    timeout = build.get("timeout")
    if command is not None and not isinstance(command, str):
        raise StageFailed("build.command must be a string")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        raise StageFailed("build.timeout must be a positive number of seconds")
    collectstatic = build.get("collectstatic", True)
    if not isinstance(collectstatic, bool):
        raise StageFailed("build.collectstatic must be true or false")
    return BuildManifest(
        command=command,
        timeout=float(timeout) if timeout else None,
        collectstatic=collectstatic,
    )
