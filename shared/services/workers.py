"""Worker liveness: which worker processes consume each queue right now.

Each worker's main process keeps one key per queue it consumes in the broker's Redis,
`{namespace}:worker:{queue}:{hostname}`, with a short time to live that a daemon thread keeps
refreshing. A worker that stops cleanly deletes its keys; one that is killed (even by SIGKILL)
drops out when they expire. So "no key for a queue" means nothing will take its messages.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Final

import redis
import structlog

from shipyard.shared import constants
from shipyard.shared.exceptions import ServiceUnavailable
from shipyard.shared.schemas import WorkerPoolPublic

log = structlog.get_logger(__name__)

# A worker refreshes its keys this often ...
HEARTBEAT_SECONDS: Final = 5.0
# ... and counts as gone once they are this old: two missed refreshes are forgiven (a busy
# machine), a dead worker is noticed within a quarter of a minute.
HEARTBEAT_TTL_SECONDS: Final = 15
# How long stopping waits for the heartbeat thread (it only ever waits on Redis, briefly).
_STOP_JOIN_SECONDS: Final = 5.0

LiveWorkers = dict[str, list[str]]  # queue → hostnames of the workers consuming it
WorkersProbe = Callable[[], LiveWorkers]


def heartbeat_key(*, namespace: str, queue: str, hostname: str) -> str:
    """The key that says `hostname` consumes `queue`."""
    return f"{namespace}:worker:{queue}:{hostname}"


def record_heartbeat(
    *,
    redis_client: redis.Redis,
    namespace: str,
    queues: Iterable[str],
    hostname: str,
    ttl: int = HEARTBEAT_TTL_SECONDS,
) -> None:
    """Say that `hostname` consumes `queues`, for the next `ttl` seconds."""
    now = str(int(time.time()))  # when it was last seen, for whoever reads the key by hand
    pipe = redis_client.pipeline(transaction=False)
    for queue in queues:
        pipe.set(heartbeat_key(namespace=namespace, queue=queue, hostname=hostname), now, ex=ttl)
    pipe.execute()


def forget_worker(
    *, redis_client: redis.Redis, namespace: str, queues: Iterable[str], hostname: str
) -> None:
    """Remove `hostname`'s keys at once (a clean shutdown), rather than when they expire."""
    keys = [heartbeat_key(namespace=namespace, queue=q, hostname=hostname) for q in queues]
    if keys:
        redis_client.delete(*keys)


def live_workers(*, redis_client: redis.Redis, namespace: str) -> LiveWorkers:
    """Each queue that has live workers, with their hostnames, sorted (SCAN, never KEYS)."""
    prefix = f"{namespace}:worker:"
    found: dict[str, set[str]] = {}
    for raw in redis_client.scan_iter(match=_glob_escape(prefix) + "*", count=500):
        key = raw.decode() if isinstance(raw, bytes) else str(raw)
        # Queue names have no ':'; a hostname might, so only the first one separates them.
        queue, sep, hostname = key.removeprefix(prefix).partition(":")
        if sep and hostname:
            found.setdefault(queue, set()).add(hostname)
    return {queue: sorted(hostnames) for queue, hostnames in found.items()}


def heartbeat_ages(
    *, redis_client: redis.Redis, namespace: str, now: float | None = None
) -> dict[tuple[str, str], float]:
    """Seconds since each live worker last refreshed its key, by (queue, hostname)."""
    prefix = f"{namespace}:worker:"
    keys = [
        raw.decode() if isinstance(raw, bytes) else str(raw)
        for raw in redis_client.scan_iter(match=_glob_escape(prefix) + "*", count=500)
    ]
    if not keys:
        return {}
    seen_at = redis_client.mget(keys)
    now = time.time() if now is None else now
    ages: dict[tuple[str, str], float] = {}
    for key, value in zip(keys, seen_at, strict=True):
        queue, sep, hostname = key.removeprefix(prefix).partition(":")
        if not (sep and hostname) or value is None:
            continue  # expired between SCAN and MGET: that worker is gone
        ages[(queue, hostname)] = max(0.0, now - float(value))
    return ages


def no_workers() -> LiveWorkers:
    """The probe of an installation without a broker (the API's tests): nobody consumes."""
    return {}


def worker_pools(
    *, probe: WorkersProbe, queues: Iterable[str] | None = constants.ALL_QUEUES
) -> list[WorkerPoolPublic]:
    """Every queue of `queues`, with the workers consuming it now (none: an empty list); with
    `queues` None, every queue that has live workers (the run hosts' own queues too)."""
    try:
        live = probe()
    except redis.RedisError as exc:
        raise ServiceUnavailable(
            f"cannot ask the broker which workers are alive ({type(exc).__name__}); "
            "try again shortly"
        ) from exc
    names = sorted(live) if queues is None else queues
    return [WorkerPoolPublic(queue=q, workers=live.get(q, [])) for q in names]


class Heartbeat:
    """A worker's liveness keys, kept fresh by a daemon thread from `start` until `stop`."""

    def __init__(
        self,
        *,
        redis_client: redis.Redis,
        namespace: str,
        queues: Iterable[str],
        hostname: str,
        interval: float = HEARTBEAT_SECONDS,
        ttl: int = HEARTBEAT_TTL_SECONDS,
    ) -> None:
        self.redis_client = redis_client
        self.namespace = namespace
        self.queues = sorted(set(queues))
        self.hostname = hostname
        self.interval = interval
        self.ttl = ttl
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"shipyard-heartbeat-{hostname}", daemon=True
        )

    def start(self) -> None:
        """Start refreshing the keys in the background."""
        self._thread.start()
        log.info("worker.heartbeat_started", hostname=self.hostname, queues=self.queues)

    def stop(self) -> None:
        """Stop refreshing and remove the keys; a broker that is away only delays their expiry."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(_STOP_JOIN_SECONDS)
        try:
            forget_worker(
                redis_client=self.redis_client,
                namespace=self.namespace,
                queues=self.queues,
                hostname=self.hostname,
            )
        except redis.RedisError as exc:
            log.warning("worker.heartbeat_not_removed", hostname=self.hostname, error=str(exc))
        finally:
            self.redis_client.close()

    def _beat(self) -> None:
        while not self._stopping.is_set():
            try:
                record_heartbeat(
                    redis_client=self.redis_client,
                    namespace=self.namespace,
                    queues=self.queues,
                    hostname=self.hostname,
                    ttl=self.ttl,
                )
            except redis.RedisError as exc:
                # The broker is away: the keys expire and the CLI says nobody consumes, which
                # is true until it is back; the next refresh announces the worker again.
                log.warning("worker.heartbeat_failed", hostname=self.hostname, error=str(exc))
            self._stopping.wait(self.interval)


def _glob_escape(text: str) -> str:
    """`text` matched literally by a Redis MATCH pattern."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)
