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
if [[ "${1:-}" == "--test" ]] && { [[ ! -x /usr/sbin/sshd ]] || ! command -v ssh >/dev/null 2>&1 || ! command -v scp >/dev/null 2>&1; }; then
  # The real-device tests (tests/test_devices.py) start Debian's OpenSSH server on a loopback port
  # and reach it with the system ssh/scp, as edgec reaches a Raspberry Pi.
  if [[ $(id -u) -eq 0 ]]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq openssh-server \
    openssh-client >/dev/null
fi
.venv/bin/python -c "import torch, edgec; assert torch.__version__.startswith('2.13.0'), torch.__version__"
# The litert-torch converter family gets its own venv: its pins (numpy 2, protobuf 7, ai-edge-litert
# 2.3) cannot share .venv with onnx2tf's. edgec runs it as a subprocess (edgec/convert/envs.py).
# Same torch (the local CPU wheel, first); any failed install stops set-up with pip's own output.
quiet_pip() {
  local log; log=$(mktemp)
  if ! "$@" >"$log" 2>&1; then
    grep -v "^WARNING: Location" "$log" >&2; rm -f "$log"
    echo "scripts/setup.sh: failed: $*" >&2; exit 1
  fi
  rm -f "$log"
}
if [[ ! -x .venv-litert/bin/python ]]; then
  "$PY" -m venv .venv-litert
fi
quiet_pip .venv-litert/bin/python -m pip install -q "torch==2.13.0"
quiet_pip .venv-litert/bin/python -m pip install -q -c constraints-litert.txt "torch==2.13.0" \
  "litert-torch==0.10.0" "ai-edge-quantizer==0.10.0"
.venv-litert/bin/python -m pip check
.venv-litert/bin/python -I -c "import torch, litert_torch, ai_edge_quantizer; assert torch.__version__.startswith('2.13.0'), torch.__version__"
