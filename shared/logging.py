"""structlog set-up for every entry point, and the processor that keeps secrets out of logs."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from contextvars import ContextVar
from typing import Any

import structlog

from shipyard.shared.constants import REDACTED

# Secret values known to the current task (a release's decrypted secrets), to scrub from output.
_known_secrets: ContextVar[frozenset[str]] = ContextVar("known_secrets", default=frozenset())


def register_secrets(values: Iterable[str]) -> None:
    """Remember secret values so that no log line of this task can carry them."""
    current = _known_secrets.get()
    _known_secrets.set(current | {v for v in values if len(v) >= 4})


def known_secrets() -> frozenset[str]:
    """The secret values registered by the current task (to hand to a thread it starts: a new
    thread does not inherit them)."""
    return _known_secrets.get()


def forget_secrets() -> None:
    """Clear the secret values registered by the current task."""
    _known_secrets.set(frozenset())


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """`text` with every known secret value replaced by `<redacted>`."""
    values = _known_secrets.get() if secrets is None else frozenset(secrets)
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text


def _redact_processor(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    if not _known_secrets.get():
        return event_dict
    for key, value in list(event_dict.items()):
        if isinstance(value, str):
            event_dict[key] = redact(value)
    return event_dict


def configure_logging(*, json: bool = True, level: str = "INFO") -> None:
    """Configure structlog and the stdlib root logger; call once, from an entry point."""
    shared_processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # Tracebacks become text here, so that the redaction below sees them too.
        structlog.processors.format_exc_info,
        _redact_processor,
    ]
    plain_renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )

    def renderer(logger: Any, name: str, event_dict: MutableMapping[str, Any]) -> str:
        # Secrets nested in dicts or lists are only visible in the rendered line.
        return redact(plain_renderer(logger, name, event_dict))

    structlog.configure(
        processors=[
            *shared_processors,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared_processors,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
