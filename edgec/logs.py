"""Quiet the C++ logs TensorFlow, absl and TFLite write straight to file descriptor 2.

``TF_CPP_MIN_LOG_LEVEL`` does not cover what absl prints before its logging is initialised
("computation placer already registered", the cuDNN/cuBLAS factory lines) nor the converter's
own notes ("Ignored output_format", "MLIR V1 optimization pass is not enabled"), so a build would
print a dozen framework lines between edgec's own. ``captured()`` points fd 2 at a temporary file
while a framework call runs and gives the text back, so an error can still quote it; with
``EDGEC_NATIVE_LOGS=1`` (or ``--debug``) nothing is captured.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile


def enabled() -> bool:
    return os.environ.get("EDGEC_NATIVE_LOGS", "") not in ("", "0")


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
