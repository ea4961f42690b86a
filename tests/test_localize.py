"""Localization's rules on hand-made inputs: per-layer limits from a budget, layout pairing, and which
crossing counts as the first divergent layer."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from edgec.validate.localize import Layer, _perms, _report, crosses, describe, layer_limits


def test_layer_limits_from_budgets():
    assert layer_limits({"atol": 1e-4, "cosine": 0.99999}) == {"cosine": 0.99999, "rel_atol": 1e-4}
    assert layer_limits({"top1_confident": 0.95, "cosine": 0.97}) == {"cosine": 0.97}
    assert layer_limits({"snr_db": 30}) == {"snr_db": 30}
    assert layer_limits({"top1": 0.9}) == {"cosine": 0.99}  # agreement has no per-layer meaning


def test_crosses():
    m = {"cosine": 0.995, "snr_db": 20.0, "max_abs_scaled": 1e-3, "finite": True}
    assert crosses(m, {"cosine": 0.99, "snr_db": 20, "rel_atol": 1e-3}) == []
    assert len(crosses(m, {"cosine": 0.999, "snr_db": 25, "rel_atol": 1e-4})) == 3
    assert crosses({**m, "finite": False}, {}) == ["non-finite values"]


def test_layout_pairs_try_channels_last_even_when_square():
    assert _perms((1, 3, 8, 4), (1, 8, 4, 3)) == [(0, 2, 3, 1)]
    assert _perms((1, 16, 16, 16), (1, 16, 16, 16)) == [None, (0, 2, 3, 1)]
    assert _perms((1, 10), (1, 10)) == [None] and _perms((1, 10), (1, 11)) == []
    x = np.arange(2 * 3 * 4).reshape(1, 2, 3, 4)
    assert np.transpose(x, _perms(x.shape, (1, 3, 4, 2))[0]).shape == (1, 3, 4, 2)


def _chain(cosines: list[float], extra_consumer_of: dict | None = None):
    """A graph a0 -> a1 -> ... with the given per-layer cosines against the reference."""
    n = len(cosines)
    layers = [Layer(i, "OP", 100 + i, f"a{i}", (1, 4), [f"a{i + 1}"] if i + 1 < n else []) for i in range(n)]
    for src, dst in (extra_consumer_of or {}).items():
        layers[src].consumers.append(dst)
    got = SimpleNamespace(layers=layers, outputs={100 + n - 1})
    merged = {f"a{i}": {"cosine": c, "snr_db": 10 * np.log10(1 / max(1 - c, 1e-12)), "max_abs": 0.0,
                        "mean_abs": 0.0, "max_abs_scaled": 0.0, "finite": True} for i, c in enumerate(cosines)}
    pairs = {f"a{i}": (f"r{i}", None, "name") for i in range(n)}
    return _report(got, pairs, merged, {"cosine": 0.99}, 2, 3)


def test_first_divergent_is_the_first_crossing_that_carries_on():
    r = _chain([1.0, 1.0, 0.5, 0.4, 0.3])
    assert r["first_divergent"]["tensor"] == "a2" and r["first_divergent_index"] == 2
    assert [w["tensor"] for w in r["worst"]] == ["a4", "a3"]
    assert r["largest_snr_drop"]["tensor"] == "a2"
    assert [x["tensor"] for x in r["layers"]] == ["a0", "a1", "a2", "a3", "a4"]
    assert "first divergent layer: #2 OP 'a2'" in describe(r)


def test_an_isolated_crossing_is_a_pairing_artefact_not_a_divergence():
    r = _chain([1.0, 0.2, 1.0, 1.0, 0.5])   # a1 crosses but its consumer a2 is fine again
    assert r["first_divergent"]["tensor"] == "a4"   # the output itself
    clean = _chain([1.0, 1.0, 1.0])
    assert clean["first_divergent"] is None and "builds up gradually" in describe(clean)
