"""Generator backends, chosen by name: an explicit registry; 'auto' picks llama.cpp for GGUF when installed."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

from rag.errors import RagError
from rag.models import ModelLocation, resolve_generator
from rag.types import Generator


def _llamacpp(location: ModelLocation, name: str) -> Generator:
    from rag.generators.llamacpp import LlamaCppGenerator

    if not location.gguf:
        raise RagError(f"the llama.cpp backend needs a GGUF file; {name!r} is not one")
    return LlamaCppGenerator(location.path, name)


def _transformers(location: ModelLocation, name: str) -> Generator:
    from rag.generators.hf import TransformersGenerator

    return TransformersGenerator(location, name)


def _openai(location: ModelLocation, name: str) -> Generator:
    """A remote OpenAI-compatible server at RAG_OPENAI_BASE_URL; the generator name is the remote model's."""
    import os

    from rag.generators.openai_backend import OpenAIGenerator

    return OpenAIGenerator(os.environ.get("RAG_OPENAI_BASE_URL", ""), name, os.environ.get("RAG_OPENAI_API_KEY"))


BACKENDS: dict[str, Callable[[ModelLocation, str], Generator]] = {
    "llamacpp": _llamacpp,
    "transformers": _transformers,
    "openai": _openai,
}


def llamacpp_installed() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def count_tokens(counter: object, text: str) -> int:
    """Tokens of `text` in a generator's (or reader's) own vocabulary; whitespace words where it cannot count."""
    count = getattr(counter, "count_tokens", None)
    if callable(count):
        return int(count(text))
    return len(text.split())


def create_generator(model: str, backend: str = "auto") -> Generator:
    """A generator for a packaged short name, a GGUF file, a local folder or a hub name."""
    location = resolve_generator(model)
    if backend == "auto":
        backend = "llamacpp" if location.gguf and llamacpp_installed() else "transformers"
    factory = BACKENDS.get(backend)
    if factory is None:
        raise RagError(f"unknown generator backend {backend!r}; choose one of {['auto', *BACKENDS]}")
    return factory(location, model)
