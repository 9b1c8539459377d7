"""Confinement of everything an app runs: its processes, its release command and its build.

Each runs in a bubblewrap sandbox (mount, PID, IPC and UTS namespaces) that shows it the OS's
own directories and the tools on Shipyard's PATH read-only, its own files at fixed places, a
private /tmp, and nothing of Shipyard's data dir: not the store, keys, tokens, sockets,
artifacts, nor another app's releases, storage or logs. When Shipyard runs as root, the program
also runs as a user of its app's own (a uid derived from the app's name, with no groups and no
capabilities), so that even what the OS lets every user read is all it gets.

`SHIPYARD_SANDBOX=auto` (the default) confines when bubblewrap is installed and works here;
`bwrap` insists (a stage fails, saying what to install); `off` runs apps as Shipyard's own user,
unconfined, for a machine whose apps are all trusted.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import shlex
import shutil
import stat
import subprocess
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal

import structlog

from shipyard.shared.exceptions import StageFailed

log = structlog.get_logger(__name__)

SandboxMode = Literal["auto", "bwrap", "off"]

# The OS's own directories, read-only in every sandbox; on a merged-/usr system the top-level
# ones are links into /usr, and stay links.
SYSTEM_DIRS = ("/usr", "/etc", "/opt")
SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# An app's users: `uid_base` + a number in [0, UID_SPAN) from the app's name. Any two of 100
# apps share one with a probability of about 5e-6; the sandbox keeps them apart regardless.
UID_SPAN = 2**30
DEFAULT_UID_BASE = 1_000_000_000
# bubblewrap answers its self-test within this, even on a busy host.
_PROBE_TIMEOUT_SECONDS = 30.0
_INSTALL_HINT = "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap)"


@dataclass(frozen=True)
class Bind:
    """A host directory shown in the sandbox at `target` (read-only unless `writable`)."""

    source: Path
    target: str
    writable: bool = False


@dataclass(frozen=True)
class Jail:
    """One confined program's view of the host: what it sees, where it starts, as whom."""

    bwrap: str | None  # None: not confined
    uid: int | None  # None: Shipyard's own user
    binds: tuple[Bind, ...]
    workdir: Bind  # one of `binds`: where the program starts
    tools: tuple[Path, ...]
    setpriv: str | None = None  # its absolute path (under /usr), when the program drops to `uid`
    hidden: tuple[Path, ...] = ()  # private folders inside the OS's directories: emptied

    @property
    def confined(self) -> bool:
        return self.bwrap is not None

    def path(self, bind: Bind) -> str:
        """Where the program finds `bind`'s directory."""
        return bind.target if self.confined else str(bind.source)

    @contextmanager
    def launch(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        die_with_parent: bool,
        stdin: bytes | None = None,
    ) -> Iterator[Launch]:
        """How to start `argv` in the sandbox with environment `env`: for the process that
        starts it (the platform's own shell, bubblewrap and setpriv, which run as root) a
        fixed environment, nothing of the app's; the app's reaches the program only, after
        the drop, from a memory file given as its standard input, which the program's shell
        reads and then replaces with /dev/null (never on a command line).
        `die_with_parent`: the sandbox is killed when the process that starts it dies (a
        long-running app wants it off, so that SIGTERM to its process group lets it drain
        instead of killing its namespace at once).
        `stdin`: what the program reads as its standard input (from a memory file of its own,
        given to it in place of /dev/null)."""
        given = _memory_file("shipyard-stdin", stdin) if stdin is not None else None
        try:
            if self.bwrap is None:
                yield Launch(
                    list(argv), dict(env), given if given is not None else subprocess.DEVNULL
                )
                return
            with _closing(_memory_file("shipyard-env", _exports(env).encode())) as fd:
                # The program's shell enters the working directory (as the app's user: it may
                # be the app's alone), reads its environment from its input, then becomes the
                # program, with nothing (or what it was given) to read.
                # By its path: a shell's `N<&` takes one digit only (so it stays open as N
                # too: the same input, nothing more).
                redirect = "< /dev/null" if given is None else f"< /dev/fd/{given}"
                loader = f'cd -- "$1" && shift && . /dev/stdin && exec "$@" {redirect}'
                program = ["/bin/sh", "-c", loader, "sh", self.workdir.target, *argv]
                yield Launch(
                    self._command(program, die_with_parent),
                    dict(OUTER_ENV),
                    fd,
                    pass_fds=(given,) if given is not None else (),
                )
        finally:
            if given is not None:
                os.close(given)

    def _command(self, argv: Sequence[str], die_with_parent: bool) -> list[str]:
        assert self.bwrap is not None
        options = [self.bwrap, *_system_binds()]
        for private in self.hidden:  # e.g. a data dir under /opt: nothing of it shows
            options += ["--tmpfs", str(private)]
        options += ["--proc", "/proc", "--dev", "/dev"]
        options += ["--perms", "1777", "--tmpfs", "/tmp", "--perms", "1777", "--tmpfs", "/var/tmp"]
        made = {"/", "/proc", "/dev", "/tmp", "/var", "/var/tmp", *map(str, self.hidden)}
        for tool in self.tools:  # after the private /tmp, which would hide one below it
            options += [
                *_parents(tool.as_posix(), made, self.hidden),
                "--ro-bind",
                str(tool),
                str(tool),
            ]
            made.add(tool.as_posix())
        for bind in self.binds:
            kind = "--bind" if bind.writable else "--ro-bind"
            parents = _parents(bind.target, made, self.hidden)
            options += [*parents, kind, str(bind.source), bind.target]
        options += ["--chdir", "/"]  # bubblewrap keeps no capability to enter the app's own
        options += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        options += ["--hostname", "app"]
        if die_with_parent:
            options.append("--die-with-parent")
        if self.uid is None:
            return [*options, "--", *argv]
        # bubblewrap runs as root to set the namespaces up (it reads sources that only root
        # may); the program keeps only the two capabilities that dropping to the app's user
        # needs, and drops to it at once (setpriv, by its absolute path): no groups, no
        # capabilities, and no set-uid program can give any back.
        assert self.setpriv is not None
        caps = ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        drop = [
            self.setpriv,
            f"--reuid={self.uid}",
            f"--regid={self.uid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--no-new-privs",
        ]
        return [*options, *caps, "--", *drop, "--", *argv]


