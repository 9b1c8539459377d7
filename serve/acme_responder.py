"""The router's answers to ACME HTTP-01 challenges: a thread of the router agent serving HTTP on a
unix socket, HAProxy's `acme_challenge` backend.

A CA asks `http://DOMAIN/.well-known/acme-challenge/TOKEN` of whichever run host the domain's DNS
names; every router answers it from the broker, where the worker ordering the certificate put
it (shared.acme_challenges), so no router needs to be told of an order.
"""

from __future__ import annotations

import os
import socketserver
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import redis
import structlog

from shipyard.shared import acme_challenges, constants

log = structlog.get_logger(__name__)


class AcmeResponder:
    """Key authorizations by token, from the broker, on a unix socket."""

    def __init__(self, path: Path, client: redis.Redis, namespace: str) -> None:
        self.path = path
        self.client = client
        self.namespace = namespace
        self._server: _UnixHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind the socket (replacing a stale one) and answer in a thread of its own."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)  # a previous agent's, left by a crash
        server = _UnixHTTPServer(str(self.path), _ChallengeHandler)
        os.chmod(self.path, 0o600)  # HAProxy runs as the agent's user
        server.responder = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="acme-responder", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop answering and remove the socket."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=constants.ACME_RESPONDER_TIMEOUT_SECONDS)
        self.path.unlink(missing_ok=True)
        self._server = None

    def answer(self, path: str) -> tuple[HTTPStatus, str]:
        """The status and body for a request's path."""
        if not path.startswith(acme_challenges.PATH_PREFIX):
            return HTTPStatus.NOT_FOUND, "not an ACME challenge\n"
        token = path.partition("?")[0].removeprefix(acme_challenges.PATH_PREFIX)
        try:
            key_authorization = acme_challenges.get(self.client, self.namespace, token)
        except redis.RedisError as exc:
            log.warning("router.acme_challenge_unanswered", error=f"{type(exc).__name__}: {exc}")
            return HTTPStatus.SERVICE_UNAVAILABLE, "the broker does not answer; try again\n"
        if key_authorization is None:
            return HTTPStatus.NOT_FOUND, "no such challenge in flight\n"
        log.info("router.acme_challenge_answered", token=token)
        return HTTPStatus.OK, key_authorization


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    responder: AcmeResponder

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that went away mid-answer, or anything else: logged, never a traceback on
        # the agent's stderr, and the server serves on.
        log.warning("router.acme_responder_error", exc_info=True)


class _ChallengeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive with HAProxy, closed after a timeout idle
    server_version, sys_version = "shipyard", ""  # no Python version in the Server header
    timeout = constants.ACME_RESPONDER_TIMEOUT_SECONDS
    server: _UnixHTTPServer

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        self._respond(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802 (the stdlib's name)
        self._respond(send_body=False)

    def _respond(self, *, send_body: bool) -> None:
        status, text = self.server.responder.answer(self.path)
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def address_string(self) -> str:
        return "haproxy"  # a unix socket's peer has no address

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the stdlib's name)
        pass  # HAProxy's request line (the `router:` lines of `logs`) records each request
