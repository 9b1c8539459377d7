"""Engines: embedded mode refuses, clearly, an SQLite too old for the stages' statements."""

from __future__ import annotations

import pytest

from shared.db import require_sqlite_returning
from shared.exceptions import ConfigurationError


def test_an_sqlite_without_update_returning_is_refused_with_what_to_do() -> None:
    with pytest.raises(
        ConfigurationError, match=r"SQLite 3\.35 or newer; this Python's is 3\.31\.1"
    ):
        require_sqlite_returning((3, 31, 1))


def test_an_sqlite_with_update_returning_is_accepted() -> None:
    require_sqlite_returning((3, 35, 0))
    require_sqlite_returning((3, 45, 2))
