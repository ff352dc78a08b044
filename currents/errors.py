"""One base exception with narrow subclasses."""


class CurrentsError(Exception):
    """Base class of every error Currents raises on purpose."""


class ConfigurationError(CurrentsError):
    """A setting is missing or inconsistent."""


class EmbeddedServerError(CurrentsError):
    """An embedded broker or Redis could not be started."""


class InvalidEventError(CurrentsError):
    """An event failed validation; ``str(error)`` names the offending field."""
