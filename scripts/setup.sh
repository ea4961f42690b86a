#!/usr/bin/env bash
# Create .venv and install edgec with the pinned stack (see constraints.txt and README "Stack").
# torch goes first, from the local CPU wheel, so that nothing pulls a CUDA build.
#   scripts/setup.sh          install edgec with the conversion stack and the built-in example
#   scripts/setup.sh --test   also the test extras (pytest, MiniLM, ...), Debian's chromium and OpenSSH
# Every step either succeeds or stops set-up (exit 1) with the step's own output and a line naming it.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-}
case "$mode" in
  "" | --test) ;;
  *) echo "usage: bash scripts/setup.sh [--test]" >&2; exit 2 ;;
esac

fail() {  # fail STEP [DETAIL]
  echo "scripts/setup.sh: step '$1' failed${2:+: $2}" >&2
  exit 1
}

step() {  # step NAME COMMAND...: run it, output kept; on failure show the output and stop
  local name=$1 log status=0
  shift
  echo "setup: $name"
  log=$(mktemp)
  "$@" >"$log" 2>&1 || status=$?
  if [[ $status -ne 0 ]]; then
    grep -v "^WARNING: Location" "$log" >&2 || true
    rm -f "$log"
    fail "$name" "exit $status from: $*"
  fi
  rm -f "$log"
}

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
command -v "$PY" >/dev/null 2>&1 || fail "find python" "neither \$PYTHON, python3.11 nor python3 is on PATH"
extras="convert,examples"
if [[ "$mode" == "--test" ]]; then extras="all"; fi
export PIP_DISABLE_PIP_VERSION_CHECK=1

if [[ ! -x .venv/bin/python ]]; then
  step "create .venv" "$PY" -m venv .venv
fi
step "install torch 2.13.0 into .venv" .venv/bin/python -m pip install -q "torch==2.13.0"
step "install edgec[$extras] into .venv" .venv/bin/python -m pip install -q -c constraints.txt -e ".[${extras}]"
step "pip check (.venv)" .venv/bin/python -m pip check

apt_install() {  # apt_install PACKAGE...: Debian packages, as root or through sudo
  local sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || fail "apt-get install $*" "not root and no sudo: install $* by hand"
    sudo="sudo"
  fi
  step "apt-get update" $sudo apt-get update -qq
  step "apt-get install $*" $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}
if [[ "$mode" == "--test" ]] && ! command -v chromium >/dev/null 2>&1; then
  # The HTML report test opens the report in Debian's headless Chromium.
  apt_install chromium
fi
if [[ "$mode" == "--test" ]] && { [[ ! -x /usr/sbin/sshd ]] || ! command -v ssh >/dev/null 2>&1 ||
                                   ! command -v scp >/dev/null 2>&1; }; then
  # The real-device tests (tests/test_devices.py) start Debian's OpenSSH server on a loopback port
  # and reach it with the system ssh/scp, as edgec reaches a Raspberry Pi.
  apt_install openssh-server openssh-client
fi
step "import check (.venv)" .venv/bin/python -c \
  "import torch, edgec; assert torch.__version__.startswith('2.13.0'), torch.__version__"

# The litert-torch converter family gets its own venv: its pins (numpy 2, protobuf 7, ai-edge-litert
# 2.3) cannot share .venv with onnx2tf's. edgec runs it as a subprocess (edgec/convert/envs.py).
# Same torch (the local CPU wheel, first).
if [[ ! -x .venv-litert/bin/python ]]; then
  step "create .venv-litert" "$PY" -m venv .venv-litert
fi
step "install torch 2.13.0 into .venv-litert" .venv-litert/bin/python -m pip install -q "torch==2.13.0"
step "install litert-torch into .venv-litert" .venv-litert/bin/python -m pip install -q \
  -c constraints-litert.txt "torch==2.13.0" "litert-torch==0.10.0" "ai-edge-quantizer==0.10.0"
step "pip check (.venv-litert)" .venv-litert/bin/python -m pip check
step "import check (.venv-litert)" .venv-litert/bin/python -I -c \
  "import torch, litert_torch, ai_edge_quantizer; assert torch.__version__.startswith('2.13.0'), torch.__version__"
echo "setup: done (.venv, .venv-litert${mode:+; test extras, chromium, OpenSSH})"
