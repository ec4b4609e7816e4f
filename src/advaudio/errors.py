"""Exceptions raised by advaudio, so callers can tell bad configuration from bad data."""


class ConfigError(ValueError):
    """A parameter has an unknown name or a value outside its allowed set or range."""


class DataError(ValueError):
    """An input file is missing, unreadable or holds unusable content; the message names the file."""


class DiskFullError(DataError):
    """An output does not fit on its filesystem; the message names the path, the bytes needed and the bytes free.

    A :class:`DataError`, so every stage that reports bad data in one line reports a full disk the same way.
    """
