"""Errors a user can cause: reported as one clear message, never a stack trace."""


class UserError(Exception):
    """A mistake the user can fix (bad value, missing or unreadable data); the message says how."""


class ConfigValueError(UserError, ValueError):
    """A value a constructor refuses (``model.norm=bach``), named by its config key: the user's to
    fix, and a ValueError as Python code that builds the object by hand expects."""


class DataNotFoundError(UserError):
    """Data files are missing from the data root."""


class UnsafeFileError(UserError):
    """A data file holds something other than plain arrays and containers."""
