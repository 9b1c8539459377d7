"""The errors users see. Each maps to one HTTP status in the API and one clear CLI message."""


class ShipyardError(Exception):
    """Base class: the message is safe to show to a user (no secrets, no tracebacks)."""

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ShipyardError):
    """An app, environment, pipeline or release that does not exist."""

    status_code = 404


class Conflict(ShipyardError):
    """A duplicate name, or an operation the current state does not allow."""

    status_code = 409


class InvalidInput(ShipyardError):
    """Input that is well-formed JSON but not acceptable."""

    status_code = 422


class ServiceUnavailable(ShipyardError):
    """The database or the broker cannot be reached right now."""

    status_code = 503


class ConfigurationError(ShipyardError):
    """Settings that are missing or unsafe; raised at start-up."""


class StageFailed(ShipyardError):
    """A stage failed for a reason a person can act on; recorded on the StageRun."""

    def __init__(self, message: str, *, output: str | None = None) -> None:
        super().__init__(message)
        self.output = output  # what a command printed (release phase), shown with the stage


class ArtifactIntegrityError(StageFailed):
    """A stored artifact whose content no longer matches its digest."""
