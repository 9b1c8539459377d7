"""What the CLI needs to talk to an API: its URL and a token, from SHIPYARD_* variables.

Read without pydantic (shared.settings is the servers'): a client command imports only what a
client needs, so that `shipyard ps` starts about as fast as Python with httpx does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shipyard.shared import constants

DEFAULT_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class ClientSettings:
    """SHIPYARD_URL, SHIPYARD_TOKEN and SHIPYARD_DATA_DIR (where `shipyard up` leaves its admin
    token), each unless given."""

    url: str | None = None
    token: str | None = field(default=None, repr=False)
    data_dir: Path | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ, repr=False)

    @property
    def api_url(self) -> str:
        return self.url or self.environ.get("SHIPYARD_URL") or DEFAULT_URL

    @property
    def token_file(self) -> Path:
        folder = self.data_dir or Path(
            self.environ.get("SHIPYARD_DATA_DIR") or constants.DEFAULT_DATA_DIR
        )
        return folder / "admin-token"

    def resolved_token(self) -> str | None:
        """SHIPYARD_TOKEN, or the token `shipyard up` wrote into the data dir."""
        token = self.token or self.environ.get("SHIPYARD_TOKEN")
        if token:
            return token
        path = self.token_file
        return path.read_text().strip() if path.exists() else None
