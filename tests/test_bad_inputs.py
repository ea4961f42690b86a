"""The bad-input corpus: each case exits with its documented code, prints one line without a
traceback, and leaves the output directory exactly as it was."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgec.cli.main import main


def _snapshot(d: Path):
    if not d.exists():
        return None
    return sorted((p.relative_to(d).as_posix(), p.read_bytes() if p.is_file() else b"")
                  for p in d.rglob("*"))


def _onnx_unsupported(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="relu0"),
             helper.make_node("FancyOp", ["a"], ["b"], name="fancy1", domain="com.acme"),
             helper.make_node("FancyOp", ["b"], ["c"], name="fancy2", domain="com.acme"),
             helper.make_node("NotAnOnnxOp", ["c"], ["y"], name="mystery3")]
    graph = helper.make_graph(nodes, "g", [x], [y])
    # IR 10, as exporters write it (onnx 1.19's default IR 12 is newer than onnxruntime 1.23 reads)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.acme", 1)],
                              ir_version=10)
    onnx.save(model, str(path))
    return path


def _onnx_dynamic(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "height", "width"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, "height", "width"])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10), str(path))
    return path


@pytest.fixture(scope="module")
def corpus(models, tmp_path_factory):
    import torch

    import tiny_models as tm

    d = tmp_path_factory.mktemp("bad")
    pt = (models / "cnn.pt").read_bytes()
    (d / "truncated.pt").write_bytes(pt[: len(pt) // 2])
    (d / "garbage.pt").write_bytes(b"\x13\x37 not a model " * 100)
    import onnx

    good_onnx = d / "good.onnx"
    torch.onnx.export(tm.seeded(tm.TinyCNN), tm.cnn_inputs(), str(good_onnx), dynamo=False, opset_version=17)
    ob = good_onnx.read_bytes()
    (d / "truncated.onnx").write_bytes(ob[: len(ob) // 3])
    (d / "garbage.onnx").write_bytes(b"\xff\xfe garbage " * 50)
    del onnx
    good_tfl = d / "good.tflite"
    main(["build", str(models / "cnn.pt"), "-o", str(d / "tfl_build"), "--variants", "fp32", "-q",
          "--synthetic-validation", "--cache-dir", str(d / "cache")])
    tb = (d / "tfl_build" / "model_fp32.tflite").read_bytes()
    good_tfl.write_bytes(tb)
    (d / "truncated.tflite").write_bytes(tb[: len(tb) // 2])
    (d / "garbage.tflite").write_bytes(b"TFL3" * 10)
    (d / "onnx_named.tflite").write_bytes(ob)
    (d / "empty.onnx").write_bytes(b"")
    (d / "not_a_savedmodel").mkdir()
    (d / "not_a_savedmodel" / "variables.txt").write_text("hello")
    (d / "model.txt").write_text("what is this")
    torch.save(tm.seeded(tm.TinyCNN), str(d / "pickled.pth"))
    torch.save(tm.seeded(tm.TinyCNN).state_dict(), str(d / "state_dict.pth"))
    _onnx_unsupported(d / "unsupported.onnx")
    _onnx_dynamic(d / "dynamic.onnx")
    (d / "a_file").write_text("x")
    return d


CASES = [
    # (id, model, extra args, exit code, words the message must contain)
    ("truncated_pt", "truncated.pt", [], 3, ["truncated.pt", "truncated or corrupt"]),
    ("garbage_pt", "garbage.pt", [], 3, ["garbage.pt"]),
    ("truncated_onnx", "truncated.onnx", [], 3, ["truncated.onnx", "ONNX"]),
    ("garbage_onnx", "garbage.onnx", [], 3, ["garbage.onnx"]),
    ("truncated_tflite", "truncated.tflite", [], 3, ["truncated.tflite"]),
    ("garbage_tflite", "garbage.tflite", [], 3, ["garbage.tflite"]),
    ("wrong_extension", "onnx_named.tflite", [], 3, ["onnx_named.tflite"]),
    ("unknown_extension", "model.txt", [], 3, ["model.txt", "unrecognised"]),
    ("empty_file", "empty.onnx", [], 3, ["empty.onnx", "empty"]),
    ("missing_file", "does_not_exist.onnx", [], 3, ["does_not_exist.onnx", "not found"]),
    ("not_a_savedmodel", "not_a_savedmodel", [], 3, ["not_a_savedmodel", "SavedModel"]),
    ("unsupported_ops", "unsupported.onnx", [], 4, ["com.acme::FancyOp at fancy1, fancy2", "NotAnOnnxOp at mystery3",
                                                   "2 unsupported op type(s) in 3 node(s)"]),
    ("dynamic_dim", "dynamic.onnx", [], 4, ["dynamic", "--input-shape"]),
    ("pickle_untrusted", "pickled.pth", [], 3, ["pickled.pth", "--trust-pickle"]),
    ("state_dict", "state_dict.pth", ["--trust-pickle"], 3, ["state_dict.pth", "--factory"]),
    ("unknown_target", "good.onnx", ["--target", "rpi9000"], 6, ["rpi9000", "known targets"]),
    ("bad_variant", "good.onnx", ["--variants", "fp8"], 2, ["fp8"]),
    ("bad_route", "good.onnx", ["--route", "onnx,keras,tflite"], 2, ["onnx->keras"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, corpus, capsys, tmp_path):
    _, model, extra, code, words = case
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user file")
    before = _snapshot(out)
    rc = main(["build", str(corpus / model), "-o", str(out), "-q", "--cache-dir", str(tmp_path / "cache"),
               "--synthetic-validation", *extra])
    err = capsys.readouterr().err
    assert rc == code, err
    lines = [ln for ln in err.splitlines() if ln.startswith("edgec:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0], lines[0]
    assert _snapshot(out) == before
    assert not list(tmp_path.glob(".out.edgec-*"))


def test_unwritable_out_fails_before_work(corpus, capsys, tmp_path):
    for target in (corpus / "a_file", corpus / "a_file" / "sub", Path("/proc/edgec-out")):
        rc = main(["build", str(corpus / "good.onnx"), "-o", str(target), "-q"])
        err = capsys.readouterr().err
        assert rc == 7, err
        assert str(target) in err and "Traceback" not in err
    assert (corpus / "a_file").read_text() == "x"


def test_debug_shows_traceback(corpus, capsys):
    rc = main(["build", str(corpus / "truncated.onnx"), "--debug", "-q", "-o", "/tmp/edgec-never"])
    assert rc == 3
    assert "Traceback" in capsys.readouterr().err


def test_real_cli_process_exit_code(corpus, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "edgec.cli.main", "build", str(corpus / "garbage.tflite"),
                           "-o", str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("edgec:")]
    assert len(lines) == 1 and lines[0].startswith("edgec: input error:")
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def test_onnx_newer_than_onnxruntime_is_refused_before_converting(tmp_path, capsys):
    """IR 12 (onnx 1.19's default) is newer than onnxruntime 1.23 reads: refused up front, exit 4."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    path = tmp_path / "new.onnx"
    onnx.save(helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y]),
                                opset_imports=[helper.make_opsetid("", 17)], ir_version=12), str(path))
    rc = main(["build", str(path), "-o", str(tmp_path / "out"), "-q", "--cache-dir", str(tmp_path / "c"),
               "--synthetic-validation"])
    err = capsys.readouterr().err
    assert rc == 4 and "cannot load this model's versions (IR 12" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
