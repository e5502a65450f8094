"""Evaluation: pure metrics (SQuAD v1.1/v2.0, retrieval, latency) and the runs and reports built on them."""

import reader.threads  # noqa: F401 - before torch and FAISS load OpenMP
