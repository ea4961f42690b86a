"""pytest-benchmark suite: in-process timings of `edgec targets --json` and of a warm rebuild.

The rebuild uses a tiny CNN (tests/tiny_models.py) built once cold in a module fixture (~15 s:
onnx2tf and TensorFlow run once), then times `edgec.build` again with the same cache: every step
and the parity ledger come from the cache.

    .venv/bin/python -m pytest benchmarks/                       # timings
    .venv/bin/python -m pytest benchmarks/ --benchmark-disable   # each body once, as a test
"""

from __future__ import annotations

import json

import pytest

import edgec
from _common import save_model
from edgec.cli.main import main


def test_targets_json(benchmark, capsys):
    code = benchmark(main, ["targets", "--json"])
    assert code == 0
    rows, _ = json.JSONDecoder().raw_decode(capsys.readouterr().out)  # the first of the rounds' prints
    assert any(r["name"] == "desktop-cpu" for r in rows)


@pytest.fixture(scope="module")
def warm_config(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("warm")
    save_model("tiny", tmp / "tiny.pt")
    cfg = edgec.BuildConfig(model=str(tmp / "tiny.pt"), target="desktop-cpu", variants=("fp32",),
                            out=str(tmp / "out"), cache_dir=str(tmp / "cache"), synthetic_validation=True)
    edgec.build(cfg)  # cold: fills the cache
    return cfg


def test_warm_rebuild_tiny(benchmark, warm_config):
    result = benchmark.pedantic(edgec.build, args=(warm_config,), rounds=5, warmup_rounds=1)
    assert result.ok
    assert all(s["cached"] for s in result.steps)
