"""Errors of the ingestion package."""


class IngestError(Exception):
    """Base class of everything ingestion raises."""


class LoadError(IngestError):
    """A file could not be turned into documents. The message is one line a user can act on."""


class UnsupportedFormatError(LoadError):
    """No loader knows this file type."""
