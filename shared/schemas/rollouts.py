"""Progressive delivery: how a release goes live (a rollout plan), and how it went (its record)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)

from shipyard.shared import constants
from shipyard.shared.schemas.common import Input

Seconds = float


class RolloutPlan(Input):
    """How a pipeline's release goes live: at once (`canary` empty) or by canary steps, each the
    share of requests (in percent) the new release gets for `step_seconds` while its figures are
    compared with the live release's; then, if `watch_seconds`, watched at 100 % and rolled back
    automatically on a breach. The analysis's thresholds have the defaults of shared.constants."""

    canary: list[int] = Field(
        default_factory=list,
        description="Shares in percent, rising, ending at 100 (added if left out); [] = at once.",
        max_length=10,
    )
    step_seconds: Seconds = Field(default=constants.CANARY_STEP_SECONDS, ge=1, le=3600)
    watch_seconds: Seconds = Field(default=0, ge=0, le=3600)
    analysis_seconds: Seconds = Field(default=constants.CANARY_ANALYSIS_SECONDS, ge=0.2, le=60)
    max_error_rate: float = Field(default=constants.CANARY_MAX_ERROR_RATE, ge=0, le=1)
    error_rate_ratio: float = Field(default=constants.CANARY_ERROR_RATE_RATIO, ge=1, le=100)
    latency_ratio: float = Field(default=constants.CANARY_LATENCY_RATIO, ge=1, le=100)
    min_requests: int = Field(default=constants.CANARY_MIN_REQUESTS, ge=1, le=1_000_000)

    @field_validator("canary")
    @classmethod
    def _rising_to_100(cls, shares: list[int]) -> list[int]:
        if not shares:
            return shares
        if any(not 1 <= share <= 100 for share in shares):
            raise ValueError("each canary share is a percentage from 1 to 100")
        if any(later <= earlier for earlier, later in zip(shares, shares[1:], strict=False)):
            raise ValueError("canary shares must rise, e.g. 10,50,100")
        return shares if shares[-1] == 100 else [*shares, 100]

    @model_validator(mode="after")
    def _within_the_run_stage(self) -> RolloutPlan:
        if self.seconds > constants.ROLLOUT_MAX_SECONDS:
            raise ValueError(
                f"the canary's steps and the watch take {self.seconds:g}s, more than the "
                f"{constants.ROLLOUT_MAX_SECONDS:g}s a rollout may take: fewer or shorter steps"
            )
        return self

    @property
    def seconds(self) -> float:
        """How long the steps below 100 % and the watch take at most."""
        return self.step_seconds * len([s for s in self.canary if s < 100]) + self.watch_seconds

    @property
    def gradual(self) -> bool:
        """Whether anything happens beyond the switch: canary steps or a watch."""
        return bool(self.canary) or self.watch_seconds > 0


class RolloutRequest(Input):
    """What a deploy may ask of its rollout, over the environment's default plan: canary shares
    (`[]`: at once, whatever the default), the step time, the watch window."""

    canary: list[int] | None = Field(default=None, max_length=10)
    step_seconds: Seconds | None = Field(default=None, ge=1, le=3600)
    watch_seconds: Seconds | None = Field(default=None, ge=0, le=3600)


class ReleaseFigures(BaseModel):
    """One release's traffic over a window, from the routers' counters."""

    requests: int  # responses, and requests that got none (connection or response error)
    errors: int  # 5xx responses, connection errors and response errors
    error_rate: float  # errors / requests (0 with no request)
    p95_ms: float | None  # from the request log's response times (None: no response timed)
    timed: int = 0  # how many responses the p95 is of (a sample of the requests)


RolloutState = Literal["canary", "watching", "done", "promoted", "aborted", "rolled_back"]
StepOutcome = Literal["running", "passed", "inconclusive", "promoted", "aborted", "breached"]


class RolloutStep(BaseModel):
    """One step: the share the new release got, for how long, its figures and the live one's."""

    phase: Literal["canary", "watch"]
    share: int  # percent of requests sent to the new release (100 while watched)
    started_at: datetime
    ended_at: datetime | None = None
    canary: ReleaseFigures | None = None  # the new release over the step so far
    stable: ReleaseFigures | None = None  # the live (or, watched, the replaced) release
    outcome: StepOutcome = "running"
    reason: str | None = None  # why it failed or was cut short, with the figures


class RolloutRecord(BaseModel):
    """A deployment's rollout: its plan, where it stands, each step's figures."""

    plan: RolloutPlan
    state: RolloutState
    share: int  # percent of requests the new release gets now
    steps: list[RolloutStep] = Field(default_factory=list)
    reason: str | None = None  # why it was aborted or rolled back


# `promote` and `abort` are a person's; `yield` is a rollback's, asked for meanwhile: a canary
# aborts, a watch ends without asking for a rollback of its own.
RolloutCommand = Literal["promote", "abort", "yield"]


class RolloutPublic(RolloutRecord):
    """An environment's rollout under way: its record, the deployment and release it brings, and
    a command given to it that the run stage has not taken yet."""

    deployment_id: uuid.UUID
    release_version: int
    command: RolloutCommand | None = None


def _or_none(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    # A view never fails on what the store holds: a plan or a record written under other rules
    # (an older run stage, a lower ROLLOUT_MAX_SECONDS since) is shown as none.
    try:
        return handler(value)
    except ValidationError:
        return None


# A plan or a record as a view reads it from the store: None when it does not parse.
StoredPlan = Annotated[RolloutPlan | None, WrapValidator(_or_none)]
StoredRecord = Annotated[RolloutRecord | None, WrapValidator(_or_none)]
