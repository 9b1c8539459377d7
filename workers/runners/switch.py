"""The health-gated switch every runner shares: new processes healthy first, old ones stop after."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

import httpx
import structlog

from shipyard.router.runtime import RouterError
from shipyard.router.traffic import Traffic
from shipyard.shared import constants
from shipyard.shared.exceptions import StageFailed
from shipyard.shared.logging import redact
from shipyard.shared.process_record import ProcessRecord
from shipyard.workers.runners.base import ReleaseSpec, Runner

log = structlog.get_logger(__name__)
# How long processes taken over from standby get to answer their health check before they are
# given up for a fresh start: they were healthy when they left the rotation.
WARM_HEALTH_SECONDS = 5.0
_TAG = re.compile(r"<[^>]*>")


class SwitchRecorder(Protocol):
    """Where the switch records each step as it is taken (the run stage: in the store)."""

    replaced: uuid.UUID | None  # once live: the deployment it superseded, if any

    def started(self, processes: list[ProcessRecord]) -> None:
        """The new processes exist: recorded before the health check (see health_gated_start)."""

    def go_live(self, processes: list[ProcessRecord]) -> list[ProcessRecord] | None:
        """The new processes are healthy and live now; returns those of what they replace."""

    def switched(self) -> None:
        """The router sends the new processes their traffic."""

    def retired(self) -> None:
        """What was replaced is stopped."""

    def keeps_standby(self) -> bool:
        """Whether what was replaced would stand by once drained (see `stand_by`)."""

    def stand_by(self) -> bool:
        """What was replaced (drained out of the router) keeps running out of rotation, if its
        environment keeps replaced releases standing by; whether it does (see
        shared.services.standby: then it is not stopped here)."""


def wait_healthy(
    runner: Runner, processes: list[ProcessRecord], spec: ReleaseSpec, client: httpx.Client
) -> str | None:
    """None once every `web` answers 2xx/3xx on the health path; otherwise why not in time."""
    webs = [p for p in processes if p["type"] == "web"]
    if all(web.get("url") is None for web in webs) and all(runner.is_running(p) for p in processes):
        return None  # a web that serves nothing over HTTP (the noop runner): running is healthy
    pending = [web for web in webs if web.get("url")]
    headers = {"Host": spec.health_host} if spec.health_host else {}
    deadline = time.monotonic() + spec.health_timeout
    last_problem = "no answer yet"
    while time.monotonic() < deadline:
        for process in processes:
            if not runner.is_running(process):
                return f"the {process['type']} process exited during the health check"
        for web in list(pending):
            try:
                response = client.get(
                    f"{web['url']}{spec.health_path}",
                    headers=headers,
                    timeout=min(2.0, spec.health_timeout),
                )
                if 200 <= response.status_code < 400:
                    pending.remove(web)
                    continue
                last_problem = _answered(spec, response)
            except httpx.HTTPError as exc:
                last_problem = f"GET {spec.health_path} failed: {type(exc).__name__}"
        if not pending:
            return None
        time.sleep(constants.HEALTH_POLL_SECONDS)
    return f"web did not become healthy within {spec.health_timeout:g}s ({last_problem})"


def _answered(spec: ReleaseSpec, response: httpx.Response) -> str:
    """`GET /health (Host: web.example.com) answered 400: Bad Request (400)`: the status and the
    body's first line, which says why more often than the status does."""
    sent = f" (Host: {spec.health_host})" if spec.health_host else ""
    # Of an HTML page, its first line of text (`<h1>Bad Request (400)</h1>`, a debug page's title).
    texts = (_TAG.sub("", line).strip() for line in response.text[:20_000].splitlines())
    first = next((text for text in texts if text), "")
    said = f": {first[:200]}" if first else ""
    return f"GET {spec.health_path}{sent} answered {response.status_code}{said}"


