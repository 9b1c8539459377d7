"""A run host's agent: a thread of its run pool's main process that reads the host's inbox
(shared.host_inbox) and does each request in a thread of its own: a share of a spread
deployment (workers.stages.spread), a one-off command (workers.one_offs). Neither takes a pool
slot, so neither waits behind the host's run stages, nor holds them up."""

from __future__ import annotations

import threading

import redis
import structlog
from celery import Celery

from shipyard.shared.host_inbox import Inbox, OneOffMessage, ShareMessage
from shipyard.shared.logging import forget_secrets
from shipyard.shared.settings import Settings
from shipyard.workers import one_offs
from shipyard.workers.context import WorkerContext
from shipyard.workers.stages import spread

log = structlog.get_logger(__name__)


class HostAgent:
    """Reads this run host's inbox until stopped."""

    def __init__(self, settings: Settings, celery: Celery) -> None:
        self._settings = settings
        self._celery = celery
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="host-agent", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        context = WorkerContext.create(self._settings, self._celery)
        inbox = Inbox(context.redis, self._settings.broker_namespace)
        host = self._settings.host_name
        log.info("host_agent.started", host=host, inbox=inbox.key(host))
        while not self._stop.is_set():
            try:
                message = inbox.receive(host, timeout=1)
            except redis.RedisError as exc:
                log.warning("host_agent.inbox_unreachable", error=str(exc))
                self._stop.wait(1)
                continue
            if message is not None:
                threading.Thread(
                    target=handle, args=(context, message), name=message.action, daemon=True
                ).start()


def handle(context: WorkerContext, message: ShareMessage | OneOffMessage) -> None:
    """Do what `message` asks of this host; never raises (whoever asked has a bound, and the
    store says what was done)."""
    try:
        if isinstance(message, OneOffMessage):
            structlog.contextvars.bind_contextvars(run_id=str(message.run_id))
            one_offs.run(context, message.run_id, stdin=message.stdin)
        else:
            structlog.contextvars.bind_contextvars(
                deployment_id=str(message.deployment_id), action=message.action
            )
            spread.handle(context, message)
    except Exception:
        log.exception("host_agent.failed")
    finally:
        forget_secrets()
        structlog.contextvars.clear_contextvars()
