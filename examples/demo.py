"""`make demo`: embedded Shipyard end to end, through the CLI, in a throw-away data dir.

Starts `shipyard up`, deploys examples/hello to staging, fetches the page, sets a config var
(→ release v2 with the same artifact), prints the releases, then stops everything it started.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPYARD = str(Path(sys.executable).parent / "shipyard")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def shipyard(*args: str, env: dict[str, str], capture: bool = False) -> str:
    print(f"$ shipyard {' '.join(args)}", flush=True)
    result = subprocess.run(
        [SHIPYARD, *args], env=env, check=True, text=True, capture_output=capture
    )
    return result.stdout if capture else ""


def wait_for_api(url: str, server: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("shipyard up exited early; see its output above")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("shipyard up did not answer in time")


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode().strip())


def main() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="shipyard-demo-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")},
        "SHIPYARD_DATA_DIR": str(data_dir),
        "SHIPYARD_URL": url,
        "SHIPYARD_LOG_LEVEL": "WARNING",
        "SHIPYARD_LOG_FORMAT": "console",
    }
    server = subprocess.Popen([SHIPYARD, "up", "--port", str(port)], env=env)
    try:
        wait_for_api(url, server)
        shipyard(
            "apps", "create", "hello", "--repo", str(ROOT), "--path", "examples/hello", env=env
        )
        shipyard("envs", "create", "staging", "--app", "hello", env=env)
        shipyard("deploy", "--app", "hello", "--env", "staging", env=env)
        current = json.loads(
            shipyard("ps", "-a", "hello", "-e", "staging", "--json", env=env, capture=True)
        )
        web = current["processes"][0]["url"]
        print(f"GET {web} → {fetch(web)!r}")

        shipyard(
            "config", "set", "GREETING=Hello from the demo", "-a", "hello", "-e", "staging", env=env
        )
        for _ in range(200):  # the config change releases v2 with the same artifact
            current = json.loads(
                shipyard("ps", "-a", "hello", "-e", "staging", "--json", env=env, capture=True)
            )
            if current["release"]["version"] == 2:
                break
            time.sleep(0.1)
        else:
            raise SystemExit("release v2 did not go live")
        web = current["processes"][0]["url"]
        print(f"GET {web} → {fetch(web)!r}")
        shipyard("releases", "-a", "hello", "-e", "staging", env=env)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(data_dir, ignore_errors=True)
    if server.returncode not in (0, -signal.SIGTERM):
        raise SystemExit(f"shipyard up exited with {server.returncode}")
    print("demo finished: everything it started is stopped")


if __name__ == "__main__":
    main()
