"""Defaults and fixed names, one place, each with the reason for its value."""

from typing import Final

# Releases per environment whose artifacts garbage collection keeps (Heroku keeps 20).
RETENTION_RELEASES: Final = 20
# Releases per environment (the newest) whose artifacts a run host keeps unpacked besides what
# runs, so that a rollback to one of them starts without unpacking (shared/services/unpacked.py).
WARM_RELEASES: Final = 3
# An artifact not yet in any release is kept this long, so gc never races a running pipeline.
UNRELEASED_ARTIFACT_GRACE_SECONDS: Final = 3600

# The three stage queues. Each has its own worker pool so a slow build never delays a deploy.
BUILD_QUEUE: Final = "build"
RELEASE_QUEUE: Final = "release"
RUN_QUEUE: Final = "run"
QUEUES: Final = (BUILD_QUEUE, RELEASE_QUEUE, RUN_QUEUE)

# Task names: the API and the workers agree on these strings, never on Python imports.
BUILD_TASK: Final = "shipyard.stage.build"
RELEASE_TASK: Final = "shipyard.stage.release"
RUN_TASK: Final = "shipyard.stage.run"
REMOVE_ARTIFACTS_TASK: Final = "shipyard.maintenance.remove_artifacts"
RECONCILE_TASK: Final = "shipyard.maintenance.reconcile"

# Where embedded mode keeps everything when SHIPYARD_DATA_DIR is not set.
DEFAULT_DATA_DIR: Final = ".shipyard"
# What `shipyard run --stdin` may send: a file to load, not a stream (larger ones go to the
# storage). In base64 it stays within the API's cap on request bodies (MAX_BODY_BYTES).
ONE_OFF_MAX_STDIN_BYTES: Final = 3 * 1024 * 1024

# A build longer than this is killed: ten minutes covers dependency installs of real apps.
BUILD_TIMEOUT_SECONDS: Final = 600.0
# Release phase (release command) limit; migrations longer than this should be their own job.
RELEASE_TIMEOUT_SECONDS: Final = 300.0
# The run stage waits at most this long for `web` to answer (Dokku and Kamal use 30 s).
HEALTH_TIMEOUT_SECONDS: Final = 30.0
# How often the health gate polls the new process (Kamal polls every second; we are local, and
# the poll's step was most of a rollback's time at 0.1 s: see docs/benchmarks.md, serving).
HEALTH_POLL_SECONDS: Final = 0.02
# Default health-check path, as Heroku-style apps serve `/`.
HEALTH_PATH: Final = "/"
# --- Serving: the router on each run host ---------------------------------------------------

