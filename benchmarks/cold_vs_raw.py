"""Cold edgec build vs. the raw tools run by hand, on the same TorchScript model, end to end.

edgec side:  edgec build model.pt --target desktop-cpu --variants fp32 -o OUT --cache-dir FRESH -q
raw side:    python -c "torch.onnx.export(...)"  (TorchScript exporter, opset 17, as edgec uses)
             onnx2tf -i model.onnx -o outdir      (venv bin on PATH; calibration sample in its cwd)

Both sides are timed as subprocesses, so each pays its own imports; repeats alternate the order.
Both produce an fp32 TFLite (onnx2tf also writes an fp16 one); edgec additionally writes a
SavedModel and runs its parity ledger (torch, ONNX Runtime, TF, TFLite on 4 inputs).
Target: median(edgec) / median(raw) <= 1.15.

    .venv/bin/python benchmarks/cold_vs_raw.py [--model efficientnet-lite0|tiny] [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import BIN, EDGEC, MODELS, median, run_timed, save_model

TARGET_RATIO = 1.15
CALIBRATION = "calibration_image_sample_data_20x128x128x3_float32.npy"
RAW_EXPORT = """
import sys, torch
model = torch.jit.load(sys.argv[1]).eval()
x = torch.randn(*map(int, sys.argv[3].split("x")))
torch.onnx.export(model, (x,), sys.argv[2], input_names=["input"], output_names=["output"],
                  opset_version=17, dynamo=False, do_constant_folding=True)
"""


def edgec_cold(model: Path, work: Path) -> float:
    work.mkdir()
    out, cache = work / "edgec-out", work / "edgec-cache"
    seconds = run_timed([EDGEC, "build", str(model), "--target", "desktop-cpu", "--variants", "fp32",
                         "-o", str(out), "--cache-dir", str(cache), "-q", "--synthetic-validation"])
    assert (out / "model_fp32.tflite").is_file(), "edgec wrote no model_fp32.tflite"
    return seconds


def raw_by_hand(model: Path, shape: tuple[int, ...], work: Path) -> float:
    work.mkdir()
    rng = np.random.default_rng(0)  # written before the clock starts: onnx2tf would download it
    np.save(work / CALIBRATION, rng.random((20, 128, 128, 3), dtype=np.float32))
    t0 = time.perf_counter()
    run_timed([str(BIN / "python"), "-c", RAW_EXPORT, str(model), "model.onnx", "x".join(map(str, shape))], cwd=work)
    run_timed([str(BIN / "onnx2tf"), "-i", "model.onnx", "-o", "outdir"], cwd=work)
    seconds = time.perf_counter() - t0
    assert (work / "outdir" / "model_float32.tflite").is_file(), "onnx2tf wrote no model_float32.tflite"
    return seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=MODELS, default="efficientnet-lite0")
    ap.add_argument("--repeats", type=int, default=1, help="runs of each side (alternating order)")
    args = ap.parse_args()
    times: dict[str, list[float]] = {"edgec": [], "raw": []}
    with tempfile.TemporaryDirectory(prefix="edgec-bench-") as tmp:
        tmp = Path(tmp)
        model = tmp / "model.pt"
        shape = save_model(args.model, model)
        for i in range(args.repeats):
            order = ("edgec", "raw") if i % 2 == 0 else ("raw", "edgec")
            for side in order:
                work = tmp / f"{side}-{i}"
                t = edgec_cold(model, work) if side == "edgec" else raw_by_hand(model, shape, work)
                times[side].append(t)
                print(f"  run {i + 1} {side:<5} {t:7.2f} s", flush=True)
        steps = json.loads((tmp / "edgec-0" / "edgec-out" / "manifest.json").read_text())["steps"]
    e, r = median(times["edgec"]), median(times["raw"])
    ratio = e / r
    print(f"model {args.model} {shape}, {args.repeats} repeat(s) each")
    print("edgec steps (first run): " + ", ".join(
        f"{s['name']}{'[' + s['variant'] + ']' if s.get('variant') else ''} {s['build_seconds']:.1f}s" for s in steps))
    print(f"edgec cold (fp32 + SavedModel + parity ledger): median {e:7.2f} s")
    print(f"raw torch.onnx.export + onnx2tf (fp32 + fp16):  median {r:7.2f} s")
    print(f"ratio edgec/raw: {ratio:.3f} (target <= {TARGET_RATIO}) -> {'PASS' if ratio <= TARGET_RATIO else 'FAIL'}")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
