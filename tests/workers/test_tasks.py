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
    "shipyard.certificates.order",  # since custom domains get certificates from an ACME CA
}


def test_every_task_keeps_its_name_on_the_wire() -> None:
    registered = {name for name in app.tasks if not name.startswith("celery.")}

    assert registered == NAMES_ON_THE_WIRE
    assert tasks.build_stage.name == "shipyard.stage.build"


def test_certificates_due_are_ordered_on_the_notify_queue_by_the_beat_and_the_api() -> None:
    from shipyard.shared.broker import ROUTES

    entry = app.conf.beat_schedule["certificates"]

    assert entry["task"] == tasks.order_certificates.name == "shipyard.certificates.order"
    assert entry["options"]["queue"] == "notify"
    assert ROUTES["certificates.due"] == ("shipyard.certificates.order", "notify")
