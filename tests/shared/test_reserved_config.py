"""Config names that change how a program starts: which are reserved, and dropped at run time."""

from __future__ import annotations

from shipyard.shared.reserved_config import startup_reason, without_startup_variables


def test_the_reason_names_what_reads_the_variable() -> None:
    assert "dynamic loader" in (startup_reason("LD_LIBRARY_PATH") or "")
    assert "interpreter" in (startup_reason("_JAVA_OPTIONS") or "")
    assert "shell" in (startup_reason("BASH_FUNC_ls__") or "")
    assert startup_reason("PYTHONUNBUFFERED") is None
    assert startup_reason("PYTHONPATH") is None


def test_a_releases_environment_keeps_everything_else() -> None:
    env = {"LD_PRELOAD": "/tmp/x.so", "PYTHONWARNINGS": "ignore::a.B", "DATABASE_URL": "d"}

    assert without_startup_variables(env) == {"DATABASE_URL": "d"}
