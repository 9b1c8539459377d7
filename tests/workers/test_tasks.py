"""The worker's tasks keep the names messages already queued carry, whatever module holds them."""

from __future__ import annotations

from shipyard.workers import tasks
from shipyard.workers.app import app

# The names on the wire since before the one `shipyard` package: a message queued by an older
# Shipyard must still find its task after an upgrade.
NAMES_ON_THE_WIRE = {
    "shipyard.stage.build",
    "shipyard.stage.release",
    "shipyard.stage.run",
    "shipyard.maintenance.remove_artifacts",
    "shipyard.maintenance.reconcile",
    "shipyard.notify.deliver",
    "shipyard.schedules.tick",
    "shipyard.hosts.tick",  # since run hosts are watched (a lost one's environments move)
}


def test_every_task_keeps_its_name_on_the_wire() -> None:
    registered = {name for name in app.tasks if not name.startswith("celery.")}

    assert registered == NAMES_ON_THE_WIRE
    assert tasks.build_stage.name == "shipyard.stage.build"
