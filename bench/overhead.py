"""1. Pipeline overhead: noop pipelines through the three pools, beside a raw Celery chain.

Latency: one pipeline at a time, from before `POST /v1/apps/{app}/pipelines` until the harness
sees the pipeline succeeded in PostgreSQL (polled every millisecond), against one raw chain at a
time, from before `apply_async` until the harness sees the last task's record in Redis (polled
every millisecond too). Samples of the two alternate, so that both see the same machine.
Throughput: N pipelines posted by a few concurrent clients, each to its own environment (so the
per-environment deploy queue does not serialise them), against N raw chains sent at once;
from the first send until the harness sees all N ended (polled every 20 ms).
"""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path

from celery import Celery, chain

from bench import raw_chain
from bench.context import Bench
from bench.cpu import CpuMeter
from bench.profiling import profiled
from bench.stage_cpu import StageCpu
from bench.stats import percentile
from shipyard.shared import constants
from shipyard.shared.broker import make_celery
from shipyard.shared.db import StatementCounter, get_engine, session_scope
from shipyard.shared.services import apps, pipelines
from shipyard.shared.services.stage_runs import ClaimOutcome
from shipyard.shared.settings import Settings
from shipyard.shared.stages import PipelineKind, Stage
from shipyard.workers import source
from shipyard.workers.context import WorkerContext
from shipyard.workers.stages import frame
from shipyard.workers.stages.build import build_work
from shipyard.workers.stages.release import release_work
from shipyard.workers.stages.run import run_work

SCENARIO = "1. Pipeline overhead"
APP = "overhead"
LATENCY_ENV = "latency"
_LINKS = (
    (raw_chain.BUILD_TASK, constants.BUILD_QUEUE),
    (raw_chain.RELEASE_TASK, constants.RELEASE_QUEUE),
    (raw_chain.RUN_TASK, constants.RUN_QUEUE),
)


_STAGE_WORK = {Stage.BUILD: build_work, Stage.RELEASE: release_work, Stage.RUN: run_work}


def raw_client(bench: Bench) -> Celery:
    """A producer with the raw workers' broker settings (the same Settings, their namespace)."""
    stack = bench.stack
    settings = Settings(
        broker_url=stack.services.redis_url,
        broker_namespace=bench.raw_namespace,
        secret_key=stack.env["SHIPYARD_SECRET_KEY"],
        data_dir=stack.data_dir,
    )
    return make_celery(settings, "bench-raw-client")


def send_chain(celery: Celery, done_key: str, durable: bool = False) -> str:
    """Send build → release → run as one Celery chain, by task name."""
    token = uuid.uuid4().hex
    args = (token, time.time(), done_key, durable)
    links = [
        celery.signature(name, args=args, options={"queue": q, "routing_key": q}, immutable=True)
        for name, q in _LINKS
    ]
    chain(*links).apply_async()
    return token


def setup(bench: Bench) -> None:
    """The noop app, its latency environment and one environment per in-flight pipeline."""
    bench.stack.db.execute(raw_chain.CREATE_DURABLE_TABLE)
    bench.create_app(APP, "noop")
    names = [LATENCY_ENV, *(f"flight-{i}" for i in range(bench.plan.throughput_pipelines))]
    bench.create_environments(APP, names, runner="noop")


def warm_up(bench: Bench, celery: Celery) -> None:
    """First tasks of each worker process open connections and import lazily: not measured."""
    for _ in range(3):
        pipeline_id = bench.stack.start_pipeline(APP, LATENCY_ENV, bench.commits.next())
        bench.stack.wait_pipeline(pipeline_id)
        _raw_once(bench, celery)
        _raw_once(bench, celery, durable=True)


def run(bench: Bench) -> None:
    setup(bench)
    celery = raw_client(bench)
    try:
        warm_up(bench, celery)
        built = bench.commits.next()
        bench.stack.wait_pipeline(bench.stack.start_pipeline(APP, LATENCY_ENV, built))
        for _ in range(bench.plan.repetitions):
            _latency(bench, celery, built)
            _in_process(bench)
            _throughput(bench, celery)
    finally:
        celery.close()


