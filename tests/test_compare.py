"""Every comparator metric on hand-computed arrays: zero vectors, NaN/Inf, integers, classifier
agreement, merging across samples, and verdicts against each budget key."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgec.validate.compare import merge, metrics, probabilities, public, verdict


def test_errors_on_a_hand_computed_pair():
    ref = np.array([1.0, -2.0, 4.0, 0.5])
    got = np.array([1.5, -2.0, 3.0, 0.5])
    m = metrics(ref, got)
    assert m["max_abs"] == pytest.approx(1.0)                  # |3 - 4|
    assert m["mean_abs"] == pytest.approx((0.5 + 0 + 1 + 0) / 4)
    assert m["max_rel"] == pytest.approx(0.5)                  # 0.5 / |1|  (vs 1 / |4| = 0.25)
    dot, nr, ng = 1.5 + 4 + 12 + 0.25, math.sqrt(21.25), math.sqrt(2.25 + 4 + 9 + 0.25)
    assert m["cosine"] == pytest.approx(dot / (nr * ng))
    assert m["snr_db"] == pytest.approx(10 * math.log10(21.25 / 1.25))  # signal 21.25, noise 0.25 + 1
    assert m["finite"] is True
    assert "top1" not in m                                     # 1-D: not a classifier output


def test_identical_arrays():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    m = metrics(x, x.copy())
    assert (m["max_abs"], m["mean_abs"], m["max_rel"]) == (0.0, 0.0, 0.0)
    assert m["cosine"] == pytest.approx(1.0) and m["snr_db"] == math.inf


def test_zero_vectors():
    z = np.zeros(5)
    both = metrics(z, z)
    assert both["cosine"] == 1.0 and both["snr_db"] == math.inf and both["max_rel"] == 0.0
    ref_zero = metrics(z, np.array([0, 0, 1.0, 0, 0]))
    assert ref_zero["cosine"] == 0.0 and ref_zero["max_abs"] == 1.0
    assert ref_zero["snr_db"] == pytest.approx(10 * math.log10(1e-12 / 1.0))  # signal floored at 1e-12
    got_zero = metrics(np.array([3.0, 4.0]), np.zeros(2))
    assert got_zero["cosine"] == 0.0 and got_zero["snr_db"] == pytest.approx(0.0)  # noise == signal


def test_max_rel_floor_keeps_near_zero_elements_from_exploding():
    ref = np.array([1000.0, 1e-9])
    got = np.array([1000.0, 1e-3])
    # floor = 1e-3 * max|ref| = 1.0, so the near-zero element contributes 1e-3 / 1.0, not 1e-3 / 1e-9
    assert metrics(ref, got)["max_rel"] == pytest.approx(1e-3, rel=1e-6)


def test_nan_and_inf_are_reported_not_hidden():
    ref = np.array([1.0, 2.0, 3.0])
    for bad in (np.nan, np.inf):
        m = metrics(ref, np.array([1.0, bad, 3.0]))
        assert m["finite"] is False
        assert m["max_abs"] == math.inf and m["mean_abs"] == math.inf and m["max_rel"] == math.inf
        assert m["cosine"] == 0.0 and m["snr_db"] == -math.inf
        ok, misses = verdict(m, {"cosine": 0.5})
        assert not ok and "non-finite values" in misses
    assert metrics(np.array([np.nan]), np.array([1.0]))["finite"] is False


def test_integer_arrays():
    ref = np.array([[1, 2, 3]], dtype=np.int64)
    got = np.array([[1, 2, 5]], dtype=np.int32)
    m = metrics(ref, got)
    assert m["max_abs"] == 2.0 and m["mean_abs"] == pytest.approx(2 / 3)
    assert m["max_rel"] == pytest.approx(2 / 3)
    assert m["snr_db"] == pytest.approx(10 * math.log10(14 / 4))
    assert "top1" not in m  # integer outputs (ids, counts) are not classifier scores


def test_shape_mismatch():
    m = metrics(np.zeros((1, 4)), np.zeros((1, 5)))
    assert m["shape_mismatch"] == [[1, 4], [1, 5]]
    ok, misses = verdict(m, {"atol": 1})
    assert not ok and "shape" in misses[0]


def test_classifier_agreement_on_hand_made_logits():
    ref = np.array([[5.0, 1.0, 0.0, 0.0, 0.0, 0.0],     # confident: class 0
                    [1.0, 1.005, 0.0, 0.0, 0.0, 0.0],   # not confident, margin < 0.01
                    [0.0, 0.0, 3.0, 2.0, 0.0, 0.0]])    # class 2, p ~ 0.6
    got = np.array([[4.0, 1.0, 0.0, 0.0, 0.0, 0.0],     # agrees
                    [1.1, 1.0, 0.0, 0.0, 0.0, 0.0],     # disagrees (0 vs 1)
                    [0.0, 0.0, 2.0, 3.0, 1.0, 0.5]])    # disagrees, ref's class 2 in got's top 5
    m = metrics(ref, got)
    p = probabilities(ref)
    assert p[0, 0] > 0.9 and abs(p[1, 1] - p[1, 0]) < 0.01 and 0.5 < p[2, 2] < 0.7
    assert m["rows"] == 3 and m["top1_hits"] == 1 and m["top1"] == pytest.approx(1 / 3)
    assert m["top5_hits"] == 3 and m["top5"] == 1.0
    assert (m["confident_rows"], m["confident_hits"], m["top1_confident"]) == (2, 1, 0.5)
    assert (m["separated_rows"], m["separated_hits"]) == (2, 1)


def test_probabilities_pass_through_and_softmax():
    probs = np.array([[0.7, 0.2, 0.1]])
    assert np.allclose(probabilities(probs), probs)
    logits = np.array([[0.0, math.log(3.0)]])
    assert np.allclose(probabilities(logits), [[0.25, 0.75]])


def test_merge_keeps_worst_errors_mean_cosine_pooled_snr_and_exact_counts():
    a = metrics(np.array([[2.0, 0.0]]), np.array([[2.0, 0.0]]))    # perfect, agrees
    b = metrics(np.array([[0.0, 1.0]]), np.array([[1.0, 0.0]]))    # orthogonal, disagrees
    m = public(merge([a, b]))
    assert m["max_abs"] == 1.0 and m["mean_abs"] == pytest.approx((0 + 1) / 2)
    assert m["cosine"] == pytest.approx(0.5) and m["cosine_min"] == pytest.approx(0.0)
    # pooled: signal 4 + 1, noise 0 + 2
    assert m["snr_db"] == pytest.approx(10 * math.log10(5 / 2)) and m["snr_db_min"] == pytest.approx(-3.0103, abs=1e-4)
    assert m["rows"] == 2 and m["top1_hits"] == 1 and m["top1"] == 0.5 and m["samples"] == 2
    assert not any(k.startswith("_") for k in m)


def test_verdict_on_every_budget_key():
    m = {"max_abs": 2e-4, "max_rel": 0.1, "cosine": 0.995, "snr_db": 25.0, "top1": 0.9, "top1_confident": 0.96,
         "confident_rows": 25, "finite": True}
    assert verdict(m, {"atol": 1e-3, "rtol": 0.2, "cosine": 0.99, "snr_db": 20, "top1": 0.9,
                       "top1_confident": 0.95}) == (True, [])
    cases = {"atol": 1e-4, "rtol": 0.05, "cosine": 0.999, "snr_db": 30, "top1": 0.95, "top1_confident": 0.97}
    for key, bound in cases.items():
        ok, misses = verdict(m, {key: bound})
        assert not ok and len(misses) == 1, key
    # no confident rows: top1_confident cannot be judged and is not counted as a miss
    assert verdict({**m, "top1_confident": None, "confident_rows": 0}, {"top1_confident": 0.99}) == (True, [])
