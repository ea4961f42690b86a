"""The human summary after a build: every table's columns line up (one helper, ``align``), a variant
measurably slower than fp32 is flagged with the ratio, a left-out default variant says why, and an
incompatible variant names the op. Rendered from a manifest written here (no framework needed)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from edgec.report.summary import render_summary
from edgec.validate.table import align, render_ledger


def _bench(p50: float, seed: int, compat: dict | None = None) -> dict:
    samples = np.random.default_rng(seed).lognormal(np.log(p50), 0.03, 200)
    return {"available": True, "p50_ms": float(np.median(samples)), "p90_ms": float(np.percentile(samples, 90)),
            "runs": 200, "samples_ms": samples.tolist(), "cached": seed == 3,
            "conditions": {"threads": 2, "delegate": "xnnpack"},
            "estimate": {"estimated": True, "available": True, "device": "Raspberry Pi 4 (Cortex-A72)",
                         "p50_ms": 62.1 * p50 / 3.0, "low_ms": 53.6, "high_ms": 80.2},
            "compat": compat or {"checked": True, "ok": True}}


def _metrics(scale: float) -> dict:
    return {"max_abs": 1e-5 * scale, "mean_abs": 1e-6 * scale, "max_rel": 1e-3 * scale, "cosine": 1 - 1e-6 * scale,
            "cosine_min": 1 - 1e-5 * scale, "snr_db": 110.0 / scale, "top1": 1.0, "top1_confident": 1.0, "top5": 1.0}


def _stage(name: str, previous: str, scale: float, ok: bool = True) -> dict:
    out = {"output": "logits", "ok": ok, "misses": [] if ok else ["cosine 0.9 < 0.99"], **_metrics(scale),
           "vs_previous": _metrics(scale / 2)}
    return {"stage": name, "previous": previous, "budget": {"cosine": 0.99}, "outputs": [out]}


def _manifest() -> dict:
    step = lambda name, seconds, variant=None, cached=False: {  # noqa: E731
        "name": name, "variant": variant, "seconds": seconds, "cached": cached, "tools": {"tensorflow": "2.19.0"}}
    fc12 = {"checked": True, "ok": False, "on_device": "tflite-runtime 2.14.0",
            "too_new": [{"op": "FULLY_CONNECTED", "version": 12, "needs": "2.17.0"}]}
    return {
        "edgec_version": "0.1.0", "source": {"path": "net.pt", "factory": None},
        "target": {"name": "rpi4", "device": {"name": "Raspberry Pi 4 Model B"},
                   "runtime": {"name": "tflite", "delegate": "xnnpack"}},
        "route": ["torchscript", "onnx", "saved_model", "tflite"],
        "steps": [step("torchscript_to_onnx", 2.5), step("onnx_to_tf", 104.7), step("tf_to_tflite", 1.7, "fp32"),
                  step("tf_to_tflite", 0.0, "dynamic_int8", cached=True), step("tf_to_tflite", 14.2, "int8")],
        "tflite_io": {"inputs": [{"source": "image", "source_shape": [1, 3, 224, 224], "shape": [1, 224, 224, 3],
                                  "dtype": "float32", "layout": "NHWC"}],
                      "outputs": [{"source": "logits_of_the_model", "source_shape": [1, 1000], "shape": [1, 1000],
                                   "dtype": "float32"}]},
        "artifacts": [{"path": p, "format": f, "bytes": b, "sha256": "0123456789abcdef"} for p, f, b in
                      (("model.onnx", "onnx", 18_500_000), ("saved_model", "saved_model", 18_600_000),
                       ("model_fp32.tflite", "tflite", 18_400_000),
                       ("model_dynamic_int8.tflite", "tflite", 5_000_000), ("model_int8.tflite", "tflite", 900))],
        "skipped_variants": [{"variant": "fp16", "reason": "an example reason"}],
        "calibration": None,
        "parity": {"ok": True, "inputs": "8 samples", "stages": [
            _stage("onnx", "source", 1.0), _stage("tflite:fp32", "onnx", 2.0),
            _stage("tflite:dynamic_int8", "tflite:fp32", 900.0), _stage("tflite:int8", "tflite:fp32", 3000.0)]},
        "bench": {"fp32": _bench(3.0, 1), "dynamic_int8": _bench(7.0, 2, fc12), "int8": _bench(1.2, 3),
                  "fp16": {"available": False, "p50_ms": None, "reason": "an example of a variant not measured"}},
    }


def _block(text: str, first: str, n: int) -> list[str]:
    lines = text.splitlines()
    i = next(k for k, ln in enumerate(lines) if ln.lstrip().startswith(first))
    return lines[i:i + n]


def _starts(line: str) -> list[int]:
    """Where each column starts: the first character after a run of two or more spaces."""
    return [m.end() for m in re.finditer(r"\S\s{2,}(?=\S)", line)]


def test_align_pads_columns_and_lets_a_short_row_run_on():
    lines = align([["a", "1.5", "x"], ["long name", "12.25", "y"], ["b", "note that is long"]], right=(1,))
    assert lines == ["  a            1.5  x", "  long name  12.25  y", "  b          note that is long"]


def _right_aligned_under(lines: list[str], header: str, col: str) -> None:
    end = header.index(col) + len(col)
    for ln in lines:
        assert ln[end - 1] != " " and ln[end:end + 1] in (" ", ""), (col, ln)


def test_summary_tables_align():
    text = render_summary(_manifest(), Path("out"))
    steps = _block(text, "torchscript_to_onnx", 5)
    assert len({re.search(r"(\d+\.\ds|cached)", ln).end() for ln in steps}) == 1   # times right-aligned
    assert len({ln.index("tensorflow") for ln in steps}) == 1
    arts = _block(text, "model.onnx", 5)
    assert len({ln.index("sha256") for ln in arts}) == 1 and len({ln.index("B  sha256") for ln in arts}) == 1
    io = _block(text, "input", 2)
    assert len({ln.index("-> tflite") for ln in io}) == 1 and len({ln.index("float32") for ln in io}) == 1
    lat = _block(text, "variant", 5)
    measured = [ln for ln in lat[1:] if "not measured" not in ln]
    assert len(measured) == 3
    for col in ("p50 ms", "p90 ms", "runs"):
        _right_aligned_under(measured, lat[0], col)
    check = lat[0].index("runtime check")
    assert all(ln[check:].startswith(("ok", "INCOMPATIBLE")) and ln[check - 1] == " " for ln in measured), lat


def test_ledger_columns_align_with_long_stage_names():
    lines = render_ledger(_manifest()["parity"])[1:]
    header, rows = lines[0], lines[1:]
    assert any(ln.lstrip().startswith("tflite:dynamic_int8") for ln in rows)
    for col in ("max_abs", "mean_abs", "max_rel", "cosine", "cos min", "SNR dB", "top1", "top1 p≥.5", "top5"):
        _right_aligned_under(rows, header, col)
    verdicts = [ln for ln in rows if "(cosine 0.99)" in ln]
    assert len({ln.index("ok (cosine") for ln in verdicts}) == 1 and len(verdicts) == 4


def test_slower_variant_is_flagged_with_the_ratio():
    text = render_summary(_manifest(), Path("out"))
    flags = [ln for ln in text.splitlines() if "slower than fp32" in ln]
    assert len(flags) == 1 and "dynamic_int8 is 2.3x slower than fp32 here" in flags[0], flags
    assert "int8 is" not in flags[0].replace("dynamic_int8", "")


def test_equal_speed_is_not_flagged():
    m = _manifest()
    m["bench"]["dynamic_int8"] = _bench(3.05, 4)
    assert "slower than fp32" not in render_summary(m, Path("out"))


def test_left_out_and_incompatible_variants_say_why():
    text = render_summary(_manifest(), Path("out"))
    assert "fp16 left out: an example reason" in text
    assert "INCOMPATIBLE with tflite-runtime 2.14.0: FULLY_CONNECTED v12 (needs 2.17.0)" in text
    assert "not measured: an example of a variant not measured" in text
