"""Where an environment answers: its host names on every run host's router, and its URL."""

from __future__ import annotations

from shipyard.shared.models import Environment
from shipyard.shared.schemas import EnvironmentPublic
from shipyard.shared.settings import Settings

# `*.localhost` resolves to loopback without any DNS set-up (RFC 6761), so every environment
# has a name that works out of the box.
LOCAL_SUFFIX = "localhost"


def hosts(app: str, environment: str, domains: list[str]) -> tuple[str, ...]:
    """The host names the environment answers to: `<env>.<app>.localhost`, then its domains."""
    return (f"{environment}.{app}.{LOCAL_SUFFIX}", *domains)


def url(settings: Settings, app: str, environment: str) -> str:
    """The environment's stable URL: the same across deploys, rollbacks and restarts."""
    return f"http://{environment}.{app}.{LOCAL_SUFFIX}:{settings.router_port}"


def environment_public(settings: Settings, environment: Environment, app: str) -> EnvironmentPublic:
    """The API's view of an environment, with its stable URL."""
    view = EnvironmentPublic.model_validate(environment, from_attributes=True)
    if environment.route_slot is not None:  # a noop environment is never routed to
        view.url = url(settings, app, environment.name)
    return view
