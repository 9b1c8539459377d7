"""The router agent's answers to ACME HTTP-01 challenges, from a real Redis: on its own socket,
and through HAProxy's plain HTTP frontend as a CA asks them."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from cryptography.fernet import Fernet

from shipyard.serve import router_agent
from shipyard.serve.acme_responder import AcmeResponder
from shipyard.shared import acme_challenges
from shipyard.shared.settings import Settings
from tests.integration.stack import free_port
from tests.router.test_router import started

TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
KEY_AUTHORIZATION = f"{TOKEN}.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"


@pytest.fixture
def settings(tmp_path: Path, redis_url: str, broker_namespace: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        broker_url=redis_url,
        broker_namespace=broker_namespace,
        secret_key=Fernet.generate_key().decode(),
        router_port=free_port(),
        router_slots=1,
    )


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    made = redis.Redis.from_url(redis_url)
    yield made
    made.close()


@pytest.fixture
def responder(settings: Settings) -> Iterator[AcmeResponder]:
    made = router_agent.acme_responder(settings)
    made.start()
    yield made
    made.stop()


def ask(path: Path, request: bytes) -> bytes:
    """Send raw bytes to the responder's socket; all it answers before closing."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def get(path: Path, target: str) -> tuple[int, bytes]:
    answer = ask(path, f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_a_challenge_in_flight_is_answered_with_its_key_authorization(
    responder: AcmeResponder, settings: Settings, client: redis.Redis
) -> None:
    acme_challenges.put(client, settings.broker_namespace, TOKEN, KEY_AUTHORIZATION)

    assert get(responder.path, f"{acme_challenges.PATH_PREFIX}{TOKEN}") == (
        200,
        KEY_AUTHORIZATION.encode(),
    )
    acme_challenges.drop(client, settings.broker_namespace, TOKEN)
    assert get(responder.path, f"{acme_challenges.PATH_PREFIX}{TOKEN}")[0] == 404
    assert oct(responder.path.stat().st_mode & 0o777) == oct(0o600)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /.well-known/acme-challenge/../../etc/passwd HTTP/1.1\r\n\r\n",
        b"GET /.well-known/acme-challenge/%00%ff HTTP/1.1\r\n\r\n",
        b"GET /.well-known/acme-challenge/ HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"POST /.well-known/acme-challenge/x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 binary junk\r\n\r\n",
        b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n",
        b"",
    ],
    ids=["traversal", "escapes", "no-token", "root", "post", "tls", "long", "nothing"],
)
def test_odd_requests_get_an_error_and_the_responder_answers_on(
    responder: AcmeResponder, settings: Settings, client: redis.Redis, request_bytes: bytes
) -> None:
    answer = ask(responder.path, request_bytes)

    # An error (for junk with no HTTP version, the HTTP/0.9 way: a page, no status line).
    assert not answer.startswith((b"HTTP/1.1 2", b"HTTP/1.0 2"))
    acme_challenges.put(client, settings.broker_namespace, TOKEN, KEY_AUTHORIZATION)
    assert get(responder.path, f"{acme_challenges.PATH_PREFIX}{TOKEN}")[0] == 200


def test_without_the_broker_the_answer_is_a_503(tmp_path: Path) -> None:
    unreachable = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    responder = AcmeResponder(tmp_path / "acme.sock", unreachable, "shipyard")
    responder.start()
    try:
        status, _ = get(responder.path, f"{acme_challenges.PATH_PREFIX}{TOKEN}")
    finally:
        responder.stop()

    assert status == 503
    assert not responder.path.exists()


def test_haproxy_sends_a_cas_challenge_to_the_responder_even_without_https(
    responder: AcmeResponder, settings: Settings, client: redis.Redis
) -> None:
    assert settings.router_https_port is None
    acme_challenges.put(client, settings.broker_namespace, TOKEN, KEY_AUTHORIZATION)

    with started(settings):
        with httpx.Client(trust_env=False, timeout=10) as http:
            url = f"http://127.0.0.1:{settings.router_port}{acme_challenges.PATH_PREFIX}"
            answered = http.get(url + TOKEN, headers={"Host": "web.example.com"})
            unknown = http.get(url + "x" * 43, headers={"Host": "web.example.com"})

    assert answered.status_code == 200
    assert answered.text == KEY_AUTHORIZATION
    assert answered.headers["Content-Type"] == "text/plain"
    assert unknown.status_code == 404


def test_the_responder_socket_is_a_short_path_under_any_data_dir(tmp_path: Path) -> None:
    deep = Settings(data_dir=tmp_path / ("d" * 120))

    assert len(str(deep.router_acme_socket).encode()) <= 108
