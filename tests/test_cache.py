"""The step cache: reuse, atomic publication, concurrent builds, damage recovery."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import threading
from pathlib import Path

import pytest

import edgec
from edgec.pipeline.cache import Cache, step_key


def test_put_get_and_race(tmp_path):
    cache = Cache(tmp_path)
    key = step_key("s", "abc", {"a": 1}, {"tool": "1"})
    results = []
    barrier = threading.Barrier(4)

    def produce(out: Path) -> dict:
        barrier.wait(timeout=10)
        out.write_text("payload")
        return {"who": threading.get_ident()}

    threads = [threading.Thread(target=lambda: results.append(cache.put(key, produce))) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    winners = {r.meta["who"] for r in results}
    assert len(winners) == 1  # everyone ends up with the one published entry
    assert cache.get(key).output.read_text() == "payload"
    assert list((tmp_path / "tmp").iterdir()) == []


def test_interrupted_step_leaves_no_entry(tmp_path):
    cache = Cache(tmp_path)
    key = step_key("s", "x", {}, {})

    def boom(out: Path) -> dict:
        out.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.put(key, boom)
    assert cache.get(key) is None
    assert list((tmp_path / "tmp").iterdir()) == []


def test_damaged_entry_is_rebuilt(tmp_path):
    cache = Cache(tmp_path)
    key = step_key("s", "y", {}, {})
    e = cache.put(key, lambda out: (out.write_text("good"), {})[1])
    e.output.write_text("tampered")
    assert cache.get(key) is None
    assert cache.put(key, lambda out: (out.write_text("good"), {})[1]).output.read_text() == "good"


def _build_in_process(args):
    model, out, cache = args
    from edgec.cli.main import main

    return main(["build", model, "-o", out, "-q", "--variants", "fp32", "--synthetic-validation", "--cache-dir", cache])


def test_two_concurrent_builds_same_model(models, tmp_path):
    """Two processes build the same model into the same cache at once: both succeed, the cache holds
    one entry per step, and both outputs are complete and identical."""
    cache = str(tmp_path / "cache")
    ctx = mp.get_context("spawn")
    jobs = [(str(models / "cnn.pt"), str(tmp_path / f"out{i}"), cache) for i in range(2)]
    with ctx.Pool(2) as pool:
        codes = pool.map(_build_in_process, jobs)
    assert codes == [0, 0]
    m0, m1 = (json.loads((tmp_path / f"out{i}" / "manifest.json").read_text()) for i in range(2))
    assert [a["sha256"] for a in m0["artifacts"]] == [a["sha256"] for a in m1["artifacts"]]
    for m, i in ((m0, 0), (m1, 1)):
        for a in m["artifacts"]:
            assert edgec.formats.digest(tmp_path / f"out{i}" / a["path"]) == a["sha256"]
    entries = [p for p in Path(cache).glob("??/*") if p.is_dir()]
    assert len(entries) == len({p.name for p in entries})
    assert not [p for p in (Path(cache) / "tmp").iterdir() if not p.name.startswith("edgec-factory")]


def test_warm_rebuild_reuses_every_step(models, cache_dir, tmp_path):
    cfg = edgec.BuildConfig(model=str(models / "cnn.pt"), out=str(tmp_path / "a"), cache_dir=str(cache_dir),
                            variants=("fp32",), synthetic_validation=True)
    edgec.build(cfg)
    again = edgec.build(cfg.merged(out=str(tmp_path / "b")))
    assert all(s["cached"] for s in again.manifest["steps"])
    no_cache = edgec.build(cfg.merged(out=str(tmp_path / "c"), use_cache=False))
    assert not any(s["cached"] for s in no_cache.manifest["steps"])
    # ONNX and TFLite bytes are reproducible run to run (a SavedModel embeds traced function names).
    def shas(m):
        return [a["sha256"] for a in m["artifacts"] if a["format"] != "saved_model"]

    assert shas(no_cache.manifest) == shas(again.manifest)
    os.environ.pop("EDGEC_CACHE_DIR", None)


def test_factory_builds_hit_the_cache(cache_dir, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    cfg = edgec.BuildConfig(factory="tiny_models:cnn_factory", out=str(tmp_path / "a"), cache_dir=str(cache_dir),
                            variants=("fp32",), synthetic_validation=True)
    first = edgec.build(cfg)
    again = edgec.build(cfg.merged(out=str(tmp_path / "b")))
    assert first.manifest["source"]["sha256"] == again.manifest["source"]["sha256"]
    assert all(s["cached"] for s in again.manifest["steps"])


def test_keys_cover_the_code_that_shapes_each_result(tmp_path):
    """A change in validate/ (the ledger) or bench/ must not serve stale parity or bench numbers."""
    import shutil

    from edgec.pipeline.cache import code_digest
    from edgec.pipeline.steps import CONVERSION_CODE
    from edgec.validate.ledger import LEDGER_CODE

    assert {"validate", "runtime", "data"} <= set(LEDGER_CODE) and {"convert", "passes"} <= set(CONVERSION_CODE)
    pkg = Path(edgec.__file__).parent
    root = tmp_path / "edgec"
    shutil.copytree(pkg, root, ignore=shutil.ignore_patterns("__pycache__"))
    before = {parts: code_digest(parts, root) for parts in (LEDGER_CODE, CONVERSION_CODE, ("bench",))}
    with (root / "validate" / "compare.py").open("a") as f:
        f.write("\n# a changed comparison\n")
    code_digest.cache_clear()  # (a process computes each digest once)
    after = {parts: code_digest(parts, root) for parts in before}
    assert after[LEDGER_CODE] != before[LEDGER_CODE]          # the ledger's cached numbers are invalidated
    assert after[CONVERSION_CODE] == before[CONVERSION_CODE]  # conversions are not
    assert after[("bench",)] == before[("bench",)]
    assert code_digest(("bench",), root) != code_digest(("validate",), root)
    assert step_key("s", "x", {}, {}, code=("validate",)) != step_key("s", "x", {}, {}, code=("bench",))
