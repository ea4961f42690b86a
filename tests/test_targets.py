"""Target profiles: every shipped profile validates; a wrong field is named."""

from __future__ import annotations

import pytest

from edgec.errors import TargetError
from edgec.targets import builtin_names, load_target


@pytest.mark.parametrize("name", builtin_names())
def test_every_profile_validates(name):
    t = load_target(name)
    assert t.description and t.runtime.name and t.variants
    assert "fp32" in t.parity


def test_alias():
    assert load_target("rpi").name == "rpi4"


BAD = [
    ("runtime:\n  name: tflite\n  delegate: warp\n  threads: 4\n  on_device: x\n", "runtime.delegate"),
    ("variants: [fp32, fp8]\n", "fp8"),
    ("colour: blue\n", "colour"),
    ("device:\n  name: x\n  cpu: y\n  isa: z\n  fp16_arithmetic: maybe\n  cores: 4\n", "device.fp16_arithmetic"),
    ("parity:\n  fp32: {atol: lots}\n", "parity.fp32.atol"),
]


@pytest.mark.parametrize("patch,field", BAD, ids=[b[1] for b in BAD])
def test_bad_profile_names_the_field(tmp_path, patch, field):
    import yaml

    base = yaml.safe_load(open(load_target("rpi4").source if False else __import__("edgec").targets._profiles_dir()
                               .joinpath("rpi4.yaml")))
    base.update(yaml.safe_load(patch))
    p = tmp_path / "board.yaml"
    p.write_text(yaml.safe_dump(base))
    with pytest.raises(TargetError, match=field.replace(".", r"\.")) as e:
        load_target(str(p))
    assert str(p) in str(e.value)


def test_user_profile_file(tmp_path):
    import shutil

    from edgec.targets import _profiles_dir

    p = tmp_path / "my-board.yaml"
    shutil.copyfile(str(_profiles_dir().joinpath("rpi5.yaml")), p)
    assert load_target(str(p)).name == "rpi5"
    with pytest.raises(TargetError, match="unknown target"):
        load_target("no-such-board")


# -- the default variants (edgec/targets/defaults.py) -------------------------------------------

from edgec.targets.defaults import choose_variants, unloadable  # noqa: E402


@pytest.mark.parametrize("name,with_data,without_data", [
    ("rpi4", ("fp32", "int8"), ("fp32",)),
    ("rpi5", ("fp32", "fp16", "int8"), ("fp32", "fp16")),
    ("android-arm64-cpu", ("fp32", "fp16", "int8"), ("fp32", "fp16")),
    ("android-gpu", ("fp32", "fp16"), ("fp32", "fp16")),
    ("android-nnapi", ("fp32", "int8"), ("fp32",)),
])
def test_default_variants_per_target(name, with_data, without_data):
    t = load_target(name)
    assert choose_variants(t, None, has_calibration=True) == (with_data, [])
    chosen, skipped = choose_variants(t, None, has_calibration=False)
    assert chosen == without_data
    assert [s["variant"] for s in skipped] == [v for v in with_data if v not in without_data]
    for s in skipped:
        assert "no calibration data" in s["reason"] and "--calibration-data" in s["reason"]


@pytest.mark.parametrize("name", ["rpi4", "rpi5", "android-arm64-cpu", "android-nnapi"])
def test_no_arm_target_defaults_to_dynamic_range(name):
    """dynamic_int8 runs slower than fp32 on XNNPACK and TF 2.19's cannot load on TFLite 2.16."""
    assert "dynamic_int8" not in load_target(name).variants


@pytest.mark.parametrize("name", ["rpi4", "rpi5", "android-arm64-cpu"])
def test_arm_cpu_fp16_default_follows_the_device(name):
    """fp16 is a default of an ARM CPU target exactly when its cores have fp16 arithmetic."""
    t = load_target(name)
    assert ("fp16" in t.variants) == t.device.fp16_arithmetic
    assert "int8" in t.variants and t.variants[0] == "fp32"


def test_rpi4_names_what_a_pi_user_installs_today():
    rt = load_target("rpi4").runtime
    assert rt.on_device_package == "ai-edge-litert" and rt.on_device.startswith("ai-edge-litert")


def test_explicit_variants_are_built_as_given_plus_fp32():
    t = load_target("rpi4")
    assert choose_variants(t, ("dynamic_int8",), has_calibration=False) == (("fp32", "dynamic_int8"), [])
    assert choose_variants(t, ("int8", "fp32"), has_calibration=False) == (("int8", "fp32"), [])
    from edgec.errors import UsageError

    with pytest.raises(UsageError, match="fp8"):
        choose_variants(t, ("fp8",), has_calibration=True)


def _old_pi(tmp_path):
    """rpi4 as a board still on the frozen tflite-runtime 2.14, listing dynamic_int8 by default."""
    import yaml

    from edgec.targets import _profiles_dir

    prof = yaml.safe_load(_profiles_dir().joinpath("rpi4.yaml").read_text())
    prof["name"] = "old-pi"
    prof["runtime"].update(on_device="tflite-runtime 2.14.0", on_device_package="tflite-runtime",
                           on_device_version="2.14.0")
    prof["variants"] = ["fp32", "fp16", "dynamic_int8"]
    p = tmp_path / "old-pi.yaml"
    p.write_text(yaml.safe_dump(prof))
    return load_target(str(p))


def test_a_default_the_runtime_cannot_load_is_left_out_with_the_reason(tmp_path):
    t = _old_pi(tmp_path)
    chosen, skipped = choose_variants(t, None, has_calibration=True)
    assert chosen == ("fp32", "fp16")
    (row,) = skipped
    assert row["variant"] == "dynamic_int8"
    assert "tflite-runtime 2.14.0" in row["reason"] and "FULLY_CONNECTED v12" in row["reason"]
    assert "2.17" in row["reason"]
    # Asked for explicitly, it is built (and the build's compatibility check flags it).
    assert choose_variants(t, ("dynamic_int8",), has_calibration=True) == (("fp32", "dynamic_int8"), [])


def test_unloadable_reads_the_builds_compat_records(tmp_path):
    t = load_target("rpi4")
    records = {"fp32": {"compat": {"ok": True}},
               "int8": {"compat": {"ok": True, "on_device": "ai-edge-litert 2.1.0"}},
               "dynamic_int8": {"compat": {"ok": False, "on_device": "tflite-runtime 2.14.0", "too_new": [
                   {"op": "FULLY_CONNECTED", "version": 12, "needs": "2.17.0", "nodes": ["fc"], "count": 1}]}}}
    paths = {v: tmp_path / f"model_{v}.tflite" for v in records}  # not read: the records answer
    (row,) = unloadable(t, paths, records)
    assert row["variant"] == "dynamic_int8" and "FULLY_CONNECTED v12 needs 2.17.0" in row["reason"]
    failed_load = {"int8": {"compat": {"ok": False, "load": {"attempted": True, "loaded": False,
                                                             "error": "Didn't find op for builtin opcode 'X'"}}}}
    (row,) = unloadable(t, {"int8": paths["int8"]}, failed_load)
    assert "Didn't find op" in row["reason"]
