"""Errors of the index package."""


class StoreError(Exception):
    """Base class of everything the store raises."""


class EmbedderMismatchError(StoreError):
    """The store was built with another embedder than the one it is opened with."""


class ManifestError(StoreError):
    """The store's manifest is missing, unreadable or from an unsupported format version."""


class UnknownBackendError(StoreError):
    """A configured backend name is not in its registry."""


class NotFoundError(StoreError):
    """A document or collection that was asked for does not exist."""


class StoreIntegrityError(StoreError):
    """A vector file does not match what the manifest recorded (checksum, dimension, count) or cannot be read."""


class StoreBusyError(StoreError):
    """Another process holds the store's write lock for longer than this one would wait."""
