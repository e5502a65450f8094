"""Typed settings, read once at the edge (CLI, service start-up, `RAG.open`) from arguments and RAG_* variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from index.embedder import DEFAULT_EMBEDDER
from rag.models import DEFAULT_GENERATOR

RetrievalMode = Literal["hybrid", "dense", "keyword"]
AnswerStyle = Literal["short", "sentence"]
FusionMethod = Literal["zscore", "rrf"]
ReaderKind = Literal["extractive", "generative"]

# Passages each reader reads by default. The generator, measured on 150 SQuAD questions: one passage EM 14.0
# at 0.86 s/question, three passages EM 5.3 at 1.85 s. The extractive reader compares spans across passages.
DEFAULT_CONTEXT_K = {"extractive": 3, "generative": 1}


class RagSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAG_", frozen=True, extra="forbid")

    store: Path = Path("store")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default: SQLite in the store folder")
    collection: str = "default"
    embedder: str | None = Field(default=None, description="default: the store's own, or " + DEFAULT_EMBEDDER)
    generator: str = Field(default=DEFAULT_GENERATOR, description="packaged short name, GGUF file, folder or hub name")
    # Measured on 2 cores: transformers 1.1 s/question (batched), llama.cpp 1.7 s (no batching here).
    backend: Literal["auto", "llamacpp", "transformers", "openai"] = "transformers"
    reader: ReaderKind = Field(default="extractive", description="extractive (a trained span model) or generative")
    reader_model: str | None = Field(default=None, description="reader folder; default: the shipped reader")
    retrieval: RetrievalMode = "hybrid"
    k: int = Field(default=5, ge=1, le=200)
    context_k: int | None = Field(
        default=None, ge=1, le=50, description="top passages the reader reads; default: the reader's own"
    )
    focus_sentences: int = Field(
        default=1, ge=0, le=50, description="short answers read each passage's best N sentences; 0: whole passages"
    )
    fusion: FusionMethod = "zscore"
    dense_weight: float = Field(default=0.5, ge=0.0, le=1.0, description="weight of dense scores in zscore fusion")
    rrf_k: int = Field(default=60, ge=1)
    reranker: str | None = Field(default=None, description="cross-encoder name or path; off by default")
    rerank_candidates: int = Field(default=20, ge=1, description="first-stage hits the reranker reorders")
    candidates: int = Field(default=50, ge=1, description="hits taken from each retriever before fusion")
    answer_style: AnswerStyle = "short"
    span_answers: bool = Field(default=True, description="copy answers verbatim out of the passages")
    max_new_tokens: int = Field(default=24, ge=1, le=4096)
    min_dense_score: float = Field(default=0.3, description="below this cosine, a passage counts as unrelated")
    no_answer_threshold: float | None = Field(
        default=None, ge=0.0, le=1.0, description="abstain above this no-answer probability; default: the reader's"
    )
    chunk_tokens: int = Field(default=254, ge=16)
    overlap_tokens: int = Field(default=32, ge=0)

    @model_validator(mode="after")
    def _overlap_inside_chunk(self) -> RagSettings:
        if self.overlap_tokens >= self.chunk_tokens:
            raise ValueError(
                f"overlap_tokens ({self.overlap_tokens}) must be smaller than chunk_tokens ({self.chunk_tokens})"
            )
        return self

    def with_overrides(self, **overrides: object) -> RagSettings:
        """These settings with some fields replaced, validated like any other (model_copy would skip that)."""
        if not overrides:
            return self
        return type(self).model_validate({**self.model_dump(), **overrides})


def settings_from(store: Path | None, **overrides: object) -> RagSettings:
    """Settings from RAG_* variables with the given values on top (None means "not given")."""
    update = {key: value for key, value in overrides.items() if value is not None}
    if store is not None:
        update["store"] = store
    return RagSettings(**update)  # type: ignore[arg-type]
