"""`shipyard run` (a one-off command in a release, as `heroku run`) and `shipyard runs`."""

from __future__ import annotations

import base64
import shlex
import sys
import time
from typing import Annotated, Any

import typer
from rich.console import Console

from shipyard.cli.client import ApiClient, CliError
from shipyard.cli.render import ago, printable, table
from shipyard.shared.constants import ONE_OFF_MAX_STDIN_BYTES as MAX_STDIN_BYTES

AppOpt = Annotated[str, typer.Option("--app", "-a", help="App name.")]
EnvOpt = Annotated[str, typer.Option("--env", "-e", help="Environment name.")]

# What the CLI says about the run goes to stderr: stdout is the command's own output.
notice = Console(stderr=True, soft_wrap=True)
POLL_SECONDS = 0.2
# A run its host has not started by then: its run worker is away (said, and the run cancelled).
START_BOUND_SECONDS = 60.0
# Past its start and its own timeout, how long to wait for a run's end before saying so.
END_MARGIN_SECONDS = 60.0
# Exit codes like timeout(1) and a shell's: killed at its timeout, cancelled (interrupted).
TIMED_OUT_EXIT = 124
CANCELLED_EXIT = 130
ENDED = {"succeeded", "failed", "timed_out", "cancelled"}


def run(
    command: Annotated[list[str], typer.Argument(help="The command, after `--`.")],
    app: AppOpt,
    env: EnvOpt,
    release: Annotated[
        int | None,
        typer.Option("--release", min=1, help="Run it in release vN (default: the live one)."),
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=1, help="Kill it after this many seconds.")
    ] = 3600.0,
    stdin: Annotated[
        bool,
        typer.Option(
            "--stdin",
            help="Send this command's standard input (read to its end first, 3 MiB at most) "
            "as the command's: `shipyard run … --stdin -- psql < dump.sql`.",
        ),
    ] = False,
) -> None:
    """Run a command once in a release of an environment, as its processes run (artifact, config,
    secrets, storage), on its run host: `shipyard run -a web -e production -- flask init-db`.
    Prints its output as it comes, and exits with its exit code."""
    text = command[0] if len(command) == 1 else shlex.join(command)
    body: dict[str, Any] = {"command": text, "timeout": timeout}
    if release is not None:
        body["release"] = release
    if stdin:
        body["stdin"] = base64.b64encode(_read_stdin()).decode()
    client = ApiClient()
    started = client.post(f"/v1/apps/{app}/environments/{env}/runs", body)
    notice.print(
        f"Running {printable(text)} in {app}/{env} v{started['release_version']} "
        f"on {printable(started['host'])} (run {started['id']})",
        highlight=False,
        markup=False,
    )
    try:
        ended = follow(client, started["id"], float(started["timeout"]))
    except KeyboardInterrupt:
        client.post(f"/v1/runs/{started['id']}/cancel", {})
        notice.print("cancelled: its process is being stopped")
        raise typer.Exit(CANCELLED_EXIT) from None
    raise typer.Exit(exit_code(ended))


def _read_stdin() -> bytes:
    """All of this command's standard input, refused past what a run may be sent."""
    if sys.stdin is None or sys.stdin.isatty():
        raise CliError(
            "--stdin sends what is piped or redirected in (`… --stdin -- psql < dump.sql`); "
            "here the input is a terminal, or there is none"
        )
    data = sys.stdin.buffer.read(MAX_STDIN_BYTES + 1)
    if len(data) > MAX_STDIN_BYTES:
        raise CliError(
            f"--stdin: the input is over {MAX_STDIN_BYTES // (1024 * 1024)} MiB; put larger "
            "files where the command can read them (the environment's storage, a URL)"
        )
    return data


def follow(client: ApiClient, run_id: str, timeout: float) -> dict[str, Any]:
    """Print the run's output as it comes; its state once it ended (bounded: a host that died
    under it never reports its end)."""
    after = "0-0"
    began = time.monotonic()
    deadline = began + START_BOUND_SECONDS + timeout + END_MARGIN_SECONDS
    while True:
        page = client.get(f"/v1/runs/{run_id}/output", params={"after": after})
        after = page["after"]
        for line in page["lines"]:
            sys.stdout.write(printable(line) + "\n")
        sys.stdout.flush()
        if page["status"] in ENDED and not page["lines"]:
            run: dict[str, Any] = client.get(f"/v1/runs/{run_id}")
            return run
        if page["status"] == "queued" and time.monotonic() - began > START_BOUND_SECONDS:
            client.post(f"/v1/runs/{run_id}/cancel", {})
            raise CliError(
                f"its run host has not started it in {START_BOUND_SECONDS:g}s (is its run worker "
                "up? `shipyard hosts`); cancelled"
            )
        if time.monotonic() > deadline:
            raise CliError(
                f"run {run_id} has not ended {END_MARGIN_SECONDS:g}s after its timeout "
                f"({timeout:g}s): its run host may have stopped under it (`shipyard hosts`, "
                "`shipyard runs`)"
            )
        if not page["lines"]:
            time.sleep(POLL_SECONDS)


def exit_code(run: dict[str, Any]) -> int:
    """The CLI's exit code for an ended run: the command's own, else what killed it."""
    status = run["status"]
    if run.get("exit_code") is not None:
        return int(run["exit_code"])
    if status == "timed_out":
        notice.print(f"killed at its timeout ({run['timeout']:g}s)")
        return TIMED_OUT_EXIT
    if status == "cancelled":
        return CANCELLED_EXIT
    notice.print(f"it did not run: {printable(run.get('error') or 'no reason recorded')}")
    return 1


def runs(app: AppOpt, env: EnvOpt) -> None:
    """The environment's one-off commands, newest first."""
    listed = ApiClient().get(f"/v1/apps/{app}/environments/{env}/runs")
    table(
        f"One-offs of {app}/{env}",
        ["id", "command", "release", "by", "status", "exit", "took", "started"],
        [
            [
                r["id"][:8],
                r["command"],
                f"v{r['release_version']}",
                r["requested_by"],
                r["status"],
                "-" if r["exit_code"] is None else str(r["exit_code"]),
                "-" if r["duration"] is None else f"{r['duration']:.1f}s",
                ago(r["created_at"]),
            ]
            for r in listed
        ],
    )
