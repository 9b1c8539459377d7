"""A canary's analysis: two releases' figures over the same window, from the routers' counters,
and whether the new one fails against the live one (shared.schemas.rollouts.RolloutPlan's
thresholds)."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from shipyard.shared import constants
from shipyard.shared.router_stats import LATENCY_BUCKETS_MS, ServerCounters
from shipyard.shared.schemas.rollouts import ReleaseFigures, RolloutPlan


def window(
    before: Mapping[str, ServerCounters],
    after: Mapping[str, ServerCounters],
    servers: Collection[str],
) -> ServerCounters:
    """The traffic of `servers` (one release's) between two readings of the counters."""
    total = ServerCounters()
    for name in servers:
        if name in after:
            total = total.plus(after[name].since(before.get(name)))
    return total


def figures(traffic: ServerCounters) -> ReleaseFigures:
    """Requests, errors, error rate and p95 of one release's traffic over a window."""
    requests = traffic.responses + traffic.failed
    errors = traffic.server_errors + traffic.failed
    return ReleaseFigures(
        requests=requests,
        errors=errors,
        error_rate=errors / requests if requests else 0.0,
        p95_ms=percentile(traffic.latency, 0.95),
        timed=sum(traffic.latency),
    )


def percentile(latency: tuple[int, ...], fraction: float) -> float | None:
    """The response time under which `fraction` of the timed responses fall: the upper bound of
    the bucket it lands in (the slowest bucket: twice the last bound). None: none timed."""
    timed = sum(latency)
    if timed == 0:
        return None
    wanted = fraction * timed
    seen = 0
    bounds = [*LATENCY_BUCKETS_MS, 2 * LATENCY_BUCKETS_MS[-1]]
    for bound, count in zip(bounds, latency, strict=True):
        seen += count
        if seen >= wanted:
            return float(bound)
    return float(bounds[-1])


def breach(canary: ReleaseFigures, stable: ReleaseFigures, plan: RolloutPlan) -> str | None:
    """Why the new release fails against the live one over the same window, or None: its error
    rate above `max_error_rate` and above `error_rate_ratio` times the live one's, or its p95
    above `latency_ratio` times the live one's (and above the floor). Nothing is judged before it
    served `min_requests`."""
    if canary.requests < plan.min_requests:
        return None
    # The live release's rate counts only over as many requests: one error among its first two
    # is no baseline.
    stable_rate = stable.error_rate if stable.requests >= plan.min_requests else 0.0
    rate_limit = max(plan.max_error_rate, plan.error_rate_ratio * stable_rate)
    if canary.error_rate > rate_limit:
        return (
            f"error rate {_percent(canary.error_rate)} ({canary.errors} of {canary.requests} "
            f"requests: 5xx, connection and response errors) against {_percent(stable.error_rate)}"
            f" for the live release; the limit is {_percent(rate_limit)}"
        )
    if canary.p95_ms is not None and stable.p95_ms is not None:
        # Response times are a sample (the request log may drop lines): a p95 of too few of
        # them is their maximum.
        if canary.timed >= plan.min_requests and stable.timed >= plan.min_requests:
            limit = plan.latency_ratio * max(stable.p95_ms, constants.CANARY_LATENCY_FLOOR_MS)
            if canary.p95_ms > limit:
                return (
                    f"p95 response time {canary.p95_ms:g} ms against {stable.p95_ms:g} ms for the "
                    f"live release; the limit is {limit:g} ms"
                )
    return None


def conclusive(canary: ReleaseFigures, plan: RolloutPlan) -> bool:
    """Whether the new release served enough requests in a step for its figures to count."""
    return canary.requests >= plan.min_requests


def _percent(rate: float) -> str:
    return f"{100 * rate:.1f} %"
