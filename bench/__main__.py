"""`python -m bench [--smoke] [--only SCENARIO…]`: run the benchmarks, write docs/benchmarks.md."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from bench import (
    api_load,
    cache,
    cli_speed,
    code_deploy,
    farm,
    history,
    hosts,
    overhead,
    progressive,
    registry_store,
    report,
    rollback,
    serving,
    tls,
)
from bench.context import Bench
from bench.plan import DEFAULT, SMOKE, Plan
from bench.repos import Commits, make_app_repo
from bench.stack import REPO_ROOT, SHIPYARD, Services, Stack, free_port, throwaway_database
from bench.stats import Figures
from shipyard.shared import constants

SCENARIOS: dict[str, Callable[[Bench], None]] = {
    "overhead": overhead.run,
    "cache": cache.run,
    "rollback": rollback.run,
    "serving": serving.run,
    "farm": farm.run,
    "history": history.run,
    "api": api_load.run,
    "hosts": hosts.run,
    "code_deploy": code_deploy.run,
    "cli": cli_speed.run,
    "tls": tls.run,
    "progressive": progressive.run,
    # Last: it starts a registry and a second stack of its own, stopped when it ends.
    "registry": registry_store.run,
}
HELLO = REPO_ROOT / "examples" / "hello"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repetition")
    parser.add_argument("--repetitions", type=int, help="override the plan's repetitions")
    parser.add_argument(
        "--size",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override one size of the plan, e.g. --size throughput_pipelines=200",
    )
    parser.add_argument("--only", nargs="+", choices=list(SCENARIOS), help="run these only")
    parser.add_argument(
        "--out",
        type=Path,
        help="markdown report (default docs/benchmarks.md; none with --smoke unless given)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("SHIPYARD_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"),
    )
    parser.add_argument(
        "--postgres-dsn",
        default=os.environ.get(
            "SHIPYARD_BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
        ),
        help="maintenance DSN: the harness makes its own database there and drops it",
    )
    parser.add_argument(
        "--database-url", help="use this empty database instead (tests pass a fresh one)"
    )
    parser.add_argument("--namespace", help="Redis key prefix (default: a unique one)")
    parser.add_argument("--profile", type=Path, help="py-spy the worker pools into this folder")
    parser.add_argument("--keep", action="store_true", help="keep the work folder and logs")
    return parser.parse_args(argv)


@contextmanager
def database(args: argparse.Namespace) -> Iterator[str]:
    """The psycopg DSN of the database to run against."""
    if args.database_url:
        yield args.database_url.replace("postgresql+psycopg://", "postgresql://")
        return
    with throwaway_database(args.postgres_dsn) as dsn:
        yield dsn


def start(stack: Stack, raw_namespace: str) -> None:
    """Start the three pools, the raw baseline's three workers and the API; migrate meanwhile.

    Nothing reads a table before its first request or task, which waits for the workers.
    """
    for queue in constants.QUEUES:
        stack.shipyard(f"worker-{queue}", "worker", queue)
        stack.raw_worker(queue, raw_namespace)
    port = free_port()
    stack.api_url = f"http://127.0.0.1:{port}"
    stack.shipyard("api", "api", "--port", str(port))
    subprocess.run(
        [SHIPYARD, "db", "upgrade"], env=stack.env, cwd=REPO_ROOT, check=True, capture_output=True
    )
    stack.wait_workers(
        [f"{kind}-{queue}" for kind in ("worker", "raw") for queue in constants.QUEUES]
    )
    stack.wait_api(stack.api_url, "api")


def run(args: argparse.Namespace, plan: Plan) -> tuple[Figures, float]:
    """Run the selected scenarios; their figures, and the seconds it took."""
    began = time.monotonic()
    namespace = args.namespace or f"shipyard-bench-{uuid.uuid4().hex[:10]}"
    raw_namespace = f"{namespace}-raw"
    root = Path(tempfile.mkdtemp(prefix="shipyard-bench-"))
    figures = Figures()
    ok = False
    try:
        with database(args) as dsn:
            stack = Stack(
                root=root,
                services=Services(args.redis_url, args.postgres_dsn),
                dsn=dsn,
                namespace=namespace,
            )
            try:
                start(stack, raw_namespace)
                repo = root / "repo"
                shas = make_app_repo(repo, HELLO, plan.commits_needed)
                bench = Bench(
                    stack=stack,
                    plan=plan,
                    figures=figures,
                    commits=Commits(repo, shas),
                    raw_namespace=raw_namespace,
                    profile_dir=args.profile,
                )
                print(f"bench: stack up in {time.monotonic() - began:.1f}s", file=sys.stderr)
                # Always in this order: the farm replaces the stack's build worker for good,
                # and serving's router runs only after the overhead is measured.
                for name in [n for n in SCENARIOS if not args.only or n in args.only]:
                    print(f"bench: {name} …", file=sys.stderr, end=" ", flush=True)
                    scenario_began = time.monotonic()
                    SCENARIOS[name](bench)
                    print(f"{time.monotonic() - scenario_began:.1f}s", file=sys.stderr)
            finally:
                stack.close()
        ok = True
    finally:
        if ok and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"bench: work folder and logs kept in {root}", file=sys.stderr)
    return figures, time.monotonic() - began


def resize(plan: Plan, overrides: list[str]) -> Plan:
    """`plan` with FIELD=VALUE overrides (numbers, or comma-separated numbers for tuples)."""
    changes: dict[str, object] = {}
    for override in overrides:
        name, _, raw = override.partition("=")
        current = getattr(plan, name, None)
        if current is None or not raw:
            raise SystemExit(f"--size {override!r}: expected FIELD=VALUE with a field of Plan")
        if isinstance(current, tuple):
            changes[name] = tuple(type(current[0])(part) for part in raw.split(","))
        else:
            changes[name] = type(current)(raw)
    return replace(plan, **changes)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = SMOKE if args.smoke else DEFAULT
    if args.repetitions:
        plan = replace(plan, repetitions=args.repetitions)
    plan = resize(plan, args.size)
    figures, elapsed = run(args, plan)
    print(report.table(figures), file=sys.stderr)
    out = args.out or (None if args.smoke else REPO_ROOT / "docs" / "benchmarks.md")
    if out is not None:
        machine = report.machine(args.redis_url, args.postgres_dsn)
        generated = report.section(
            figures, plan=plan, smoke=args.smoke, elapsed=elapsed, machine_info=machine
        )
        report.write(out, generated)
        print(f"bench: wrote {out}", file=sys.stderr)
    if args.json is not None:
        payload = {"elapsed": elapsed, "figures": [f.as_dict() for f in figures]}
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