def _shipyard_once(bench: Bench, ref: str) -> tuple[float, float, str, float]:
    """(wall, in-system) seconds of one pipeline, its id, and the seconds its POST took."""
    stack = bench.stack
    started = time.monotonic()
    pipeline_id = stack.start_pipeline(APP, LATENCY_ENV, ref)
    posted = time.monotonic() - started
    wall = stack.wait_pipeline(pipeline_id, poll=0.001) - started
    row = stack.db.execute(
        "SELECT EXTRACT(EPOCH FROM finished_at - created_at) FROM pipeline WHERE id = %s",
        (pipeline_id,),
    ).fetchone()
    assert row is not None
    return wall, float(row[0]), pipeline_id, posted


def _git_once(bench: Bench, ref: str) -> float:
    """Seconds the build stage's two git steps take for `ref`, in this process: resolve the ref
    and export its tree (workers.source, as the build stage calls them)."""
    with tempfile.TemporaryDirectory(prefix="bench-git-") as scratch:
        started = time.monotonic()
        commit = source.resolve(str(bench.commits.repo), ref, Path(scratch) / "mirrors")
        source.export(commit, "", Path(scratch) / "src")
        return time.monotonic() - started


def _raw_once(bench: Bench, celery: Celery, durable: bool = False) -> tuple[float, float]:
    """(wall, in-system) seconds of one raw chain."""
    done_key = f"bench:{bench.stack.namespace}:latency"
    started = time.monotonic()
    token = send_chain(celery, done_key, durable)
    deadline = started + 60
    while time.monotonic() < deadline:
        record = bench.stack.redis.lpop(done_key)
        if record is not None:
            wall = time.monotonic() - started
            seen, sent, ended = bytes(record).decode().split()  # type: ignore[arg-type]
            assert seen == token, "a stray raw chain record"
            return wall, float(ended) - float(sent)
        time.sleep(0.001)
    raise RuntimeError("the raw chain did not end within 60 s")


def _latency(bench: Bench, celery: Celery, built: str) -> None:
    figures = bench.figures
    new: list[float] = []
    new_inside: list[float] = []
    cached: list[float] = []
    raw: list[float] = []
    raw_inside: list[float] = []
    durable: list[float] = []
    durable_inside: list[float] = []
    new_ids: list[str] = []
    posts: list[float] = []
    gits: list[float] = []
    for _ in range(bench.plan.latency_samples):
        ref = bench.commits.next()
        wall, inside, pipeline_id, posted = _shipyard_once(bench, ref)
        new.append(wall)
        new_inside.append(inside)
        new_ids.append(pipeline_id)
        posts.append(posted)
        gits.append(_git_once(bench, ref))
        wall, inside = _raw_once(bench, celery)
        raw.append(wall)
        raw_inside.append(inside)
        wall, inside = _raw_once(bench, celery, durable=True)
        durable.append(wall)
        durable_inside.append(inside)
        cached.append(_shipyard_once(bench, built)[0])
    _breakdown(bench, new_ids)
    ms = 1000.0
    p50, raw_p50 = percentile(new, 50), percentile(raw, 50)
    _floor(bench, raw_p50, percentile(posts, 50), percentile(gits, 50))
    figures.add(SCENARIO, "latency p50, Shipyard, new commit", "ms", p50 * ms)
    figures.add(SCENARIO, "latency p90, Shipyard, new commit", "ms", percentile(new, 90) * ms)
    figures.add(
        SCENARIO, "latency p50, Shipyard, commit already built", "ms", percentile(cached, 50) * ms
    )
    figures.add(SCENARIO, "latency p50, raw chain", "ms", raw_p50 * ms)
    figures.add(SCENARIO, "latency p90, raw chain", "ms", percentile(raw, 90) * ms)
    durable_p50 = percentile(durable, 50)
    figures.add(
        SCENARIO, "latency p50, durable raw chain (a commit per link)", "ms", durable_p50 * ms
    )
    figures.add(
        SCENARIO, "latency p50 ratio, Shipyard new commit / durable raw", "×", p50 / durable_p50
    )
    figures.add(SCENARIO, "latency p50 ratio, Shipyard new commit / raw", "×", p50 / raw_p50)
    figures.add(
        SCENARIO,
        "latency p50 ratio, Shipyard commit already built / raw",
        "×",
        percentile(cached, 50) / raw_p50,
    )
    figures.add(
        SCENARIO,
        "in-system p50, Shipyard (created_at → finished_at)",
        "ms",
        percentile(new_inside, 50) * ms,
    )
    figures.add(
        SCENARIO,
        "in-system p50, raw (sent → last task ended)",
        "ms",
        percentile(raw_inside, 50) * ms,
    )
    durable_inside_p50 = percentile(durable_inside, 50)
    figures.add(
        SCENARIO,
        "in-system p50, durable raw (sent → last link committed and ended)",
        "ms",
        durable_inside_p50 * ms,
    )
    figures.add(
        SCENARIO,
        "in-system p50 ratio, Shipyard / durable raw",
        "×",
        percentile(new_inside, 50) / durable_inside_p50,
        target="≤ 3×",
        check=("<=", 3.0),
    )


