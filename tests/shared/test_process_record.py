"""A process record's status is declared once: the API's view of a process takes exactly those."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shipyard.shared.process_record import ProcessStatus
from shipyard.shared.schemas import ProcessPublic


def test_the_process_statuses_are_those_the_supervision_writes() -> None:
    assert [status.value for status in ProcessStatus] == [
        "running",
        "starting",
        "restarting",
        "crashed",
    ]


@pytest.mark.parametrize("status", [status.value for status in ProcessStatus])
def test_the_api_shows_every_declared_status(status: str) -> None:
    process = ProcessPublic.model_validate({"type": "web", "status": status, "url": None})

    assert process.status == status
    assert process.model_dump(mode="json")["status"] == status


def test_the_api_refuses_a_status_never_declared() -> None:
    with pytest.raises(ValidationError):
        ProcessPublic.model_validate({"type": "web", "status": "exited", "url": None})
