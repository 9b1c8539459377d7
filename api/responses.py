"""A JSON response of a pydantic model that the route built and validated itself."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from starlette.responses import Response


class ModelResponse(Response):
    """`model` serialised once, as FastAPI would serialise it as the route's response model.

    A route that returns a model has it validated again and serialised by FastAPI, in a thread
    of the pool when the route is a plain `def`: a hop and a validation per request that a
    route returning this skips (docs/benchmarks.md, issue 28). Give the route the model as its
    `response_model`, so that the API's schema still shows it.
    """

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        if not isinstance(content, BaseModel):
            raise TypeError(f"ModelResponse takes a pydantic model, not {type(content).__name__}")
        return content.model_dump_json(by_alias=True).encode()
