"""`shipyard router`: this run host's router. HAProxy as a supervised child, its routes and
servers brought back from the store at every start (the SQL record is the truth), and the
supervision of the apps this host runs (serve.apps): a process that exits is started again. Its
threads log each request (serve.router_log_reader), answer ACME challenges
(serve.acme_responder) and publish each server's counters for canaries' analyses
(serve.router_stats_publisher).

Embedded mode runs it as a child of `shipyard up`; distributed mode runs one per run host,
beside the run pool (compose.yaml does).
"""

from __future__ import annotations

import signal
import threading
import uuid
from collections.abc import Callable

import redis
import structlog
from redis.backoff import NoBackoff
from redis.retry import Retry

from shipyard.router import haproxy, tls
from shipyard.router.runtime import RouterError, RuntimeAPI
from shipyard.router.traffic import Route, Traffic, web_servers
from shipyard.serve.acme_responder import AcmeResponder
from shipyard.serve.apps import AppSupervisor
from shipyard.serve.router_log_reader import RouterLogReader
from shipyard.serve.router_stats_publisher import StatsPublisher
from shipyard.serve.supervisor import ChildSpec, Supervisor, hold_exclusive
from shipyard.shared import constants, processes
from shipyard.shared.broker import make_celery
from shipyard.shared.db import session_scope
from shipyard.shared.services import certificates, routes
from shipyard.shared.settings import Settings
from shipyard.workers.context import WorkerContext

log = structlog.get_logger(__name__)

HAPROXY = "haproxy"
# HAProxy is looked at every 0.2 s; the apps every 5th pass (a second): each look reads the
# store, which on SQLite takes its write lock for a moment.
CHECK_SECONDS = 0.2
APPS_EVERY = 5
# Host names and servers that nothing in the store has any more (its app destroyed) are
# looked for every 5 s.
ROUTES_EVERY = 25


def run(settings: Settings) -> None:
    """Start HAProxy, restore every route and live server, keep it running until SIGTERM."""
    settings.router_dir.mkdir(parents=True, exist_ok=True)
    lock = hold_exclusive(
        settings.router_dir / "router.lock",
        f"another router is running on {settings.router_dir}; stop it first",
    )
    try:
        argv, env = haproxy.command(settings)
        spec = ChildSpec(
            name=HAPROXY,
            argv=argv,
            env=env,  # scrubbed: the admin socket's `show env` must not hold a secret
            log_path=settings.data_dir / "logs" / "haproxy.log",
            ready=lambda process: haproxy.wait_until_ready(settings, process),
        )
        supervisor = Supervisor([spec], state_file=settings.router_dir / "children.json")
        supervisor.stop_leftovers(grace=constants.STOP_GRACE_SECONDS)
        stopping = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stopping.set())
        requests = request_log_reader(settings)
        challenges = acme_responder(settings)
        publisher = stats_publisher(settings, requests)
        loaded = tls.RouterCertificates(settings)
        try:
            requests.start()  # before HAProxy: its first requests are logged too
            challenges.start()
            supervisor.start()
            restored = restore(settings)
            catch_up(settings, loaded)
            publisher.start()
            log.info(
                "router.ready",
                port=settings.router_port,
                https_port=settings.router_https_port,
                servers=restored,
            )
            child = supervisor.children[HAPROXY]
            apps = AppSupervisor(WorkerContext.create(settings, make_celery(settings, "router")))
            passes = 0
            while not stopping.wait(CHECK_SECONDS):
                passes += 1
                try:
                    restarts = child.restarts
                    supervisor.check()
                    if child.restarts != restarts and child.running:
                        restore(settings)  # a restarted HAProxy starts from its empty config
                        catch_up(settings, loaded)
                    if passes % APPS_EVERY == 0:
                        apps.check()
                    if passes % ROUTES_EVERY == 0:
                        catch_up(settings, loaded)
                        sync_routes(settings)
                except Exception as exc:  # the store or an app in trouble: HAProxy serves on
                    log.error("router.pass_failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            publisher.stop()
            supervisor.stop()
            challenges.stop()
            requests.stop()
    finally:
        lock.release()


def _quick_broker(settings: Settings) -> redis.Redis:
    """The broker for what waits for no one: one quick try, and one again on a fresh
    connection."""
    return redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=2,
        socket_connect_timeout=2,
        retry=Retry(NoBackoff(), 1),
    )


def request_log_reader(settings: Settings) -> RouterLogReader:
    """The reader of HAProxy's request lines (the `router:` lines of `logs`), its socket bound."""
    reader = RouterLogReader(
        path=settings.router_log_socket,
        client=_quick_broker(settings),  # lines wait for no broker
        namespace=settings.broker_namespace,
        load_slots=lambda: environment_slots(settings),
    )
    reader.bind()
    return reader


def stats_publisher(settings: Settings, requests: RouterLogReader) -> StatsPublisher:
    """The publisher of this host's per-server counters (a canary's analysis reads them), with
    the response times `requests` takes, not yet started."""
    return StatsPublisher(
        api=RuntimeAPI(settings.router_socket),
        response_times=requests.response_times,
        client=_quick_broker(settings),  # a publication missed: the next one says it all
        namespace=settings.broker_namespace,
        host=settings.host_name,
    )


