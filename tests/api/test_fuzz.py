"""Property-based requests from the OpenAPI spec (schemathesis), and hand-written bad input.

Whatever a client sends, the answer is never a 500: a clear 4xx, or a stored failure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings

from shipyard.api.main import create_app
from shipyard.shared.events import Event
from shipyard.shared.migrate import upgrade
from shipyard.shared.settings import Settings
from tests.integration.stack import free_port

# Every test here talks to the API served by uvicorn on a real port.
pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The real API over real HTTP (uvicorn in a thread), embedded settings, a list as broker."""
    data_dir = tmp_path_factory.mktemp("fuzz")
    config = Settings(data_dir=data_dir, max_body_bytes=64 * 1024)
    upgrade(config.sqlalchemy_url)
    published: list[Event] = []
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(config, publisher=published.append), port=port, log_config=None)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(f"{url}/health", trust_env=False)
            break
        except httpx.HTTPError:
            time.sleep(0.05)
    token = config.api_token()
    client = httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, trust_env=False
    )
    client.post("/v1/apps", json={"name": "fuzz", "repo": str(Path(__file__).parent)})
    client.post("/v1/apps/fuzz/environments", json={"name": "staging"})
    client.close()
    yield url, token
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def api_schema(served: tuple[str, str]) -> Any:
    url, _ = served
    return schemathesis.openapi.from_url(f"{url}/openapi.json")


def test_no_generated_request_gets_a_server_error(api_schema: Any, served: tuple[str, str]) -> None:
    _, token = served
    checked = []
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=15,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def no_server_error(case: Any) -> None:
            response = case.call(headers={"Authorization": f"Bearer {token}"})
            assert response.status_code < 500, (case.method, case.formatted_path, response.text)

        no_server_error()
        checked.append(operation.label)
    assert len(checked) >= 20  # every operation of the API was exercised


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/v1/apps", b'{"name": "x", "repo": ', 422),  # malformed JSON
        ("POST", "/v1/apps", b"\xff\xfe binary", 400),
        ("POST", "/v1/apps", b'{"name": "../../etc", "repo": "/r"}', 422),
        ("POST", "/v1/apps", b'{"name": "a;rm -rf /", "repo": "/r"}', 422),
        ("POST", "/v1/apps", b'{"name": "ok", "repo": "--upload-pack=touch /tmp/x"}', 422),
        ("POST", "/v1/apps", b'{"name": "ok", "repo": "/r", "path": "../outside"}', 422),
        (
            "POST",
            "/v1/apps/fuzz/pipelines",
            b'{"environment": "staging", "ref": "--output=/x"}',
            422,
        ),
        ("POST", "/v1/apps/fuzz/pipelines", b'{"environment": "staging", "ref": "a b"}', 422),
        ("GET", "/v1/apps/..%2F..%2Fetc", b"", 404),
        ("GET", "/v1/pipelines/not-a-uuid", b"", 422),
        ("PATCH", "/v1/apps/fuzz/environments/staging/config", b'{"vars": {"BAD KEY": "1"}}', 422),
        ("POST", "/v1/apps", b"x" * (64 * 1024 + 1), 413),
    ],
)
def test_bad_input_gets_a_clear_4xx(
    served: tuple[str, str], method: str, path: str, body: bytes, status: int
) -> None:
    url, token = served
    response = httpx.request(
        method,
        f"{url}{path}",
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        trust_env=False,
    )
    assert response.status_code == status, response.text
    assert isinstance(response.json()["detail"], str) and response.json()["detail"]


def test_a_streamed_body_over_the_limit_is_refused(served: tuple[str, str]) -> None:
    url, token = served

    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b"x" * 1024

    response = httpx.post(
        f"{url}/v1/apps",
        content=chunks(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        trust_env=False,
    )
    assert response.status_code == 413
