"""A model the route built is answered with the very bytes FastAPI's own serialisation makes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from pydantic import TypeAdapter

from shipyard.api.responses import ModelResponse
from shipyard.shared.schemas import ConfigChange, PipelinePublic, StagePublic

NOW = datetime(2026, 12, 7, 12, 0, 0, 123456, tzinfo=UTC)
PIPELINE = PipelinePublic(
    id=uuid.uuid4(),
    app="web",
    environment="staging",
    kind="deploy",
    status="running",
    trigger="cli",
    ref="HEAD",
    artifact_id=None,
    release_id=None,
    deployment_id=None,
    error="ünïcode ✓",
    created_at=NOW,
    finished_at=None,
    stages=[
        StagePublic(
            name="build",
            status="running",
            attempt=1,
            hostname="build@host",
            started_at=NOW,
            finished_at=None,
            result_id=None,
            error=None,
            cache_hit=False,
        )
    ],
)


@pytest.mark.parametrize(
    "model",
    [PIPELINE, ConfigChange(key="A", change="changed", secret=False, from_="1", to="2")],
    ids=["pipeline", "aliased"],
)
def test_the_body_is_what_fastapi_would_have_sent(model: PipelinePublic | ConfigChange) -> None:
    response = ModelResponse(model, status_code=202)

    # What FastAPI sends for a route whose response model is the model's class.
    assert response.body == TypeAdapter(type(model)).dump_json(model, by_alias=True)
    assert response.status_code == 202
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == str(len(response.body))


def test_anything_but_a_model_is_refused() -> None:
    with pytest.raises(TypeError, match="pydantic model"):
        ModelResponse({"status": "ok"})
