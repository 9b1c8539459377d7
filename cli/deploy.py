"""`shipyard deploy`: start a pipeline and follow it stage by stage until it ends."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.console import Console

from cli.client import ApiClient, CliError
from cli.resources import AppOpt, EnvOpt, env_path

console = Console()
_POLL_SECONDS = 0.25


def follow_to_live(client: ApiClient, pipeline_id: str, timeout: float) -> dict[str, Any]:
    """Follow a pipeline; if it succeeded, what its environment runs now, else fail with why."""
    result = follow(client, pipeline_id, timeout)
    if result["status"] != "succeeded":
        raise CliError(result["error"] or "the pipeline failed")
    return dict(client.get(f"{env_path(result['app'], result['environment'])}/current"))


def follow(client: ApiClient, pipeline_id: str, timeout: float) -> dict[str, Any]:
    """Print each stage's transitions until the pipeline succeeds or fails; return it."""
    seen: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while True:
        pipeline = client.get(f"/v1/pipelines/{pipeline_id}")
        for stage in pipeline["stages"]:
            if seen.get(stage["name"]) == stage["status"] or stage["status"] == "pending":
                continue
            seen[stage["name"]] = stage["status"]
            console.print(_describe(stage), highlight=False, markup=False)
        if pipeline["status"] in ("succeeded", "failed"):
            return dict(pipeline)
        if time.monotonic() > deadline:
            raise CliError(f"gave up following pipeline {pipeline_id} after {timeout:g}s")
        time.sleep(_POLL_SECONDS)


def _describe(stage: dict[str, Any]) -> str:
    name, status = stage["name"], stage["status"]
    line = f"-----> {name:<8} {status}"
    if status == "running" and stage["hostname"]:
        line += f" on {stage['hostname']}"
    if status == "succeeded" and stage["result_id"]:
        line += f": {stage['result_id']}" + (" (cache hit)" if stage["cache_hit"] else "")
    if status == "failed" and stage["error"]:
        line += f"\n{stage['error']}"
    return line


def deploy(
    app: AppOpt,
    env: EnvOpt,
    ref: Annotated[str, typer.Option(help="Branch, tag or commit to build.")] = "HEAD",
    timeout: Annotated[float, typer.Option(help="Seconds to follow the pipeline.")] = 1800,
) -> None:
    """Build REF, release it and run it in ENV; follows the stages and fails if they do."""
    client = ApiClient()
    pipeline = client.post(
        f"/v1/apps/{app}/pipelines", {"environment": env, "ref": ref, "trigger": "cli"}
    )
    console.print(f"Pipeline {pipeline['id']}: {app} {ref} → {env}")
    current = follow_to_live(client, pipeline["id"], timeout)
    web = next((p for p in current["processes"] if p["type"] == "web"), None)
    where = f" at {web['url']}" if web and web["url"] else ""
    console.print(f"Deployed release v{current['release']['version']} to {env}{where}")
