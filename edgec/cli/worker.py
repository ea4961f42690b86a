"""Process entry point of the model worker (``python -m edgec.cli.worker TASK``); see edgec.runtime.isolated.
Like the CLI, it is the only place that exits the process; the library returns exit codes."""

from __future__ import annotations

import os
import sys

def _layers(task: dict) -> dict:
    """The layer walk (``edgec.validate.localize``): a task of a layer above the runtime's."""
    from edgec.validate.localize import run_layer_task

    return run_layer_task(task)


if __name__ == "__main__":  # pragma: no cover - runs in the child
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from edgec.runtime.isolated import main

    sys.exit(main(sys.argv[1:], tasks={"layers": _layers}))
