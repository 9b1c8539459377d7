"""What every scenario gets: the stack, the plan, the figures and the commits to deploy."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.plan import Plan
from bench.repos import Commits
from bench.stack import Stack
from bench.stats import Figures


@dataclass
class Bench:
    """One harness run's shared state."""

    stack: Stack
    plan: Plan
    figures: Figures
    commits: Commits
    raw_namespace: str
    profile_dir: Path | None = None

    def create_app(self, name: str, builder: str) -> None:
        """Register an app on the bench repository."""
        body = {"name": name, "repo": str(self.commits.repo), "builder": builder}
        self.stack.api("POST", "/v1/apps", 201, json=body)

    def create_environments(self, app: str, names: Iterable[str], **fields: Any) -> None:
        """Create environments of `app` through the API, a few requests at a time."""

        def create(name: str) -> None:
            body = {"name": name, **fields}
            self.stack.api("POST", f"/v1/apps/{app}/environments", 201, json=body)

        parallel(create, list(names), self.plan.submitters)

    def submit(self, app: str, jobs: list[tuple[str, str]]) -> list[str]:
        """POST one pipeline per (environment, ref), concurrently; their ids in job order."""
        return parallel(
            lambda job: self.stack.start_pipeline(app, job[0], job[1]), jobs, self.plan.submitters
        )

    def wait_all(self, pipeline_ids: list[str], timeout: float = 600, poll: float = 0.02) -> float:
        """Poll the store until every pipeline ended; the monotonic time they all had."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done, failed = self.stack.db.execute(
                "SELECT count(*) FILTER (WHERE status = 'succeeded'),"
                " count(*) FILTER (WHERE status = 'failed') FROM pipeline WHERE id = ANY(%s)",
                (pipeline_ids,),
            ).fetchone() or (0, 0)
            if failed:
                raise RuntimeError(f"{failed} of {len(pipeline_ids)} pipelines failed")
            if done == len(pipeline_ids):
                return time.monotonic()
            time.sleep(poll)
        raise RuntimeError(f"pipelines did not finish in {timeout:g}s")


def parallel(work: Callable[[Any], Any], items: list[Any], workers: int) -> list[Any]:
    """`work` over `items` on `workers` threads; results in item order."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(work, items))