@dataclass(frozen=True)
class Launch:
    """A confined program's start: its argv, and the environment and standard input of the
    process that starts it (`subprocess.Popen(argv, env=env, stdin=stdin)`)."""

    argv: list[str]
    env: dict[str, str] = field(repr=False)
    stdin: int = subprocess.DEVNULL
    pass_fds: tuple[int, ...] = ()  # `subprocess.Popen(…, pass_fds=pass_fds)`


def _memory_file(name: str, data: bytes) -> int:
    """A file in memory holding `data`, open for reading from its start."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC)  # inherited only where it is given
    try:
        _write_all(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
    except OSError:
        os.close(fd)
        raise
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


@contextmanager
def _closing(fd: int) -> Iterator[int]:
    try:
        yield fd
    finally:
        os.close(fd)


# What the platform's side of a sandbox (its shell, bubblewrap, setpriv) runs with.
OUTER_ENV: dict[str, str] = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}
_SHELL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _exports(env: Mapping[str, str]) -> str:
    """`env` as shell exports, every value quoted (names that are no shell variable's, which
    the API refuses as config, are left out: a shell could not pass them on)."""
    return "".join(
        f"export {name}={shlex.quote(value)}\n"
        for name, value in env.items()
        if _SHELL_NAME.match(name) and "\0" not in value
    )


class Sandbox:
    """The worker's confinement policy: whether, how and as whom an app's programs run."""

    def __init__(
        self,
        mode: SandboxMode,
        *,
        data_dir: Path,
        uid_base: int = DEFAULT_UID_BASE,
        extra_paths: Iterable[Path] = (),
        search_path: str | None = None,
        private_paths: Iterable[Path] = (),
    ) -> None:
        self.mode = mode
        self._data_dir = data_dir.resolve()
        # The platform's folders no sandbox may show: the data dir, and any other it was given
        # (a metrics dir, a file artifact store elsewhere).
        self._private = tuple(sorted({self._data_dir, *(p.resolve() for p in private_paths)}))
        self._uid_base = uid_base
        self._extra = tuple(extra_paths)
        self._search_path = os.environ.get("PATH", "") if search_path is None else search_path

    @cached_property
    def _bwrap(self) -> tuple[str | None, str | None]:
        """bubblewrap's path when it works on this host, else None and why not."""
        if self.mode == "off":
            return None, None
        binary = shutil.which("bwrap")
        if binary is None:
            return None, f"bubblewrap is not installed: {_INSTALL_HINT}"
        probe = [binary, *_system_binds(), "--unshare-pid", "--die-with-parent", "--", "true"]
        try:
            result = subprocess.run(
                probe, capture_output=True, timeout=_PROBE_TIMEOUT_SECONDS, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"bubblewrap does not run here ({exc})"
        if result.returncode != 0:
            detail = result.stderr.decode(errors="replace").strip() or f"status {result.returncode}"
            return None, f"bubblewrap cannot make a sandbox here ({detail})"
        if os.geteuid() == 0 and self._setpriv is None:
            return None, "setpriv (util-linux) is not in /usr/bin or /bin"
        return binary, None

    @cached_property
    def _setpriv(self) -> str | None:
        """setpriv from the OS's own directories, never from a PATH anyone could set."""
        return shutil.which("setpriv", path="/usr/bin:/bin:/usr/sbin:/sbin")

    @property
    def confines(self) -> bool:
        """Whether apps run confined on this host."""
        return self._bwrap[0] is not None

    def describe(self) -> str:
        """One line for operators: how apps run here."""
        binary, problem = self._bwrap
        if binary is None:
            reason = "SHIPYARD_SANDBOX=off" if self.mode == "off" else problem
            return f"apps run UNCONFINED, as Shipyard's own user ({reason})"
        user = "each app's own user" if os.geteuid() == 0 else "Shipyard's user"
        return f"apps run in a bubblewrap sandbox, as {user}"

    def uid_for(self, app: str) -> int | None:
        """The user app `app` runs as: its own when Shipyard is root and confines, else None."""
        if os.geteuid() != 0 or not self.confines:
            return None
        return app_uid(app, self._uid_base)

    def jail(self, app: str, binds: Sequence[Bind], workdir: Bind) -> Jail:
        """The view of the host that a program of `app` gets."""
        binary, problem = self._bwrap
        if binary is None and self.mode == "bwrap":
            raise StageFailed(
                f"SHIPYARD_SANDBOX=bwrap, but {problem}; apps will not run unconfined"
            )
        if binary is None and problem is not None:
            log.warning("sandbox.unavailable", reason=problem, app=app)
        for bind in binds:
            self._refuse_private(bind.source)
        return Jail(
            bwrap=binary,
            uid=self.uid_for(app) if binary is not None else None,
            binds=tuple(binds),
            workdir=workdir,
            tools=self.tools if binary is not None else (),
            setpriv=self._setpriv,
            hidden=tuple(
                sorted({_hide_from(p) for p in self._private if _is_within(p, _SYSTEM_ROOTS)})
            ),
        )

    def _refuse_private(self, path: Path) -> None:
        """An app's folder may lie in the data dir (its release, its storage), never hold it."""
        if any(_is_within(private, (path.resolve(),)) for private in self._private):
            private = ", ".join(map(str, self._private))
            raise StageFailed(
                f"{path} holds Shipyard's own data ({private}): an app cannot be given it; "
                "choose a storage directory outside it"
            )

    def give(self, app: str, path: Path, *, recursive: bool = False) -> None:
        """Make `path` the app's own, where it runs as a user of its own (a no-op otherwise);
        with `recursive`, all below it too, unless `path` is the app's already."""
        self._refuse_private(path)
        uid = self.uid_for(app)
        if uid is None:
            return
        try:
            if path.is_symlink():
                raise StageFailed(f"{path} is a link: an app's folder must be a real one")
            if path.lstat().st_uid == uid:
                return
            os.lchown(path, uid, uid)
            if recursive:
                # Relative to open folders, never following a link: what the app may still
                # change below cannot send a change of owner elsewhere.
                for _, dirs, files, folder in os.fwalk(path, follow_symlinks=False):
                    for name in (*dirs, *files):
                        os.chown(name, uid, uid, dir_fd=folder, follow_symlinks=False)
        except OSError as exc:
            raise StageFailed(
                f"cannot give {path} to the app's user {uid}: {exc.strerror}"
            ) from exc

    @cached_property
    def tools(self) -> tuple[Path, ...]:
        """Host directories every sandbox sees read-only besides the OS's: each directory on
        Shipyard's PATH, the prefix of each python3 found there (a pyenv or venv interpreter
        outside /usr) and SHIPYARD_SANDBOX_PATHS; never the data dir, a folder in it or one
        that holds it."""
        found = [path for path in self._extra if path.is_dir()]
        for missing in sorted(set(self._extra) - set(found)):
            log.warning("sandbox.path_missing", path=str(missing))
        for entry in self._search_path.split(os.pathsep):
            if not entry or not os.path.isabs(entry) or not os.path.isdir(entry):
                continue
            found.append(Path(entry).resolve())
            python = Path(entry) / "python3"
            if python.exists():
                found.append(python.resolve().parents[1])
        homes = _home_directories()
        kept: list[Path] = []
        for path in sorted(set(found), key=lambda p: len(p.parts)):
            if _is_within(path, _SYSTEM_ROOTS) or path == Path("/"):
                continue
            if any(_overlaps(path, private) for private in self._private):
                continue
            if any(_is_within(home, (path,)) for home in homes):
                continue  # a home (a shim in ~/bin names it): its ~/.ssh, ~/.config are not tools
            if any(_is_within(path, (k,)) for k in kept):
                continue
            kept.append(path)
        return tuple(sorted(kept))


def _hide_from(private: Path) -> Path:
    """Where to cover a private folder that lies in the OS's directories: from its topmost
    ancestor that others may not enter (nothing below it was theirs to see, and the app's own
    folders below get parents it can enter), else the folder itself."""
    for ancestor in reversed(private.parents):
        if ancestor in _SYSTEM_ROOTS or not _is_within(ancestor, _SYSTEM_ROOTS):
            continue
        try:
            if not ancestor.stat().st_mode & stat.S_IXOTH:
                return ancestor
        except OSError:
            return ancestor
    return private


def _home_directories() -> set[Path]:
    """Every user's home directory on this host (the root directory aside)."""
    return {Path(entry.pw_dir) for entry in pwd.getpwall() if entry.pw_dir not in ("", "/")}


def app_uid(app: str, base: int = DEFAULT_UID_BASE) -> int:
    """App `app`'s own unprivileged user (and group) id: `base` + a number from its name."""
    return base + int.from_bytes(hashlib.sha256(app.encode()).digest()[:8], "big") % UID_SPAN


_SYSTEM_ROOTS = tuple(Path(p) for p in (*SYSTEM_DIRS, *SYSTEM_LINKS))


def _system_binds() -> list[str]:
    options: list[str] = []
    for directory in SYSTEM_DIRS:
        if os.path.isdir(directory):
            options += ["--ro-bind", directory, directory]
    for link in SYSTEM_LINKS:
        if os.path.islink(link):
            options += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            options += ["--ro-bind", link, link]
    return options


def _parents(target: str, made: set[str], hidden: Iterable[Path] = ()) -> list[str]:
    """Directories to make (world-traversable) before mounting at `target`: bubblewrap would
    copy the host's modes, and a parent only root may enter would hide the mount from the app.
    The OS's directories are there already, except below a folder hidden by an empty tmpfs."""
    options: list[str] = []
    parent = Path(target).parent
    for ancestor in reversed((parent, *parent.parents)):
        name = ancestor.as_posix()
        under_hidden = any(ancestor != h and _is_within(ancestor, (h,)) for h in hidden)
        if name in made or (_is_within(ancestor, _SYSTEM_ROOTS) and not under_hidden):
            continue
        made.add(name)
        options += ["--perms", "0755", "--dir", name]
    return options


def _is_within(path: Path, roots: Iterable[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def _overlaps(path: Path, other: Path) -> bool:
    return _is_within(path, (other,)) or _is_within(other, (path,))
