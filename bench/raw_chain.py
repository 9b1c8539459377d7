"""The engine's own limit: a raw Celery chain of three no-op tasks on Shipyard's three queues.

`celery -A bench.raw_chain worker -Q build|release|run`, started with `shipyard worker`'s own
command line (bench.stack), gets the very settings of workers/app.py: the same broker settings
(shared.broker.broker_config with the same Settings), late acks, requeue on a lost worker,
prefetch 1, time limit, and the same logging. Only the tasks differ: they do nothing, and the
last one records when the chain ended. The harness sends the chain by task name
(bench.overhead), as the API sends stages.

A durable chain (`durable=True`) is the same chain whose every link first commits one row to
PostgreSQL (`bench_raw_stage`, in the stack's database): the least a chain that records each
step before the next one starts can do, beside which Shipyard's own cost can be told apart
from the cost of durability itself.
"""

from __future__ import annotations

import time
from functools import cache

import psycopg
import redis
from celery import Celery

from shipyard.shared.settings import get_settings

DURABLE_TABLE = "bench_raw_stage"
CREATE_DURABLE_TABLE = (
    f"CREATE TABLE IF NOT EXISTS {DURABLE_TABLE}"
    " (token text NOT NULL, stage text NOT NULL, at timestamptz NOT NULL DEFAULT now())"
)

BUILD_TASK = "bench.raw.build"
RELEASE_TASK = "bench.raw.release"
RUN_TASK = "bench.raw.run"


def create_raw_chain_app() -> Celery:
    """workers/app.py's app, with the raw tasks instead of Shipyard's stages."""
    from shipyard.workers.app import create_worker_app  # made from SHIPYARD_*: only in the worker

    celery = create_worker_app()
    celery.conf.update(include=[], beat_schedule={})
    celery.task(name=BUILD_TASK)(build)
    celery.task(name=RELEASE_TASK)(release)
    celery.task(name=RUN_TASK)(run)
    return celery


@cache
def _app() -> Celery:
    return create_raw_chain_app()


def __getattr__(name: str) -> Celery:
    # `celery -A bench.raw_chain` reads `app`; the harness imports this module for the task
    # names only, so the app (which reads SHIPYARD_* settings) is made on that first access.
    if name == "app":
        return _app()
    raise AttributeError(name)


@cache
def _redis() -> redis.Redis:
    """This worker process's Redis client, made on first use."""
    url = get_settings().broker_url
    assert url is not None, "the raw chain runs on Redis (distributed mode)"
    return redis.Redis.from_url(url)


@cache
def _database() -> psycopg.Connection[tuple[object, ...]]:
    """This worker process's PostgreSQL connection (the stack's database), made on first use."""
    url = get_settings().sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://")
    return psycopg.connect(url)


def _record(token: str, stage: str, durable: bool) -> None:
    if durable:
        database = _database()
        database.execute(
            f"INSERT INTO {DURABLE_TABLE} (token, stage) VALUES (%s, %s)", (token, stage)
        )
        database.commit()


def build(token: str, sent_at: float, done_key: str, durable: bool = False) -> None:
    """First link: nothing (or one committed row)."""
    _record(token, "build", durable)


def release(token: str, sent_at: float, done_key: str, durable: bool = False) -> None:
    """Second link: nothing (or one committed row)."""
    _record(token, "release", durable)


def run(token: str, sent_at: float, done_key: str, durable: bool = False) -> None:
    """Last link: (one committed row, then) push (token, sent, ended) for the harness."""
    _record(token, "run", durable)
    _redis().rpush(done_key, f"{token} {sent_at!r} {time.time()!r}")
