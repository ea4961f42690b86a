"""Reports: the manifest validates against its schema, Markdown shows the JSON's numbers, the HTML is
self-contained, and old or corrupt manifests get a clear error."""

from __future__ import annotations

import json
import re

import pytest

from edgec.cli.main import main
from edgec.errors import InputError
from edgec.report import load_report, render_markdown


@pytest.fixture(scope="module")
def build(models, tmp_path_factory):
    out = tmp_path_factory.mktemp("rep") / "out"
    assert main(["build", str(models / "cnn.pt"), "-o", str(out), "-q", "--variants", "fp32,fp16",
                 "--synthetic-validation", "--cache-dir", str(tmp_path_factory.mktemp("rc"))]) == 0
    return out


def test_manifest_matches_schema(build):
    jsonschema = pytest.importorskip("jsonschema")
    from edgec.report.schema import MANIFEST_SCHEMA

    jsonschema.validate(json.loads((build / "manifest.json").read_text()), MANIFEST_SCHEMA)


def _md_rows(md: str, header_start: str) -> list[list[str]]:
    lines = md.splitlines()
    i = next(k for k, ln in enumerate(lines) if ln.startswith(header_start))
    rows = []
    for ln in lines[i + 2:]:
        if not ln.startswith("|"):
            break
        rows.append([c.strip() for c in ln.strip("|").split("|")])
    return rows


def _close(cell: str, value: float) -> bool:
    if cell in ("—", ""):
        return value is None
    got = float(cell.replace("*", ""))
    digits = len(cell.split(".")[1].split("e")[0]) if "." in cell else 0
    tol = 0.5 * 10 ** (-digits) if "e" not in cell else abs(value) * 0.01
    return abs(got - value) <= tol + 1e-12


def test_markdown_numbers_equal_json(build):
    m = json.loads((build / "manifest.json").read_text())
    md = (build / "report.md").read_text()
    assert md == render_markdown(load_report(build))
    variants = {r[0]: r for r in _md_rows(md, "| variant |")}
    tflites = {a["variant"]: a for a in m["artifacts"] if a["format"] == "tflite"}
    assert set(variants) == set(tflites)
    bench = m.get("bench") or {}
    for v, a in tflites.items():
        row = variants[v]
        assert _close(row[1], a["bytes"] / 1024)
        b = bench.get(v) or {}
        assert _close(row[2], b.get("p50_ms")) and _close(row[3], b.get("p90_ms"))
    stages = {(r[0], r[1]): r for r in _md_rows(md, "| stage |")}
    for s in m["parity"]["stages"]:
        for o in s["outputs"]:
            row = stages[(s["stage"], o["output"])]
            assert _close(row[2], o["max_abs"]) and _close(row[3], o["cosine"])
            assert ("pass" if o["ok"] else "FAIL") in row[6]


def test_html_is_self_contained(build):
    html = (build / "report.html").read_text()
    assert "<svg" in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "<script" not in html


def test_regenerate_and_compare(build, tmp_path, capsys):
    (build / "report.md").unlink()
    assert main(["report", str(build)]) == 0
    assert (build / "report.md").exists()
    assert main(["report", str(build), str(build), "-o", str(tmp_path)]) == 0
    cmp = (tmp_path / "compare.md").read_text()
    assert "| fp32 |" in cmp and "+0.0%" in cmp


def test_old_and_corrupt_manifests(build, tmp_path, capsys):
    m = json.loads((build / "manifest.json").read_text())
    old = tmp_path / "old"
    old.mkdir()
    (old / "manifest.json").write_text(json.dumps(dict(m, schema_version=0)))
    with pytest.raises(InputError, match="schema version 0"):
        load_report(old)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_text('{"schema_version": 1, "route": [')
    assert main(["report", str(bad)]) == 3
    err = capsys.readouterr().err
    assert "corrupt manifest" in err and "Traceback" not in err
    (bad / "manifest.json").write_text(json.dumps({"schema_version": 1}))
    assert main(["report", str(bad)]) == 3
    assert "missing" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nowhere")]) == 3
