"""The CLI's HTTP client of the API: the CLI talks to Shipyard only through it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from shipyard.shared.client_settings import ClientSettings

if TYPE_CHECKING:
    import httpx


class CliError(Exception):
    """An error to print and exit non-zero on, without a traceback."""


class ApiError(CliError):
    """An error answer of the API, with its status code."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


def env_path(app: str, env: str) -> str:
    """The API path of environment `env` of `app`."""
    return f"/v1/apps/{app}/environments/{env}"


def http_client(base_url: str, headers: dict[str, str]) -> httpx.Client:
    """The HTTP client of the API at `base_url`. httpx is imported here, when a command calls
    the API (`--help` never does). Over plain HTTP there is no certificate to verify: loading
    the CA bundle for nothing would take a command ~0.1 s (redirects are not followed)."""
    import httpx

    plain = base_url.startswith("http://")
    return httpx.Client(
        base_url=base_url, headers=headers, timeout=30, trust_env=False, verify=not plain
    )


class ApiClient:
    """A thin httpx wrapper that turns API errors into CliError with the API's own message."""

    def __init__(self, settings: ClientSettings | None = None) -> None:
        settings = settings or ClientSettings()
        token = settings.resolved_token()
        # What the CLI starts is recorded as the CLI's (the API's ClientDep reads the header).
        headers = {"X-Shipyard-Client": "cli", "User-Agent": "shipyard-cli"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.url = settings.api_url.rstrip("/")
        self._http = http_client(self.url, headers)

    def request(
        self, method: str, path: str, json: Any = None, params: dict[str, str] | None = None
    ) -> Any:
        """Call the API; returns the decoded JSON body."""
        import httpx

        try:
            response = self._http.request(method, path, json=json, params=params)
        except httpx.HTTPError as exc:
            raise CliError(
                f"cannot reach Shipyard at {self.url} ({type(exc).__name__}); "
                "is `shipyard up` (or `shipyard api`) running, and SHIPYARD_URL right?"
            ) from exc
        if response.status_code >= 400:
            self._raise_for(response)
        return response.json() if response.content else None

    @staticmethod
    def _raise_for(response: httpx.Response) -> None:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise ApiError(f"{detail} (HTTP {response.status_code})", response.status_code)

    def stream_text(self, path: str, params: dict[str, str]) -> Iterator[str]:
        """GET `path` and yield its text body as it arrives (a followed log)."""
        import httpx

        try:
            with self._http.stream("GET", path, params=params, timeout=None) as response:
                if response.status_code >= 400:
                    response.read()
                    self._raise_for(response)
                yield from response.iter_text()
        except httpx.HTTPError as exc:
            raise CliError(
                f"lost the connection to Shipyard at {self.url} ({type(exc).__name__})"
            ) from exc

    def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def get_or_none(self, path: str) -> Any:
        """GET `path`; None when the API answers 404 (nothing there, e.g. nothing live)."""
        try:
            return self.get(path)
        except ApiError as exc:
            if exc.status_code == 404:
                return None
            raise

    def post(self, path: str, json: Any) -> Any:
        return self.request("POST", path, json=json)

    def patch(self, path: str, json: Any) -> Any:
        return self.request("PATCH", path, json=json)

    def delete(self, path: str, params: dict[str, str] | None = None) -> Any:
        return self.request("DELETE", path, params=params)

    def put(self, path: str, json: Any) -> Any:
        return self.request("PUT", path, json=json)
