"""The litert-torch edge in its own environment (.venv-litert): eager modules (--factory) and .pt2
through `--route torch,tflite`, its quantized variants, layout and Transpose count, tool versions
of that environment in the cache key, TorchScript's stated reason, a missing environment, and
`edgec doctor`. Tiny models built in code; the environment must exist (scripts/setup.sh makes it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import edgec
import tiny_models as tm
from conftest import run_tflite
from edgec.cli.main import main
from edgec.convert import envs
from edgec.errors import DependencyError, UnsupportedModelError

VARIANTS = ("fp32", "fp16", "dynamic_int8", "int8")


def _cfg(out: Path, cache: Path, **kw) -> edgec.BuildConfig:
    base = dict(factory="tiny_models:cnn_factory", target="rpi4", out=str(out), cache_dir=str(cache),
                route=("torch", "tflite"), synthetic_validation=True, synthetic_calibration=True,
                calibration_samples=16, bench=False)
    base.update(kw)
    return edgec.BuildConfig(**base)


@pytest.fixture(scope="module")
def factory_build(tmp_path_factory, cache_dir):
    out = tmp_path_factory.mktemp("litert") / "out"
    res = edgec.build(_cfg(out, cache_dir, variants=VARIANTS))
    return out, res.manifest


def test_environment_is_there_and_separate():
    env = envs.get("litert")
    assert env.python.is_file(), f"{env.python} missing: run bash scripts/setup.sh"
    v = envs.versions(env)
    assert v["litert-torch"] == "0.10.0" and v["torch"].startswith("2.13.0")
    assert v["numpy"].startswith("2.")                    # what keeps it out of edgec's venv (numpy 1.26.4)
    assert envs.versions(envs.get("edgec"), ("numpy",))["numpy"] == "1.26.4"


def test_factory_module_converts_with_every_variant(factory_build):
    out, m = factory_build
    assert m["route"] == ["torch_module", "tflite"]
    steps = {s["variant"]: s for s in m["steps"] if s["name"] == "torch_module_to_tflite"}
    assert set(steps) == set(VARIANTS)
    for s in steps.values():  # the versions of the litert environment key the step, not edgec's venv
        assert s["tools"]["litert-torch"] == "0.10.0" and s["tools"]["ai-edge-quantizer"] == "0.10.0"
        assert s["tools"]["ai-edge-litert"] == "2.3.0" and s["environment"] == "litert"
        assert s["family"] == "litert-torch"
    assert steps["int8"]["recipe"] == "static_wi8_ai8" and steps["int8"]["quantization"]["calibration_samples"] == 16
    assert steps["fp16"]["recipe"].startswith("float_casting")
    from edgec.formats.tflite import read_tflite

    int8 = read_tflite(out / "model_int8.tflite")   # --quant-io float (the default): float I/O, int8 inside
    assert int8.inputs[0].dtype == "float32" and "QUANTIZE" in int8.histogram
    row = m["tflite_io"]["inputs"][0]
    assert row["shape"] == [1, 32, 32, 3] and row["layout"] == "NHWC"   # channels-last, as onnx2tf's routes
    assert steps["fp32"]["input_layout"].startswith("NHWC")
    assert steps["fp32"]["transposes"] == steps["fp32"]["op_histogram"].get("TRANSPOSE", 0)
    sizes = {a["variant"]: a["bytes"] for a in m["artifacts"] if a["format"] == "tflite"}
    assert set(sizes) == set(VARIANTS)
    assert m["parity"]["ok"], [s for s in m["parity"]["stages"] if not s["ok"]]
    fp32 = next(s for s in m["parity"]["stages"] if s["stage"] == "tflite:fp32")
    assert max(r["max_abs"] for r in fp32["outputs"]) < 1e-4


def test_fp32_matches_torch_independently(factory_build):
    import torch

    out, m = factory_build
    model, (x,) = tm.cnn_factory()
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = model(x).numpy()
    got = run_tflite(out / "model_fp32.tflite", m, {m["inputs"][0]["name"]: x.numpy()})[0]
    assert float(np.max(np.abs(got - ref))) < 1e-4


def test_rebuild_is_cached(factory_build, cache_dir, tmp_path):
    res = edgec.build(_cfg(tmp_path / "again", cache_dir, variants=VARIANTS))
    steps = [s for s in res.manifest["steps"] if s["name"] == "torch_module_to_tflite"]
    assert steps and all(s["cached"] for s in steps)


def test_exported_program_source(tmp_path, cache_dir):
    import torch

    model, args = tm.cnn_factory()
    pt2 = tmp_path / "cnn.pt2"
    torch.export.save(torch.export.export(model, args), str(pt2))
    res = edgec.build(_cfg(tmp_path / "out", cache_dir, factory=None, model=str(pt2), variants=("fp32",)))
    m = res.manifest
    assert m["route"] == ["exported_program", "tflite"] and m["parity"]["ok"]
    assert m["steps"][-1]["name"] == "exported_program_to_tflite"
    assert m["tflite_io"]["inputs"][0]["layout"] == "NHWC"


def test_keep_layout_keeps_nchw(tmp_path, cache_dir):
    res = edgec.build(_cfg(tmp_path / "out", cache_dir, variants=("fp32",), keep_layout=True))
    row = res.manifest["tflite_io"]["inputs"][0]
    assert row["shape"] == [1, 3, 32, 32]
    assert res.manifest["parity"]["ok"]


def test_torchscript_states_why_litert_torch_is_not_a_route(models, tmp_path, cache_dir):
    res = edgec.build(edgec.BuildConfig(model=str(models / "cnn.pt"), target="rpi4", out=str(tmp_path / "out"),
                                        cache_dir=str(cache_dir), synthetic_validation=True, bench=False,
                                        variants=("fp32",)))
    rs = res.manifest["route_search"]
    assert [r["converter"] for r in rs["not_feasible"]] == ["litert-torch"]
    assert "torch.export, which cannot read a TorchScript file" in rs["not_feasible"][0]["reason"]
    assert all("tflite" != a["route"][1] for a in rs["attempts"])


class Branchy(torch.nn.Module):
    """A module whose branch depends on the input's values: torch.export cannot trace it."""

    def forward(self, x):
        return x * 2 if float(x.sum()) > 0 else x - 1


