"""An app that tries to reach what it must not, for the confinement tests.

`python3 attack.py` prints a JSON report; `python3 attack.py serve` answers it over HTTP on
$PORT. It tries to read each path of TARGETS, to write a file into each folder of PLANT (both
os.pathsep-separated), to write into its own storage, and lists the processes it can see.
"""

from __future__ import annotations

import json
from typing import Any

ATTACK_SCRIPT = r"""
import json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer


def attempt(action, path):
    try:
        if action == "write":
            with open(path, "w") as handle:
                handle.write("planted")
        elif os.path.isdir(path):
            os.listdir(path)
        else:
            with open(path, "rb") as handle:
                handle.read(1)
        return "allowed"
    except OSError as exc:
        return "denied: " + (exc.strerror or type(exc).__name__)


def paths(name):
    return [p for p in os.environ.get(name, "").split(os.pathsep) if p]


def report():
    return {
        "uid": os.getuid(),
        "read": {p: attempt("read", p) for p in paths("TARGETS")},
        "write": {p: attempt("write", os.path.join(p, "planted")) for p in paths("PLANT")},
        "home": attempt("write", os.path.join(os.environ["HOME"], "planted")),
        "storage": attempt("write", os.path.join(os.environ["SHIPYARD_STORAGE_DIR"], "mine")),
        "processes": sorted(int(n) for n in os.listdir("/proc") if n.isdigit()),
    }


class Report(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps(report()).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if sys.argv[1:] == ["serve"]:
    HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Report).serve_forever()
else:
    print("REPORT " + json.dumps(report()), flush=True)
"""

PROCFILE = "web: python3 attack.py serve\nrelease: python3 attack.py\n"


# The attacker app's files: its script and its Procfile.
FILES = {"attack.py": ATTACK_SCRIPT, "Procfile": PROCFILE}


def parse_report(output: str) -> dict[str, Any]:
    """The report a release command printed."""
    (line,) = [line for line in output.splitlines() if line.startswith("REPORT ")]
    report: dict[str, Any] = json.loads(line.removeprefix("REPORT "))
    return report


def breaches(report: dict[str, Any]) -> dict[str, str]:
    """What the attacker did reach: every read and write of the report that was allowed."""
    tried = {f"read {p}": r for p, r in report["read"].items()}
    tried.update({f"write {p}": r for p, r in report["write"].items()})
    tried["write $HOME (the release)"] = report["home"]
    return {what: result for what, result in tried.items() if result == "allowed"}