# Where each run host's router listens: http://<env>.<app>.localhost:8080 (Kamal's proxy and
# Dokku's nginx take 80; an unprivileged port needs no root).
ROUTER_PORT: Final = 8080
# Environments one router can serve: a backend each, declared at start, so no change ever
# reloads HAProxy. Raise SHIPYARD_ROUTER_SLOTS (and restart the routers) for more.
ROUTER_SLOTS: Final = 256
# The router's admin socket answers within this after HAProxy starts, or it failed to.
ROUTER_START_SECONDS: Final = 30.0
# HAProxy's connect timeout to an app: loopback answers at once or refuses; the retry goes to
# another server of the environment.
ROUTER_CONNECT_TIMEOUT_MS: Final = 2000
# HSTS's max-age for an environment that asks for it: one year, what browsers' preload lists
# require at least; an environment that turns HSTS off again is remembered by browsers this long.
ROUTER_HSTS_MAX_AGE_SECONDS: Final = 365 * 24 * 3600
# The router's own self-signed certificate, served for a host name no certificate names (as a
# TLS server must send one): regenerated at each start, valid long past any uptime.
ROUTER_DEFAULT_CERTIFICATE_DAYS: Final = 3650
# The ACME challenge answerer (serve.acme_responder): a connection HAProxy keeps open idle, or a
# request that never ends, is closed after this long.
ACME_RESPONDER_TIMEOUT_SECONDS: Final = 10.0
# The old release stops taking new requests at the switch, and is stopped once its requests
# in flight are done, or after this long (kamal-proxy's default drain timeout).
DRAIN_TIMEOUT_SECONDS: Final = 30.0
# Router lines (`router: at=info method=GET …` in `logs`) kept per environment on the broker,
# approximately (Redis trims in whole nodes): some 2.5 MB each at about 250 bytes a line.
ROUTER_LOG_MAX_LINES: Final = 10_000
# An environment's router lines are dropped this long after its last request.
ROUTER_LOG_TTL_SECONDS: Final = 7 * 24 * 3600
# Progressive delivery (shared.schemas.rollouts): the defaults of a rollout plan's analysis. The new
# release fails when its error rate (5xx, connection and response errors) is above 1 % and above
# twice the live release's over the same window, or its p95 response time above twice the live
# one's (and above a floor under which a difference is noise), once it has served at least this many
# requests in the window. Flagger's and Argo Rollouts' examples use 99 % success and 500 ms.
CANARY_MAX_ERROR_RATE: Final = 0.01
CANARY_ERROR_RATE_RATIO: Final = 2.0
CANARY_LATENCY_RATIO: Final = 2.0
CANARY_LATENCY_FLOOR_MS: Final = 50.0
CANARY_MIN_REQUESTS: Final = 20
# A canary step's length unless the plan says, and how often its figures are looked at (and a
# promote or an abort looked for): an abort takes effect within this of the figures calling for it.
CANARY_STEP_SECONDS: Final = 60.0
CANARY_ANALYSIS_SECONDS: Final = 1.0
# The most a canary's steps and its watch may take together: the run stage holds its task (and its
# environment's queue) meanwhile, under the task time limit below.
ROLLOUT_MAX_SECONDS: Final = 1200.0
# How often each router publishes its servers' counters to the broker (shared.router_stats), and
# how long a host's published counters are kept without a new publication.
ROUTER_STATS_SECONDS: Final = 0.5
ROUTER_STATS_TTL_SECONDS: Final = 3600
# After a switch, the replaced release's processes stay running out of rotation this long (each
# environment may say otherwise), so that a rollback to it is a router change with no start: Argo
# Rollouts keeps the old ReplicaSet 30 s by default; a few minutes cover a canary's watch.
STANDBY_SECONDS: Final = 300.0
# Most processes of one type an environment may run on a host (`ps:scale web=N`).
MAX_PROCESSES_PER_TYPE: Final = 100
# Between SIGTERM and SIGKILL when an app's process is stopped (Heroku gives 30 s).
APP_STOP_GRACE_SECONDS: Final = 30.0

# Grace period between SIGTERM and SIGKILL when `shipyard up` stops its own processes (pools,
# beat, API, router) and the apps at its own exit.
STOP_GRACE_SECONDS: Final = 10.0
# How long a stopping API waits for open responses: long-lived streams (a pipeline page's live
# events, `logs --tail`) are cut after it, and clients reconnect to the next API process.
API_SHUTDOWN_GRACE_SECONDS: Final = 5

# Build logs beyond this size keep their head and tail only, so a chatty build cannot fill the DB.
BUILD_LOG_LIMIT_BYTES: Final = 1_000_000
# Most lines of app output one `logs` request returns before it follows (Heroku's limit is 1500).
LOG_LINES_MAX: Final = 10_000
# Lines of process output shown in a failed run stage: enough to act on, short enough to read.
OUTPUT_TAIL_LINES: Final = 20

# A running stage refreshes its heartbeat this often ...
HEARTBEAT_SECONDS: Final = 5.0
# ... and is presumed dead (its worker killed) when the heartbeat is older than this.
STALE_AFTER_SECONDS: Final = 45.0
# How often the beat runs the reconciler.
RECONCILE_SECONDS: Final = 10.0
# A stage queued this long without being claimed is published again (a lost message);
# duplicates are harmless, so this only trades a little work for recovery time.
QUEUED_REDELIVER_SECONDS: Final = 120.0

