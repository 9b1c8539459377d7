"""The relocatability check: an artifact runs wherever it is unpacked, not only where it was built.

Runners unpack each release into a directory of their own, on any host, so a built tree must not
point outside itself: no link to an absolute path or out of the tree, and no file that holds the
temporary build directory's path (a virtual environment's scripts, an absolute `compileall`, a
tool's cache path). Found at build time, such a tree fails the build instead of the release.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from shipyard.shared.exceptions import StageFailed

_CHUNK_BYTES = 1 << 20
_VENV_FIX = (
    "virtual environments are not relocatable; drop the venv and let the python builder "
    "install requirements.txt (pip install --target)"
)
_LINK_FIX = "the artifact is unpacked elsewhere, so links must be relative and stay inside the app"
_CONTENT_FIX = (
    "the artifact runs from another directory, so the build must not write its own path into "
    "files (use relative paths, e.g. `python -m compileall .`)"
)


@dataclass(frozen=True)
class _Problem:
    path: str  # relative to the tree, POSIX separators
    is_link: bool
    what: str


def check_relocatable(tree: Path, build_dirs: Iterable[Path], skip: str | None = None) -> None:
    """Fail the build, naming the first offending path and the fix, if `tree` cannot be moved;
    the top-level folder `skip` (checked already) is not looked at."""
    needles = _needles(build_dirs)
    problems = sorted(_problems(tree, needles, skip), key=lambda p: (not p.is_link, p.path))
    if not problems:
        return
    first = problems[0]
    if _in_virtualenv(tree, first.path):
        fix = _VENV_FIX
    else:
        fix = _LINK_FIX if first.is_link else _CONTENT_FIX
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    raise StageFailed(f"the build is not relocatable: {first.path!r} {first.what}{more}: {fix}")


def _needles(build_dirs: Iterable[Path]) -> tuple[bytes, ...]:
    """The build directories' paths as bytes, as written and resolved; none inside another."""
    paths = {os.fsencode(str(p)) for d in build_dirs for p in (d.absolute(), d.resolve())}
    return tuple(sorted(p for p in paths if not any(q != p and q in p for q in paths)))


def _problems(tree: Path, needles: tuple[bytes, ...], skip: str | None) -> Iterator[_Problem]:
    root = os.path.realpath(tree)
    for directory, subdirectories, files in os.walk(tree):
        if skip is not None and directory == str(tree) and skip in subdirectories:
            subdirectories.remove(skip)
        for name in [*subdirectories, *files]:
            path = Path(directory, name)
            relative = path.relative_to(tree).as_posix()
            if path.is_symlink():
                problem = _link_problem(path, root)
                if problem is not None:
                    yield _Problem(relative, True, problem)
            elif path.is_file():
                found = _first_needle(path, needles)
                if found is not None:
                    yield _Problem(
                        relative,
                        False,
                        f"contains the build directory's path ({os.fsdecode(found)})",
                    )


def _link_problem(link: Path, root: str) -> str | None:
    target = os.readlink(link)
    if os.path.isabs(target):
        return f"is a link to an absolute path ({target})"
    resolved = os.path.normpath(os.path.join(os.path.realpath(link.parent), target))
    if os.path.commonpath([root, resolved]) != root:
        return f"is a link that leaves the app ({target})"
    return None


def _first_needle(path: Path, needles: tuple[bytes, ...]) -> bytes | None:
    """The first of `needles` in the file, read in chunks that overlap by a needle's length."""
    overlap = max(len(n) for n in needles) - 1
    carried = b""
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            window = carried + chunk
            for needle in needles:
                if needle in window:
                    return needle
            carried = window[len(window) - overlap :] if overlap else b""
    return None


def _in_virtualenv(tree: Path, relative: str) -> bool:
    """Whether the path lies in a virtual environment (a folder with a pyvenv.cfg) of the tree."""
    folder = (tree / relative).parent
    while folder != tree and tree in folder.parents:
        if (folder / "pyvenv.cfg").is_file():
            return True
        folder = folder.parent
    return False
