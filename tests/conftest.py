"""Shared fixtures. Tiny models are built in code; conversions share one step cache per session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


# -- strict mode (CI): a test that would skip fails instead ------------------------------------------
# With EDGEC_STRICT_TESTS=1 (.ci/run sets it) a skip of any kind (pytest.importorskip, a skipif on a
# missing package, pytest.skip for a missing binary or environment) is a failure carrying the skip's
# reason, so a green CI means every test ran. A module that skips as a whole at import fails as a
# collection error, and the run goes on with the other modules so that one run names every one.
# EDGEC_TEST_COUNTS=FILE writes the run's outcome counts as JSON (.ci/run requires 0 skipped).
STRICT_ENV, COUNTS_ENV = "EDGEC_STRICT_TESTS", "EDGEC_TEST_COUNTS"
OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")


def _strict() -> bool:
    return os.environ.get(STRICT_ENV, "") not in ("", "0")


def _skip_reason(rep) -> str:
    lr = rep.longrepr
    reason = str(lr[2]) if isinstance(lr, tuple) and len(lr) == 3 else str(lr)
    return reason.removeprefix("Skipped: ")


def _fail_the_skip(rep, what: str) -> None:
    reason = _skip_reason(rep)
    rep.outcome = "failed"
    rep.edgec_strict_skip = reason
    rep.longrepr = (f"{STRICT_ENV}=1: {what} would have been skipped ({reason}); in strict mode a skip is a "
                    "failure: install what it needs (bash scripts/setup.sh --test), or run without "
                    f"{STRICT_ENV} to let it skip")


def pytest_configure(config):
    if _strict():
        config.option.continue_on_collection_errors = True


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    rep = (yield).get_result()
    if _strict() and rep.skipped and not hasattr(rep, "wasxfail"):
        _fail_the_skip(rep, "this test")


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    rep = (yield).get_result()
    if _strict() and rep.skipped:
        _fail_the_skip(rep, f"every test of {collector.nodeid}")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    stats = terminalreporter.stats
    counts = {k: len(stats.get(k, [])) for k in OUTCOMES}
    counts["strict_failures"] = sum(1 for reps in stats.values() for r in reps if hasattr(r, "edgec_strict_skip"))
    counts["strict"] = _strict()
    if _strict():
        terminalreporter.write_line(f"{STRICT_ENV}=1: {counts['skipped']} skipped; "
                                    f"{counts['strict_failures']} skip(s) turned into failures")
    if os.environ.get(COUNTS_ENV):
        import json

        Path(os.environ[COUNTS_ENV]).write_text(json.dumps(counts))


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("edgec-cache")


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> Path:
    """Tiny models saved in every source format edgec reads."""
    import edgec
    import tiny_models as tm

    d = tmp_path_factory.mktemp("models")
    edgec.save_torchscript(tm.seeded(tm.TinyCNN), tm.cnn_inputs(), d / "cnn.pt")
    edgec.save_torchscript(tm.seeded(tm.TinyTransformer), tm.transformer_inputs(), d / "transformer.pt")
    edgec.save_torchscript(tm.seeded(tm.TwoInput), tm.two_inputs(), d / "two_input.pt")
    return d


def run_tflite(path: Path, manifest: dict, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run a built .tflite independently of edgec's runners, using only the manifest's I/O record."""
    from ai_edge_litert import interpreter as lite

    io = manifest["tflite_io"]
    runner = lite.Interpreter(model_path=str(path)).get_signature_runner("serving_default")
    args = {}
    for row in io["inputs"]:
        x = feed[row["source"]]
        args[row["name"]] = np.ascontiguousarray(x.transpose(row["perm"])) if row["perm"] else x
    res = runner(**args)
    outs = []
    for row in io["outputs"]:
        y = res[row["name"]]
        outs.append(y.transpose(np.argsort(row["perm"])) if row["perm"] else y)
    return outs
