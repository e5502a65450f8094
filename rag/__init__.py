"""Retrieval-augmented question answering: `from rag import RAG; RAG.open("store").ask("...")`."""

import reader.threads  # noqa: F401 - before torch and FAISS load OpenMP
from rag.api import RAG
from rag.config import RagSettings
from rag.types import Answer, Citation

__all__ = ["RAG", "Answer", "Citation", "RagSettings"]
