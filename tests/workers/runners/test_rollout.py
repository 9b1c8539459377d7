"""The canary's steps and the watch, on a fake clock: counters given per look, a fake router.

The real router's weights are tests/router/test_traffic.py's; real end to end, with HAProxy,
processes and workers, tests/integration/test_canary.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from shipyard.shared.router_stats import LATENCY_BUCKETS_MS, ServerCounters
from shipyard.shared.schemas.rollouts import RolloutCommand, RolloutPlan, RolloutRecord
from shipyard.workers.runners.rollout import (
    STATS_LOST_SECONDS,
    Analysis,
    RolloutStopped,
    RolloutYielded,
    canary_steps,
    watch,
)

NEW = [{"type": "web", "index": 1, "port": 9001, "server": "new-web-1"}]
OLD = [{"type": "web", "index": 1, "port": 9000, "server": "old-web-1"}]


def counters(responses: int, server_errors: int = 0, failed: int = 0) -> ServerCounters:
    latency = [0] * (len(LATENCY_BUCKETS_MS) + 1)
    latency[1] = responses  # all under 10 ms
    return ServerCounters(responses, server_errors, failed, tuple(latency))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Store:
    def __init__(self) -> None:
        self.saved: list[RolloutRecord] = []
        self.commands: dict[float, RolloutCommand] = {}  # at (fake) time → command
        self.clock: Clock | None = None

    def save(self, record: RolloutRecord) -> None:
        self.saved.append(record.model_copy(deep=True))

    def command(self) -> RolloutCommand | None:
        assert self.clock is not None
        due = [at for at in self.commands if at <= self.clock.now]
        return self.commands.pop(due[0]) if due else None


class Router:
    """Records the shares asked, and what was retired."""

    def __init__(self) -> None:
        self.shares: list[int] = []
        self.retired: list[list[dict[str, object]]] = []

    def split(self, new: object, old: object, share: int) -> None:
        if not self.shares or self.shares[-1] != share:
            self.shares.append(share)

    def retire(self, processes: list[dict[str, object]]) -> None:
        self.retired.append(processes)


def traffic_reader(
    clock: Clock, new_rate: float, old_rate: float, new_errors: float = 0.0
) -> Iterator[dict[str, ServerCounters]]:
    """Counters growing with the fake clock: `new_rate` and `old_rate` requests a second, a
    `new_errors` fraction of the new release's answered 5xx."""
    while True:
        new = int(new_rate * clock.now)
        yield {
            "new-web-1": counters(new, int(new * new_errors)),
            "old-web-1": counters(int(old_rate * clock.now)),
        }


def analysis_for(
    plan: RolloutPlan, reader: Iterator[dict[str, ServerCounters]], clock: Clock
) -> tuple[Analysis, Store]:
    store = Store()
    store.clock = clock
    record = RolloutRecord(plan=plan, state="canary", share=0)
    made = Analysis(
        plan=plan,
        read_counters=lambda: next(reader),
        store=store,
        record=record,
        clock=clock,
        sleep=clock.sleep,
    )
    return made, store


def test_a_good_canary_takes_every_step_below_100_and_records_its_figures() -> None:
    plan = RolloutPlan(canary=[10, 50, 100], step_seconds=10)
    clock = Clock()
    made, store = analysis_for(plan, traffic_reader(clock, new_rate=10, old_rate=90), clock)
    router = Router()
    canary_steps(made, router, NEW, lambda: OLD)  # type: ignore[arg-type]
    assert router.shares == [10, 50]
    steps = made.record.steps
    assert [(s.phase, s.share, s.outcome) for s in steps] == [
        ("canary", 10, "passed"),
        ("canary", 50, "passed"),
    ]
    assert steps[0].canary is not None and steps[0].canary.requests == 100
    assert steps[0].stable is not None and steps[0].stable.requests == 900
    assert steps[0].canary.p95_ms == 10.0
    assert router.retired == []  # nothing aborted
    assert clock.now == pytest.approx(20.0)


