"""ONNX backend node-test conformance, fast subset: no case may crash edgec or come out silently wrong.

The ~40 cases of ``benchmarks/conformance_cases.FAST_SUBSET`` (conv, pooling, normalization,
activations, shape ops, gather, matmul/gemm, reductions, elementwise, resize) from the onnx==1.22.0
wheel's node test data, each built with ``edgec.build`` and its fp32 TFLite compared with the expected
outputs: the same code as ``benchmarks/conformance.py``, batches of ``BATCH`` cases one after another
in a child process (TensorFlow imported once per batch; a case that kills its child or times out gets
its crash record and a fresh child takes the rest). The data is
fetched with pip on first use (then cached in ``$EDGEC_CONFORMANCE_DIR`` or
``~/.cache/edgec-conformance``); if it cannot be, the test fails and says why. Full run:
``.venv/bin/python benchmarks/conformance.py --jobs 2``; ``EDGEC_CONFORMANCE_ONLY=relu,slice`` runs
only the fast-subset cases matching those substrings.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import conformance_cases as cc  # noqa: E402

pytestmark = pytest.mark.conformance


@pytest.fixture(scope="session")
def conformance_data() -> Path:
    try:
        return cc.ensure_data()
    except cc.DataUnavailable as exc:
        pytest.fail(f"ONNX conformance data unavailable, so the conformance test cannot run: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def conformance_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("edgec-conformance-cache")


TIMEOUT_S = 180  # per case; a tiny one-op model that takes longer is a finding in itself
BATCH = 10       # cases per child process


def test_fast_subset_has_no_crash_and_no_silent_wrong(conformance_data, conformance_cache, tmp_path):
    cases = cc.select(cc.list_cases(conformance_data), subset="fast")
    assert len(cases) == len(cc.FAST_SUBSET), \
        f"fast-subset cases missing from the data: {sorted(set(cc.FAST_SUBSET) - set(cases))}"
    only = os.environ.get("EDGEC_CONFORMANCE_ONLY")  # a quicker look at some of them (substrings/globs)
    if only:
        cases = cc.select(cases, only=only)
        assert cases, f"EDGEC_CONFORMANCE_ONLY={only!r} matches no fast-subset case"
    records = cc.run_many(cases, conformance_data, tmp_path / "work", conformance_cache, jobs=2,
                          timeout=TIMEOUT_S)
    counts = cc.counts(records)
    print("\nconformance fast subset: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    for r in records:
        if r["class"] != "pass":
            print(f"  {r['case']} ({r['op']}): {r['class']}: {r['reason'][:300]}")
    bad = [r for r in records if r["class"] in ("crash", "silent_wrong")]
    assert not bad, f"{len(bad)} case(s) crashed or came out silently wrong:\n" + "\n".join(
        f"  {r['case']} ({r['op']}): {r['class']}: {r['reason'][:400]}" for r in bad)
    assert len(records) == len(cases)
