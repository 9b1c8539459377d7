"""What an environment's processes print: the last lines, then new lines as they are written.

The local runner writes each process's output to a file in the run host's data dir; the Docker
runner's containers keep theirs in the engine. A follower reads both the same way (poll for what
is new), so `shipyard logs --tail` streams either. Every line is prefixed with its process type,
and the release's secret values are replaced by `<redacted>` as everywhere else.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from shipyard.shared.logging import redact
from shipyard.shared.process_record import ProcessRecord

# Bytes read from the end of a file to find its last lines (a line longer than this is cut).
_TAIL_WINDOW = 1_048_576


class LogSource(Protocol):
    """One process's output."""

    label: str

    @property
    def origin(self) -> str:
        """Where the output is (a file, a container): the same for one process whichever
        deployment records it (a restart of another type carries it over to the next)."""
        ...

    def tail(self, lines: int) -> list[str]:
        """The last `lines` lines; what follows them is what `poll` returns next."""
        ...

    def poll(self) -> list[str]:
        """Complete lines written since the last call."""
        ...


@dataclass
class FileSource:
    """A local process's output file."""

    label: str
    path: Path
    _offset: int = 0
    _partial: bytes = b""

    @property
    def origin(self) -> str:
        return str(self.path)

    def tail(self, lines: int) -> list[str]:
        try:
            with self.path.open("rb") as handle:
                end = handle.seek(0, os.SEEK_END)
                handle.seek(max(0, end - _TAIL_WINDOW))
                data = handle.read(end - handle.tell())
        except FileNotFoundError:
            return []
        self._offset = end
        complete, newline, self._partial = data.rpartition(b"\n")
        if not newline:  # no complete line yet: all of it waits for its end
            complete, self._partial = b"", data
        text = complete.decode(errors="replace").splitlines()
        return text[-lines:] if lines else []

    def poll(self) -> list[str]:
        try:
            with self.path.open("rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                if size < self._offset:  # truncated or replaced: start again from its top
                    self._offset, self._partial = 0, b""
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        data = self._partial + data
        complete, newline, rest = data.rpartition(b"\n")
        if not newline:
            self._partial = data
            return []
        self._partial = rest
        return complete.decode(errors="replace").splitlines()


@dataclass
class ContainerSource:
    """A container's output, from the Docker engine."""

    label: str
    container_id: str
    client: Any  # docker.DockerClient
    _since: str | None = None  # the engine's RFC 3339 timestamp of the last line read

    @property
    def origin(self) -> str:
        return self.container_id

    def _read(self, **options: Any) -> list[str]:
        from docker.errors import NotFound

        try:
            raw: bytes = self.client.api.logs(self.container_id, timestamps=True, **options)
        except NotFound:
            return []
        lines = []
        for line in raw.decode(errors="replace").splitlines():
            stamp, _, text = line.partition(" ")
            if self._since is not None and stamp <= self._since:
                continue  # `since` has one-second resolution: lines already read come again
            self._since = stamp
            lines.append(text)
        return lines

    def tail(self, lines: int) -> list[str]:
        read = self._read(tail=max(lines, 1))
        return read[-lines:] if lines else []

    def poll(self) -> list[str]:
        if self._since is None:
            return self._read()
        seconds = self._since.split(".")[0]
        return self._read(since=_epoch(seconds))


def _epoch(rfc3339_seconds: str) -> int:

    return int(
        datetime.strptime(rfc3339_seconds, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    )


def sources_for(
    processes: Iterable[ProcessRecord],
    process_type: str | None,
    docker_client: Callable[[], Any],
) -> list[LogSource]:
    """The output of each recorded process (of `process_type`, or all), labelled `type.N`."""
    sources: list[LogSource] = []
    counts: dict[str, int] = {}
    for record in processes:
        kind = str(record["type"])
        if process_type is not None and kind != process_type:
            continue
        counts[kind] = counts.get(kind, 0) + 1
        label = f"{kind}.{counts[kind]}"
        if record.get("log"):
            sources.append(FileSource(label, Path(record["log"])))
        elif record.get("container"):
            sources.append(ContainerSource(label, str(record["container"]), docker_client()))
    return sources


@dataclass
class Follower:
    """The lines of a set of sources, labelled and redacted; the set may change (a new release)."""

    secrets: set[str] = field(default_factory=set)
    sources: dict[str, LogSource] = field(default_factory=dict)

    def add(self, key: str, source: LogSource, lines: int) -> list[str]:
        """Start following `source` (once per key); its last `lines` lines."""
        if key in self.sources:
            return []
        self.sources[key] = source
        return self._format(source, source.tail(lines))

    def poll(self) -> list[str]:
        """New lines of every source."""
        return [
            line for source in self.sources.values() for line in self._format(source, source.poll())
        ]

    def _format(self, source: LogSource, lines: list[str]) -> list[str]:
        return [redact(f"{source.label}: {line}\n", self.secrets) for line in lines]
