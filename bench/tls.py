"""12. HTTPS: what TLS on the router costs.

The stack's router is started for this scenario with an HTTPS port (`SHIPYARD_ROUTER_HTTPS_PORT`),
and an environment with a domain gets an uploaded certificate (ECDSA P-256, self-signed, made by
the harness: the CA does not matter to what is measured). Each repetition, without other load:

- latency: `GET /` on one keep-alive connection each straight to the web process, through the
  router over HTTP, and through the router over HTTPS (SNI = the domain), in turn; the router's
  added latency over HTTPS is the HTTPS path less the direct one (target < 1 ms at p50), beside
  the same over HTTP;
- handshakes: two client threads (one per core) each open a new TLS connection (a full
  handshake, no session resumption), `GET /`, and close it, for a fixed time; the count per
  second of wall time, and per second of CPU that HAProxy spent meanwhile (its `user + system`
  time, psutil), which is the figure per core.
"""

from __future__ import annotations

import datetime as dt
import http.client
import ssl
import threading
import time

import httpx
import psutil
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench.context import Bench
from bench.serving import ServedCommits, router_running
from bench.stable_url import StableURL, TimedGet
from bench.stack import Stack, free_port
from bench.stats import percentile

SCENARIO = "12. HTTPS"
APP = "secured"
ENV = "production"
DOMAIN = "secured.bench.test"
ROUTER = "router-https"
WARM_UP = 50
HANDSHAKE_CLIENTS = 2
SERVED_SECONDS = 60.0  # a router loads a new certificate within 5 s (its sync)


def self_signed(domain: str) -> tuple[str, str]:
    """A certificate for `domain` and its key, both PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def _client_context() -> ssl.SSLContext:
    # The harness's own self-signed certificate: not verified (the CA is not what is measured).
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class _SNIConnection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 with the domain as SNI (http.client would send none for an IP)."""

    def __init__(self, port: int, context: ssl.SSLContext) -> None:
        super().__init__("127.0.0.1", port, timeout=10, context=context)

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(  # type: ignore[attr-defined]
            self.sock, server_hostname=DOMAIN
        )


class TimedHttpsGet(TimedGet):
    """TimedGet over one keep-alive HTTPS connection to the router."""

    def __init__(self, port: int) -> None:
        self._connection = _SNIConnection(port, _client_context())
        self._headers = {"Host": DOMAIN}


