"""Exceptions nextscale raises on bad input: each names the file or field and the reason."""
from __future__ import annotations


class NextscaleError(Exception):
    """Base class: anything a user can fix (bad file, bad config, bad checkpoint)."""


class ConfigError(NextscaleError, ValueError):
    """A config key is unknown, has the wrong type, or an impossible value."""


class AudioError(NextscaleError):
    """An audio file could not be used; carries the path and the reason."""

    def __init__(self, path: object, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class DataError(NextscaleError):
    """A dataset or manifest cannot be used (no readable file, missing column, ...)."""


class CheckpointError(NextscaleError):
    """A checkpoint directory is missing, incomplete, or of another model kind or version."""