def health_gated_start(
    runner: Runner,
    spec: ReleaseSpec,
    started: Callable[[list[ProcessRecord]], None] | None = None,
) -> list[ProcessRecord]:
    """Start the release and wait until it is healthy; on failure stop it and say why.

    `started` records the new processes before the wait, so that if this worker dies during
    the health check, whoever takes the stage over can stop them.
    """
    processes = runner.start(spec)
    if started is not None:
        try:
            started(processes)
        except BaseException:
            runner.stop(processes)  # unrecorded processes would be nobody's to stop
            raise
    # Plain HTTP on loopback: no TLS context, whose certificate store costs ~18 ms to load.
    with httpx.Client(trust_env=False, verify=False) as client:
        problem = wait_healthy(runner, processes, spec, client)
    if problem is None:
        return processes
    tails = "\n".join(
        f"--- last output of {p['type']} ---\n" + runner.output_tail(p, constants.OUTPUT_TAIL_LINES)
        for p in processes
    )
    runner.stop(processes)
    # The app may print its own config; the secrets of this release are scrubbed here.
    raise StageFailed(redact(f"{problem}\n{tails}".rstrip()))


def switch(
    runner: Runner,
    spec: ReleaseSpec,
    recorder: SwitchRecorder,
    traffic: Traffic | None = None,
    before_live: Callable[[list[ProcessRecord]], None] | None = None,
    warm: list[ProcessRecord] | None = None,
) -> list[ProcessRecord]:
    """Start `spec` healthy, record it live, send it the traffic, drain what it replaced, then
    stop that (or leave it standing by: `recorder.stand_by`); `recorder` records each step.
    Returns the new processes.

    `warm`: processes of this release already running (taken over from standby, recorded as
    this deployment's): they go live once they answer their health check, with no start; if
    they do not, they are stopped and the release started as usual. `before_live` runs between
    the health check and going live (a canary's steps, see workers.runners.rollout); if it
    raises, the new processes are stopped and nothing switches. Without a router on this host
    (`traffic` None) the old processes stop right after the switch is recorded, as each release
    answers on its own port then.
    """
    processes = warm_healthy(runner, spec, warm) if warm else None
    if processes is None:
        processes = health_gated_start(runner, spec, recorder.started)
    if before_live is not None:
        try:
            before_live(processes)
        except BaseException:
            runner.stop(processes)
            raise
    try:
        previous = recorder.go_live(processes)
    except BaseException:
        runner.stop(processes)
        raise
    if traffic is not None:
        traffic = _send_traffic(traffic, processes, previous)
        recorder.switched()
    drained = False
    if traffic is not None and previous:
        try:
            traffic.retire(previous)
            log.info("run.drained", seconds=round(traffic.drained_in or 0, 3))
            drained = True
        except RouterError as exc:
            log.error("router.drain_failed", error=exc.message)
    # Only what is out of the router may stand by: one it still routes to is stopped.
    if previous and drained and recorder.stand_by():
        log.info("run.previous_standing_by", processes=len(previous))
        return processes
    if previous:
        runner.stop(previous)
        log.info("run.previous_stopped", processes=len(previous))
    if previous is not None:  # a deployment was replaced, even one without processes
        recorder.retired()
    return processes


def _send_traffic(
    traffic: Traffic, processes: list[ProcessRecord], previous: list[ProcessRecord] | None
) -> Traffic | None:
    """The router sends the new processes the traffic, and what they replace none any more
    (those in flight finish); None if the router refused (live in the store already: it
    catches up at its next restore)."""
    try:
        traffic.serve(processes)
    except RouterError as exc:
        log.error("router.serve_failed", error=exc.message)
        return None
    if previous:
        # Before anything is recorded: a release rolled back from (failing, maybe) gets no new
        # request once the other one serves.
        try:
            traffic.drain(previous)
        except RouterError as exc:
            log.error("router.drain_failed", error=exc.message)
    return traffic


def warm_healthy(
    runner: Runner, spec: ReleaseSpec, warm: list[ProcessRecord]
) -> list[ProcessRecord] | None:
    """The standby processes if they all still run and answer their health check at once;
    otherwise None, with them stopped (the release is then started anew)."""
    quick = replace(spec, health_timeout=min(spec.health_timeout, WARM_HEALTH_SECONDS))
    with httpx.Client(trust_env=False, verify=False) as client:
        problem = wait_healthy(runner, warm, quick, client)
    if problem is None:
        log.info("run.warm", processes=len(warm))
        return warm
    log.warning("run.warm_unhealthy", problem=redact(problem))
    runner.stop(warm)
    return None