# A stage whose workers died under it this many times is failed instead of taken over again.
MAX_STAGE_ATTEMPTS: Final = 5
# git's own limit per command (fetch, archive) in the build stage.
GIT_TIMEOUT_SECONDS: Final = 300.0
# Hard task time limit: above the longest stage (git fetch and archive at their limits, then a
# build at its limit, plus packing and storing).
TASK_TIME_LIMIT_SECONDS: Final = int(2 * GIT_TIMEOUT_SECONDS + BUILD_TIMEOUT_SECONDS) + 300
# Redis redelivers an unacked message after this; it must exceed the task time limit, or a long
# stage would be delivered twice while it still runs (celery#7651).
VISIBILITY_TIMEOUT_SECONDS: Final = TASK_TIME_LIMIT_SECONDS + 600
# Longest unix socket path Linux accepts (sun_path is 108 bytes with its terminating NUL).
UNIX_SOCKET_PATH_MAX: Final = 107
# `shipyard up` waits this long for its broker to answer PING before it gives up (the server
# itself starts in milliseconds; replaying a large append-only file takes longer).
BROKER_START_SECONDS: Final = 60.0

# Request bodies above this are refused with 413 (config of a whole app fits well within it;
# GitHub's webhook payloads are capped at 25 MB but pushes are far smaller, see the hooks docs).
MAX_BODY_BYTES: Final = 5 * 1024 * 1024

# Names of apps and environments: DNS labels, so they are safe in paths, URLs and labels.
# A run host's name (SHIPYARD_HOST_NAME): a host name, also a queue-name suffix (run.<name>).
HOST_NAME_PATTERN: Final = r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,62})$"
NAME_PATTERN: Final = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
# Config keys: what a POSIX shell accepts as a variable name.
CONFIG_KEY_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
# Persistent storage: the variable that tells an app where its environment's storage is (a
# directory that survives releases and rollbacks), and where it is mounted in a container.
STORAGE_VARIABLE: Final = "SHIPYARD_STORAGE_DIR"
CONTAINER_STORAGE_PATH: Final = "/storage"
# Config keys the platform sets itself; an app may not override them.
# The release a process belongs to (as Heroku's dyno metadata), set by the runners.
RELEASE_VARIABLE: Final = "SHIPYARD_RELEASE_VERSION"
RESERVED_CONFIG_KEYS: Final = frozenset({"PORT", STORAGE_VARIABLE, RELEASE_VARIABLE})
# Shown instead of a secret value, everywhere.
REDACTED: Final = "<redacted>"

# What Shipyard's servers create is their user's alone: the store and its WAL, logs, keys,
# artifacts. Set at each server's entry point and inherited by its children, apps included.
PRIVATE_UMASK: Final = 0o077
# The data dir's mode, made or tightened at every server's start (older installs made it 0755).
DATA_DIR_MODE: Final = 0o700
# The embedded store in the data dir (SQLite), unless SHIPYARD_DATABASE_URL names another.
STORE_FILE: Final = "shipyard.db"
# The SQLite store's files, tightened at start like the data dir (SQLite gives the WAL and the
# shared-memory file the store's own mode).
STORE_FILE_MODE: Final = 0o600

# The app manifest and process file looked up at the root of the app's directory.
MANIFEST_FILE: Final = "shipyard.toml"
PROCFILE: Final = "Procfile"
# The Procfile entry run once per release, before the run stage (Heroku's release phase).
RELEASE_PROCESS: Final = "release"
# The process label of a one-off command's container (`shipyard run`).
ONE_OFF_PROCESS: Final = "run"
# Release-phase output kept on the stage run: the end is what explains a failure.
RELEASE_OUTPUT_LIMIT_BYTES: Final = 64_000

# --- Triggers: incoming webhooks, scheduled promotions, outgoing notifications ---------------