def test_a_failing_canary_aborts_within_its_first_step_and_puts_the_live_release_back() -> None:
    plan = RolloutPlan(canary=[10, 100], step_seconds=60, min_requests=20)
    clock = Clock()
    made, store = analysis_for(
        plan, traffic_reader(clock, new_rate=10, old_rate=90, new_errors=0.2), clock
    )
    router = Router()
    with pytest.raises(RolloutStopped) as stopped:
        canary_steps(made, router, NEW, lambda: OLD)  # type: ignore[arg-type]
    assert "canary aborted at 10 %" in stopped.value.message
    assert "error rate 20.0 %" in stopped.value.message
    assert router.shares == [10, 0]  # back to the live release
    assert router.retired == [NEW]
    assert made.record.state == "aborted" and made.record.share == 0
    assert made.record.steps[0].outcome == "breached"
    # Judged once it had its 20 requests (2 s at 10 a second), at the next look.
    assert clock.now <= 2.0 + plan.analysis_seconds
    assert store.saved[-1].state == "aborted"


def test_too_few_requests_make_a_step_inconclusive_not_a_failure() -> None:
    plan = RolloutPlan(canary=[10, 100], step_seconds=5, min_requests=100)
    clock = Clock()
    made, store = analysis_for(
        plan, traffic_reader(clock, new_rate=1, old_rate=9, new_errors=1.0), clock
    )
    canary_steps(made, Router(), NEW, lambda: OLD)  # type: ignore[arg-type]
    assert made.record.steps[0].outcome == "inconclusive"


@pytest.mark.parametrize(
    ("command", "state", "shares"), [("promote", "promoted", [10]), ("abort", "aborted", [10, 0])]
)
def test_a_persons_promote_skips_the_steps_left_and_an_abort_ends_it(
    command: RolloutCommand, state: str, shares: list[int]
) -> None:
    plan = RolloutPlan(canary=[10, 50, 100], step_seconds=60)
    clock = Clock()
    made, store = analysis_for(plan, traffic_reader(clock, new_rate=10, old_rate=90), clock)
    store.commands[3.0] = command
    router = Router()
    if command == "abort":
        with pytest.raises(RolloutStopped, match="aborted by a person"):
            canary_steps(made, router, NEW, lambda: OLD)  # type: ignore[arg-type]
    else:
        canary_steps(made, router, NEW, lambda: OLD)  # type: ignore[arg-type]
    assert made.record.state == state
    assert router.shares == shares
    assert clock.now < 5.0  # taken at the next look, not at the step's end


def test_counters_unreadable_for_too_long_end_the_canary() -> None:
    plan = RolloutPlan(canary=[10, 100], step_seconds=600)
    clock = Clock()
    calls = {"n": 0}

    def flaky() -> dict[str, ServerCounters]:
        calls["n"] += 1
        if calls["n"] > 1:
            raise redis.ConnectionError("broker away")
        return {}

    made, store = analysis_for(plan, iter(()), clock)
    made.read_counters = flaky
    with pytest.raises(RolloutStopped, match="counters could not be read"):
        canary_steps(made, Router(), NEW, lambda: OLD)  # type: ignore[arg-type]
    assert clock.now <= STATS_LOST_SECONDS + 2 * plan.analysis_seconds


