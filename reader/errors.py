"""Errors of the reader package."""


class ReaderError(Exception):
    """Base class for reader errors."""


class TrainingDataError(ReaderError):
    """A training file is missing, not SQuAD JSON, or holds a malformed record (named in the message)."""


class ReaderModelError(ReaderError):
    """A reader model folder is missing, incomplete, or its manifest does not match."""
