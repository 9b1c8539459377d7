"""The CLI's HTTP client of the API: the CLI talks to Shipyard only through it."""

from __future__ import annotations

from typing import Any

import httpx

from shared.settings import ClientSettings


class CliError(Exception):
    """An error to print and exit non-zero on, without a traceback."""


class ApiClient:
    """A thin httpx wrapper that turns API errors into CliError with the API's own message."""

    def __init__(self, settings: ClientSettings | None = None) -> None:
        settings = settings or ClientSettings()
        token = settings.resolved_token()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = settings.url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=30, trust_env=False)

    def request(
        self, method: str, path: str, json: Any = None, params: dict[str, str] | None = None
    ) -> Any:
        """Call the API; returns the decoded JSON body."""
        try:
            response = self._http.request(method, path, json=json, params=params)
        except httpx.HTTPError as exc:
            raise CliError(
                f"cannot reach Shipyard at {self.url} ({type(exc).__name__}); "
                "is `shipyard up` (or `shipyard api`) running, and SHIPYARD_URL right?"
            ) from exc
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise CliError(f"{detail} (HTTP {response.status_code})")
        return response.json() if response.content else None

    def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, json: Any) -> Any:
        return self.request("POST", path, json=json)

    def patch(self, path: str, json: Any) -> Any:
        return self.request("PATCH", path, json=json)
