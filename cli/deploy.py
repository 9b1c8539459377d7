"""`shipyard deploy`: start a pipeline and follow it stage by stage until it is live."""

from __future__ import annotations

from typing import Annotated

import typer

from shipyard.cli.client import ApiClient
from shipyard.cli.follow import TimeoutOpt, WaitOpt, follow_to_live, web_url
from shipyard.cli.render import console
from shipyard.cli.resources import AppOpt, EnvOpt
from shipyard.cli.rollout_plans import (
    CanaryOpt,
    StepTimeOpt,
    WatchOpt,
    plan_text,
    rollout_request,
)


def deploy(
    app: AppOpt,
    env: EnvOpt,
    ref: Annotated[str, typer.Option(help="Branch, tag or commit to build.")] = "HEAD",
    canary: CanaryOpt = None,
    step_time: StepTimeOpt = None,
    watch: WatchOpt = None,
    timeout: TimeoutOpt = 1800,
    wait: WaitOpt = True,
) -> None:
    """Build REF, release it and run it in ENV; follows the stages and fails if they do. With
    --canary, the new release gets a rising share of the requests, compared with the live one
    at each step; with --watch, it is watched once it has them all (default: the environment's
    plan, `envs update`)."""
    body: dict[str, object] = {"environment": env, "ref": ref, "trigger": "cli"}
    rollout = rollout_request(canary, step_time, watch)
    if rollout is not None:
        body["rollout"] = rollout
    client = ApiClient()
    pipeline = client.post(f"/v1/apps/{app}/pipelines", body)
    console.print(
        f"Pipeline {pipeline['id']}: {app} {ref} → {env}", highlight=False, soft_wrap=True
    )
    if pipeline.get("rollout"):
        console.print(f"Going live: {plan_text(pipeline['rollout'])}", highlight=False)
    if not wait:
        return
    current = follow_to_live(client, pipeline["id"], timeout)
    console.print(
        f"Deployed release v{current['release']['version']} to {env}{web_url(current)}",
        highlight=False,
        soft_wrap=True,  # one line, whatever the width: scripts grep it
    )
