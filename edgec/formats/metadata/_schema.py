"""The official TFLite metadata schema's generated Python reader/builder, as mediapipe ships it.

edgec does not copy it: it loads mediapipe's own ``metadata_schema_py_generated.py`` straight from the
installed wheel as a standalone module. That file needs only ``flatbuffers``; loading it this way does
not run ``mediapipe/__init__`` (which imports TensorFlow, 5-25 s), so bundles and ``edgec inspect``
stay fast. tflite-support, the official writer, does not install with this stack (see README).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from edgec.errors import DependencyError

_RELATIVE = Path("tasks") / "metadata" / "metadata_schema_py_generated.py"


def _load():
    spec = importlib.util.find_spec("mediapipe")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise DependencyError("mediapipe (for the TFLite metadata schema) is not installed",
                              hint="pip install 'edgec[convert]' -c constraints.txt")
    path = Path(list(spec.submodule_search_locations)[0]) / _RELATIVE
    if not path.is_file():
        raise DependencyError(f"mediapipe's metadata schema module is missing ({path})",
                              hint="install mediapipe==0.10.21 (pinned in constraints.txt)")
    mod_spec = importlib.util.spec_from_file_location("edgec_tflite_metadata_schema", path)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module


fb = _load()
