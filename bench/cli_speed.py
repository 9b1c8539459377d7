"""11. CLI start-up: what a client command costs beside Python with httpx imported.

Against the stack's API, with an app whose environment runs one release (noop builder and
runner), each sample times, as processes started one after the other in a random order:
`python -c "import httpx"` (the floor: the interpreter and the HTTP client the CLI needs),
`shipyard --help`, and `shipyard ps` (one HTTP request and a table), and Python importing httpx
and making the GET that `ps` makes (`…/current`: the API's own share of `ps`). The figures are
the medians, each command's median less the floor's (target: within 0.15 s), and `ps` less the
same GET from plain Python (what the CLI itself adds to the request).
"""

from __future__ import annotations

import random
import subprocess
import sys
import time

from bench.context import Bench
from bench.stack import SHIPYARD
from bench.stats import percentile

SCENARIO = "11. CLI start-up"
APP = "clispeed"
ENV = "production"
TARGET_SECONDS = 0.15


def run(bench: Bench) -> None:
    stack, plan = bench.stack, bench.plan
    bench.create_app(APP, "noop")
    bench.create_environments(APP, [ENV], runner="noop")
    stack.wait_pipeline(stack.start_pipeline(APP, ENV, bench.commits.next()), poll=0.01)
    env = {**stack.env, "SHIPYARD_URL": stack.api_url, "SHIPYARD_TOKEN": stack.token}
    get_current = (
        "import os, httpx; httpx.get(os.environ['SHIPYARD_URL'] + '/v1/apps/"
        f"{APP}/environments/{ENV}/current', headers={{'Authorization': 'Bearer ' + "
        "os.environ['SHIPYARD_TOKEN']}, trust_env=False).raise_for_status()"
    )
    commands = {
        "python -c 'import httpx'": [sys.executable, "-c", "import httpx"],
        "python: import httpx and the same GET as ps": [sys.executable, "-c", get_current],
        "shipyard --help": [SHIPYARD, "--help"],
        "shipyard ps": [SHIPYARD, "ps", "--app", APP, "--env", ENV],
    }
    for argv in commands.values():  # warm the file cache
        _timed(argv, env)
    for _ in range(plan.repetitions):
        seconds: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(plan.cli_samples):
            order = list(commands)
            random.shuffle(order)
            for name in order:
                seconds[name].append(_timed(commands[name], env))
        floor = percentile(seconds["python -c 'import httpx'"], 50)
        for name, values in seconds.items():
            bench.figures.add(SCENARIO, f"{name}, p50", "ms", percentile(values, 50) * 1000)
        request_floor = percentile(seconds["python: import httpx and the same GET as ps"], 50)
        bench.figures.add(
            SCENARIO,
            "shipyard ps less the same GET from plain Python, p50",
            "ms",
            (percentile(seconds["shipyard ps"], 50) - request_floor) * 1000,
        )
        for name in ("shipyard --help", "shipyard ps"):
            bench.figures.add(
                SCENARIO,
                f"{name} less the floor, p50",
                "ms",
                (percentile(seconds[name], 50) - floor) * 1000,
                target="≤ 150 ms",
                check=("<=", TARGET_SECONDS * 1000),
            )


def _timed(argv: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one run of `argv`, which must succeed."""
    began = time.monotonic()
    completed = subprocess.run(argv, env=env, capture_output=True, timeout=60, check=False)
    seconds = time.monotonic() - began
    if completed.returncode != 0:
        raise RuntimeError(f"{argv} exited {completed.returncode}: {completed.stderr[-2000:]!r}")
    return seconds