def _in_process(bench: Bench) -> None:
    """Statements, transactions and the stages' own CPU, with the stages run in this process.

    The stages' own code (workers.stages.frame.execute) runs here against the stack's database,
    one stage after another; its events go to an in-memory broker, so no pool sees these
    pipelines. The first pipeline's statements are counted by a listener on the engine (only
    what a stage sends, not the harness's polling); the next `latency_samples` pipelines' CPU
    is split between the store, git and the rest (bench.stage_cpu).
    """
    stack = bench.stack
    with tempfile.TemporaryDirectory(prefix="bench-statements-") as scratch:
        settings = Settings(
            data_dir=Path(scratch),
            database_url=stack.env["SHIPYARD_DATABASE_URL"],
            broker_url=stack.services.redis_url,
            broker_namespace=f"{stack.namespace}-statements",
            secret_key=stack.env["SHIPYARD_SECRET_KEY"],
        )
        celery = Celery("bench-statements", broker="memory://")
        context = WorkerContext.create(settings, celery)
        try:
            _count_statements(bench, context)
            _attribute_cpu(bench, context)
        finally:
            celery.close()
            context.docker.close()


def _in_process_pipeline(bench: Bench, context: WorkerContext) -> uuid.UUID:
    with session_scope(context.db_url) as session:
        app = apps.get_app(session=session, name=APP)
        pipeline = pipelines.create_pipeline(
            session=session,
            app=app,
            environment=apps.get_environment(session=session, app=app, name=LATENCY_ENV),
            kind=PipelineKind.DEPLOY,
            trigger="bench",
            ref=bench.commits.next(),
        )
    return pipeline.id


def _run_stage(context: WorkerContext, pipeline_id: uuid.UUID, stage: Stage) -> None:
    outcome = frame.execute(context, pipeline_id, stage, f"{stage}@bench", _STAGE_WORK[stage])
    if outcome != ClaimOutcome.CLAIMED:
        raise RuntimeError(f"the {stage} stage was not claimed: {outcome}")


def _check_succeeded(bench: Bench, pipeline_id: uuid.UUID) -> None:
    if bench.stack.pipeline_status(str(pipeline_id)) != "succeeded":
        error = bench.stack.pipeline_error(str(pipeline_id))
        raise RuntimeError(f"the in-process pipeline failed: {error}")


