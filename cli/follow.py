"""Following a pipeline: each stage's transitions as they happen, until it succeeds or fails."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from shipyard.cli.client import ApiClient, CliError, env_path
from shipyard.cli.render import console, printable, short_digest
from shipyard.cli.rollout_plans import progress_lines

POLL_SECONDS = 0.25
# A stage queued this long makes `follow` ask whether any worker consumes its queue: long
# enough for a busy pool to take it, short enough that a missing pool is news, not a hang.
QUEUED_WARNING_SECONDS = 5.0
WaitOpt = Annotated[
    bool,
    typer.Option(
        "--wait/--no-wait", help="Follow the pipeline until it is live, or return at once."
    ),
]
# Lines of a failed release command's output shown by `follow` (`pipelines show` has it all).
OUTPUT_LINES = 20
TimeoutOpt = Annotated[float, typer.Option(help="Seconds to follow the pipeline.")]
_ENDED = ("succeeded", "failed", "skipped")
# Stages whose output is followed as it is printed: the build's, the release command's.
_LIVE = ("build", "release")
# What a pipeline of each kind is called when it fails.
_WHAT = {"config": "config release"}


def follow_to_live(client: ApiClient, pipeline_id: str, timeout: float) -> dict[str, Any]:
    """Follow a pipeline; if it succeeded, what its environment runs now, else fail with where.

    The failed stage and its error have been printed by then; the error says where it failed.
    """
    result = follow(client, pipeline_id, timeout)
    if result["status"] != "succeeded":
        raise CliError(failure(result))
    return dict(client.get(f"{env_path(result['app'], result['environment'])}/current"))


def follow(client: ApiClient, pipeline_id: str, timeout: float) -> dict[str, Any]:
    """Print each stage's transitions until the pipeline succeeds or fails; return it."""
    seen: dict[str, str] = {}
    queued_since: dict[str, float] = {}
    asked: set[str] = set()
    build_log = LiveBuildLog(client, pipeline_id)
    live: set[str] = set()  # stages whose output was printed as it came
    rollout: dict[str, Any] | None = None  # the canary's record as last shown
    deadline = time.monotonic() + timeout
    while True:
        pipeline = client.get(f"/v1/pipelines/{pipeline_id}")
        now = time.monotonic()
        ended = pipeline["status"] in ("succeeded", "failed")
        if ended:  # the canary's last steps, above the run stage's outcome
            rollout = _show_rollout(rollout, pipeline.get("rollout_record"))
        for stage in pipeline["stages"]:
            name, status = stage["name"], stage["status"]
            if status == "queued":
                queued_since.setdefault(name, now)
            else:
                queued_since.pop(name, None)
            changed = seen.get(name) != status and status != "pending"
            if name in _LIVE and status in _ENDED and build_log.show_new():
                live.add(name)  # the rest of what it printed, before its outcome
            if changed:
                seen[name] = status
                # Its output was printed as it came: not again below its error.
                shown = printable(describe(stage, output=name not in live))
                console.print(shown, highlight=False, markup=False, soft_wrap=True)
            if name in _LIVE and status == "running" and build_log.show_new():
                live.add(name)  # what the build or release command prints, as it prints it
        rollout = _show_rollout(rollout, pipeline.get("rollout_record"))
        if ended:
            return dict(pipeline)
        for name, since in queued_since.items():
            if name not in asked and now - since >= QUEUED_WARNING_SECONDS:
                asked.add(name)  # once per stage: the answer is news only the first time
                _warn_if_unconsumed(client, name, now - since)
        if time.monotonic() > deadline:
            raise CliError(f"gave up following pipeline {pipeline_id} after {timeout:g}s")
        time.sleep(POLL_SECONDS)


def _show_rollout(
    shown: dict[str, Any] | None, record: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Print what changed in the canary since it was last shown (under the run stage's line);
    returns the record as shown now."""
    if not record or record == shown:
        return shown
    for line in progress_lines(shown, record):
        console.print(f"       {printable(line)}", highlight=False, markup=False, soft_wrap=True)
    return record


class LiveBuildLog:
    """The build's output as it is written, each line indented under the build's line."""

    def __init__(self, client: ApiClient, pipeline_id: str) -> None:
        self._client = client
        self._url = f"/v1/pipelines/{pipeline_id}/log/live"
        self._after = "0-0"
        self._available = True

    def show_new(self) -> int:
        """Print the lines written since the last call; how many there were."""
        if not self._available:
            return 0
        try:
            page = self._client.get(self._url, params={"after": self._after})
        except CliError:
            self._available = False  # an older API, or the broker away: the stage lines remain
            return 0
        self._after = page["after"]
        for line in page["lines"]:
            shown = f"       {printable(line.rstrip())}"
            console.print(shown, highlight=False, markup=False, soft_wrap=True)
        return len(page["lines"])


def describe(stage: dict[str, Any], output: bool = True) -> str:
    """A stage's line: `-----> build    succeeded: sha256:a3634f1b (cache hit)`, and a failed
    stage's error below it, verbatim (with its command's last lines, unless `output` is off)."""
    name, status = stage["name"], stage["status"]
    line = f"-----> {name:<8} {status}"
    if status == "running" and stage["hostname"]:
        line += f" on {stage['hostname']}"
    if status == "succeeded" and stage["result_id"]:
        line += f": {short_digest(stage['result_id'])}"
        line += " (cache hit)" if stage["cache_hit"] else ""
    if status == "failed" and stage["error"]:
        line += f"\n{stage['error']}"
    if status == "failed" and output and stage.get("output"):
        # What the release command printed: the end of it is what explains the failure.
        tail = "\n".join(stage["output"].rstrip().splitlines()[-OUTPUT_LINES:])
        line += f"\n--- what the {name} command printed (last lines) ---\n{tail}"
    return line


def failure(pipeline: dict[str, Any]) -> str:
    """One line saying where a failed pipeline stopped (its error was printed with its stage)."""
    what = _WHAT.get(pipeline["kind"], pipeline["kind"])
    stage = next((s for s in pipeline["stages"] if s["status"] == "failed"), None)
    if stage is not None and stage["error"]:
        return f"{what} failed at the {stage['name']} stage (pipeline {pipeline['id']})"
    reason = pipeline["error"] or "no reason recorded"
    return f"{what} failed: {reason} (pipeline {pipeline['id']})"


def web_url(current: dict[str, Any]) -> str:
    """` at http://…`: the environment's stable URL (through the router), else the live web
    process's own, or nothing when it has neither."""
    if current.get("url"):
        return f" at {current['url']}"
    web = next((p for p in current["processes"] if p["type"] == "web"), None)
    return f" at {web['url']}" if web and web["url"] else ""


def _warn_if_unconsumed(client: ApiClient, stage: str, waited: float) -> None:
    # Each stage has the queue of its name, and a pool of workers consuming only it.
    try:
        pools = client.get("/v1/workers")
    except CliError:
        return  # an API without liveness, or a broker that is away: nothing sure to say
    consumers = next((p["workers"] for p in pools if p["queue"] == stage), None)
    if consumers == []:
        console.print(
            f"-----> {stage:<8} queued for {waited:.0f} s and no worker is consuming the "
            f"'{stage}' queue:\n       start one with `shipyard worker {stage}` "
            "(or check `shipyard up`'s logs)",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
