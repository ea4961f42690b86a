"""edgec matrix: the project file, shards, planning, the report, merge and init-ci.

Builds are few and share one step cache (session fixtures): one 1 model x 3 targets run (the
acceptance check that the torch -> ONNX export ran once), then the 2 x 3 matrix as two shards, merged,
against the unsharded run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edgec.cli.main import main
from edgec.matrix import load_project
from edgec.matrix.plan import parse_shard, schedule, shard_cells
from edgec.errors import UsageError

TARGETS = ["rpi4", "android-arm64-cpu", "desktop-cpu"]


def _write(d: Path, text: str) -> Path:
    p = d / "edgec.yaml"
    p.write_text(text)
    return p


def _project(d: Path, models: Path, names=("cnn",), targets=TARGETS) -> Path:
    body = "models:\n" + "".join(
        f"  {n}:\n    path: {models / (n + '.pt')}\n    synthetic_validation: true\n    variants: [fp32]\n"
        for n in names)
    return _write(d, body + f"targets: [{', '.join(targets)}]\n")


def _edgec(*args, cwd=None, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgec.cli.main", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=1800)


# -- the project file ------------------------------------------------------------------------------

@pytest.mark.parametrize("text,field,line", [
    ("models:\n  m:\n    path: m.pt\n    input_shap: {x: [1, 3]}\ntargets: [rpi4]\n", "models.m.input_shap", 4),
    ("models:\n  m:\n    path: m.pt\ntargets:\n  - rpi4\n  - toaster\n", "targets.1", 6),
    ("models:\n  m:\n    path: missing.pt\ntargets: [rpi4]\n", "models.m.path", 3),
    ("models:\n  m:\n    path: m.pt\n    variants: [fp64]\ntargets: [rpi4]\n", "models.m.variants.0", 4),
    ("models:\n  m:\n    path: m.pt\ntargets: [rpi4]\noverrides:\n  m@rpi5: {variants: [fp16]}\n", "overrides.m@rpi5", 6),
])
def test_bad_project_file_is_one_clear_error(tmp_path, capfd, text, field, line):
    (tmp_path / "m.pt").write_bytes(b"x")
    p = _write(tmp_path, text)
    code = main(["matrix", str(p), "-o", str(tmp_path / "out")])
    err = capfd.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"{p}:{line}:" in err and f"field {field}" in err, err
    assert not (tmp_path / "out").exists()  # nothing ran


def test_invalid_yaml_names_the_line(tmp_path):
    p = _write(tmp_path, "models:\n  m: [\ntargets: rpi4\n")
    with pytest.raises(UsageError) as exc:
        load_project(p)
    assert f"{p}:" in exc.value.where


def test_paths_relative_to_project_file_and_precedence(tmp_path):
    sub = tmp_path / "proj"
    sub.mkdir()
    (sub / "m.pt").write_bytes(b"x")
    (sub / "xs.npy").write_bytes(b"x")
    p = _write(sub, "defaults: {variants: [fp32], parity: warn}\n"
                    "models:\n  m:\n    path: m.pt\n    validation_data: xs.npy\n    input_shape: {x: [1, 3, 8, 8]}\n"
                    "    budgets: {fp32: {atol: 0.001}}\n"
                    "targets:\n  rpi4: {variants: [fp32, fp16]}\n  desktop-cpu:\n"
                    "overrides:\n  m@rpi4: {budgets: {fp32: {cosine: 0.99}}}\n")
    proj = load_project(p)
    cells = {c.name: c.config for c in proj.cells}
    assert set(cells) == {"m@rpi4", "m@desktop-cpu"}
    rpi = cells["m@rpi4"]
    assert rpi["model"] == str(sub / "m.pt") and rpi["validation_data"] == str(sub / "xs.npy")
    assert rpi["variants"] == ["fp32", "fp16"] and cells["m@desktop-cpu"]["variants"] == ["fp32"]
    assert rpi["parity_budgets"] == {"fp32": {"atol": 0.001, "cosine": 0.99}}
    assert rpi["parity"] == "warn" and rpi["input_shapes"] == {"x": [1, 3, 8, 8]}


# -- shards and planning ---------------------------------------------------------------------------

def test_shards_are_stable_balanced_disjoint_and_cover(tmp_path):
    for n in ("a", "b", "c"):
        (tmp_path / f"{n}.pt").write_bytes(b"x")
    p = _write(tmp_path, "models:\n  a: {path: a.pt}\n  b: {path: b.pt}\n  c: {path: c.pt}\n"
                         "targets: [rpi4, rpi5, android-arm64-cpu, desktop-cpu]\n")
    cells = list(load_project(p).cells)
    for n in (1, 2, 3, 5, 12, 13):
        shards = [shard_cells(cells, (i, n)) for i in range(1, n + 1)]
        names = [c.name for s in shards for c in s]
        assert sorted(names) == sorted(c.name for c in cells)      # union = whole matrix, no overlap
        assert max(map(len, shards)) - min(map(len, shards)) <= 1  # balanced
        assert [c.name for c in shard_cells(list(reversed(cells)), (1, n))] == [c.name for c in shards[0]]  # stable
    order, groups = schedule(cells)
    assert len(groups) == 3 and [c.model for c in order[:3]] == ["a", "b", "c"]  # each model's leader first
    for bad in ("0/2", "3/2", "1", "a/b"):
        with pytest.raises(UsageError):
            parse_shard(bad)


def test_init_ci_writes_a_workflow_with_shard_and_merge_jobs(tmp_path):
    (tmp_path / "m.pt").write_bytes(b"x")
    p = _write(tmp_path, "models:\n  m: {path: m.pt}\ntargets: [rpi4]\n")
    wf = tmp_path / ".github" / "workflows" / "edgec.yml"
    assert main(["matrix", "init-ci", str(p), "--shards", "3", "--cache-dir", "s3://b/edgec", "-o", str(wf),
                 "--baseline", "baseline/matrix.json"]) == 0
    doc = yaml.safe_load(wf.read_text())
    assert set(doc["jobs"]) == {"shard", "merge"}
    shard = doc["jobs"]["shard"]
    assert shard["strategy"]["matrix"]["shard"] == [1, 2, 3]
    run = " ".join(s.get("run", "") for s in shard["steps"])
    assert "--shard ${{ matrix.shard }}/3" in run and "--cache-dir s3://b/edgec" in run and str(p) in run
    merge = doc["jobs"]["merge"]
    assert merge["needs"] == "shard"
    mrun = " ".join(s.get("run", "") for s in merge["steps"])
    assert "edgec matrix merge" in mrun and "--baseline baseline/matrix.json" in mrun
    assert any(s.get("uses", "").startswith("actions/upload-artifact") for s in merge["steps"])


# -- builds ----------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def one_by_three(models, cache_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("matrix13")
    p = _project(d, models)
    r = _edgec("matrix", p, "-o", d / "out", "--jobs", "2", "--cache-dir", cache_dir)
    assert r.returncode == 0, r.stderr[-3000:]
    return d / "out", r


def test_one_model_three_targets_exports_once(one_by_three):
    out, r = one_by_three
    rec = json.loads((out / "matrix.json").read_text())
    assert [c["cell"] for c in rec["cells"]] == [f"cnn@{t}" for t in TARGETS]
    exports = []
    for t in TARGETS:
        m = json.loads((out / f"cnn@{t}" / "manifest.json").read_text())   # a normal build directory
        exports += [s for s in m["steps"] if s["to"] == "onnx" and s["from"].startswith("torch")]
    assert len(exports) == 3 and sum(not s["cached"] for s in exports) <= 1  # ran once (or was in the cache)
    assert len({s["cache_key"] for s in exports}) == 1
    d = rec["distinct_steps"]
    assert d["computed"] == d["computed_distinct"]  # no step computed twice
    assert "cnn" in r.stderr and "ok" in r.stderr   # the progress grid


def test_matrix_html_renders_in_chromium(one_by_three, tmp_path):
    from browser import render

    out, _ = one_by_three
    dom, console = render(out / "matrix.html", tmp_path / "shot.png")
    assert dom.count('<td class="ok"') == 3 and 'href="cnn@rpi4/report.html"' in dom
    assert not [c for c in console if "error" in c.lower()]
    assert (tmp_path / "shot.png").stat().st_size > 1000
    for t in TARGETS:
        assert (out / f"cnn@{t}" / "report.html").is_file()


def test_two_by_three_shards_merge_equal_unsharded(models, cache_dir, one_by_three, tmp_path):
    p = _project(tmp_path, models, names=("cnn", "two_input"))
    for i in (1, 2):
        r = _edgec("matrix", p, "-o", tmp_path / f"s{i}", "--shard", f"{i}/2", "--cache-dir", cache_dir, "-q")
        assert r.returncode == 0, r.stderr[-3000:]
    r = _edgec("matrix", "merge", tmp_path / "s1", tmp_path / "s2", "-o", tmp_path / "merged")
    assert r.returncode == 0, r.stderr
    r = _edgec("matrix", p, "-o", tmp_path / "all", "--cache-dir", cache_dir, "-q")
    assert r.returncode == 0, r.stderr[-3000:]
    s1, s2, merged, full = (json.loads((tmp_path / d / "matrix.json").read_text())
                            for d in ("s1", "s2", "merged", "all"))
    n1, n2 = {c["cell"] for c in s1["cells"]}, {c["cell"] for c in s2["cells"]}
    assert len(n1) == len(n2) == 3 and not n1 & n2 and len(n1 | n2) == 6

    def grid(rec):
        return [(c["cell"], c["ok"], {v: (x["sha256"], x["parity_ok"]) for v, x in c["variants"].items()})
                for c in rec["cells"]]

    assert grid(merged) == grid(full) and len(full["cells"]) == 6
    assert all((tmp_path / "merged" / c["cell"] / "manifest.json").is_file() for c in merged["cells"])
    md = (tmp_path / "merged" / "matrix.md").read_text()
    assert md.count("parity ok") == 6
    # gate against the unsharded run: the same artifacts measured again here
    r = _edgec("matrix", "merge", tmp_path / "s1", tmp_path / "s2", "-o", tmp_path / "gated",
               "--baseline", tmp_path / "all" / "matrix.json", "--fail-on", "p50:+400%")
    g = json.loads((tmp_path / "gated" / "matrix.json").read_text())["gate"]
    assert g["measured"] == 6 and g["verdict"] in ("pass", "regression")
    assert r.returncode == (0 if g["ok"] else 10)


def test_failing_cell_does_not_stop_the_others(models, cache_dir, one_by_three, tmp_path):
    (tmp_path / "broken.pt").write_bytes(b"not a model")
    p = _write(tmp_path, f"models:\n  cnn:\n    path: {models / 'cnn.pt'}\n    synthetic_validation: true\n"
                         "    variants: [fp32]\n  broken:\n    path: broken.pt\n    synthetic_validation: true\n"
                         "targets: [rpi4]\n")
    r = _edgec("matrix", p, "-o", tmp_path / "out", "--cache-dir", cache_dir, "-q")
    assert r.returncode == 17, r.stderr
    rec = json.loads((tmp_path / "out" / "matrix.json").read_text())
    by = {c["cell"]: c for c in rec["cells"]}
    assert by["cnn@rpi4"]["ok"] and not by["broken@rpi4"]["ok"]
    assert by["broken@rpi4"]["exit_code"] == 3 and "broken.pt" in by["broken@rpi4"]["error"]
    assert "broken@rpi4" in (tmp_path / "out" / "matrix.md").read_text().split("## Failures")[1]


def test_gate_with_nothing_measured_does_not_pass(tmp_path):
    from edgec.matrix.report import gate

    base = {"schema": "edgec.matrix/1", "cells": [{"cell": "m@t", "variants": {"fp32": {"p50_ms": None}}}]}
    (tmp_path / "matrix.json").write_text(json.dumps(base))
    g = gate({"cells": [{"cell": "m@t", "variants": {"fp32": {"p50_ms": None}}}]}, str(tmp_path))
    assert g["verdict"] == "nothing measured" and not g["ok"]
