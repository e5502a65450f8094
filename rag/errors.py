"""Errors of the rag package."""


class RagError(Exception):
    """Base class of everything the rag package raises."""


class ModelNotFoundError(RagError):
    """A configured model name or path could not be resolved to weights on this machine."""


class GenerationError(RagError):
    """The generator failed on a request."""


class ConfigurationError(RagError):
    """A setting names something that does not exist (an unknown reader, a missing model folder)."""