def _wait_served(https_port: int) -> None:
    """Until the router answers 200 over HTTPS for DOMAIN with the uploaded certificate."""
    deadline = time.monotonic() + SERVED_SECONDS
    while True:
        try:
            connection = _SNIConnection(https_port, _client_context())
            connection.request("GET", "/", headers={"Host": DOMAIN})
            response = connection.getresponse()
            response.read()
            peer = connection.sock.getpeercert(binary_form=True)
            connection.close()
            subject = x509.load_der_x509_certificate(peer or b"").subject
            names = [a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
            if response.status == 200 and names == [DOMAIN]:
                return
        except (OSError, ValueError, http.client.HTTPException):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the router did not serve {DOMAIN} over HTTPS within 60 s")
        time.sleep(0.1)


def _haproxy(stack: Stack) -> psutil.Process:
    router = psutil.Process(stack.processes[ROUTER].pid)
    found = [p for p in router.children(recursive=True) if p.name() == "haproxy"]
    if not found:
        raise RuntimeError("the router's HAProxy process was not found")
    return found[0]


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def latency(
    stack: Stack, target: StableURL, https_port: int, requests: int
) -> tuple[list[float], list[float], list[float]]:
    """Wall times of `GET /` direct, through the router over HTTP, and over HTTPS, in turn."""
    current = stack.api("GET", f"/v1/apps/{APP}/environments/{ENV}/current", 200)
    web_url = next(p["url"] for p in current["processes"] if p["type"] == "web")
    paths = [
        TimedGet(int(httpx.URL(web_url).port or 80)),
        TimedGet(target.port, target.host_header),
        TimedHttpsGet(https_port),
    ]
    times: list[list[float]] = [[], [], []]
    try:
        for _ in range(WARM_UP):
            for get in paths:
                get()
        for number in range(requests):
            order = [(number + shift) % 3 for shift in range(3)]  # each goes first in turn
            for index in order:
                times[index].append(paths[index]())
    finally:
        for get in paths:
            get.close()
    return times[0], times[1], times[2]


def handshakes(https_port: int, seconds: float, haproxy: psutil.Process) -> tuple[int, float]:
    """Full handshakes (new connection, GET, close) by HANDSHAKE_CLIENTS threads for `seconds`:
    how many, and the CPU seconds HAProxy spent meanwhile."""
    counts = [0] * HANDSHAKE_CLIENTS
    errors: list[str] = []
    stop = threading.Event()

    def client(index: int) -> None:
        context = _client_context()
        while not stop.is_set():
            try:
                connection = _SNIConnection(https_port, context)
                connection.request("GET", "/", headers={"Host": DOMAIN, "Connection": "close"})
                response = connection.getresponse()
                response.read()
                connection.close()
                if response.status != 200:
                    raise RuntimeError(f"answered {response.status}")
                counts[index] += 1
            except (OSError, RuntimeError, http.client.HTTPException) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                return

    before = _cpu(haproxy)
    threads = [threading.Thread(target=client, args=(i,)) for i in range(HANDSHAKE_CLIENTS)]
    for thread in threads:
        thread.start()
    time.sleep(seconds)  # the measurement's fixed window (not a wait for a condition)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    spent = _cpu(haproxy) - before
    if errors:
        raise RuntimeError(f"TLS handshakes failed: {errors[:3]}")
    return sum(counts), spent


def run(bench: Bench) -> None:
    stack, plan, figures = bench.stack, bench.plan, bench.figures
    commits = ServedCommits(stack.root / "tls-repo", 2)
    stack.api("POST", "/v1/apps", 201, json={"name": APP, "repo": str(commits.repo)})
    bench.create_environments(APP, [ENV], runner="local", health_timeout=20, domains=[DOMAIN])
    cert, key = self_signed(DOMAIN)
    path = f"/v1/apps/{APP}/environments/{ENV}"
    stack.api("POST", f"{path}/certs", 201, json={"cert": cert, "key": key})
    stack.wait_pipeline(stack.start_pipeline(APP, ENV, commits.next()[0]), poll=0.01)
    target = StableURL(stack.api("GET", f"{path}/current", 200)["url"])
    https_port = free_port()
    with router_running(stack, ROUTER, {"SHIPYARD_ROUTER_HTTPS_PORT": str(https_port)}):
        _wait_served(https_port)
        haproxy = _haproxy(stack)
        for _ in range(plan.repetitions):
            direct, plain, secure = latency(stack, target, https_port, plan.tls_latency_requests)
            for q in (50, 99):
                value = percentile
                figures.add(
                    SCENARIO,
                    f"GET straight to the web process, p{q}",
                    "ms",
                    value(direct, q) * 1000,
                )
                figures.add(
                    SCENARIO,
                    f"GET through the router over HTTP, p{q}",
                    "ms",
                    value(plain, q) * 1000,
                )
                figures.add(
                    SCENARIO,
                    f"GET through the router over HTTPS, p{q}",
                    "ms",
                    value(secure, q) * 1000,
                )
                figures.add(
                    SCENARIO,
                    f"router's added latency over HTTPS (HTTPS less direct), p{q}",
                    "ms",
                    (value(secure, q) - value(direct, q)) * 1000,
                    target="< 1 ms" if q == 50 else "",
                    check=("<=", 1.0) if q == 50 else None,
                )
                figures.add(
                    SCENARIO,
                    f"router's added latency over HTTP (HTTP less direct), p{q}",
                    "ms",
                    (value(plain, q) - value(direct, q)) * 1000,
                )
            count, spent = handshakes(https_port, plan.tls_handshake_seconds, haproxy)
            figures.add(
                SCENARIO,
                f"full TLS handshakes + GET, {HANDSHAKE_CLIENTS} clients, per second",
                "1/s",
                count / plan.tls_handshake_seconds,
            )
            figures.add(
                SCENARIO,
                "full TLS handshakes per CPU-second of HAProxy (per core)",
                "1/s",
                count / spent if spent > 0 else 0.0,
            )
