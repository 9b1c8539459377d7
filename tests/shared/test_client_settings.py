"""The CLI's settings: the API's URL and a token, read without the servers' settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.shared.client_settings import DEFAULT_URL, ClientSettings


def test_client_settings_prefer_shipyard_token_over_the_token_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHIPYARD_TOKEN", raising=False)
    (tmp_path / "admin-token").write_text("from-the-file\n")

    assert ClientSettings(data_dir=tmp_path).resolved_token() == "from-the-file"

    monkeypatch.setenv("SHIPYARD_TOKEN", "from-the-environment")
    assert ClientSettings(data_dir=tmp_path).resolved_token() == "from-the-environment"


def test_client_settings_without_any_token_send_none(tmp_path: Path) -> None:
    assert ClientSettings(data_dir=tmp_path, environ={}).resolved_token() is None


def test_the_url_and_the_data_dir_come_from_the_environment_unless_given(tmp_path: Path) -> None:
    (tmp_path / "admin-token").write_text("t\n")
    environ = {"SHIPYARD_URL": "http://api:9000", "SHIPYARD_DATA_DIR": str(tmp_path)}

    from_environment = ClientSettings(environ=environ)
    given = ClientSettings(url="http://other:1", environ=environ)

    assert from_environment.api_url == "http://api:9000"
    assert from_environment.resolved_token() == "t"
    assert given.api_url == "http://other:1"
    assert ClientSettings(environ={}).api_url == DEFAULT_URL
    assert "secret-token" not in repr(ClientSettings(token="secret-token", environ={}))
