"""The build's data, resolved and checked before any conversion runs: calibration samples for the
full-integer variants (int8, int16x8) and validation samples for the parity ledger.

Random data is never used silently: calibration falls back to it only with
``--synthetic-calibration`` (a loud warning, and ``"synthetic": true`` in the manifest), validation
only with ``--synthetic-validation`` (the ledger and its table say "synthetic"). Calibration and
validation samples never overlap: one source given for both is split, two sources sharing a sample
are refused.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from edgec.data import datasets
from edgec.data.datasets import Dataset, Preprocess
from edgec.errors import UsageError
from edgec.formats import Format, TensorSpec
from edgec.passes.quantize import needs_calibration

MAX_VALIDATION = 500       # real validation samples used when --validation-samples is not given
SYNTHETIC_VALIDATION = 8   # synthetic validation samples when --validation-samples is not given
_SYNTHETIC_CALIBRATION_SEED = 100_003  # keeps synthetic calibration apart from synthetic validation


def _stderr_warning(text: str) -> None:
    sys.stderr.write(f"edgec: WARNING: {text}\n")
    sys.stderr.flush()


@dataclass
class BuildData:
    calibration: Dataset | None
    validation: Dataset | None
    preprocess: Preprocess
    warnings: list[str] = field(default_factory=list)
    _tmp: tempfile.TemporaryDirectory | None = None
    _representative: Path | None = None

    def record(self) -> dict:
        cal = self.calibration.record() if self.calibration else None
        val = self.validation.record() if self.validation else None
        return {"calibration": cal, "validation": val, "preprocess": self.preprocess.to_dict(),
                "warnings": list(self.warnings)}

    def quantization(self, variant: str, io_type: str, saved_model, inputs: list[TensorSpec]) -> tuple[dict, dict]:
        """The cache-key settings and the representative-data file for one full-integer variant."""
        from edgec.passes import quantize

        if self._representative is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="edgec-calibration-")
            io_map = saved_model.meta.get("io") or identity_io(inputs)
            self._representative = quantize.write_representative(
                self.calibration, io_map, Path(self._tmp.name) / "representative.npz")
        return quantize.key_settings(variant, io_type, self.calibration), {"calibration": self._representative}

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp, self._representative = None, None


def identity_io(inputs: list[TensorSpec], outputs: list[TensorSpec] = ()) -> dict:
    """The I/O map of a SavedModel that keeps the source's layout (its names sanitized)."""
    from edgec.runtime.loaders import sanitize

    return {"inputs": [{"source": s.name, "name": sanitize(s.name), "perm": None} for s in inputs],
            "outputs": [{"source": s.name, "name": sanitize(s.name), "perm": None} for s in outputs]}


def resolve(cfg, variants, inputs: list[TensorSpec], src_format: Format, route: list, warn=None) -> BuildData:
    """Load and check the calibration and validation data a build needs; refuse what is missing."""
    warn = warn or _stderr_warning
    pre = Preprocess.from_config(cfg)
    quant = [v for v in variants if needs_calibration(v)]
    if quant and route and route[-1].name != "tf_to_tflite" and not route[-1].calibrates:
        raise UsageError(f"variant(s) {', '.join(quant)} are made from a SavedModel by TFLiteConverter; the "
                         f"route ends with {route[-1].name}", hint="drop --route, or build fp32/fp16/dynamic_int8")
    data = BuildData(None, None, pre)
    validate = src_format is not Format.TFLITE
    shared = quant and validate and datasets.same_source(cfg.calibration_data, cfg.validation_data)
    if shared:
        limit = cfg.validation_samples or MAX_VALIDATION
        both = datasets.load(cfg.calibration_data, inputs, pre, limit=cfg.calibration_samples + limit,
                             role="calibration and validation")
        data.calibration, data.validation = datasets.split(both, cfg.calibration_samples, cfg.seed, limit)
        return data
    constraints = _Constraints(cfg, src_format)
    if quant:
        data.calibration = _calibration(cfg, quant, inputs, pre, warn, data.warnings, constraints)
    if validate:
        data.validation = _validation(cfg, inputs, pre, data.warnings, constraints)
    if data.calibration is not None and data.validation is not None:
        datasets.check_disjoint(data.calibration, data.validation)
    return data


class _Constraints:
    """The value constraints an ONNX source's graph puts on its inputs (index ranges, non-zero
    divisors), read once and only if synthetic data is drawn; other sources have none known."""

    def __init__(self, cfg, src_format: Format):
        self.cfg, self.src_format, self._found = cfg, src_format, None

    def get(self) -> dict | None:
        if self.src_format is not Format.ONNX or not self.cfg.model:
            return None
        if self._found is None:
            from edgec.data.constraints import input_constraints
            from edgec.runtime.loaders import load_onnx

            self._found = input_constraints(load_onnx(Path(self.cfg.model)))
        return self._found


def _calibration(cfg, quant, inputs, pre, warn, warnings, constraints: _Constraints) -> Dataset:
    if cfg.calibration_data:
        return datasets.load(cfg.calibration_data, inputs, pre, limit=cfg.calibration_samples, role="calibration")
    if not cfg.synthetic_calibration:
        raise UsageError(f"variant(s) {', '.join(quant)} need calibration data",
                         hint="pass --calibration-data PATH (image folder, .npy/.npz, or package.module:function) "
                              "of real inputs; --synthetic-calibration calibrates on random data instead "
                              "(usually a poor model)")
    text = (f"calibrating {', '.join(quant)} on {cfg.calibration_samples} SYNTHETIC random samples "
            "(--synthetic-calibration): quantization ranges will not match real inputs; the manifest "
            "marks the calibration as synthetic")
    warn(text)
    warnings.append(text)
    return datasets.synthetic(inputs, cfg.calibration_samples, cfg.seed + _SYNTHETIC_CALIBRATION_SEED,
                              constraints.get())


def _validation(cfg, inputs, pre, warnings, constraints: _Constraints) -> Dataset:
    if cfg.validation_data:
        return datasets.load(cfg.validation_data, inputs, pre, limit=cfg.validation_samples or MAX_VALIDATION,
                             role="validation")
    if not cfg.synthetic_validation:
        raise UsageError("no validation data for the parity ledger",
                         hint="pass --validation-data PATH (real inputs: image folder, .npy/.npz, or "
                              "package.module:function), or --synthetic-validation to validate on random "
                              "inputs (the ledger is then marked 'synthetic')")
    warnings.append("parity validated on synthetic random inputs (--synthetic-validation)")
    return datasets.synthetic(inputs, cfg.validation_samples or SYNTHETIC_VALIDATION, cfg.seed, constraints.get())
