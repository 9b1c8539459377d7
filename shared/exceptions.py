"""The errors users see, each with one clear message; the API's table (`api/errors.py`) gives
each class its HTTP status."""


class ShipyardError(Exception):
    """Base class: the message is safe to show to a user (no secrets, no tracebacks)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ShipyardError):
    """An app, environment, pipeline or release that does not exist."""


class Conflict(ShipyardError):
    """A duplicate name, or an operation the current state does not allow."""


class InvalidInput(ShipyardError):
    """Input that is well-formed JSON but not acceptable."""


class ServiceUnavailable(ShipyardError):
    """The database or the broker cannot be reached right now."""


class ConfigurationError(ShipyardError):
    """Settings that are missing or unsafe; raised at start-up."""


class StageFailed(ShipyardError):
    """A stage failed for a reason a person can act on; recorded on the StageRun."""

    def __init__(self, message: str, *, output: str | None = None) -> None:
        super().__init__(message)
        self.output = output  # what a command printed (release phase), shown with the stage


class ArtifactIntegrityError(StageFailed):
    """A stored artifact whose content no longer matches its digest."""
