"""The router's HTTPS for real, on the bundled HAProxy 2.8 and on Debian's 2.6: certificates
loaded, swapped and removed through the admin socket and served by SNI, the redirect to HTTPS,
HSTS, and what a restarted HAProxy gets back."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from shipyard.router import haproxy, tls
from shipyard.router.runtime import RouterError, RuntimeAPI
from shipyard.router.traffic import Route, Traffic
from shipyard.shared import constants
from shipyard.shared.settings import Settings
from tests.certificate_support import Issued, TestCA
from tests.conftest import REQUIRE_SERVICES
from tests.integration.stack import free_port
from tests.router.test_router import started

pytestmark = pytest.mark.network

DEBIAN_HAPROXY = Path("/usr/sbin/haproxy")
DOMAIN = "web.example.com"
OTHER = "api.example.com"


@dataclass(frozen=True)
class Site:
    """A certificate to serve, as shared.services.certificates.served() gives them."""

    domain: str
    pem: str
    redirect: bool = True
    hsts: bool = False


def site(issued: Issued, domain: str = DOMAIN, **options: bool) -> Site:
    return Site(domain=domain, pem=issued.chain + issued.key, **options)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # HAProxy closing a keep-alive connection as it stops: no traceback


class EchoBackend:
    """An app that answers with the scheme the router told it (X-Forwarded-Proto)."""

    def __init__(self) -> None:
        self.port = free_port()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                body = f"proto={self.headers.get('X-Forwarded-Proto')}".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = _QuietServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(params=["bundled", "debian"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    binary = None
    if request.param == "debian":
        if not DEBIAN_HAPROXY.exists():
            if REQUIRE_SERVICES:
                pytest.fail("Debian's haproxy (/usr/sbin/haproxy) is not installed")
            pytest.skip("Debian's haproxy (/usr/sbin/haproxy) is not installed")
        binary = DEBIAN_HAPROXY
    return Settings(
        data_dir=tmp_path / "data",
        router_port=free_port(),
        router_https_port=free_port(),
        router_slots=2,
        router_binary=binary,
    )


@pytest.fixture
def router(settings: Settings) -> Iterator[RuntimeAPI]:
    backend = EchoBackend()
    with started(settings) as api:
        route = Route(haproxy.backend_name(0), (DOMAIN, OTHER), drain_timeout=1)
        Traffic(api, settings.router_map, route).serve(
            [{"type": "web", "port": backend.port, "server": "echo-1"}]
        )
        yield api
    backend.close()


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


def https_client(settings: Settings, ca: TestCA, server_name: str) -> httpx.Client:
    """A client that trusts only the test CA and asks for `server_name` by SNI and Host."""
    context = ssl.create_default_context(cadata=ca.pem)
    return httpx.Client(
        base_url=f"https://127.0.0.1:{settings.router_https_port}",
        headers={"Host": server_name},
        verify=context,
        trust_env=False,
        timeout=10,
    )


def get(client: httpx.Client, server_name: str, path: str = "/") -> httpx.Response:
    return client.get(path, extensions={"sni_hostname": server_name})


def http_client(settings: Settings, host: str = DOMAIN) -> httpx.Client:
    return httpx.Client(
        base_url=f"http://127.0.0.1:{settings.router_port}",
        headers={"Host": host},
        trust_env=False,
        timeout=10,
    )


def served_certificate(settings: Settings, server_name: str) -> x509.Certificate:
    """The certificate the HTTPS listener presents to a client asking for `server_name`."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    assert settings.router_https_port is not None
    with socket.create_connection(("127.0.0.1", settings.router_https_port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=server_name) as wrapped:
            der = wrapped.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def leaf(issued: Issued) -> x509.Certificate:
    return x509.load_pem_x509_certificate(issued.cert.encode())


def default_certificate(settings: Settings) -> x509.Certificate:
    return x509.load_pem_x509_certificate(tls.default_certificate(settings).read_bytes())


def test_the_https_config_is_valid(settings: Settings) -> None:
    argv, env = haproxy.command(settings)
    checked = subprocess.run(
        [argv[0], "-c", "-f", argv[-1]], env=env, capture_output=True, text=True
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "WARNING" not in checked.stdout + checked.stderr
    assert tls.default_certificate(settings).stat().st_mode & 0o777 == 0o600


def test_a_certificate_is_served_for_its_name_and_the_default_one_otherwise(
    router: RuntimeAPI, settings: Settings, ca: TestCA
) -> None:
    issued = ca.issue(DOMAIN)

    changed = tls.RouterCertificates(settings, router).apply([site(issued)])

    assert changed == [f"certificate {DOMAIN}", f"redirect {DOMAIN}"]
    assert served_certificate(settings, DOMAIN) == leaf(issued)
    assert served_certificate(settings, OTHER) == default_certificate(settings)
    with https_client(settings, ca, DOMAIN) as client:
        answer = get(client, DOMAIN)
    assert answer.text == "proto=https"  # verified against the test CA, and routed
    assert "Strict-Transport-Security" not in answer.headers
    with http_client(settings, OTHER) as client:
        assert client.get("/").text == "proto=http"


def test_a_swap_under_keep_alive_https_load_fails_no_request(
    router: RuntimeAPI, settings: Settings, ca: TestCA
) -> None:
    certificates = tls.RouterCertificates(settings, router)
    certificates.apply([site(ca.issue(DOMAIN))])
    failures: list[str] = []
    answered = [0]
    stop = threading.Event()

    def load() -> None:
        with https_client(settings, ca, DOMAIN) as client:  # one keep-alive connection
            while not stop.is_set():
                try:
                    answer = get(client, DOMAIN)
                    if answer.status_code != 200:
                        failures.append(f"status {answer.status_code}")
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                answered[0] += 1

    def handshakes() -> None:  # a new connection, and a new TLS handshake, each time
        while not stop.is_set():
            try:
                with https_client(settings, ca, DOMAIN) as client:
                    get(client, DOMAIN).raise_for_status()
            except httpx.HTTPError as exc:
                failures.append(repr(exc))
            answered[0] += 1

    workers = [threading.Thread(target=load) for _ in range(3)]
    workers.append(threading.Thread(target=handshakes))
    for worker in workers:
        worker.start()
    renewed = ca.issue(DOMAIN)
    try:
        time.sleep(0.3)
        for issued in (ca.issue(DOMAIN), ca.issue(DOMAIN), renewed):
            assert certificates.apply([site(issued)]) == [f"certificate {DOMAIN}"]
            time.sleep(0.3)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=10)

    assert failures == []
    assert answered[0] > 50
    assert served_certificate(settings, DOMAIN) == leaf(renewed)
    assert certificates.apply([site(renewed)]) == []  # unchanged: not loaded again


def test_plain_http_is_redirected_where_asked_except_the_challenge_path(
    router: RuntimeAPI, settings: Settings, ca: TestCA
) -> None:
    tls.RouterCertificates(settings, router).apply(
        [site(ca.issue(DOMAIN)), site(ca.issue(OTHER), OTHER, redirect=False)]
    )

    with http_client(settings, DOMAIN.upper()) as client:
        redirected = client.get("/a/b?c=d")
        challenge = client.get("/.well-known/acme-challenge/abcdefghijklmnopqrstuvwxyz")
    with http_client(settings, OTHER) as client:
        not_redirected = client.get("/a")

    assert redirected.status_code == 308
    port = settings.router_https_port
    assert redirected.headers["Location"] == f"https://{DOMAIN}:{port}/a/b?c=d"
    # The challenge backend, with no answerer here (serve.acme_responder): never a redirect.
    assert challenge.status_code == 503
    assert not_redirected.text == "proto=http"


def test_hsts_is_sent_over_https_only_where_asked(
    router: RuntimeAPI, settings: Settings, ca: TestCA
) -> None:
    certificates = tls.RouterCertificates(settings, router)
    certificates.apply([site(ca.issue(DOMAIN), hsts=True), site(ca.issue(OTHER), OTHER)])

    with https_client(settings, ca, DOMAIN) as client:
        strict = get(client, DOMAIN)
    with https_client(settings, ca, OTHER) as client:
        lax = get(client, OTHER)
    with http_client(settings, DOMAIN) as client:
        challenge = client.get("/.well-known/acme-challenge/abcdefghijklmnopqrstuvwxyz")

    max_age = constants.ROUTER_HSTS_MAX_AGE_SECONDS
    assert strict.headers["Strict-Transport-Security"] == f"max-age={max_age}"
    assert "Strict-Transport-Security" not in lax.headers
    assert "Strict-Transport-Security" not in challenge.headers


def test_a_certificate_no_longer_served_is_removed_with_its_redirect_and_hsts(
    router: RuntimeAPI, settings: Settings, ca: TestCA
) -> None:
    certificates = tls.RouterCertificates(settings, router)
    certificates.apply([site(ca.issue(DOMAIN), hsts=True), site(ca.issue(OTHER), OTHER)])

    changed = certificates.apply([site(ca.issue(OTHER), OTHER)])

    assert changed == [
        f"certificate {OTHER}",  # a new one for OTHER: swapped
        f"redirect {DOMAIN}",
        f"hsts {DOMAIN}",
        f"certificate {DOMAIN} removed",
    ]
    assert served_certificate(settings, DOMAIN) == default_certificate(settings)
    assert tls.certificate_name(settings, DOMAIN) not in router.certificates().loaded
    assert router.routes(tls.https_map(settings)) == {OTHER: "1"}
    assert router.routes(tls.hsts_map(settings)) == {}
    with http_client(settings, DOMAIN) as client:
        assert client.get("/").text == "proto=http"


def test_a_refused_certificate_leaves_the_others_served_and_no_change_open(
    router: RuntimeAPI, settings: Settings, ca: TestCA
) -> None:
    certificates = tls.RouterCertificates(settings, router)
    good = ca.issue(DOMAIN)
    broken = Site(domain=OTHER, pem="-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n")

    changed = certificates.apply([site(good), broken])

    assert changed == [f"certificate {DOMAIN}", f"redirect {DOMAIN}"]
    assert router.certificates().pending == frozenset()
    assert served_certificate(settings, DOMAIN) == leaf(good)
    assert served_certificate(settings, OTHER) == default_certificate(settings)
    # Fixed at the next pass.
    fixed = ca.issue(OTHER)
    assert certificates.apply([site(good), site(fixed, OTHER)]) == [
        f"certificate {OTHER}",
        f"redirect {OTHER}",
    ]
    assert served_certificate(settings, OTHER) == leaf(fixed)


def test_a_restarted_haproxy_gets_every_certificate_back(settings: Settings, ca: TestCA) -> None:
    issued = ca.issue(DOMAIN)
    with started(settings) as api:
        certificates = tls.RouterCertificates(settings, api)
        certificates.apply([site(issued)])

    with started(settings) as api:  # the same config: an empty crt-list and maps
        assert served_certificate(settings, DOMAIN) == default_certificate(settings)

        assert certificates.apply([site(issued)]) == [
            f"certificate {DOMAIN}",
            f"redirect {DOMAIN}",
        ]
        assert served_certificate(settings, DOMAIN) == leaf(issued)


def test_a_chain_too_long_for_the_admin_socket_is_refused_before_it_is_sent(
    tmp_path: Path,
) -> None:
    api = RuntimeAPI(tmp_path / "no-router.sock")  # nothing is sent: no router needed
    pem = "-----BEGIN CERTIFICATE-----\n" + ("A" * 64 + "\n") * 300

    with pytest.raises(RouterError, match="leave the root certificate out"):
        api.put_certificate("/x/certs/web.example.com.pem", pem, new=True)