def test_the_watch_judges_the_new_release_against_the_replaced_ones_figures() -> None:
    plan = RolloutPlan(watch_seconds=30, step_seconds=10)
    clock = Clock()

    def failing_after_15s() -> Iterator[dict[str, ServerCounters]]:
        while True:
            good = int(50 * min(clock.now, 15))
            bad = int(50 * max(clock.now - 15, 0))
            yield {"new-web-1": counters(good + bad, server_errors=bad // 5)}

    made, store = analysis_for(plan, failing_after_15s(), clock)
    with pytest.raises(RolloutStopped, match="error rate"):
        watch(made, lambda: NEW, stable=None)  # type: ignore[arg-type]
    phases = [(s.phase, s.share, s.outcome) for s in made.record.steps]
    assert phases == [("watch", 100, "passed"), ("watch", 100, "breached")]
    assert 15 < clock.now < 20


def test_a_quiet_watch_ends_done() -> None:
    plan = RolloutPlan(watch_seconds=25, step_seconds=10)
    clock = Clock()
    made, store = analysis_for(plan, traffic_reader(clock, new_rate=10, old_rate=0), clock)
    watch(made, lambda: NEW, stable=None)  # type: ignore[arg-type]
    assert made.record.state == "done"
    assert [s.share for s in made.record.steps] == [100, 100, 100]
    assert clock.now == pytest.approx(25.0)


def test_a_rollback_asked_for_makes_a_canary_abort_and_a_watch_end_without_a_breach() -> None:
    plan = RolloutPlan(canary=[10, 100], step_seconds=60, watch_seconds=60)
    clock = Clock()
    made, store = analysis_for(plan, traffic_reader(clock, new_rate=10, old_rate=90), clock)
    store.commands[2.0] = "yield"
    router = Router()
    with pytest.raises(RolloutYielded, match="a rollback was asked for"):
        canary_steps(made, router, NEW, lambda: OLD)  # type: ignore[arg-type]
    assert router.shares == [10, 0] and router.retired == [NEW]

    watched, store = analysis_for(plan, traffic_reader(clock, new_rate=10, old_rate=0), clock)
    store.commands[clock.now + 2.0] = "yield"
    with pytest.raises(RolloutYielded):
        watch(watched, lambda: NEW, stable=None)  # type: ignore[arg-type]


class Failing(Exception):
    pass


def test_anything_that_ends_the_steps_early_puts_the_live_release_back_first() -> None:
    plan = RolloutPlan(canary=[10, 100], step_seconds=60)
    clock = Clock()
    made, store = analysis_for(plan, traffic_reader(clock, new_rate=10, old_rate=90), clock)

    def broken_save(record: RolloutRecord) -> None:
        if record.steps:
            raise Failing("the store went away")

    store.save = broken_save  # type: ignore[method-assign]
    router = Router()
    with pytest.raises(Failing):
        canary_steps(made, router, NEW, lambda: OLD)  # type: ignore[arg-type]
    assert router.shares == [10, 0] and router.retired == [NEW]


def test_a_live_process_restarted_during_a_step_is_weighed_and_judged_under_its_new_name() -> None:
    plan = RolloutPlan(canary=[10, 100], step_seconds=10)
    clock = Clock()
    restarted = [{"type": "web", "index": 1, "port": 9002, "server": "old-web-1-p9002"}]

    def reader() -> Iterator[dict[str, ServerCounters]]:
        while True:
            new = int(10 * clock.now)
            if clock.now < 5:  # the old server until it died, its errors included
                yield {"new-web-1": counters(new), "old-web-1": counters(int(90 * clock.now))}
            else:  # restarted on another port: the old server is gone from the router
                after = int(90 * (clock.now - 5))
                yield {"new-web-1": counters(new), "old-web-1-p9002": counters(after)}

    made, store = analysis_for(plan, reader(), clock)
    live = {"now": OLD}

    def weighed_live() -> list[dict[str, object]]:
        if clock.now >= 5:
            live["now"] = restarted
        return live["now"]  # type: ignore[return-value]

    router = Router()
    canary_steps(made, router, NEW, weighed_live)  # type: ignore[arg-type]
    step = made.record.steps[0]
    assert step.outcome == "passed"
    # Both of the live release's servers counted: the one gone kept what it had.
    # (the gone one as last read, at 4 s; the new one until the step ended, at 10 s)
    assert step.stable is not None and step.stable.requests == 90 * 4 + 90 * 5


def test_one_unreadable_look_after_a_long_quiet_time_is_not_a_loss_of_the_counters() -> None:
    plan = RolloutPlan(watch_seconds=30, step_seconds=30)
    clock = Clock()
    looks = {"n": 0}

    def once_failing() -> dict[str, ServerCounters]:
        looks["n"] += 1
        if looks["n"] == 3:
            raise redis.ConnectionError("a blip")
        return {"new-web-1": counters(int(10 * clock.now))}

    made, store = analysis_for(plan, iter(()), clock)
    made.read_counters = once_failing
    clock.now = 1000.0  # long after the last read (a drain of the switch in between)
    watch(made, lambda: NEW, stable=None)  # type: ignore[arg-type]
    assert made.record.state == "done"
