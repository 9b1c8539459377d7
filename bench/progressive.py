"""13. Progressive delivery: a failing canary aborted under load, and a rollback to a release
standing by (warm) beside the same rollback started anew (cold).

The stack gets a router of its own for this scenario (`shipyard router`, which also publishes
its servers' counters to the broker every 0.5 s: what a canary's analysis reads). A small app
(local builder and runner) answers `v{SHIPYARD_RELEASE_VERSION} good` over HTTP/1.1 keep-alive;
its failing revision answers `v… bad`, with a 500 to one request in five. Three environments of
it: `canary`, `warm` (the default standby window, 300 s) and `cold` (`standby_seconds: 0`).
Each is under load only while it is measured: `CLIENTS` keep-alive clients GET its stable URL,
each answer recorded with its send time (wall clock, comparable with the store's timestamps),
its status and its body. Each repetition:

- canary abort: deploy the failing revision with `rollout: {canary: [10, 100], step_seconds:
  600}` (default analysis settings: only the analysis can end the step). From the first 500 a
  client received until the abort took effect: the send time from which every request was
  answered by the live release (the first answer of the live release sent after the canary's
  last). Beside it, the 500s and the requests the canary answered, failed requests the canary did
  not answer (target 0), and, from the deployment's rollout record, when the breach was decided
  (the step's `ended_at`);
- rollbacks, `rollback_samples` each in `warm` then in `cold`: deploy a new commit at once,
  wait for its pipeline's end, then `POST …/rollback {"to_version": <the release before>}`.
  From before the POST until the first answer of that release to a request sent after it, and
  until the send time from which every answer is that release's; failed requests meanwhile
  (target 0); the parts from the store's clocks; whether the warm one took the standby
  processes over (the same pids, no start).

Times taken from send times are exact to the gap between two requests (about 3 ms with 4
clients); the canary's last request, though, only bounds its abort to within the gap between two
of its own (about 30 ms at 10 %).
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

import httpx

from bench.context import Bench
from bench.repos import git, make_repo
from bench.serving import router_running
from bench.stable_url import LOAD_MAX_SECONDS, LOAD_PAUSE_SECONDS, StableURL
from bench.stack import Stack
from bench.stats import percentile
from shipyard.shared import constants

SCENARIO = "13. Progressive delivery"
APP = "progressive"
CANARY_ENV = "canary"
WARM_ENV = "warm"
COLD_ENV = "cold"
ROUTER = "router-progressive"
CLIENTS = 4
# A step far longer than the scenario: only the analysis can end it.
CANARY_PLAN = {"canary": [10, 100], "step_seconds": 600}
ABORT_TARGET_SECONDS = 2.0 + constants.CANARY_ANALYSIS_SECONDS
SWITCH_TARGET_MS = 50.0
# Load kept on after a pipeline ended, to see that what it left stays so.
SETTLE_SECONDS = 0.5
PIPELINE_TIMEOUT = 120.0
LOAD_TIMEOUT = 30.0
ZERO: dict[str, Any] = {"target": "0 (each repetition)", "check": ("<=", 0.0), "every": True}
FAST: dict[str, Any] = {"target": f"≤ {SWITCH_TARGET_MS:g} ms", "check": ("<=", SWITCH_TARGET_MS)}

# The app: its release's version and whether it fails. `@FAILING@` is True in the failing
# revision. One write per response with TCP_NODELAY, as scenario 7's app (no delayed-ACK wait).
SERVER = b"""\
import os, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAILING = @FAILING@  # then a 500 to one request in five
BODY = "v{} {}".format(
    os.environ["SHIPYARD_RELEASE_VERSION"], "bad" if FAILING else "good"
).encode()
COUNT = [0]
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = -1
    disable_nagle_algorithm = True

    def do_GET(self):
        with LOCK:
            COUNT[0] += 1
            failing = FAILING and COUNT[0] % 5 == 0
        self.send_response(500 if failing else 200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""


class Answer(NamedTuple):
    """One request of the load: when it was sent and answered (wall clock), its status (0: a
    connection error) and its body."""

    sent: float
    received: float
    status: int
    body: str


@dataclass
class Recorder:
    """`clients` keep-alive clients GET the stable URL until the block ends, each pausing
    10 ms on average between two requests; every answer is recorded."""

    target: StableURL
    clients: int = CLIENTS
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Recorder:
        for number in range(self.clients):
            thread = threading.Thread(target=self._client, name=f"recorder-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=40)

    def _client(self) -> None:
        deadline = time.monotonic() + LOAD_MAX_SECONDS
        with self.target.client() as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                sent = time.time()
                try:
                    response = client.get("/")
                    answer = Answer(sent, time.time(), response.status_code, response.text)
                except httpx.HTTPError as exc:
                    answer = Answer(sent, time.time(), 0, type(exc).__name__)
                self.answers.append(answer)  # one append: atomic between threads
                # A random pause (the same on average): with a fixed one, the clients fall into
                # step and send in bursts 10 ms apart, which would be the figures' resolution.
                self._stop.wait(random.uniform(0, 2 * LOAD_PAUSE_SECONDS))

    def sent_after(self, moment: float) -> list[Answer]:
        """The answers to requests sent from `moment` on, by send time."""
        return sorted(a for a in list(self.answers) if a.sent >= moment)

    def wait_sent_after(self, moment: float, count: int) -> None:
        """Until `count` requests sent from `moment` on are answered."""
        deadline = time.monotonic() + LOAD_TIMEOUT
        while sum(1 for a in list(self.answers) if a.sent >= moment) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the load got no {count} answers in {LOAD_TIMEOUT:g}s")
            time.sleep(0.05)


def first_sent(answers: list[Answer], wanted: Callable[[Answer], bool]) -> float:
    """The send time of the first answer that `wanted` accepts."""
    found = [a.sent for a in answers if wanted(a)]
    if not found:
        raise RuntimeError("no answer of the release awaited")
    return min(found)


def settled(answers: list[Answer], wanted: Callable[[Answer], bool]) -> float:
    """The send time of the first answer from which every later one (by send time) is one that
    `wanted` accepts."""
    last_other = max((a.sent for a in answers if not wanted(a)), default=-math.inf)
    after = [a.sent for a in answers if a.sent > last_other]
    if not after:
        raise RuntimeError("the load never settled on the release awaited")
    return min(after)


def _epoch(stamp: str) -> float:
    moment = datetime.fromisoformat(stamp)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _current(stack: Stack, env: str) -> dict[str, Any]:
    return dict(stack.api("GET", f"/v1/apps/{APP}/environments/{env}/current", 200))


def _web_pids(processes: list[dict[str, Any]]) -> set[int]:
    return {int(p["pid"]) for p in processes if p["type"] == "web" and p.get("pid")}


def make_app_repo(path: Path, good_commits: int) -> tuple[list[str], str]:
    """The app's repository: `good_commits` commits, then the failing revision on top."""
    good = SERVER.replace(b"@FAILING@", b"False")
    shas = make_repo(
        path, good_commits, {"Procfile": b"web: python3 server.py\n", "server.py": good}
    )
    (path / "server.py").write_bytes(SERVER.replace(b"@FAILING@", b"True"))
    git(path, "commit", "--quiet", "--all", "--message", "failing revision")
    return shas, git(path, "rev-parse", "HEAD")


# --- the canary's abort ---------------------------------------------------------------------


@dataclass
class Abort:
    """One failing canary, as the load saw it and as its rollout record says."""

    seconds: float  # first 500 received → the live release answers every request sent
    to_breach: float  # first 500 received → the breach decided (the step's end)
    breach_to_effect: float
    in_rotation: float  # the canary's first answer's send → the abort took effect
    canary_requests: int
    canary_errors: int
    other_failed: int  # non-2xx or connection errors not answered by the canary
    share: float  # percent of the requests sent while the canary took any


def _wait_failed(stack: Stack, pipeline_id: str) -> float:
    """Until the canary's pipeline failed; the wall time it was seen so."""
    deadline = time.monotonic() + PIPELINE_TIMEOUT
    while time.monotonic() < deadline:
        status = stack.pipeline_status(pipeline_id)
        if status == "failed":
            return time.time()
        if status == "succeeded":
            raise RuntimeError("the failing canary went through: its analysis saw nothing")
        time.sleep(0.01)
    stack.api("POST", f"/v1/apps/{APP}/environments/{CANARY_ENV}/canary/abort")
    raise RuntimeError(f"the failing canary was not aborted in {PIPELINE_TIMEOUT:g}s")


def _breach_time(stack: Stack, pipeline_id: str) -> float:
    row = stack.db.execute(
        "SELECT rollout FROM deployment WHERE pipeline_id = %s", (pipeline_id,)
    ).fetchone()
    steps = ((row[0] if row else None) or {}).get("steps") or []
    if not steps or not steps[0].get("ended_at") or steps[0].get("outcome") != "breached":
        raise RuntimeError(f"the canary's step was not recorded breached: {steps}")
    return _epoch(steps[0]["ended_at"])


def canary_abort(stack: Stack, target: StableURL, failing: str) -> Abort:
    """Deploy the failing revision as a 10 % canary under load until its abort; what the load
    saw."""
    with Recorder(target) as load:
        load.wait_sent_after(0, 50)
        began = time.time()
        body = {"environment": CANARY_ENV, "ref": failing, "rollout": CANARY_PLAN}
        pipeline_id = str(stack.api("POST", f"/v1/apps/{APP}/pipelines", 202, json=body)["id"])
        ended = _wait_failed(stack, pipeline_id)
        load.wait_sent_after(ended + SETTLE_SECONDS, CLIENTS)
    answers = load.sent_after(began)

    def from_canary(answer: Answer) -> bool:
        return answer.status in (200, 500) and answer.body.endswith(" bad")

    canary = [a for a in answers if from_canary(a)]
    errors = [a for a in canary if a.status == 500]
    if not errors:
        raise RuntimeError(f"the canary answered {len(canary)} requests and no 500")
    first_error = min(a.received for a in errors)
    effect = settled(answers, lambda a: not from_canary(a))
    began_canary = canary[0].sent
    during = [a for a in answers if began_canary <= a.sent <= canary[-1].sent]
    breach = _breach_time(stack, pipeline_id)
    return Abort(
        seconds=effect - first_error,
        to_breach=breach - first_error,
        breach_to_effect=effect - breach,
        in_rotation=effect - began_canary,
        canary_requests=len(canary),
        canary_errors=len(errors),
        other_failed=len([a for a in answers if a.status != 200 and not from_canary(a)]),
        share=100 * len(canary) / len(during),
    )


# --- rollbacks ------------------------------------------------------------------------------


@dataclass
class Rollback:
    """One rollback under load: seconds from before its POST, its failed requests, its parts."""

    first: float  # until the first answer of the release rolled back to
    settled: float  # until every answer is that release's
    failed: int
    warm: bool  # it took the standby processes over (the same pids)
    parts: dict[str, float] = field(default_factory=dict)


PARTS = (
    "POST answered",
    "POST sent → pipeline created (API)",
    "pipeline created → run stage started (broker, claim)",
    "run stage started → live in the store",
    "live in the store → router switched",
    "router switched → first answer of the release",
)


def _store_times(stack: Stack, pipeline_id: str) -> tuple[float, float, float, float]:
    """The rollback pipeline's creation, its run stage's start, its deployment's going live and
    its router switch, in epoch seconds."""
    row = stack.db.execute(
        "SELECT EXTRACT(EPOCH FROM p.created_at), EXTRACT(EPOCH FROM s.started_at),"
        " EXTRACT(EPOCH FROM d.started_at), EXTRACT(EPOCH FROM d.switched_at)"
        " FROM pipeline p JOIN stage_run s ON s.pipeline_id = p.id AND s.name = 'run'"
        " JOIN deployment d ON d.pipeline_id = p.id WHERE p.id = %s",
        (pipeline_id,),
    ).fetchone()
    if row is None or any(value is None for value in row):
        raise RuntimeError(f"rollback {pipeline_id}: its times are not all recorded: {row}")
    created, started, live, switched = (float(value) for value in row)
    return created, started, live, switched


def deploy_and_roll_back(stack: Stack, load: Recorder, env: str, sha: str) -> Rollback:
    """Deploy `sha` at once, then roll back to the release live before it; timed by the load."""
    before = _current(stack, env)
    version = int(before["release"]["version"])
    stack.wait_pipeline(stack.start_pipeline(APP, env, sha), poll=0.01)
    deployed = time.time()
    standing = [s for s in _current(stack, env)["standby"] if s["release_version"] == version]

    def from_earlier(answer: Answer) -> bool:
        return answer.status == 200 and answer.body == f"v{version} good"

    load.wait_sent_after(deployed, 5 * CLIENTS)
    if any(from_earlier(a) for a in load.sent_after(deployed)):
        raise RuntimeError(f"{env}: v{version} still answered after the deploy replaced it")
    sent = time.time()
    path = f"/v1/apps/{APP}/environments/{env}/rollback"
    rollback_id = str(stack.api("POST", path, 202, json={"to_version": version})["id"])
    answered = time.time()
    stack.wait_pipeline(rollback_id, poll=0.005)
    load.wait_sent_after(time.time() + SETTLE_SECONDS, CLIENTS)
    answers = load.sent_after(sent)
    first = first_sent(answers, from_earlier)
    created, started, live, switched = _store_times(stack, rollback_id)
    after = _web_pids(_current(stack, env)["processes"])
    warm = bool(standing) and after == _web_pids(standing[0]["processes"])
    parts = (
        answered - sent,
        created - sent,
        started - created,
        live - started,
        switched - live,
        first - switched,
    )
    return Rollback(
        first=first - sent,
        settled=settled(answers, from_earlier) - sent,
        failed=len([a for a in answers if a.status != 200]),
        warm=warm,
        parts=dict(zip(PARTS, parts, strict=True)),
    )


def rollbacks(
    stack: Stack, env: str, shas: list[str], samples: int, warm_up: bool
) -> list[Rollback]:
    """`samples` deploys and rollbacks of `env` under load (after one unmeasured if `warm_up`)."""
    target = StableURL(_current(stack, env)["url"])
    with Recorder(target) as load:
        load.wait_sent_after(0, 50)
        if warm_up:
            deploy_and_roll_back(stack, load, env, shas.pop())
        return [deploy_and_roll_back(stack, load, env, shas.pop()) for _ in range(samples)]


# --- the scenario ---------------------------------------------------------------------------


def report_abort(bench: Bench, abort: Abort) -> None:
    """One canary abort's figures."""

    def add(name: str, unit: str, value: float, **target: Any) -> None:
        bench.figures.add(SCENARIO, name, unit, value, **target)

    limit = f"≤ {ABORT_TARGET_SECONDS:g} s (2 s + the analysis interval)"
    check = ("<=", ABORT_TARGET_SECONDS)
    add(
        "canary abort: first 500 received → no request to the canary",
        "s",
        abort.seconds,
        target=limit,
        check=check,
    )
    add("canary abort, of which first 500 received → breach decided", "s", abort.to_breach)
    add(
        "canary abort, of which breach decided → no request to the canary",
        "s",
        abort.breach_to_effect,
    )
    add("canary in rotation: its first request → the abort", "s", abort.in_rotation)
    add("canary: requests it answered", "requests", abort.canary_requests)
    add("canary: 500s it answered (one in five)", "requests", abort.canary_errors)
    add("canary: share of the requests while it took any", "%", abort.share)
    add(
        "canary abort: failed requests the canary did not answer",
        "requests",
        abort.other_failed,
        **ZERO,
    )


def report_rollbacks(bench: Bench, warm: list[Rollback], cold: list[Rollback]) -> None:
    """One repetition's warm and cold rollbacks: p50s, failed requests, parts."""
    add = bench.figures.add
    for kind, done in (("warm", warm), ("cold", cold)):
        name = f"{kind} rollback:"
        fast = FAST if kind == "warm" else {}
        add(
            SCENARIO,
            f"{name} POST → first answer of the release, p50",
            "ms",
            _p50([r.first for r in done]),
            **fast,
        )
        add(
            SCENARIO,
            f"{name} POST → every answer the release's, p50",
            "ms",
            _p50([r.settled for r in done]),
            **fast,
        )
        failed = sum(r.failed for r in done)
        add(
            SCENARIO,
            f"{name} failed requests (connection error or non-2xx)",
            "requests",
            failed,
            **ZERO,
        )
        for part in PARTS:
            add(SCENARIO, f"{name} {part}, p50", "ms", _p50([r.parts[part] for r in done]))
    bench.figures.add(
        SCENARIO,
        "warm rollbacks that took the standby processes over (no start)",
        "rollbacks",
        sum(r.warm for r in warm),
    )
    bench.figures.add(
        SCENARIO,
        "cold ÷ warm rollback, POST → every answer the release's, p50",
        "×",
        _p50([r.settled for r in cold]) / _p50([r.settled for r in warm]),
    )


def _p50(seconds: list[float]) -> float:
    """The median in milliseconds."""
    return percentile(seconds, 50) * 1000


def run(bench: Bench) -> None:
    stack, plan = bench.stack, bench.plan
    samples = plan.rollback_samples
    repo = stack.root / "progressive-repo"
    # The first release, one warm-up in each of the two rollback environments, then the samples.
    shas, failing = make_app_repo(repo, 3 + 2 * plan.repetitions * samples)
    shas.reverse()  # popped oldest first
    with router_running(stack, ROUTER):
        stack.api(
            "POST", "/v1/apps", 201, json={"name": APP, "repo": str(repo), "builder": "local"}
        )
        common = {"runner": "local", "health_timeout": 20}
        bench.create_environments(APP, [CANARY_ENV, WARM_ENV], **common)
        bench.create_environments(APP, [COLD_ENV], **common, standby_seconds=0)
        first = shas.pop()
        started = [
            stack.start_pipeline(APP, env, first) for env in (CANARY_ENV, WARM_ENV, COLD_ENV)
        ]
        for pipeline_id in started:
            stack.wait_pipeline(pipeline_id, poll=0.01)
        canary_target = StableURL(_current(stack, CANARY_ENV)["url"])
        for repetition in range(plan.repetitions):
            report_abort(bench, canary_abort(stack, canary_target, failing))
            warm = rollbacks(stack, WARM_ENV, shas, samples, warm_up=repetition == 0)
            cold = rollbacks(stack, COLD_ENV, shas, samples, warm_up=repetition == 0)
            report_rollbacks(bench, warm, cold)
