"""`--compare-routes`: every feasible route built and measured, the pick rule, the routes' outputs
compared with each other, the other routes' variants under routes/, the report's comparison, and
the default (first passing route wins) unchanged. Tiny CNN built in code, synthetic data."""

from __future__ import annotations

import json

import pytest

import edgec
from edgec.cli.main import main
from edgec.pipeline.route_compare import pick
from edgec.targets import load_target


def _rec(route, p50, mb=1.0, max_abs=1e-6):
    return {"route": route, "parity": {"max_abs": max_abs},
            "measured": {"p50_ms": p50, "bytes": int(mb * 1e6), "threads": 2}}


def test_pick_fastest_within_budget_ties_keep_search_order():
    rpi4 = load_target("rpi4")
    recs = [_rec(["a", "tflite"], 10.0), _rec(["b", "tflite"], 8.0), _rec(["c", "tflite"], 9.0)]
    i, why = pick(recs, rpi4)
    assert i == 1 and "fastest fp32 p50" in why and "8.00 ms" in why and "a -> tflite 10.00 ms" in why
    i, why = pick([_rec(["a", "tflite"], 10.1), _rec(["b", "tflite"], 10.0)], rpi4)
    assert i == 0 and "a tie" in why                        # within 3 %: the earlier route keeps it
    size_mb = rpi4.budgets["size_mb"]
    i, _ = pick([_rec(["big", "tflite"], 1.0, mb=size_mb * 2), _rec(["small", "tflite"], 5.0)], rpi4)
    assert i == 1                                          # over the target's size budget
    i, why = pick([_rec(["a", "tflite"], None), _rec(["b", "tflite"], None)], rpi4)
    assert i == 0 and "search order" in why
    fast_but_int8_misses = {**_rec(["fast", "tflite"], 5.0), "variants": {"fp32": {"ok": True}, "int8": {"ok": False}}}
    slow_all_ok = {**_rec(["slow", "tflite"], 9.0), "variants": {"fp32": {"ok": True}, "int8": {"ok": True}}}
    i, why = pick([fast_but_int8_misses, slow_all_ok], rpi4)
    assert i == 1 and "every variant within its parity budget" in why and "fast -> tflite left out: int8" in why


@pytest.fixture(scope="module")
def compared(tmp_path_factory, cache_dir):
    out = tmp_path_factory.mktemp("compare") / "out"
    assert main(["build", "--factory", "tiny_models:cnn_factory", "--target", "rpi4", "-o", str(out), "-q",
                 "--cache-dir", str(cache_dir), "--compare-routes", "--variants", "fp32,fp16,int8",
                 "--synthetic-validation", "--synthetic-calibration", "--calibration-samples", "16"]) == 0
    return out, json.loads((out / "manifest.json").read_text())


def test_every_route_is_built_measured_and_one_chosen_with_its_reason(compared):
    out, m = compared
    rs = m["route_search"]
    assert rs["compared"] is True
    routes = [a["route"] for a in rs["attempts"]]
    assert routes == [["torch_module", "onnx", "saved_model", "tflite"], ["torch_module", "onnx", "tflite"],
                      ["torch_module", "tflite"]]       # the legacy-exporter retry of a passing route is skipped
    assert all(a["ok"] for a in rs["attempts"])
    assert sum(bool(a.get("chosen")) for a in rs["attempts"]) == 1
    chosen = next(a for a in rs["attempts"] if a["chosen"])
    assert rs["chosen"] == chosen["route"] == m["route"]
    assert "fastest fp32 p50 on this machine" in rs["reason"]
    for a in rs["attempts"]:
        mes = a["measured"]
        assert mes["p50_ms"] > 0 and mes["threads"] == load_target("rpi4").threads_here()
        assert mes["bytes"] > 0 and mes["ops"] == sum(mes["op_histogram"].values())
        assert mes["transposes"] == mes["op_histogram"].get("TRANSPOSE", 0)
        assert "delegate_coverage" in mes
        assert a["parity"]["max_abs"] < 1e-4
    fastest = min(a["measured"]["p50_ms"] for a in rs["attempts"])
    assert chosen["measured"]["p50_ms"] <= fastest * 1.03


def test_other_routes_have_their_variants_and_ledger(compared):
    out, m = compared
    for a in m["route_search"]["attempts"]:
        assert a["variants"]["fp32"]["ok"], a["variants"]
        if a.get("chosen"):
            continue
        for art in a["artifacts"]:
            assert (out / art["path"]).is_file() and art["path"].startswith("routes/")
        made = {art["variant"] for art in a["artifacts"]}
        skipped = {s["variant"] for s in a["skipped_variants"]}
        assert made | skipped == {"fp32", "fp16", "int8"}
    litert = next(a for a in m["route_search"]["attempts"] if a["converter"] == ["torch_module_to_tflite"])
    assert litert.get("chosen") or {"fp32", "fp16", "int8"} <= set(litert["variants"])  # int8 calibrated there too


def test_routes_outputs_are_compared_with_each_other(compared):
    _, m = compared
    cc = m["route_search"]["cross_check"]
    assert cc["ran"] and cc["samples"] >= 1 and len(cc["pairs"]) == 3
    for p in cc["pairs"]:
        assert p["agree"] is (not p.get("misses")) and p["max_abs"] < 1e-4
        assert p["agree"]


def test_report_shows_the_comparison(compared):
    out, _ = compared
    md = (out / "report.md").read_text()
    assert "Route comparison" in md and "| TRANSPOSE |" in md and "**chosen**" in md
    html = (out / "report.html").read_text()
    assert "<h2>Route comparison</h2>" in html and "fp32 p50 per route" in html and "<svg" in html


def test_without_the_flag_the_first_passing_route_wins(compared, tmp_path, cache_dir):
    res = edgec.build(edgec.BuildConfig(factory="tiny_models:cnn_factory", target="rpi4", out=str(tmp_path / "o"),
                                        cache_dir=str(cache_dir), variants=("fp32",), synthetic_validation=True,
                                        bench=False))
    rs = res.manifest["route_search"]
    assert len(rs["attempts"]) == 1 and "compared" not in rs and "measured" not in rs["attempts"][0]
    assert not (tmp_path / "o" / "routes").exists()
