"""The router's request log: the line HAProxy writes for each request, and the line `logs` shows
for it, Heroku's `heroku[router]` line in Shipyard's words:

    at=info method=GET path="/" host=staging.hello.localhost request_id=… fwd="127.0.0.1"
    dyno=web.1 connect=0ms service=12ms status=200 bytes=512

Only the path is logged, never the query string: it can carry tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

# What HAProxy sends per request (`format raw`: the message alone). Its free-text fields come
# last, quoted, with `"` and `\` escaped (+E); a long path is cut by the `len` of the log line.
# %HPO is the path without the query string; %ID the request's id (unique-id-format).
LOG_FORMAT = "%b %s %ST %TR %Tw %Tc %Tr %Ta %B %ts %HM %ID %ci %{+Q,+E}[var(txn.host)] %{+Q,+E}HPO"
UNIQUE_ID_FORMAT = "%[uuid()]"
# The longest log line HAProxy sends (the rest of a longer path is cut).
LOG_LINE_MAX = 4096


def _quoted_field(name: str) -> str:
    return rf'"(?P<{name}>(?:[^"\\\n]|\\.)*)'


# A path cut short may lack its closing quote, or end inside an escape.
_RECORD = re.compile(
    r"(?P<backend>\S+) (?P<server>\S+) (?P<status>-?\d+) (?P<request>-?\d+) (?P<queue>-?\d+) "
    r"(?P<connect>-?\d+) (?P<response>-?\d+) (?P<active>-?\d+) (?P<bytes>-?\d+) (?P<state>\S+) "
    r"(?P<method>\S+) (?P<request_id>\S+) (?P<client>\S+) "
    rf'{_quoted_field("host")}" {_quoted_field("path")}\\?"?'
)
_ESCAPED = re.compile(r"\\(.)")
# The server names Shipyard gives processes (workers.runners.base.server_name):
# `{deployment id[:8]}-{type}-{index}-p{port}`.
_SERVER = re.compile(r"[0-9a-f]{1,8}-(?P<type>.+)-(?P<index>\d+)-p\d+")
NO_SERVER = "<NOSRV>"
# A value that needs no quotes in a line.
_BARE = re.compile(r"[A-Za-z0-9._:\-\[\]]*")
# What a quoted value escapes: its quotes, and control characters (a line stays one line).
_UNSAFE = re.compile(r'["\\\x00-\x1f\x7f]')

Level = Literal["info", "warning", "error"]

# Why a request ended early, by the first letter of HAProxy's termination state (`%ts`).
_CLIENT_ENDED = {
    "C": "the client closed the connection",
    "c": "the client did not send its request in time",
}
_PROCESS_ENDED = {
    "SC": "the process refused the connection",
    "SH": "the process closed the connection without answering",
    "SD": "the process closed the connection while answering",
    "sH": "the process did not answer in time",
    "sD": "the process stopped sending its answer",
}


@dataclass(frozen=True)
class RequestRecord:
    """One request as HAProxy logged it (times in milliseconds, -1: that step never happened)."""

    backend: str
    server: str
    status: int
    request_ms: int  # receiving the request (%TR)
    queue_ms: int  # waiting for a free server (%Tw)
    connect_ms: int  # connecting to the process (%Tc)
    response_ms: int  # until the process's answer began (%Tr)
    active_ms: int  # the whole request, end to end (%Ta)
    bytes: int
    state: str  # the termination state: "--" when it ended normally
    method: str
    request_id: str
    client: str
    host: str
    path: str


def parse(message: bytes) -> RequestRecord | None:
    """The record HAProxy sent, or None if it is not one (cut short, or of another format)."""
    match = _RECORD.fullmatch(message.decode(errors="replace").removesuffix("\n"))
    if match is None:
        return None
    number = {
        name: int(match[name])
        for name in ("status", "request", "queue", "connect", "response", "active", "bytes")
    }
    return RequestRecord(
        backend=match["backend"],
        server=match["server"],
        status=number["status"],
        request_ms=number["request"],
        queue_ms=number["queue"],
        connect_ms=number["connect"],
        response_ms=number["response"],
        active_ms=number["active"],
        bytes=number["bytes"],
        state=match["state"],
        method=match["method"],
        request_id=match["request_id"],
        client=match["client"],
        host=_ESCAPED.sub(r"\1", match["host"]),
        path=_ESCAPED.sub(r"\1", match["path"]),
    )


def dyno(server: str) -> str | None:
    """The process a server is, as `logs` labels it (`web.1`); None for no server."""
    if server == NO_SERVER:
        return None
    match = _SERVER.fullmatch(server)
    return f"{match['type']}.{match['index']}" if match else server


def outcome(record: RequestRecord) -> tuple[Level, str | None]:
    """How the request went: info when a process answered, else why it did not."""
    if record.server == NO_SERVER:
        return "error", "no process of this environment runs on this router's host"
    if record.state[:1] in _CLIENT_ENDED:
        return "warning", _CLIENT_ENDED[record.state[0]]
    if record.state[:2] in _PROCESS_ENDED:
        return "error", _PROCESS_ENDED[record.state[:2]]
    if record.state[:1] not in ("-", ""):
        return "error", f"the router ended the request (HAProxy termination state {record.state})"
    return "info", None


def line(record: RequestRecord) -> str:
    """The request as a `router:` line of `logs` (without its label)."""
    level, reason = outcome(record)
    connect, service = _timings(record)
    fields: list[tuple[str, str]] = [("at", level)]
    if reason is not None:
        fields.append(("reason", _quoted(reason)))
    fields += [
        ("method", _value(record.method)),
        ("path", _quoted(record.path)),
        ("host", _value(record.host)),
        ("request_id", _value(record.request_id)),
        ("fwd", _quoted(record.client)),
        ("dyno", _value(dyno(record.server) or "")),
        ("connect", connect),
        ("service", service),
        ("status", str(record.status)),
        ("bytes", str(record.bytes)),
    ]
    return " ".join(f"{name}={value}" for name, value in fields)


def _timings(record: RequestRecord) -> tuple[str, str]:
    """connect: until the process took the connection; service: from then on to the last byte.
    A connection never made shows the time spent trying (the retries), and no service."""
    if record.server == NO_SERVER:
        return "", ""
    before = max(record.request_ms, 0) + max(record.queue_ms, 0)
    if record.connect_ms < 0:
        return f"{max(record.active_ms - before, 0)}ms", ""
    service = max(record.active_ms - before - record.connect_ms, 0)
    return f"{record.connect_ms}ms", f"{service}ms"


def _value(text: str) -> str:
    return text if _BARE.fullmatch(text) else _quoted(text)


def _quoted(text: str) -> str:
    escaped = _UNSAFE.sub(lambda match: _escape(match[0]), text)
    return f'"{escaped}"'


def _escape(character: str) -> str:
    return f"\\{character}" if character in '"\\' else f"\\x{ord(character):02x}"
