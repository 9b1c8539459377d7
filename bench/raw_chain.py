"""The engine's own limit: a raw Celery chain of three no-op tasks on Shipyard's three queues.

`celery -A bench.raw_chain worker -Q build|release|run`, started with `shipyard worker`'s own
command line (bench.stack), gets the very settings of workers/app.py: the same broker settings
(shared.broker.broker_config with the same Settings), late acks, requeue on a lost worker,
prefetch 1, time limit, and the same logging. Only the tasks differ: they do nothing, and the
last one records when the chain ended. The harness sends the chain by task name
(bench.overhead), as the API sends stages.
"""

from __future__ import annotations

import time
from functools import cache

import redis
from celery import Celery

from shared.settings import get_settings

BUILD_TASK = "bench.raw.build"
RELEASE_TASK = "bench.raw.release"
RUN_TASK = "bench.raw.run"


def create_raw_chain_app() -> Celery:
    """workers/app.py's app, with the raw tasks instead of Shipyard's stages."""
    from workers.app import create_worker_app  # made from SHIPYARD_*: only in the worker

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


def build(token: str, sent_at: float, done_key: str) -> None:
    """First link: nothing."""


def release(token: str, sent_at: float, done_key: str) -> None:
    """Second link: nothing."""


def run(token: str, sent_at: float, done_key: str) -> None:
    """Last link: push (token, sent, ended) so the harness sees the chain end."""
    _redis().rpush(done_key, f"{token} {sent_at!r} {time.time()!r}")
