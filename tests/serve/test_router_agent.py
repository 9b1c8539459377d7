"""`shipyard router`: what it hands its supervisor for HAProxy."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.serve import router_agent
from shipyard.serve.supervisor import ChildSpec
from shipyard.shared.settings import Settings


class _Captured(Exception):
    """Stops the agent once its HAProxy child is known."""


def test_haproxy_is_supervised_with_a_scrubbed_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    # In the agent's environment, as a container or a unit file would put them.
    monkeypatch.setenv("SHIPYARD_ADMIN_TOKEN", "shp_admin-token-that-must-not-leak")
    monkeypatch.setenv("SHIPYARD_SECRET_KEY", "secret-key-that-must-not-leak")
    specs: list[ChildSpec] = []

    class CapturingSupervisor:
        def __init__(self, children: list[ChildSpec], **_: object) -> None:
            specs.extend(children)
            raise _Captured

    monkeypatch.setattr(router_agent, "Supervisor", CapturingSupervisor)

    with pytest.raises(_Captured):
        router_agent.run(settings)

    (haproxy,) = specs
    assert haproxy.env is not None
    assert "PATH" in haproxy.env
    assert not {name for name in haproxy.env if name.startswith("SHIPYARD_")}
    assert "must-not-leak" not in repr(haproxy.env)