# Outgoing notifications (and the schedule tick) have a queue and pool of their own, apart from
# the three stage pools, so a slow receiver never takes a worker a deploy is waiting for.
NOTIFY_QUEUE: Final = "notify"
# Every queue a worker pool can consume: the three stages' and the notifications'.
ALL_QUEUES: Final = (*QUEUES, NOTIFY_QUEUE)
NOTIFY_TASK: Final = "shipyard.notify.deliver"
SCHEDULE_TICK_TASK: Final = "shipyard.schedules.tick"
# The beat's check of the run hosts: a host down this long is lost, and its environments run
# elsewhere (shared/services/hosts.py). Its run pool's heartbeat lapses within 15 s before that.
HOSTS_TICK_TASK: Final = "shipyard.hosts.tick"
HOST_LOST_SECONDS: Final = 30.0
# How often the beat asks for due schedules: cron has minute resolution, so twice a minute.
SCHEDULE_TICK_SECONDS: Final = 30.0
# Notification retries wait 2, 4, 8 … seconds (doubling), never more than the cap, which stays
# far below the Redis visibility timeout so a waiting retry is never delivered twice.
NOTIFY_BACKOFF_SECONDS: Final = 2.0
NOTIFY_BACKOFF_MAX_SECONDS: Final = 600.0
# Eight attempts span about four minutes at the default backoff: a receiver restart fits.
NOTIFY_MAX_ATTEMPTS: Final = 8
# A receiver gets this long to answer one attempt (GitHub gives webhook receivers 10 s).
NOTIFY_TIMEOUT_SECONDS: Final = 10.0
# The header that carries `sha256=<hex>` HMAC of the raw body, in and out (GitHub's format).
SIGNATURE_HEADER: Final = "X-Shipyard-Signature-256"
# Generated webhook and subscription secrets: 32 random bytes, URL-safe.
TRIGGER_SECRET_BYTES: Final = 32

# --- HTTPS: certificates for environments' domains (shared/services/certificates.py) ---------

# The ACME CA (RFC 8555) that issues them: Let's Encrypt. Its staging directory issues untrusted
# certificates under far higher rate limits: try a set-up there first (docs/operations.md).
ACME_DIRECTORY_URL: Final = "https://acme-v02.api.letsencrypt.org/directory"
ACME_STAGING_DIRECTORY_URL: Final = "https://acme-staging-v02.api.letsencrypt.org/directory"
# A certificate is renewed this long before it expires: Let's Encrypt's last 90 days, and
# certbot renews them 30 days ahead too, which leaves weeks of retries for a CA that is down.
ACME_RENEW_DAYS: Final = 30
# How often the beat looks for certificates due (a new domain is ordered at once: the API sends
# the same task when one is added or a renewal is forced).
ACME_CHECK_SECONDS: Final = 60.0
CERTIFICATES_TASK: Final = "shipyard.certificates.order"
# A failed order is tried again after 1 min, doubling up to 6 h: quick after a DNS fix, and far
# below Let's Encrypt's limit of 5 failed validations per host name and hour.
ACME_BACKOFF_SECONDS: Final = 60.0
ACME_BACKOFF_MAX_SECONDS: Final = 6 * 3600.0
# One order's validation and issuance are polled this long at most (the acme library's own
# default); each HTTP request to the CA gets its own timeout.
ACME_ORDER_TIMEOUT_SECONDS: Final = 90.0
ACME_HTTP_TIMEOUT_SECONDS: Final = 10
# How long one run of the ordering task goes on claiming orders (each may take up to the order
# timeout and a few requests more): the notify pool's other work waits behind it.
ACME_TASK_BUDGET_SECONDS: Final = 120.0
# A worker's claim on a domain's order: far longer than an order can take, so a claim older than
# this is a dead worker's and another may order.
ACME_ORDER_LEASE_SECONDS: Final = 600.0
# An uploaded certificate chain (or key): a long chain of 4096-bit certificates is ~10 KB.
CERTIFICATE_MAX_PEM_CHARS: Final = 64 * 1024
# What a router can load at once, chain and key together: one command to HAProxy's admin socket
# (router.runtime.COMMAND_MAX_BYTES, its 16 KB buffer less some room).
CERTIFICATE_MAX_SERVED_CHARS: Final = 15_000
