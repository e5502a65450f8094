"""The HTTP service's own settings, read once at start-up from arguments and RAG_* variables."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from rag.config import AnswerStyle

# (slots, seconds a request may wait for one) per reader
READER_LIMITS = {"generative": (2, 0.25), "extractive": (2, 2.0)}


def _split_commas(value: Any) -> Any:
    """`a,b` in the environment -> ["a", "b"]; lists pass through."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class ServiceSettings(BaseSettings):
    """RAG_API_KEYS=key1,key2 turns authentication on; RAG_MODEL_ALIASES is JSON: {"gpt-4o": "default"}."""

    # extra="ignore": the RAG_* variables of RagSettings share the prefix.
    model_config = SettingsConfigDict(env_prefix="RAG_", frozen=True, extra="ignore")

    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list, description="comma-separated")
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    # Defaults depend on the reader (READER_LIMITS): a generation holds the CPU for about a second, so more
    # slots only queue inside the server; an extractive answer takes tens of milliseconds, so a request may
    # wait for a slot a little longer instead of being refused.
    max_concurrency: int | None = Field(
        default=None, ge=1, le=256, description="model requests in flight at once; default: the reader's"
    )
    queue_wait_s: float | None = Field(
        default=None, ge=0, le=30, description="wait this long for a free slot, then 429; default: the reader's"
    )
    retry_after_s: int = Field(default=1, ge=1)
    request_timeout_s: float = Field(default=120.0, gt=0)
    write_wait_s: float = Field(default=10.0, ge=0, description="an upload waits this long for another writer")
    max_prompt_tokens: int = Field(default=2048, ge=16, description="tokens of conversation a request may carry")
    max_output_tokens: int = Field(default=512, ge=1, description="max_tokens is clamped to this")
    default_max_tokens: int = Field(default=128, ge=1, description="output tokens when a request names none")
    model_aliases: dict[str, str] = Field(default_factory=dict, description="model name -> collection")
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list, description="comma-separated")
    chat_style: AnswerStyle = "sentence"
    metrics_require_key: bool = Field(
        default=False, description="/metrics asks for an API key too (when keys are configured)"
    )

    @field_validator("api_keys", "cors_origins", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        return _split_commas(value)
