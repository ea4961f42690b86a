"""The published reference latencies shipped with the profiles (``targets/reference-latencies.csv``).

Each row is one published TFLite / XNNPACK latency with its source. The ``split`` column keeps a
held-out part of the table that the estimator's fit never sees (``split=holdout``): those rows
test its accuracy out of sample (tests/test_estimate.py); every other row is fitted (``split=fit``).
The estimator itself (``edgec.bench.estimate``) and the reference models described op by op
(``edgec.bench.estimate_refs``) sit above this module; profile validation needs only the table.
"""

from __future__ import annotations

import csv
import functools
import io
from dataclasses import dataclass

TABLE = "reference-latencies.csv"
SPLITS = ("fit", "holdout")
# The architectures edgec.bench.estimate_refs describes op by op (a profile's own measurements must
# be of one of them; tests/test_estimate.py checks that the two lists agree).
MODELS = ("MobileNet v1 1.0 224", "MobileNet v2 1.0 224", "MobileNet v3 Large 1.0", "MobileNet v3 Small 1.0",
          *(f"EfficientNet-Lite{n}" for n in range(5)))


@dataclass(frozen=True)
class RefRow:
    model: str
    device: str
    runtime: str
    precision: str
    threads: int | None
    latency_ms: float
    macs_millions: float | None
    conditions: str
    source: str

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@functools.lru_cache(maxsize=None)
def _rows() -> tuple[tuple[str, RefRow], ...]:
    from importlib import resources

    text = resources.files("edgec.profiles").joinpath(TABLE).read_text()
    out = []
    for r in csv.DictReader(io.StringIO(text)):
        split = (r.get("split") or "fit").strip()
        if split not in SPLITS:
            raise ValueError(f"targets/{TABLE}: split {split!r} of {r['model']} on {r['device']} is not "
                             f"one of {', '.join(SPLITS)}")
        out.append((split, RefRow(r["model"], r["device"], r["runtime"], r["precision"],
                                  int(r["threads"]) if r["threads"].strip().isdigit() else None,
                                  float(r["latency_ms"]), float(r["macs_millions"]) if r["macs_millions"] else None,
                                  r["conditions"], r["source"])))
    return tuple(out)


@functools.lru_cache(maxsize=None)
def load_table(split: str = "fit") -> tuple[RefRow, ...]:
    """The rows of one split: ``fit`` (what the estimator is fitted on), ``holdout``, or ``all``."""
    return tuple(row for s, row in _rows() if split in ("all", s))


def reference_rows(device: str, runtime: str) -> list[RefRow]:
    """The fitted rows of one device and runtime (what a profile's ``reference`` section names)."""
    return [r for r in load_table() if r.device == device and r.runtime == runtime]
