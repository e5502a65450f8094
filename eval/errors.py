"""The eval package's exceptions: one base, so callers (the CLI) can catch every bad input at once."""

from __future__ import annotations


class EvalError(Exception):
    """A run that cannot start or finish: a bad argument, a mode the dataset does not allow, a failed ingest."""


class DatasetError(EvalError, ValueError):
    """A dataset file that cannot be read as the format it claims to be; the message names file and record."""


class RunError(EvalError):
    """A stored run that cannot be found, or cannot be resumed with the given settings."""
