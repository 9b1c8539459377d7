"""HAProxy's runtime API over its unix socket: routes and servers changed live, never reloaded.

One command per connection (HAProxy closes a non-interactive connection after answering), so a
caller needs no session and two callers never interleave their answers.
"""

from __future__ import annotations

import csv
import socket
from dataclasses import dataclass
from pathlib import Path

from shipyard.shared.exceptions import StageFailed

# HAProxy answers within milliseconds; a router that does not is wedged, not busy.
COMMAND_TIMEOUT_SECONDS = 5.0


class RouterError(StageFailed):
    """The router refused a command or could not be reached."""


@dataclass(frozen=True)
class ServerState:
    """One server of a backend, from `show stat`."""

    name: str
    status: str  # UP, DOWN, MAINT, DRAIN, "no check", …
    sessions: int  # current connections (scur): 0 means drained


class RuntimeAPI:
    """Commands to one HAProxy's admin socket."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path

    def available(self) -> bool:
        """Whether a router answers on this host."""
        try:
            self.command("show info")
        except RouterError:
            return False
        return True

    def command(self, line: str) -> str:
        """Send one command; its answer, as HAProxy worded it."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(COMMAND_TIMEOUT_SECONDS)
                sock.connect(str(self.socket_path))
                sock.sendall(line.encode() + b"\n")
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except OSError as exc:
            raise RouterError(
                f"the router on this host does not answer at {self.socket_path} "
                f"({type(exc).__name__}): is `shipyard router` (or `shipyard up`) running?"
            ) from exc
        return b"".join(chunks).decode(errors="replace").strip()

    def _change(self, line: str, *done: str) -> None:
        """A command that changes something: its answer is empty or one of `done`, or it
        was refused, and the refusal is raised."""
        answer = self.command(line)
        if answer and answer not in done:
            raise RouterError(f"the router refused `{line}`: {answer}")

    # --- routes: host name → backend -------------------------------------------------------

    def set_route(self, map_path: Path, host: str, backend: str) -> None:
        """Send requests for `host` to `backend` (added, or changed if present)."""
        current = self.command(f"show map {map_path}")
        if any(line.split()[1:2] == [host] for line in current.splitlines()):
            self._change(f"set map {map_path} {host} {backend}")
        else:
            self._change(f"add map {map_path} {host} {backend}")

    def remove_route(self, map_path: Path, host: str) -> None:
        """Requests for `host` get the unknown-host answer from now on."""
        self._change(f"del map {map_path} {host}")

    def routes(self, map_path: Path) -> dict[str, str]:
        """Host name → backend, as the router has them now."""
        found = {}
        for line in self.command(f"show map {map_path}").splitlines():
            parts = line.split()
            if len(parts) == 3:
                found[parts[1]] = parts[2]
        return found

    # --- servers ---------------------------------------------------------------------------

    def add_server(self, backend: str, server: str, address: str, port: int) -> None:
        """Add a server (it starts in maintenance) and let it take traffic."""
        self._change(f"add server {backend}/{server} {address}:{port}", "New server registered.")
        self._change(f"enable server {backend}/{server}")

    def drain_server(self, backend: str, server: str) -> None:
        """No new requests; those in flight finish."""
        self._change(f"set server {backend}/{server} state drain")

    def remove_server(self, backend: str, server: str) -> None:
        """Take a server out for good (its connections are cut if any are left)."""
        self._change(f"set server {backend}/{server} state maint")
        self._change(f"shutdown sessions server {backend}/{server}")
        self._change(f"del server {backend}/{server}", "Server deleted.")

    def servers(self, backend: str) -> dict[str, ServerState]:
        """The backend's servers by name, with their state and current connections."""
        answer = self.command("show stat")
        header, _, body = answer.lstrip("# ").partition("\n")
        found = {}
        for row in csv.DictReader([header, *body.splitlines()]):
            if row["pxname"] == backend and row["svname"] not in ("BACKEND", "FRONTEND"):
                found[row["svname"]] = ServerState(
                    name=row["svname"], status=row["status"], sessions=int(row["scur"] or 0)
                )
        return found
