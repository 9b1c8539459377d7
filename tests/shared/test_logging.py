"""Secret redaction: the `redact` helper, the structlog processor and configured logging."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from shipyard.shared.logging import configure_logging, forget_secrets, redact, register_secrets

SECRET = "hunter2-database-password"


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo configure_logging: structlog's defaults and the root logger's handlers come back.

    Tests call configure_logging themselves: capsys replaces sys.stderr per test phase, and the
    logger factory keeps the stream that was current when it was configured.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_redact_replaces_every_occurrence_of_the_given_secrets() -> None:
    text = f"password={SECRET} again {SECRET}; token=abcd1234"

    assert redact(text, [SECRET, "abcd1234"]) == (
        "password=<redacted> again <redacted>; token=<redacted>"
    )


def test_redact_replaces_the_longest_secret_first() -> None:
    # With "abcd" first, "abcdefgh" would leave "<redacted>efgh" behind.
    assert redact("key=abcdefgh", ["abcd", "abcdefgh"]) == "key=<redacted>"


def test_redact_uses_the_registered_secrets_by_default() -> None:
    register_secrets([SECRET])

    assert redact(f"connecting with {SECRET}") == "connecting with <redacted>"


def test_registered_secrets_accumulate_until_forgotten() -> None:
    register_secrets(["first-secret"])
    register_secrets(["second-secret"])

    assert redact("first-secret second-secret") == "<redacted> <redacted>"

    forget_secrets()
    assert redact("first-secret second-secret") == "first-secret second-secret"


def test_values_shorter_than_four_characters_are_not_registered() -> None:
    # Redacting "1" or "ab" would mangle every line of output.
    register_secrets(["1", "ab", "abc"])

    assert redact("1 ab abc") == "1 ab abc"


def test_structlog_event_values_are_redacted(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(json=True, level="INFO")
    register_secrets([SECRET])

    structlog.get_logger("test").info(
        "connected", url=f"postgresql://app:{SECRET}@db/app", attempt=3
    )

    (line,) = _json_lines(capsys.readouterr().err)
    assert line["url"] == "postgresql://app:<redacted>@db/app"
    assert line["attempt"] == 3
    assert line["event"] == "connected"


def test_stdlib_log_records_are_redacted(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(json=True, level="INFO")
    register_secrets([SECRET])

    logging.getLogger("some.library").warning("retrying with password %s", SECRET)

    err = capsys.readouterr().err
    assert SECRET not in err
    (line,) = _json_lines(err)
    assert line["event"] == "retrying with password <redacted>"


def test_a_secret_nested_in_a_logged_value_is_redacted(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(json=True, level="INFO")
    register_secrets([SECRET])

    structlog.get_logger("test").info("spec", env={"DATABASE_PASSWORD": SECRET}, args=[SECRET])

    err = capsys.readouterr().err
    assert SECRET not in err
    (line,) = _json_lines(err)
    assert line["env"] == {"DATABASE_PASSWORD": "<redacted>"}


def test_a_logged_exception_is_redacted(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(json=True, level="INFO")
    register_secrets([SECRET])

    try:
        raise RuntimeError(f"could not log in with {SECRET}")
    except RuntimeError:
        structlog.get_logger("test").exception("stage.crashed")

    err = capsys.readouterr().err
    assert "could not log in with <redacted>" in err
    assert SECRET not in err


def test_a_stdlib_logged_exception_is_rendered_and_redacted(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(json=True, level="INFO")
    register_secrets([SECRET])

    try:
        raise RuntimeError(f"could not log in with {SECRET}")
    except RuntimeError:
        logging.getLogger("some.library").exception("request failed")

    err = capsys.readouterr().err
    assert SECRET not in err
    (line,) = _json_lines(err)
    assert "Traceback (most recent call last)" in str(line["exception"])


def test_without_registered_secrets_log_lines_are_unchanged(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(json=True, level="INFO")
    structlog.get_logger("test").info("started", note=SECRET)

    (line,) = _json_lines(capsys.readouterr().err)
    assert line["note"] == SECRET
