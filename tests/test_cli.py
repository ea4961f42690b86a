"""The CLI: start-up stays light, commands print what scripts and people need."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgec.cli.main import main

HEAVY = ("torch", "tensorflow", "onnx2tf", "mediapipe", "keras", "onnx")


@pytest.mark.parametrize("argv", [["--help"], ["targets"], ["targets", "--json"], ["targets", "show", "rpi"]])
def test_light_commands_import_no_framework(argv):
    code = ("import sys, runpy; sys.argv = ['edgec'] + %r\n"
            "from edgec.cli.main import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print('HEAVY=' + ','.join(m for m in %r if m in sys.modules))" % (argv, HEAVY))
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "HEAVY=", proc.stdout
    imported = {ln.split("|")[-1].strip() for ln in proc.stderr.splitlines() if ln.startswith("import time:")}
    assert not imported & set(HEAVY)


def test_targets_list_and_show(capsys):
    assert main(["targets", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = {r["name"] for r in rows}
    assert {"rpi", "rpi4", "rpi5", "android-arm64-cpu", "android-gpu", "android-nnapi", "desktop-cpu",
            "desktop-gpu"} <= names
    assert next(r for r in rows if r["name"] == "rpi")["alias_of"] == "rpi4"
    assert main(["targets", "show", "rpi", "--json"]) == 0
    prof = json.loads(capsys.readouterr().out)
    assert prof["name"] == "rpi4" and prof["runtime"]["on_device"].startswith("ai-edge-litert")


def test_inspect_every_format(models, cache_dir, tmp_path, capsys):
    assert main(["build", str(models / "two_input.pt"), "-o", str(tmp_path / "b"), "-q", "--variants", "fp32",
                 "--synthetic-validation", "--cache-dir", str(cache_dir)]) == 0
    capsys.readouterr()
    b = tmp_path / "b"
    expect = {models / "two_input.pt": "torchscript", b / "model.onnx": "onnx", b / "saved_model": "saved_model",
              b / "model_fp32.tflite": "tflite"}
    for path, fmt in expect.items():
        assert main(["inspect", str(path), "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["format"] == fmt
        assert info["op_count"] > 0 and info["op_histogram"]
        assert info["parameters"] > 0 and info["parameter_bytes"] > 0, fmt
        if fmt != "torchscript" or True:
            assert [i["name"] for i in info["inputs"]][:1], fmt
    assert main(["inspect", str(b / "model_fp32.tflite")]) == 0
    text = capsys.readouterr().out
    assert "CONV_2D" in text and "parameters:" in text


def test_dry_run_and_config_replay(models, tmp_path, capsys):
    model = str(models / "cnn.pt")
    assert main(["build", model, "--target", "rpi", "--dry-run", "--variants", "fp32,fp16"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["route"] == ["torchscript_to_onnx", "onnx_to_tf", "tf_to_tflite"]
    assert plan["config"]["variants"] == ["fp32", "fp16"] and plan["config"]["target"] == "rpi"
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(plan["config"]))
    assert main(["build", "--config", str(cfg), "--dry-run", "--target", "rpi5"]) == 0
    replay = json.loads(capsys.readouterr().out)
    assert replay["config"]["target"] == "rpi5"  # CLI > config file
    assert replay["config"]["variants"] == ["fp32", "fp16"] and replay["config"]["model"] == model


def test_input_shape_flag_parsing(capsys):
    assert main(["build", "m.onnx", "--input-shape", "x=1x3", "--input-shape", "ids=1x32:int64", "--dry-run"]) != 0
    assert main(["build", "x.onnx", "--input-shape", "bad", "--dry-run"]) == 2
    assert "NAME=DxDxD" in capsys.readouterr().err


def test_inspect_keras_pt2_and_pickle(tmp_path, capsys):
    import keras
    import torch

    import tiny_models as tm

    inp = keras.Input((5,), name="features")
    keras.Model(inp, keras.layers.Dense(3)(inp)).save(str(tmp_path / "m.keras"))
    torch.export.save(torch.export.export(tm.seeded(tm.TinyCNN), tm.cnn_inputs()), str(tmp_path / "m.pt2"))
    torch.save(tm.seeded(tm.TinyCNN), str(tmp_path / "m.pth"))
    for name, fmt, extra in (("m.keras", "keras", []), ("m.pt2", "exported_program", []),
                             ("m.pth", "torch_module", ["--trust-pickle"])):
        assert main(["inspect", str(tmp_path / name), "--json", *extra]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["format"] == fmt and info["parameters"] > 0 and info["op_count"] > 0
    assert main(["inspect", str(tmp_path / "m.pth")]) == 3
    assert "--trust-pickle" in capsys.readouterr().err
