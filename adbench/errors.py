"""User-facing errors: raised for bad input, printed by the CLI without a traceback."""

__all__ = ["AdbenchError", "ConfigError", "DataError", "OutOfDeviceMemory", "WeightsError"]


class AdbenchError(Exception):
    """An error the user can fix; the message says what is wrong and what to do."""


class DataError(AdbenchError):
    """A dataset file or folder is missing, unreadable or inconsistent."""


class ConfigError(AdbenchError):
    """A configuration key or value is invalid."""


class OutOfDeviceMemory(AdbenchError):
    """A trial or cell needed more GPU memory than the card has (e.g. a 1.3B-parameter noise net)."""


class WeightsError(AdbenchError):
    """Pretrained weights cannot be found or loaded."""
