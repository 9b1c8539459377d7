"""Progressive delivery around the health-gated switch: canary steps before it, a watch after it.

A canary step gives the new release a share of the environment's requests (router weights, see
router.traffic.Traffic.split) for the plan's step time, while its figures are compared with the
live release's over the same window at every analysis interval (shared.analysis, from the routers'
counters on the broker: shared.router_stats). A breach, or a person's abort, ends it at once: the
live release back to 100 %, the new one drained and stopped, the stage failed saying why with the
figures. A promote skips the steps left. After the switch, the watch keeps judging the new
release (against the replaced one's figures from before the switch) and asks for a rollback on a
breach. Every step and its figures are recorded on the deployment as they are taken.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Literal, Protocol

import redis
import structlog

from shipyard.router.runtime import RouterError
from shipyard.router.traffic import web_servers
from shipyard.shared import analysis
from shipyard.shared.exceptions import StageFailed
from shipyard.shared.models import utcnow
from shipyard.shared.process_record import ProcessRecord
from shipyard.shared.router_stats import CountersUnavailable, ServerCounters
from shipyard.shared.schemas.rollouts import (
    ReleaseFigures,
    RolloutCommand,
    RolloutPlan,
    RolloutRecord,
    RolloutStep,
    StepOutcome,
)

log = structlog.get_logger(__name__)

# Counters that cannot be read for this long (the broker away, no router publishing) end a canary
# or a watch: a release is not judged blind.
STATS_LOST_SECONDS = 15.0

Counters = dict[str, ServerCounters]


class RolloutStopped(StageFailed):
    """A canary step or a watch window failed its analysis, or a person aborted it: why."""


class RolloutYielded(RolloutStopped):
    """A rollback was asked for while the rollout ran: it ends, asking for none of its own."""


class RolloutStore(Protocol):
    """Where the rollout's record is kept and a person's command read (the deployment's row)."""

    def save(self, record: RolloutRecord) -> None:
        """Record where the rollout stands (each step and its figures so far)."""

    def command(self) -> RolloutCommand | None:
        """What a person asked since the last look (`promote`, `abort`), taken."""


class Weights(Protocol):
    """Where a canary's share of the requests is set: this host's router (router.traffic.Traffic),
    or every router of an environment spread over several run hosts (workers.stages.spread)."""

    def split(self, new: list[ProcessRecord], old: list[ProcessRecord], share: int) -> object:
        """`share` % of the requests to the new processes, the rest to the old ones."""

    def retire(self, processes: list[ProcessRecord]) -> None:
        """The processes drained out of the router and taken out of it."""


def server_names(processes: Collection[ProcessRecord]) -> list[str]:
    """The router servers of the processes that take HTTP traffic."""
    return [str(p["server"]) for p in web_servers(processes)]


@dataclass
class Analysis:
    """One rollout's looks at the figures: reads the counters, judges, records each step."""

    plan: RolloutPlan
    read_counters: Callable[[], Counters]
    store: RolloutStore
    record: RolloutRecord
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _failing_since: float | None = field(default=None, init=False)
    # Every server's last reading: one gone from the router since (a process restarted on
    # another port, its old server taken out) keeps counting with what it had.
    _seen: Counters = field(default_factory=dict, init=False)

    def counters(self) -> Counters | None:
        """The counters now; None if they cannot be read (for up to STATS_LOST_SECONDS in a
        row: then RolloutStopped)."""
        now = self.clock()
        try:
            found = self.read_counters()
        except (redis.RedisError, OSError, ValueError, CountersUnavailable) as exc:
            if self._failing_since is None:
                self._failing_since = now
            if now - self._failing_since > STATS_LOST_SECONDS:
                why = str(exc) if isinstance(exc, CountersUnavailable) else type(exc).__name__
                raise RolloutStopped(
                    f"the routers' counters could not be read for {STATS_LOST_SECONDS:g}s "
                    f"({why}): a release is not judged blind"
                ) from exc
            log.warning("rollout.counters_unreadable", error=type(exc).__name__)
            return None
        self._failing_since = None
        self._seen = {**self._seen, **found}
        return dict(self._seen)

    def step(
        self,
        *,
        phase: Literal["canary", "watch"],
        share: int,
        seconds: float,
        new: Callable[[], Collection[str]],
        old: Callable[[], Collection[str]],
        stable: ReleaseFigures | None = None,
        each_look: Callable[[], None] | None = None,
    ) -> StepOutcome:
        """Send `share` % for `seconds` while judging the servers `new` names against those
        `old` names (both asked at each look: processes restarted meanwhile are servers of
        other names), or against fixed `stable` figures; `passed`, `inconclusive` (too few
        requests to judge) or `promoted`. Raises RolloutStopped on a breach, an abort or a
        rollback asked for (RolloutYielded), with the step recorded."""
        baseline = self._baseline()
        step = RolloutStep(phase=phase, share=share, started_at=utcnow())
        self.record.steps.append(step)
        self.record.share = share
        self.store.save(self.record)
        ends = self.clock() + seconds
        # Every server either release had during the step: one restarted away still counts.
        new_servers: set[str] = set()
        old_servers: set[str] = set()
        while True:
            if each_look is not None:
                each_look()
            self._take_command(step)
            if step.outcome == "promoted":
                return "promoted"
            new_servers.update(new())
            old_servers.update(old())
            now_counters = self.counters()
            if now_counters is not None:
                step.canary = analysis.figures(analysis.window(baseline, now_counters, new_servers))
                step.stable = stable or analysis.figures(
                    analysis.window(baseline, now_counters, old_servers)
                )
                reason = analysis.breach(step.canary, step.stable, self.plan)
                if reason is not None:
                    self._end(step, "breached", reason)
                    raise RolloutStopped(reason)
            left = ends - self.clock()
            if left <= 0:
                conclusive = step.canary is not None and analysis.conclusive(step.canary, self.plan)
                self._end(step, "passed" if conclusive else "inconclusive", None)
                return step.outcome
            self.store.save(self.record)
            self.sleep(min(self.plan.analysis_seconds, left))

    def _take_command(self, step: RolloutStep) -> None:
        """Act on a command given since the last look: an abort or a yield raises, a promote
        marks the step promoted."""
        command = self.store.command()
        if command == "abort":
            self._end(step, "aborted", "aborted by a person (`shipyard canary abort`)")
            raise RolloutStopped(step.reason or "aborted")
        if command == "yield":
            self._end(step, "aborted", "a rollback was asked for")
            raise RolloutYielded(step.reason or "yielded")
        if command == "promote":
            self._end(step, "promoted", "promoted by a person (`shipyard canary promote`)")

    def _baseline(self) -> Counters:
        """The counters a step starts from: waited for (bounded) if they cannot be read now."""
        while True:
            found = self.counters()
            if found is not None:
                return found
            self.sleep(self.plan.analysis_seconds)

    def _end(self, step: RolloutStep, outcome: StepOutcome, reason: str | None) -> None:
        step.outcome = outcome
        step.reason = reason
        step.ended_at = utcnow()
        if reason is not None and outcome in ("aborted", "breached"):
            self.record.reason = f"{step.phase} at {step.share} %: {reason}"
        self.store.save(self.record)

    def finish(self, state: str, share: int) -> None:
        """The rollout ends (or moves on to its watch) as `state`, the new release at `share`."""
        self.record.state = state  # type: ignore[assignment]
        self.record.share = share
        self.store.save(self.record)


def canary_steps(
    analysis_: Analysis,
    traffic: Weights,
    new: list[ProcessRecord],
    live: Callable[[], list[ProcessRecord]],
) -> None:
    """Take the plan's steps below 100 % (a promote skips those left), `live` asked at each
    look for the live release's processes (one restarted meanwhile is another server). On a
    breach, an abort or anything else that ends them early, the live release is put back to
    100 % before RolloutStopped (or the error) is raised; the caller stops `new`."""
    new_names = server_names(new)
    old = live()
    for share in analysis_.plan.canary:
        if share >= 100:
            break

        def weigh(share: int = share) -> None:
            # Again at every look: a router restarted meanwhile lost the new servers, and a
            # live process restarted is a new server at full weight.
            nonlocal old
            old = live()
            try:
                traffic.split(new, old, share)
            except RouterError as exc:
                log.error("rollout.split_failed", share=share, error=exc.message)

        try:
            # Recorded before the router is told: a takeover then knows what to undo.
            analysis_.record.share = share
            analysis_.store.save(analysis_.record)
            traffic.split(new, old, share)
            log.info("rollout.canary_step", share=share)
            outcome = analysis_.step(
                phase="canary",
                share=share,
                seconds=analysis_.plan.step_seconds,
                new=lambda: new_names,
                old=lambda: server_names(old),
                each_look=weigh,
            )
        except BaseException as exc:
            # Recorded first: the other run hosts of a spread environment read the share from
            # the record when told to weigh again.
            try:
                analysis_.finish("aborted", 0)
            finally:  # the store away: the routers go back all the same
                _back_to_live(traffic, new, old)
            if not isinstance(exc, (RolloutStopped, RouterError)):
                raise
            kind = RolloutYielded if isinstance(exc, RolloutYielded) else RolloutStopped
            raise kind(
                f"canary aborted at {share} %, the live release serves all requests again: "
                f"{exc.message}"
            ) from exc
        if outcome == "promoted":
            analysis_.finish("promoted", 100)
            return


def _back_to_live(traffic: Weights, new: list[ProcessRecord], old: list[ProcessRecord]) -> None:
    """Every request to the live release again at once, then the new servers drained out."""
    try:
        traffic.split(new, old, 0)
    except RouterError as exc:
        log.error("rollout.unsplit_failed", error=exc.message)
    try:
        traffic.retire(new)
    except RouterError as exc:
        log.error("rollout.retire_failed", error=exc.message)


def watch(
    analysis_: Analysis,
    live: Callable[[], list[ProcessRecord]],
    stable: ReleaseFigures | None,
) -> None:
    """Judge the new release, serving all requests, for the plan's watch window (in windows of
    the step time, each recorded), against the replaced release's figures from before the
    switch; `live` is asked at each look for its processes (restarted ones are other
    servers). RolloutStopped on a breach or an abort (the caller rolls back), RolloutYielded
    when a rollback was asked for meanwhile. A promote ends it."""
    plan = analysis_.plan
    analysis_.finish("watching", 100)
    left = plan.watch_seconds
    while left > 0:
        seconds = min(plan.step_seconds, left)
        outcome = analysis_.step(
            phase="watch",
            share=100,
            seconds=seconds,
            new=lambda: server_names(live()),
            old=tuple,
            stable=stable,
        )
        if outcome == "promoted":
            break
        left -= seconds
    analysis_.finish("done", 100)
