#!/usr/bin/env bash
# The GPU proof on a machine with an NVIDIA GPU (CUDA 12 driver) that reaches PyPI: a venv with the project, a CUDA
# build of torch (PyPI's default torch wheel) and faiss-gpu-cu12 in place of faiss-cpu (both install the module
# `faiss`), then benchmarks/gpu_proof.py. Figures: $OUT/gpu_proof.json (default /tmp).
#   bash benchmarks/gpu_proof.sh [--vectors N]
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-gpu
[ -x $venv/bin/python ] || python3 -m venv $venv
pip() { $venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
pip install -e .
pip uninstall -y faiss-cpu
pip install --force-reinstall --no-deps "faiss-gpu-cu12>=1.8" && pip install "nvidia-cuda-runtime-cu12" "nvidia-cublas-cu12"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
$venv/bin/python -c "import faiss, torch; print('faiss', faiss.__version__, 'GPUs', faiss.get_num_gpus(), 'torch', torch.__version__, torch.cuda.is_available())"
HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 $venv/bin/python benchmarks/gpu_proof.py "$@"
