"""The entry point builds only the command a run names, and that command is the whole CLI's."""

from __future__ import annotations

import json
import subprocess
import sys

from shipyard.cli.main import COMMANDS, app_for, whole_app
from tests.conftest import REPO_ROOT

# In one fresh interpreter: each command built alone, its modules imported afresh (as in a run
# of `shipyard NAME`), then the whole CLI; the shape of each (help, options, subcommands).
SHAPES = """\
import json, sys
from typer.main import get_command
from shipyard.cli.main import COMMANDS, build_app

def shape(command):
    return {
        "help": command.help,
        "params": [[p.name, *p.opts, *p.secondary_opts] for p in command.params],
        "commands": {name: shape(sub) for name, sub in getattr(command, "commands", {}).items()},
    }

before = set(sys.modules)
alone = {}
for name in COMMANDS:
    for module in set(sys.modules) - before:
        del sys.modules[module]
    alone[name] = shape(get_command(build_app([name])).commands[name])
whole = shape(get_command(build_app(COMMANDS)))["commands"]
print(json.dumps({"alone": alone, "whole": whole}))
"""


def test_each_command_built_alone_is_the_whole_clis() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", SHAPES],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )

    shapes = json.loads(completed.stdout)
    assert sorted(shapes["whole"]) == sorted(COMMANDS)
    assert shapes["alone"] == shapes["whole"]
    assert shapes["alone"]["releases"]["commands"].keys() == {"diff"}  # added by operations


def test_a_run_builds_the_command_it_names_else_the_whole_cli() -> None:
    assert app_for(["ps", "--app", "web"]).registered_commands[0].name == "ps"
    assert len(app_for(["apps", "destroy", "web"]).registered_groups) == 1
    assert app_for(["ps:restart"]).registered_commands[0].name == "ps:restart"
    for args in ([], ["--help"], ["bogus"], ["--install-completion"], ["-a", "ps"]):
        assert app_for(args) is whole_app()
