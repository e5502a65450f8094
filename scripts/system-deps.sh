#!/usr/bin/env bash
# System packages beyond Python: Debian's Tesseract, which reads scanned PDF pages and image files (OCR), and
# Debian's Chromium for the browser test of the web chat page (Playwright's own browser download is not used).
# `bash scripts/system-deps.sh ocr` installs Tesseract alone. Idempotent: installs only what is missing.
set -euo pipefail

packages=()
[ -x /usr/bin/tesseract ] || packages+=(tesseract-ocr tesseract-ocr-eng)
[ "${1:-}" = "ocr" ] || [ -x /usr/bin/chromium ] || packages+=(chromium)
if [ ${#packages[@]} -eq 0 ]; then
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "system-deps: need root (or sudo) to install ${packages[*]}" >&2; exit 1; }
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${packages[@]}"
