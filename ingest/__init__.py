"""Loading, chunking and the ingestion pipeline."""

import reader.threads  # noqa: F401 - before torch and FAISS load OpenMP
