"""A one-off command on this run host (`shipyard run`; shared.services.one_offs): claimed from
the store, run in its release by the environment's runner, its output streamed line by line
(the release's secrets redacted) to the broker for the CLI, and its end recorded."""

from __future__ import annotations

import uuid

import redis
import structlog

from shipyard.shared import one_off_stream
from shipyard.shared.db import session_scope
from shipyard.shared.exceptions import ShipyardError
from shipyard.shared.logging import redact
from shipyard.shared.models import Environment, OneOffStatus, Release
from shipyard.shared.services import one_offs
from shipyard.workers.context import WorkerContext
from shipyard.workers.live_output import LiveOutput
from shipyard.workers.runners import get_runner
from shipyard.workers.runners.base import OneOffEnd
from shipyard.workers.stages.frame import get_row
from shipyard.workers.stages.spec import release_spec

log = structlog.get_logger(__name__)


def run(context: WorkerContext, run_id: uuid.UUID, *, stdin: bool = False) -> None:
    """Run the one-off if it is still queued for this host (with the standard input waiting
    for it on the broker, if `stdin`); record how it ended."""
    namespace = context.settings.broker_namespace
    with session_scope(context.db_url) as session:
        claimed = one_offs.claim(session=session, run_id=run_id, host=context.settings.host_name)
        if claimed is None:
            log.info("one_off.not_queued_here")
            return
        release = get_row(session, Release, claimed.release_id)
        environment = get_row(session, Environment, release.environment_id)
        command, timeout = claimed.command, claimed.timeout
        runner_name = environment.runner
        try:
            spec = release_spec(session, context, release, f"run-{run_id}")
        except ShipyardError as exc:
            spec, problem = None, exc.message
    output = LiveOutput(context.redis, one_off_stream.output_key(namespace, run_id))
    data: bytes | None = None
    if stdin and spec is not None:
        try:
            data = one_off_stream.take_input(context.redis, namespace, run_id)
        except redis.RedisError:
            data = None
        if data is None:
            problem = "its standard input could not be read from the broker: run it again"
            spec = None
    if spec is None:
        _finish(context, run_id, OneOffStatus.FAILED, None, output.tail, problem)
        return
    log.info("one_off.started", release=release.version)

    def cancelled() -> bool:
        try:
            return one_off_stream.cancel_requested(context.redis, namespace, run_id)
        except redis.RedisError:
            return False  # the broker is away: the timeout still bounds it

    try:
        ended = get_runner(runner_name, context).stream_once(
            spec, command, timeout, output, cancelled, stdin=data
        )
    except ShipyardError as exc:
        _finish(context, run_id, OneOffStatus.FAILED, None, output.tail, redact(exc.message))
        return
    except Exception:
        _finish(context, run_id, OneOffStatus.FAILED, None, output.tail, "internal error")
        raise
    status, error = _outcome(ended, timeout)
    _finish(context, run_id, status, ended.exit_code, output.tail, error)
    log.info("one_off.ended", status=status, exit_code=ended.exit_code)


def _outcome(ended: OneOffEnd, timeout: float) -> tuple[OneOffStatus, str | None]:
    if ended.timed_out:
        return OneOffStatus.TIMED_OUT, f"killed at its timeout ({timeout:g} s)"
    if ended.cancelled:
        return OneOffStatus.CANCELLED, "cancelled"
    if ended.exit_code == 0:
        return OneOffStatus.SUCCEEDED, None
    return OneOffStatus.FAILED, None


def _finish(
    context: WorkerContext,
    run_id: uuid.UUID,
    status: OneOffStatus,
    exit_code: int | None,
    output: str,
    error: str | None,
) -> None:
    with session_scope(context.db_url) as session:
        one_offs.finish(
            session=session,
            run_id=run_id,
            status=status,
            exit_code=exit_code,
            output=output,
            error=error,
        )
