"""The build's parity ledger, as the pipeline calls it (the ledger itself: ``edgec.validate.ledger``;
the table: ``edgec.validate.table``)."""

from __future__ import annotations

from edgec.formats import Artifact, Format, TensorSpec


def run_parity(build, src: Artifact, chain: list[Artifact], tflites: list[Artifact], inputs: list[TensorSpec],
               outputs: list[TensorSpec]) -> dict:
    if src.format is Format.TFLITE:
        return {"ok": True, "inputs": "none", "synthetic": False, "stages": [],
                "note": "the source is a TFLite model: there is no other stage to compare with"}
    from edgec.validate.ledger import run_ledger

    build.final_ledger = True  # --parity-on-device adds its device rows to this ledger only (not route checks)
    try:
        return run_ledger(build, src, chain, tflites, inputs, outputs, build.data.validation)
    finally:
        build.final_ledger = False
