#!/usr/bin/env bash
# Create .venv and install edgec with the pinned stack (see constraints.txt and README "Stack").
# torch goes first, from the local CPU wheel, so that nothing pulls a CUDA build.
#   scripts/setup.sh          install edgec with the conversion stack and the built-in example
#   scripts/setup.sh --test   also the test extras (pytest, MiniLM, ...) and Debian's chromium
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
extras="convert,examples"
if [[ "${1:-}" == "--test" ]]; then extras="all"; fi
if [[ ! -x .venv/bin/python ]]; then
  "$PY" -m venv .venv
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
.venv/bin/python -m pip install -q "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -m pip install -q -c constraints.txt -e ".[${extras}]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -m pip check
if [[ "${1:-}" == "--test" ]] && ! command -v chromium >/dev/null 2>&1; then
  # The HTML report test opens the report in Debian's headless Chromium.
  if [[ $(id -u) -eq 0 ]]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
.venv/bin/python -c "import torch, edgec; assert torch.__version__.startswith('2.13.0'), torch.__version__"
