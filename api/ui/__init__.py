"""The web dashboard under `/ui`: server-rendered pages (Jinja2), htmx and server-sent events
for what changes live, sign-in with an API token. Vendored htmx, no build step, no CDN."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from shipyard.api.ui import actions, live, pages, sign_in
from shipyard.api.ui.rendering import HERE


def install(app: FastAPI) -> None:
    """Serve the dashboard's pages and static files from `app`."""
    for module in (sign_in, pages, live, actions):
        app.include_router(module.router)
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")
