"""HAProxy's runtime API over its unix socket: routes, servers and certificates changed live,
never reloaded.

One command per connection (HAProxy closes a non-interactive connection after answering), so a
caller needs no session and two callers never interleave their answers.
"""

from __future__ import annotations

import csv
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shipyard.shared.exceptions import StageFailed

# HAProxy answers within milliseconds; a router that does not is wedged, not busy.
COMMAND_TIMEOUT_SECONDS = 5.0
# The longest command HAProxy takes (a certificate's PEM is one): its buffer, 16 KB (tune.bufsize),
# less some room. A chain and key of ECDSA or RSA 2048 certificates takes 3 to 7 KB.
COMMAND_MAX_BYTES = 16_000


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
        return self.all_servers().get(backend, {})

    def all_servers(self) -> dict[str, dict[str, ServerState]]:
        """Every backend's servers (backends without any left out), from one `show stat`."""
        answer = self.command("show stat")
        header, _, body = answer.lstrip("# ").partition("\n")
        found: dict[str, dict[str, ServerState]] = {}
        for row in csv.DictReader([header, *body.splitlines()]):
            if row["svname"] not in ("BACKEND", "FRONTEND"):
                found.setdefault(row["pxname"], {})[row["svname"]] = ServerState(
                    name=row["svname"], status=row["status"], sessions=int(row["scur"] or 0)
                )
        return found

    # --- maps of host names (redirects, HSTS) ----------------------------------------------

    def set_map(self, map_path: Path, wanted: Mapping[str, str]) -> list[str]:
        """Make the map hold exactly `wanted` (key → value); the keys added, changed or
        deleted."""
        present = self.routes(map_path)
        changed = []
        for key, value in sorted(wanted.items()):
            if key not in present:
                self._change(f"add map {map_path} {key} {value}")
            elif present[key] != value:
                self._change(f"set map {map_path} {key} {value}")
            else:
                continue
            changed.append(key)
        for key in sorted(set(present) - set(wanted)):
            self._change(f"del map {map_path} {key}")
            changed.append(key)
        return changed

    # --- certificates: loaded, swapped and served by SNI, never reloaded -------------------

    def certificates(self) -> CertificateStore:
        """The certificates HAProxy holds, and any change of one begun and not committed."""
        loaded, pending = set(), set()
        for line in self.command("show ssl cert").splitlines():
            if line.startswith("*"):
                pending.add(line[1:])
            elif line and not line.startswith("#"):
                loaded.add(line)
        return CertificateStore(loaded=frozenset(loaded), pending=frozenset(pending))

    def put_certificate(self, name: str, pem: str, *, new: bool) -> None:
        """Load `pem` (the chain, then the key) as certificate `name`: created first if `new`,
        else swapped, for the handshakes that follow (connections open keep theirs). A refused
        one changes nothing."""
        # A payload ends at its first empty line, so the PEM must hold none.
        payload = "\n".join(line for line in pem.strip().splitlines() if line.strip())
        size = len(f"set ssl cert {name} <<\n{payload}\n\n".encode())
        if size > COMMAND_MAX_BYTES:
            raise RouterError(
                f"the certificate chain and key for {name} take {size} bytes, more than the "
                f"router's admin socket takes ({COMMAND_MAX_BYTES}): leave the root certificate "
                "out of the chain, or use an ECDSA key"
            )
        if new:
            self._ssl_change(f"new ssl cert {name}", "New empty certificate store")
        try:
            # HAProxy 2.6 applies a payload to whichever transaction is open: the answer must
            # name this certificate.
            self._ssl_change(
                f"set ssl cert {name} <<\n{payload}\n",
                f"Transaction created for certificate {name}!",
                f"Transaction updated for certificate {name}!",
                shown=f"set ssl cert {name} <<PEM",
            )
            self._ssl_change(f"commit ssl cert {name}", f"Committing {name}", success=True)
        except RouterError:
            self.abort_certificate(name)
            raise

    def abort_certificate(self, name: str) -> None:
        """Drop a change of certificate `name` begun and not committed (if any)."""
        self.command(f"abort ssl cert {name}")

    def remove_certificate(self, name: str) -> None:
        """Forget certificate `name` (no crt-list may hold it any more)."""
        self._ssl_change(f"del ssl cert {name}", f"Certificate '{name}' deleted")

    def crt_list(self, crt_list: Path) -> dict[str, tuple[str, ...]]:
        """The entries of a crt-list: certificate name → its SNI filters."""
        found = {}
        for line in self.command(f"show ssl crt-list {crt_list}").splitlines():
            if line and not line.startswith("#"):
                name, *filters = line.split()
                found[name] = tuple(filters)
        return found

    def add_to_crt_list(self, crt_list: Path, name: str, server_name: str) -> None:
        """Serve certificate `name` for TLS connections that ask for `server_name` (SNI)."""
        self._ssl_change(
            f"add ssl crt-list {crt_list} <<\n{name} {server_name}\n",
            f"Inserting certificate '{name}'",
            success=True,
            shown=f"add ssl crt-list {crt_list} {name} {server_name}",
        )

    def remove_from_crt_list(self, crt_list: Path, name: str) -> None:
        """Stop serving certificate `name` (it stays loaded until removed)."""
        self._ssl_change(f"del ssl crt-list {crt_list} {name}", f"Entry '{name}' deleted")

    def _ssl_change(
        self, line: str, *done: str, success: bool = False, shown: str | None = None
    ) -> None:
        """A certificate command: HAProxy words its answer in a sentence that begins with one of
        `done` (and, for a change applied to every listener, ends with `Success!`), or the
        command was refused, and the refusal is raised. A payload is `shown` by its first line
        only: it holds a private key."""
        answer = self.command(line)
        refused = not answer.startswith(done) or "Can't" in answer
        if refused or (success and not answer.endswith("Success!")):
            raise RouterError(f"the router refused `{shown or line}`: {answer}")


@dataclass(frozen=True)
class CertificateStore:
    """The certificates an HAProxy holds (`show ssl cert`), by name."""

    loaded: frozenset[str]
    pending: frozenset[str]  # a change begun (`set ssl cert`) and not committed
