"""The HTTP service: `create_app(RAG.open(store), ServiceSettings())`, served by `rag serve`."""

from rag.service.app import create_app
from rag.service.config import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]