def data_dependent_factory():
    return Branchy().eval(), (torch.ones(1, 3, 8, 8),)


def test_module_torch_export_cannot_trace_is_unsupported(tmp_path, cache_dir):
    with pytest.raises(UnsupportedModelError) as info:
        edgec.build(_cfg(tmp_path / "out", cache_dir, factory="test_litert_torch:data_dependent_factory",
                         variants=("fp32",)))
    assert "torch.export cannot export the module for litert-torch" in info.value.what


def test_missing_environment_says_how_to_create_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EDGEC_ENV_LITERT", str(tmp_path / "no-such-venv"))
    with pytest.raises(DependencyError) as info:
        edgec.build(_cfg(tmp_path / "out", tmp_path / "cache", variants=("fp32",)))
    assert "'litert' converter environment is missing" in info.value.what
    assert "bash scripts/setup.sh" in info.value.hint
    code = main(["doctor"])
    assert code == 9
    err = capsys.readouterr()
    assert "litert: BROKEN" in err.out and "bash scripts/setup.sh" in err.err


def test_doctor_lists_both_environments(capsys):
    assert main(["doctor", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    by = {e["name"]: e for e in data["environments"]}
    assert set(by) == {"edgec", "litert"}
    assert by["litert"]["ok"] and by["litert"]["imports"]["litert_torch"]["ok"]
    assert by["litert"]["packages"]["litert-torch"] == "0.10.0"
    assert by["edgec"]["packages"]["onnx2tf"] == "1.29.24" and by["edgec"]["imports"]["tensorflow"]["ok"]


def test_a_child_that_dies_or_hangs_is_a_conversion_error(tmp_path):
    from edgec.errors import ConversionError

    env = envs.get("litert")
    dies = tmp_path / "dies.py"
    dies.write_text("import os, signal\nos.kill(os.getpid(), signal.SIGABRT)\n")
    with pytest.raises(ConversionError) as info:
        envs.run(env, dies, {"variant": "fp32"}, timeout=60, what="the test child")
    assert "died in the 'litert' environment (killed by SIGABRT)" in info.value.what
    hangs = tmp_path / "hangs.py"
    hangs.write_text("import time\ntime.sleep(30)\n")
    with pytest.raises(ConversionError) as info:
        envs.run(env, hangs, {"variant": "fp32"}, timeout=1, what="the test child")
    assert "ran past its 1 s limit" in info.value.what
