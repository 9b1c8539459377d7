"""A canary's analysis: one release's figures over a window of the routers' counters, their
p95, and whether the new release fails against the live one."""

from __future__ import annotations

import pytest

from shipyard.shared import analysis, constants
from shipyard.shared.router_stats import LATENCY_BUCKETS_MS, ServerCounters
from shipyard.shared.schemas.rollouts import ReleaseFigures, RolloutPlan

BUCKETS = len(LATENCY_BUCKETS_MS) + 1
PLAN = RolloutPlan(
    canary=[10, 50],
    max_error_rate=0.01,
    error_rate_ratio=2,
    latency_ratio=2,
    min_requests=100,
)


def timed(**by_bound: int) -> tuple[int, ...]:
    """Responses per bucket, by the bucket's upper bound (`ms_25=3`; `slower` for the last)."""
    names = [f"ms_{bound}" for bound in LATENCY_BUCKETS_MS] + ["slower"]
    unknown = set(by_bound) - set(names)
    assert not unknown, unknown
    return tuple(by_bound.get(name, 0) for name in names)


def release(requests: int, errors: int = 0, p95_ms: float | None = 25.0) -> ReleaseFigures:
    """A release's figures, every response timed."""
    return ReleaseFigures(
        requests=requests,
        errors=errors,
        error_rate=errors / requests if requests else 0.0,
        p95_ms=p95_ms,
        timed=requests if p95_ms is not None else 0,
    )


def test_figures_count_failed_requests_as_requests_and_errors() -> None:
    traffic = ServerCounters(
        responses=196, server_errors=6, failed=4, latency=timed(ms_10=150, ms_50=36, ms_250=10)
    )

    figures = analysis.figures(traffic)

    assert figures == ReleaseFigures(
        requests=200, errors=10, error_rate=0.05, p95_ms=250.0, timed=196
    )


def test_figures_of_no_traffic() -> None:
    assert analysis.figures(ServerCounters()) == ReleaseFigures(
        requests=0, errors=0, error_rate=0.0, p95_ms=None
    )


@pytest.mark.parametrize(
    ("latency", "fraction", "expected"),
    [
        (timed(ms_5=100), 0.95, 5.0),  # all in the first bucket: its bound
        (timed(ms_5=95, ms_10=5), 0.95, 5.0),  # exactly 95 % within 5 ms
        (timed(ms_5=94, ms_10=6), 0.95, 10.0),
        (timed(ms_100=1), 0.5, 100.0),
        (timed(ms_5=1, ms_10000=1), 1.0, 10000.0),
        (timed(ms_5=1, slower=99), 0.95, 20000.0),  # slower than the last bound: twice it
        (timed(ms_25=10, ms_1000=10), 0.5, 25.0),
        (timed(ms_25=10, ms_1000=10), 0.51, 1000.0),
    ],
)
def test_a_percentile_is_the_bound_of_the_bucket_it_lands_in(
    latency: tuple[int, ...], fraction: float, expected: float
) -> None:
    assert analysis.percentile(latency, fraction) == expected


def test_no_response_timed_has_no_percentile() -> None:
    assert analysis.percentile((0,) * BUCKETS, 0.95) is None


def test_an_error_rate_above_the_limit_and_twice_the_live_ones_is_a_breach() -> None:
    reason = analysis.breach(release(200, errors=10), release(1000, errors=10), PLAN)

    assert reason is not None
    assert "error rate 5.0 %" in reason
    assert "10 of 200 requests" in reason
    assert "against 1.0 % for the live release" in reason
    assert "the limit is 2.0 %" in reason


def test_an_error_rate_above_the_limit_with_a_live_release_without_errors() -> None:
    reason = analysis.breach(release(200, errors=3), release(1000), PLAN)

    assert reason is not None and "1.5 %" in reason and "the limit is 1.0 %" in reason


def test_an_error_rate_under_the_limit_is_no_breach_even_if_above_twice_the_live_one() -> None:
    assert analysis.breach(release(1000, errors=8), release(1000, errors=1), PLAN) is None