def _count_statements(bench: Bench, context: WorkerContext) -> None:
    """Statements and transactions of one noop pipeline's three stages on PostgreSQL."""
    pipeline_id = _in_process_pipeline(bench, context)
    engine = get_engine(context.db_url)
    statements = transactions = 0
    for stage in _STAGE_WORK:
        with StatementCounter(engine) as counter:
            _run_stage(context, pipeline_id, stage)
        bench.figures.add(
            SCENARIO, f"statements, {stage} stage", "statements", len(counter.statements)
        )
        statements += len(counter.statements)
        transactions += counter.commits
    _check_succeeded(bench, pipeline_id)
    bench.figures.add(SCENARIO, "statements per pipeline (PostgreSQL)", "statements", statements)
    bench.figures.add(SCENARIO, "transactions per pipeline", "transactions", transactions)


def _attribute_cpu(bench: Bench, context: WorkerContext) -> None:
    """Each stage's own CPU, in process: the store's part, git's and the rest."""
    count = bench.plan.latency_samples
    cpu = StageCpu()
    for _ in range(count):
        pipeline_id = _in_process_pipeline(bench, context)
        for stage in _STAGE_WORK:
            with cpu.stage(stage):
                _run_stage(context, pipeline_id, stage)
        _check_succeeded(bench, pipeline_id)
    ms = 1000.0 / count
    figures = bench.figures
    for stage in _STAGE_WORK:
        total, store, git = cpu.total[stage], cpu.store[stage], cpu.git[stage]
        figures.add(SCENARIO, f"in process: {stage} stage, the process's CPU", "ms", total * ms)
        figures.add(SCENARIO, f"in process: {stage} stage, in the store", "ms", store * ms)
        if stage == Stage.BUILD:
            figures.add(SCENARIO, f"in process: {stage} stage, git processes", "ms", git * ms)
        figures.add(SCENARIO, f"in process: {stage} stage, the rest", "ms", (total - store) * ms)
    figures.add(
        SCENARIO,
        "in process: CPU of the three stages, in the store",
        "ms",
        sum(cpu.store.values()) * ms,
    )


def _floor(bench: Bench, raw_p50: float, post_p50: float, git_p50: float) -> None:
    """What the latency target leaves Shipyard, beside two costs no stage can skip."""
    ms = 1000.0
    figures = bench.figures
    figures.add(
        SCENARIO, "latency budget the target leaves (0.5 × raw p50)", "ms", raw_p50 * ms / 2
    )
    figures.add(SCENARIO, "floor: POST …/pipelines answered, p50", "ms", post_p50 * ms)
    figures.add(SCENARIO, "floor: git resolve + export of the commit, p50", "ms", git_p50 * ms)
    figures.add(
        SCENARIO,
        "floor (POST + git) ÷ budget",
        "×",
        (post_p50 + git_p50) / (raw_p50 / 2),
    )


# Where a sequential pipeline's time goes, from the timestamps the API and workers record.
_PARTS = {
    "API → build claimed": "b.started_at - p.created_at",
    "build stage": "b.finished_at - b.started_at",
    "build → release claimed": "r.started_at - b.finished_at",
    "release stage": "r.finished_at - r.started_at",
    "release → run claimed": "u.started_at - r.finished_at",
    "run stage": "u.finished_at - u.started_at",
}


def _breakdown(bench: Bench, pipeline_ids: list[str]) -> None:
    columns = ", ".join(
        f"percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM {expression}))"
        for expression in _PARTS.values()
    )
    row = bench.stack.db.execute(
        f"SELECT {columns} FROM pipeline p"
        " JOIN stage_run b ON b.pipeline_id = p.id AND b.name = 'build'"
        " JOIN stage_run r ON r.pipeline_id = p.id AND r.name = 'release'"
        " JOIN stage_run u ON u.pipeline_id = p.id AND u.name = 'run'"
        " WHERE p.id = ANY(%s)",
        (pipeline_ids,),
    ).fetchone()
    assert row is not None
    for part, seconds in zip(_PARTS, row, strict=True):
        bench.figures.add(SCENARIO, f"p50 of part: {part}", "ms", float(seconds) * 1000)


