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
from shipyard.shared.router_stats import ServerCounters

# HAProxy answers within milliseconds; a router that does not is wedged, not busy.
COMMAND_TIMEOUT_SECONDS = 5.0
# The longest command HAProxy takes (a certificate's PEM is one): its buffer, 16 KB (tune.bufsize),
# less some room. A chain and key of ECDSA or RSA 2048 certificates takes 3 to 7 KB.
COMMAND_MAX_BYTES = 16_000


# The weight of a server added without one (HAProxy's default), and the most it takes.
DEFAULT_WEIGHT = 1
MAX_WEIGHT = 256
# `show stat`'s columns of a server's HTTP responses, by class of status.
_RESPONSE_COLUMNS = ("hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other")
# Its requests that got no response from it: see RuntimeAPI.counters.
_FAILED_COLUMNS = ("econ", "eresp", "wredis")


class RouterError(StageFailed):
    """The router refused a command or could not be reached."""


@dataclass(frozen=True)
class ServerState:
    """One server of a backend, from `show stat`."""

    name: str
    status: str  # UP, DOWN, MAINT, DRAIN, "no check", …
    sessions: int  # current connections (scur): 0 means drained
    # Its share of the backend's requests against the others' (0 to 256; 0: none). HAProxy shows
    # a server in maintenance (MAINT) with weight 1 whatever was set (2.6 and 2.8 alike): only
    # an enabled server's weight is what it was given.
    weight: int = DEFAULT_WEIGHT


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

    def add_server(
        self, backend: str, server: str, address: str, port: int, *, weight: int = DEFAULT_WEIGHT
    ) -> None:
        """Add a server (it starts in maintenance) with its weight, and let it take traffic: its
        first request comes at that weight (0: it takes none yet)."""
        options = "" if weight == DEFAULT_WEIGHT else f" weight {weight}"
        self._change(
            f"add server {backend}/{server} {address}:{port}{options}", "New server registered."
        )
        self.enable_server(backend, server)

    def enable_server(self, backend: str, server: str) -> None:
        """Let a server in maintenance (one just added) take traffic."""
        self._change(f"enable server {backend}/{server}")

    def set_weight(self, backend: str, server: str, weight: int) -> None:
        """Give a server its share of the backend's requests against the others' weights
        (roundrobin: in proportion, exactly); 0 sends it none, and leaves it serving those it
        has. Takes effect at once, for the requests that follow."""
        self._change(f"set server {backend}/{server} weight {weight}")

    def ready_server(self, backend: str, server: str) -> None:
        """Let a draining server take new requests again."""
        self._change(f"set server {backend}/{server} state ready")

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
        found: dict[str, dict[str, ServerState]] = {}
        for row in self._server_rows():
            found.setdefault(row["pxname"], {})[row["svname"]] = ServerState(
                name=row["svname"],
                status=row["status"],
                sessions=_number(row, "scur"),
                weight=_number(row, "weight"),
            )
        return found

    def counters(self) -> dict[str, dict[str, ServerCounters]]:
        """Every backend's servers' traffic since HAProxy started or the server was added, from
        one `show stat` (response times left at zero: the request log times them). As HAProxy
        2.6 and 2.8 count, with this config (router.haproxy: `retries 3`, `retry-on
        conn-failure empty-response`, `option redispatch 1`):

        `responses` are the HTTP responses the server sent (hrsp_1xx … hrsp_other), and
        `server_errors` the 5xx among them: a 500 the app answers counts on its server. The
        router's own answers count on no server (on the backend only): its 503 once every try
        failed, its 502 for a response that broke or never came.

        `failed` are the requests the server got and did not answer: econ + eresp + wredis. A
        connection the server refuses is tried again at once on another server of the backend
        (a redispatch, wredis, on the refusing server; its econ stays 0), and the request is
        answered there. The redispatch takes another server's turn, so a refusing server gets
        more than its share of first tries (of two at the same weight, nearly every request's)
        and counts a failure for each. econ counts only a request whose every try failed (the
        backend's only server refuses: three retries on it, wretr, a second apart, then the
        503); eresp a response that broke or never came (a POST is never sent again: its
        client gets the 502)."""
        found: dict[str, dict[str, ServerCounters]] = {}
        for row in self._server_rows():
            found.setdefault(row["pxname"], {})[row["svname"]] = ServerCounters(
                responses=sum(_number(row, column) for column in _RESPONSE_COLUMNS),
                server_errors=_number(row, "hrsp_5xx"),
                failed=sum(_number(row, column) for column in _FAILED_COLUMNS),
            )
        return found

    def _server_rows(self) -> list[dict[str, str]]:
        """The rows of one `show stat` that are servers (not a backend's or frontend's
        totals), by column name."""
        header, _, body = self.command("show stat").lstrip("# ").partition("\n")
        rows = csv.DictReader([header, *body.splitlines()])
        return [row for row in rows if row["svname"] not in ("BACKEND", "FRONTEND")]

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


def _number(row: Mapping[str, str | None], column: str) -> int:
    """A counter of a `show stat` row: 0 if empty or absent (a column HAProxy leaves blank)."""
    return int(row.get(column) or 0)


@dataclass(frozen=True)
class CertificateStore:
    """The certificates an HAProxy holds (`show ssl cert`), by name."""

    loaded: frozenset[str]
    pending: frozenset[str]  # a change begun (`set ssl cert`) and not committed
