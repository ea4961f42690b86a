"""Keep the frameworks' own log lines (TensorFlow, absl, TFLite, gRPC) off the user's terminal.

Three layers, because no single switch covers them all:

1. ``quiet_env()`` sets, before a framework loads, the variables the frameworks read themselves:
   ``TF_CPP_MIN_LOG_LEVEL`` (TensorFlow's own C++ logging: the oneDNN and CPU-feature notices),
   ``GRPC_VERBOSITY`` and ``GLOG_minloglevel``. It only sets what the user left unset.
2. ``captured()`` points file descriptor 2 at a temporary file while a framework call runs and gives
   the text back, so an error can still quote it. It is needed because TensorFlow 2.19 logs through
   absl, which reads no environment variable: what absl prints before its logging is initialised
   ("computation placer already registered", the cuDNN/cuBLAS factory lines) and the converter's own
   notes ("Ignored output_format", "MLIR V1 optimization pass is not enabled"), and TFLite's
   "Created TensorFlow Lite XNNPACK delegate" line, all go straight to fd 2.
3. ``is_noise()`` / ``without_noise()`` recognise those lines, so the stderr of a framework child
   process (``edgec.runtime.isolated``) that an error quotes says what went wrong, not what loaded.

With ``EDGEC_NATIVE_LOGS=1`` (what ``--debug`` sets) nothing is captured or forced quiet, and the
children's stderr is shown: the frameworks speak at their own defaults.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

DEBUG_ENV = "EDGEC_NATIVE_LOGS"

# What each framework reads at start-up, and the value that keeps it to errors or nothing. Not
# TF_ENABLE_ONEDNN_OPTS: it changes TensorFlow's numerics, not only its notice (which is an INFO line
# of TensorFlow's own logging, hidden by TF_CPP_MIN_LOG_LEVEL).
QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",   # TensorFlow/TFLite C++ (tsl) logging: INFO, WARNING and ERROR off
    "GRPC_VERBOSITY": "ERROR",     # gRPC, linked into TensorFlow
    "GLOG_minloglevel": "2",       # glog users (MediaPipe's native parts): errors only
}

# The lines the frameworks print in a normal, successful run. Fatal lines ("F0000 ... Check failed")
# and tracebacks are never noise.
NOISE = re.compile("|".join([
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"^[IW]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ [\w.+-]+:\d+\] ",           # absl INFO/WARNING lines
    r"Unable to register cu(DNN|BLAS|FFT) factory",                     # logged as errors, but harmless
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IW] ",                      # TensorFlow's own (tsl) format
    r"^INFO: (Created TensorFlow Lite .*delegate|Initialized TensorFlow Lite runtime)",
    r"computation placer already registered",
    r"Ignored (output_format|drop_control_dependency)\.",
    r"MLIR V1 optimization pass is not enabled",
    r"oneDNN custom operations are on",
    r"TF_ENABLE_ONEDNN_OPTS=0",
    r"This TensorFlow binary is optimized to use available CPU instructions",
    r"rebuild TensorFlow with the appropriate compiler flags",
    r"TF-TRT Warning: Could not find TensorRT",
    r"Could not find cuda drivers on your machine",
    r"failed call to cuInit",
    r"^fully_quantize: \d, inference_type: ",                            # the int8 calibrator's printf
    r"^WARNING:absl:",
]))


def enabled() -> bool:
    """True when the frameworks' own logs are to be shown (``--debug`` or ``EDGEC_NATIVE_LOGS=1``)."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def set_debug(on: bool) -> None:
    """``--debug``: show the frameworks' logs in this process and the children it starts."""
    if on:
        os.environ[DEBUG_ENV] = "1"


def quiet_env(env: dict | None = None) -> dict:
    """Set ``QUIET_ENV`` in ``env`` (``os.environ`` by default) where the user left it unset; in debug
    mode leave everything as it is. Returns ``env``. Call it before the framework is imported."""
    env = os.environ if env is None else env
    if env.get(DEBUG_ENV, "") in ("", "0"):
        for key, value in QUIET_ENV.items():
            env.setdefault(key, value)
    return env


def is_noise(line: str) -> bool:
    """Is ``line`` one of the frameworks' start-up or progress notes (see ``NOISE``)?"""
    return bool(NOISE.search(line.strip()))


def without_noise(text: str) -> str:
    """``text`` without the lines ``is_noise`` recognises."""
    return "\n".join(ln for ln in (text or "").splitlines() if not is_noise(ln))


@contextlib.contextmanager
def captured():
    """Yield a function returning what was written to fd 2 so far; restore fd 2 afterwards."""
    if enabled():
        yield lambda: ""
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (an embedding host): nothing to quiet
        yield lambda: ""
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)

        def text() -> str:
            tmp.seek(0)
            return tmp.read().decode(errors="replace")

        try:
            yield text
        finally:
            try:
                sys.stderr.flush()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
