"""Errors of the ingestion package."""


class IngestError(Exception):
    """Base class of everything ingestion raises."""


class LoadError(IngestError):
    """A file could not be turned into documents. The message is one line a user can act on."""


class UnsupportedFormatError(LoadError):
    """No loader knows this file type."""


def one_line(exc: BaseException) -> str:
    """An exception's message as one line of a LoadError (parsers' messages span lines); its type if it has none."""
    return " ".join(str(exc).split()) or type(exc).__name__
