"""The extended profile schema (budgets, delegate constraints, references, on-device runtime),
wrong fields named; the merged settings with their origins; the op-version compatibility table."""

from __future__ import annotations

import json

import pytest
import yaml

from edgec.targets.compat import check_ops, needed_version
from edgec.errors import TargetError
from edgec.targets.settings import resolve
from edgec.targets import _profiles_dir, builtin_names, load_target


@pytest.mark.parametrize("name", builtin_names())
def test_every_profile_states_runtime_budgets_and_references(name):
    t = load_target(name)
    assert t.budgets.get("latency_ms") and t.budgets.get("size_mb")
    assert t.runtime.on_device
    if not t.is_host:
        assert t.reference["device"] and t.reference["runtime"]
    if t.runtime.delegate in ("gpu", "nnapi"):
        assert t.delegate_constraints["ops"] and t.delegate_constraints["source"]


BAD = [
    ({"budgets": {"latency_ms": "fast"}}, "budgets.latency_ms"),
    ({"budgets": {"latency_ms": 10, "energy_mj": 3}}, "budgets.energy_mj"),
    ({"delegate_constraints": {"source": "x", "ops": ["conv"]}}, r"delegate_constraints.ops\[0\]"),
    ({"delegate_constraints": {"ops": ["ADD"]}}, "delegate_constraints' lacks source"),
    ({"delegate_constraints": {"source": "x", "ops": ["ADD"], "dtypes": ["float8"]}}, r"delegate_constraints.dtypes\[0\]"),
    ({"reference": {"device": "Nowhere", "runtime": "TFLite CPU"}}, "reference.device"),
    ({"reference": {"device": "d", "runtime": "r", "measurements": [{"model": "MobileNet v2 1.0 224",
                                                                    "precision": "fp32", "latency_ms": 5}]}},
     r"reference.measurements\[0\]' lacks source"),
    ({"reference": {"device": "d", "runtime": "r", "measurements": [{"model": "ResNet-50", "precision": "fp32",
                                                                    "latency_ms": 5, "source": "me"}]}},
     r"reference.measurements\[0\].model"),
]


@pytest.mark.parametrize("patch,field", BAD, ids=[b[1] for b in BAD])
def test_bad_section_names_the_field(tmp_path, patch, field):
    base = yaml.safe_load(_profiles_dir().joinpath("android-gpu.yaml").read_text())
    base.update(patch)
    p = tmp_path / "board.yaml"
    p.write_text(yaml.safe_dump(base))
    with pytest.raises(TargetError, match=field.replace(".", r"\.") if "\\" not in field else field) as e:
        load_target(str(p))
    assert str(p) in str(e.value)


def test_bad_on_device_version_is_named(tmp_path):
    base = yaml.safe_load(_profiles_dir().joinpath("rpi4.yaml").read_text())
    base["runtime"]["on_device_version"] = "fourteen"
    p = tmp_path / "pi.yaml"
    p.write_text(yaml.safe_dump(base))
    with pytest.raises(TargetError, match=r"runtime\.on_device_version"):
        load_target(str(p))


def test_precedence_cli_over_config_over_profile_over_default():
    t = load_target("rpi4")
    r = resolve(t)
    assert r["settings"]["threads"] == 4 and r["origin"]["threads"] == "profile"
    assert r["origin"]["parity_mode"] == "default" and r["settings"]["variants"] == ["fp32", "int8"]
    r = resolve(t, {"variants": ["fp32"], "threads": 3, "parity": "warn"}, {"threads": 1})
    assert r["settings"]["threads"] == 1 and r["origin"]["threads"] == "cli"
    assert r["settings"]["variants"] == ["fp32"] and r["origin"]["variants"] == "config"
    assert r["settings"]["parity_mode"] == "warn" and r["origin"]["parity_mode"] == "config"
    assert r["settings"]["threads_here"] == 1


def test_targets_show_prints_resolved_settings(tmp_path, capsys):
    from edgec.cli.main import main

    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"variants": ["fp32", "fp16"]}))
    assert main(["targets", "show", "rpi", "--config", str(cfg), "--threads", "2", "--json"]) == 0
    prof = json.loads(capsys.readouterr().out)
    res = prof["resolved"]
    assert prof["name"] == "rpi4" and res["origin"]["variants"] == "config" and res["origin"]["threads"] == "cli"
    assert res["settings"]["variants"] == ["fp32", "fp16"] and res["origin"]["layout"] == "profile"


def test_op_version_table():
    assert needed_version("FULLY_CONNECTED", 12) == "2.17.0" and needed_version("CONV_2D", 1) == "1.5.0"
    found = check_ops([("FULLY_CONNECTED", 12, "fc"), ("CONV_2D", 5, "c"), ("NEW_OP", 1, "n")], "2.14.0")
    assert [(t["op"], t["needs"]) for t in found["too_new"]] == [("FULLY_CONNECTED", "2.17.0")]
    assert [t["op"] for t in found["unknown"]] == ["NEW_OP"]
    assert check_ops([("FULLY_CONNECTED", 12, "fc")], "2.17.0")["too_new"] == []
