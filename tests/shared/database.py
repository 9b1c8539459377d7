"""A migrated SQLite database per test: the real migrations run once, each test gets a copy."""

from __future__ import annotations

import shutil
from pathlib import Path

from shipyard.shared import migrate
from shipyard.shared.db import get_engine


def migrated_template(directory: Path) -> Path:
    """A SQLite file brought to the newest schema by `shared.migrate.upgrade`."""
    path = directory / "template.db"
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    # Closing the last connection checkpoints the WAL into the file, so the file is complete.
    get_engine(url).dispose()
    return path


def copy_database(template: Path, path: Path) -> str:
    """A copy of `template` at `path`; returns its URL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal"):
        source = template.with_name(template.name + suffix)
        if source.exists():
            shutil.copyfile(source, path.with_name(path.name + suffix))
    return f"sqlite:///{path}"