def _throughput(bench: Bench, celery: Celery) -> None:
    count = bench.plan.throughput_pipelines
    jobs = [(f"flight-{i}", sha) for i, sha in enumerate(bench.commits.take(count))]
    pools = ["worker-build", "worker-release", "worker-run", "api"]
    shipyard_cpu = CpuMeter(bench.stack, {name: [name] for name in pools})
    with profiled(bench.stack, bench.profile_dir, "throughput", pools):
        shipyard_cpu.start()
        started = time.monotonic()
        pipeline_ids = bench.submit(APP, jobs)
        accepted = count / (time.monotonic() - started)
        shipyard = count / (bench.wait_all(pipeline_ids) - started)
        shipyard_cpu.stop()
    raw_cpu = CpuMeter(bench.stack, {f"worker-{q}": [f"raw-{q}"] for _, q in _LINKS})
    raw_cpu.start()

    raw = _raw_throughput(bench, celery, count)
    raw_cpu.stop()
    durable_cpu = CpuMeter(bench.stack, raw_cpu.groups)
    durable_cpu.start()
    durable = _raw_throughput(bench, celery, count, durable=True)
    durable_cpu.stop()

    figures = bench.figures
    name = f"{count} in flight"
    figures.add(SCENARIO, f"throughput, Shipyard, {name}", "pipelines/s", shipyard)
    figures.add(SCENARIO, f"throughput, raw chain, {name}", "chains/s", raw)
    figures.add(SCENARIO, f"throughput, durable raw chain, {name}", "chains/s", durable)
    figures.add(
        SCENARIO,
        "throughput ratio, Shipyard / durable raw",
        "×",
        shipyard / durable,
        target="≥ 0.35×",
        check=(">=", 0.35),
    )
    figures.add(SCENARIO, "throughput ratio, Shipyard / raw", "×", shipyard / raw)
    figures.add(
        SCENARIO,
        "API: pipelines accepted/s while the pools ran",
        "/s",
        accepted,
    )
    _cpu_figures(bench, shipyard_cpu, raw_cpu, durable_cpu, count)


def _raw_throughput(bench: Bench, celery: Celery, count: int, durable: bool = False) -> float:
    """Chains per second: `count` chains sent at once, until all their end records are in."""
    done_key = f"bench:{bench.stack.namespace}:throughput"
    redis = bench.stack.redis
    redis.delete(done_key)
    started = time.monotonic()
    for _ in range(count):
        send_chain(celery, done_key, durable)
    deadline = started + 600
    while redis.llen(done_key) < count:
        if time.monotonic() > deadline:
            raise RuntimeError("raw chains did not end within 600 s")
        time.sleep(0.02)
    rate = count / (time.monotonic() - started)
    redis.delete(done_key)
    return rate


def _cpu_figures(
    bench: Bench, shipyard: CpuMeter, raw: CpuMeter, durable: CpuMeter, count: int
) -> None:
    """CPU per pipeline (by process) and per raw chain: the throughput floor on 2 shared cores.

    psutil reads CPU time in clock ticks (10 ms); each figure sums enough work to be far above.
    """
    ms = 1000.0
    add = bench.figures.add
    labels = {
        "api": "API",
        **{f"worker-{queue}": f"{queue} pool" for _, queue in _LINKS},
        "postgres": "PostgreSQL",
    }
    for key, label in labels.items():
        add(SCENARIO, f"CPU per pipeline: {label}", "ms", shipyard.used[key] / count * ms)
    shipyard_total = sum(shipyard.used.values()) / count
    raw_total = sum(used for key, used in raw.used.items() if key != "postgres") / count
    durable_total = sum(durable.used.values()) / count
    add(
        SCENARIO,
        "CPU per pipeline, all (with PostgreSQL and Redis)",
        "ms",
        shipyard_total * ms,
        target="≤ 25 ms",
        check=("<=", 25.0),
    )
    add(SCENARIO, "CPU per raw chain, all (its 3 pools and Redis)", "ms", raw_total * ms)
    add(SCENARIO, "CPU per durable raw chain, all (with PostgreSQL)", "ms", durable_total * ms)
    add(SCENARIO, "CPU ratio, raw chain / pipeline", "×", raw_total / shipyard_total)
