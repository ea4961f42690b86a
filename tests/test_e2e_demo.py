"""`edgec demo`, as a new user runs it: the rpi4 build of the real EfficientNet-Lite0 with calibration
photos, by default. It builds fp32 and full int8 (the variants an ARM CPU wants), nothing in it is
flagged incompatible with the Pi's runtime, the built model classifies a real photo, and the output
holds no framework log lines."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

# Framework log lines in any of the formats they print (absl, TensorFlow's own, TFLite's INFO, the
# converter's notes), written independently of edgec.logs so the check does not trust the filter.
FRAMEWORK = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d|^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] |^INFO: |^WARNING:absl|"
                       r"absl::|XNNPACK|cuDNN|cuBLAS|cuFFT|cuInit|oneDNN|TF_ENABLE|TensorRT|computation placer|"
                       r"Ignored output_format|MLIR V1|tensorflow/|fully_quantize")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if k != "EDGEC_NATIVE_LOGS"}
    res = subprocess.run([sys.executable, "-m", "edgec.cli.main", "demo", "-o", str(d / "out"),
                          "--cache-dir", str(d / "cache")], capture_output=True, text=True, env=env, timeout=1800)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res, d / "out", json.loads((d / "out" / "manifest.json").read_text())


def test_default_rpi4_variants_are_fp32_and_full_int8(demo):
    _, out, m = demo
    assert m["target"]["name"] == "rpi4"
    built = {a["variant"] for a in m["artifacts"] if a["format"] == "tflite"}
    assert built == {"fp32", "int8"}, built
    assert m["calibration"]["samples"] > 0 and not m["calibration"].get("synthetic")
    assert (out / "model_int8.tflite").is_file() and not (out / "model_dynamic_int8.tflite").exists()


def test_nothing_is_flagged_incompatible(demo):
    res, _, m = demo
    for variant, rec in m["bench"].items():
        if isinstance(rec, dict) and "compat" in rec:
            assert rec["compat"]["ok"], (variant, rec["compat"])
    assert "INCOMPATIBLE" not in res.stdout + res.stderr


def test_it_classifies_a_real_photo(demo):
    res, _, _ = demo
    assert "chelsea.png -> Egyptian cat" in res.stdout or "chelsea.png -> tabby" in res.stdout, res.stdout[-2000:]


def test_no_framework_log_lines(demo):
    res, _, _ = demo
    noisy = [line for line in (res.stdout + "\n" + res.stderr).splitlines() if FRAMEWORK.search(line)]
    assert not noisy, noisy[:20]
