"""A Python package made on the spot for the python builder's tests: a source distribution that
pip must build (with flit_core from PyPI), since a built wheel is what pip caches even when the
index's answers carry no cache headers."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

GREETING_REQUIREMENT = "shipyard-greeting==1.0.0"
GREETING_OUTPUT = "hello from greeting\n"
GREETING_PYPROJECT = """\
[build-system]
requires = ["flit_core>=3.4,<4"]
build-backend = "flit_core.buildapi"

[project]
name = "shipyard-greeting"
version = "1.0.0"
description = "Says hello."

[project.scripts]
greet = "shipyard_greeting:main"
"""
GREETING_MODULE = 'def main():\n    print("hello from greeting")\n'


def write_greeting_sdist(folder: Path) -> Path:
    """`folder`/shipyard_greeting-1.0.0.tar.gz, with a `greet` console script; returns `folder`."""
    folder.mkdir(parents=True)
    with tarfile.open(folder / "shipyard_greeting-1.0.0.tar.gz", "w:gz") as tar:
        for name, content in (
            ("pyproject.toml", GREETING_PYPROJECT),
            ("shipyard_greeting.py", GREETING_MODULE),
            ("PKG-INFO", "Metadata-Version: 2.1\nName: shipyard-greeting\nVersion: 1.0.0\n"),
        ):
            data = content.encode()
            info = tarfile.TarInfo(f"shipyard_greeting-1.0.0/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return folder