def test_a_live_release_failing_as_much_is_no_breach() -> None:
    # Live at 10 %, the canary at 12 %: within twice the live one's.
    assert analysis.breach(release(500, errors=60), release(5000, errors=500), PLAN) is None


def test_nothing_is_judged_before_the_minimum_of_requests() -> None:
    failing = release(PLAN.min_requests - 1, errors=PLAN.min_requests - 1, p95_ms=10000.0)

    assert analysis.breach(failing, release(1000), PLAN) is None
    assert not analysis.conclusive(failing, PLAN)
    assert analysis.conclusive(release(PLAN.min_requests), PLAN)


def test_a_p95_above_twice_the_live_ones_is_a_breach() -> None:
    reason = analysis.breach(release(200, p95_ms=250.0), release(1000, p95_ms=100.0), PLAN)

    assert reason == (
        "p95 response time 250 ms against 100 ms for the live release; the limit is 200 ms"
    )
    assert analysis.breach(release(200, p95_ms=100.0), release(1000, p95_ms=50.0), PLAN) is None


def test_a_p95_is_compared_above_a_floor() -> None:
    floor = constants.CANARY_LATENCY_FLOOR_MS
    # Live at 5 ms, the canary at 50: ten times more, yet under twice the floor.
    assert analysis.breach(release(200, p95_ms=floor), release(1000, p95_ms=5.0), PLAN) is None
    reason = analysis.breach(release(200, p95_ms=250.0), release(1000, p95_ms=5.0), PLAN)
    assert reason is not None and f"the limit is {2 * floor:g} ms" in reason


def test_a_p95_is_not_compared_with_a_live_release_that_served_too_little() -> None:
    too_few = release(PLAN.min_requests - 1, p95_ms=5.0)

    assert analysis.breach(release(200, p95_ms=10000.0), too_few, PLAN) is None
    assert analysis.breach(release(200, p95_ms=10000.0), release(1000, p95_ms=None), PLAN) is None


def test_a_window_sums_one_releases_servers_between_two_readings() -> None:
    before = {
        "new-1": ServerCounters(responses=10, latency=timed(ms_5=10)),
        "new-2": ServerCounters(responses=20, server_errors=2, latency=timed(ms_5=20)),
        "old-1": ServerCounters(responses=500, latency=timed(ms_5=500)),
    }
    after = {
        "new-1": ServerCounters(responses=15, failed=1, latency=timed(ms_5=14, ms_10=1)),
        # Reset since (its router restarted): all of it counts.
        "new-2": ServerCounters(responses=4, server_errors=1, latency=timed(ms_5=4)),
        # Added since the first reading: all of it counts.
        "new-3": ServerCounters(responses=3, latency=timed(ms_50=3)),
        "old-1": ServerCounters(responses=600, latency=timed(ms_5=600)),
    }

    # new-4 was never read (on a router that has not published yet): left out.
    traffic = analysis.window(before, after, ["new-1", "new-2", "new-3", "new-4"])

    assert traffic == ServerCounters(
        responses=12, server_errors=1, failed=1, latency=timed(ms_5=8, ms_10=1, ms_50=3)
    )
    assert analysis.window(before, after, []) == ServerCounters()
    assert analysis.window({}, after, ["old-1"]) == after["old-1"]


def test_a_p95_of_too_few_timed_responses_is_not_judged() -> None:
    plan = RolloutPlan()
    slow = release(200, p95_ms=5000.0).model_copy(update={"timed": plan.min_requests - 1})

    assert analysis.breach(slow, release(2000, p95_ms=25.0), plan) is None


def test_the_live_releases_rate_over_too_few_requests_does_not_raise_the_limit() -> None:
    plan = RolloutPlan()
    # One error in the live release's two requests (50 %) is no baseline: 40 % fails.
    reason = analysis.breach(release(1000, errors=400), release(2, errors=1), plan)

    assert reason is not None and "the limit is 1.0 %" in reason
