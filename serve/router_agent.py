"""`shipyard router`: this run host's router. HAProxy as a supervised child, its routes and
servers brought back from the store at every start (the SQL record is the truth), and the
supervision of the apps this host runs (serve.apps): a process that exits is started again.

Embedded mode runs it as a child of `shipyard up`; distributed mode runs one per run host,
beside the run pool (compose.yaml does).
"""

from __future__ import annotations

import signal
import threading
import uuid

import redis
import structlog
from redis.backoff import NoBackoff
from redis.retry import Retry

from shipyard.router import haproxy
from shipyard.router.runtime import RouterError, RuntimeAPI
from shipyard.router.traffic import Route, Traffic, web_servers
from shipyard.serve.apps import AppSupervisor
from shipyard.serve.router_log_reader import RouterLogReader
from shipyard.serve.supervisor import ChildSpec, Supervisor, hold_exclusive
from shipyard.shared import constants, processes
from shipyard.shared.broker import make_celery
from shipyard.shared.db import session_scope
from shipyard.shared.services import routes
from shipyard.shared.settings import Settings
from shipyard.workers.context import WorkerContext

log = structlog.get_logger(__name__)

HAPROXY = "haproxy"
# HAProxy is looked at every 0.2 s; the apps every 5th pass (a second): each look reads the
# store, which on SQLite takes its write lock for a moment.
CHECK_SECONDS = 0.2
APPS_EVERY = 5
# Host names no environment answers to any more (its app destroyed) are looked for every 5 s.
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
        try:
            requests.start()  # before HAProxy: its first requests are logged too
            supervisor.start()
            restored = restore(settings)
            log.info("router.ready", port=settings.router_port, servers=restored)
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
                    if passes % APPS_EVERY == 0:
                        apps.check()
                    if passes % ROUTES_EVERY == 0:
                        forget_routes(settings)
                except Exception as exc:  # the store or an app in trouble: HAProxy serves on
                    log.error("router.pass_failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            supervisor.stop()
            requests.stop()
    finally:
        lock.release()


def request_log_reader(settings: Settings) -> RouterLogReader:
    """The reader of HAProxy's request lines (the `router:` lines of `logs`), its socket bound."""
    reader = RouterLogReader(
        path=settings.router_log_socket,
        # One quick try (and one again on a fresh connection): lines wait for no broker.
        client=redis.Redis.from_url(
            settings.redis_url,
            socket_timeout=2,
            socket_connect_timeout=2,
            retry=Retry(NoBackoff(), 1),
        ),
        namespace=settings.broker_namespace,
        load_slots=lambda: environment_slots(settings),
    )
    reader.bind()
    return reader


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


def forget_routes(settings: Settings) -> list[str]:
    """Take out of the router each host name that no environment answers to any more (its app
    was destroyed, a domain removed), or that points to another backend than its environment's
    (a destroyed environment's slot, given to another since): the names taken out."""
    api = RuntimeAPI(settings.router_socket)
    # The router's names first: one added after this look is of an environment that the store,
    # read next, already holds (an environment is created, with its slot, before it is routed).
    present = api.routes(settings.router_map)
    with session_scope(settings.sqlalchemy_url) as session:
        known = {
            host: haproxy.backend_name(route.slot)
            for route in routes.environment_routes(session=session)
            for host in route.hosts
        }
    gone = sorted(host for host, backend in present.items() if known.get(host) != backend)
    for host in gone:
        api.remove_route(settings.router_map, host)
        log.info("router.route_forgotten", host=host)
    return gone
