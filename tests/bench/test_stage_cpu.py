"""Scenario 1's CPU attribution: the store's share, the children's, and nothing left patched."""

from __future__ import annotations

import subprocess
import sys
import time

from sqlalchemy import orm, text
from sqlalchemy.engine import Connection
from sqlmodel import Session, create_engine

from bench.stage_cpu import StageCpu, StoreClock


def _spin(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_time_inside_the_store_is_counted_once_and_time_outside_is_not() -> None:
    engine = create_engine("sqlite://")
    clock = StoreClock()
    with clock.measuring(), Session(engine) as session:
        _spin(0.2)  # outside the store: not counted
        # A recursive CTE that counts to a million: CPU inside Session.execute, and inside the
        # Connection.execute that it calls (counted once, not twice).
        started = time.process_time()
        session.execute(
            text(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000)"
                " SELECT count(*) FROM n"
            )
        ).scalar_one()
        inside = time.process_time() - started
    engine.dispose()

    assert inside > 0.02, "the statement was too quick to tell"
    assert 0.8 * inside <= clock.seconds <= inside + 0.01, (clock.seconds, inside)


def test_the_entry_points_are_restored_afterwards() -> None:
    before = (orm.Session.execute, orm.Session.get, Connection.execute, Session.exec)
    clock = StoreClock()
    with clock.measuring():
        assert orm.Session.execute is not before[0]
    assert (orm.Session.execute, orm.Session.get, Connection.execute, Session.exec) == before


def test_a_stage_is_charged_its_own_cpu_and_its_childrens() -> None:
    cpu = StageCpu()
    with cpu.stage("build"):
        _spin(0.1)
        subprocess.run(
            [sys.executable, "-c", "import time\nend = time.process_time() + 0.3\n"
             "while time.process_time() < end: pass"],
            check=True,
        )  # fmt: skip
    with cpu.stage("build"):
        _spin(0.1)

    assert 0.2 <= cpu.total["build"] < 0.6, cpu.total
    assert 0.3 <= cpu.git["build"] < 1.0, cpu.git
    assert cpu.store["build"] == 0.0
