"""Exceptions raised by advaudio, so callers can tell bad configuration from bad data."""


class ConfigError(ValueError):
    """A parameter has an unknown name or a value outside its allowed set or range."""


class DataError(ValueError):
    """An input file is missing, unreadable or holds unusable content; the message names the file."""