def environment_slots(settings: Settings) -> dict[int, uuid.UUID]:
    """Router slot → the environment that has it, from the store."""
    with session_scope(settings.sqlalchemy_url) as session:
        return routes.environment_slots(session=session)


def restore(settings: Settings) -> int:
    """Put every environment's host names, and the live web processes of this host that still
    run, into the router; the number of processes served."""
    api = RuntimeAPI(settings.router_socket)
    this_host = settings.host_name
    served = 0
    with session_scope(settings.sqlalchemy_url) as session:
        known = routes.environment_routes(session=session)
    for route in known:
        running = [
            process
            for process in web_servers(route.live_processes)
            if process.get("host", this_host) == this_host
            # Dead with the host or `up`: the apps' supervision starts it again.
            and ("pid" not in process or processes.is_alive(process["pid"], process.get("started")))
        ]
        traffic = Traffic(
            api,
            settings.router_map,
            Route(haproxy.backend_name(route.slot), route.hosts, route.drain_timeout),
        )
        try:
            traffic.serve(running)
            served += len(running)
        except RouterError as exc:
            log.warning("router.restore_failed", slot=route.slot, error=exc.message)
    return served


def sync_routes(settings: Settings) -> list[str]:
    """Make the router's host names and servers what the store says, taking out only: a host
    name no environment answers to any more (its app destroyed, a domain removed) is deleted,
    one pointing to another backend than its environment's (a destroyed environment's slot,
    given to another since) is pointed back; a server that no starting (a canary's), live or
    draining deployment of the slot's environment has (a destroyed app's, a failed switch's)
    is removed. Returns what was changed, e.g. `route web.example.com` or
    `server env_0003/3fa85f64-web-1-p8001`."""
    api = RuntimeAPI(settings.router_socket)
    # The router first, the store next: whatever a switch adds to the router it has recorded in
    # the store before (an environment and its slot exist before they are routed; a deployment
    # is live, or a canary's starting one holds its processes, before its servers are added), so
    # nothing added meanwhile is taken for a leftover.
    present_routes = api.routes(settings.router_map)
    present_servers = api.all_servers()
    with session_scope(settings.sqlalchemy_url) as session:
        known = {
            host: haproxy.backend_name(route.slot)
            for route in routes.environment_routes(session=session)
            for host in route.hosts
        }
        allowed = {
            haproxy.backend_name(slot): names
            for slot, names in routes.routed_servers(session=session).items()
        }
    changed = []
    for host, backend in sorted(present_routes.items()):
        if known.get(host) == backend:
            continue
        if host in known:
            api.set_route(settings.router_map, host, known[host])
        else:
            api.remove_route(settings.router_map, host)
        changed.append(f"route {host}")
    for backend, servers in sorted(present_servers.items()):
        if not backend.startswith(haproxy.SLOT_PREFIX):
            continue
        for name in sorted(set(servers) - allowed.get(backend, set())):
            api.remove_server(backend, name)
            changed.append(f"server {backend}/{name}")
    if changed:
        log.info("router.synced", changed=changed)
    return changed


def acme_responder(settings: Settings) -> AcmeResponder:
    """The answerer of ACME challenges (HAProxy's `acme_challenge` backend), not yet started."""
    return AcmeResponder(
        path=settings.router_acme_socket,
        client=_quick_broker(settings),  # a CA retries a validation it could not make
        namespace=settings.broker_namespace,
    )


def catch_up(settings: Settings, loaded: tls.RouterCertificates) -> None:
    """Bring into the router what the store has and it lacks: host names (a domain added to an
    environment since), then the certificates to serve. A step that fails is logged and made
    again at the next pass; HAProxy serves on."""
    steps: dict[str, Callable[[], object]] = {
        "routes": lambda: add_missing_routes(settings),
        "certificates": lambda: sync_tls(settings, loaded),
    }
    for name, step in steps.items():
        try:
            step()
        except Exception as exc:
            log.error("router.catch_up_failed", step=name, error=f"{type(exc).__name__}: {exc}")


def add_missing_routes(settings: Settings) -> list[str]:
    """Point each host name of an environment that the router lacks (a domain added to a live
    environment, routed with no deploy) at its backend: the names added. The counterpart of
    sync_routes, which takes out or points back the names the router has."""
    api = RuntimeAPI(settings.router_socket)
    present = api.routes(settings.router_map)
    with session_scope(settings.sqlalchemy_url) as session:
        known = routes.environment_routes(session=session)
    added = []
    for route in known:
        for host in route.hosts:
            if host not in present:
                api.set_route(settings.router_map, host, haproxy.backend_name(route.slot))
                added.append(host)
    if added:
        log.info("router.routes_added", hosts=added)
    return added


def sync_tls(settings: Settings, loaded: tls.RouterCertificates) -> list[str]:
    """Make the router serve the certificates the store serves (new and renewed ones loaded, the
    others removed) and redirect or send HSTS for their domains as their environments ask: what
    changed. Nothing without an HTTPS port (SHIPYARD_ROUTER_HTTPS_PORT)."""
    if settings.router_https_port is None:
        return []
    return loaded.apply(served_certificates(settings))


def served_certificates(settings: Settings) -> list[certificates.ServedCertificate]:
    """Every certificate the routers serve, keys decrypted, from the store."""
    with session_scope(settings.sqlalchemy_url) as session:
        return certificates.served(session=session, box=settings.secret_box())
