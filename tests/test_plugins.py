"""Converter plugins: an installed package's ``edgec.converters`` entry point adds an edge to the
graph (here a direct Keras -> TFLite edge), the planner routes through it, and a broken plugin is
an error naming it. The plugin is a real distribution on sys.path (a ``.dist-info`` with its entry
points, as pip installs it), made in the test."""

from __future__ import annotations

import json
import textwrap

import pytest

import edgec
from edgec import convert
from edgec.errors import DependencyError
from edgec.formats import Format
from edgec.convert.planner import paths

PLUGIN = textwrap.dedent('''
    """A third-party converter: Keras -> TFLite in one step with TFLiteConverter.from_keras_model."""
    from edgec.convert import Converter
    from edgec.formats import Format


    def _run(ctx):
        import tensorflow as tf
        from edgec.runtime.loaders import load_keras

        conv = tf.lite.TFLiteConverter.from_keras_model(load_keras(ctx.input))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        ctx.output.write_bytes(conv.convert())
        return {"variant": ctx.settings.get("variant", "fp32")}


    CONVERTER = Converter(name="keras_to_tflite_direct", src=Format.KERAS, dst=Format.TFLITE, run=_run,
                          tools=("tensorflow",), uses=("variant",), cost=5.0,
                          description="demo plugin: TFLiteConverter.from_keras_model")
''')


def _install(root, name: str, target: str, module: str | None = None) -> None:
    """What pip leaves on sys.path for a package with one ``edgec.converters`` entry point."""
    dist = root / f"{name.replace('-', '_')}-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[edgec.converters]\n{name} = {target}\n")
    if module is not None:
        (root / f"{target.split(':')[0]}.py").write_text(module)


@pytest.fixture
def registry(monkeypatch):
    convert.converters()  # the built-in edges first, then a private copy the test may change
    monkeypatch.setattr(convert, "_REGISTRY", dict(convert._REGISTRY))
    monkeypatch.setattr(convert, "_PLUGINS", set(convert._PLUGINS))


def test_a_plugin_edge_is_found_and_routed_through(registry, monkeypatch, tmp_path):
    _install(tmp_path / "site", "edgec-demo-plugin", "edgec_demo_plugin:CONVERTER", PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    names = {c.name for c in convert.converters()}
    assert "keras_to_tflite_direct" in names
    assert ["keras_to_tflite_direct"] in [[c.name for c in p] for p in paths(Format.KERAS, Format.TFLITE)]

    import numpy as np
    import keras

    inp = keras.Input((8,), name="x")
    model = keras.Model(inp, keras.layers.Dense(3, name="head")(inp))
    model.set_weights([np.random.default_rng(0).standard_normal(w.shape).astype("float32")
                       for w in model.get_weights()])
    path = tmp_path / "m.keras"
    model.save(path)
    res = edgec.build(edgec.BuildConfig(model=str(path), out=str(tmp_path / "out"), cache_dir=str(tmp_path / "c"),
                                        variants=("fp32",), synthetic_validation=True, bench=False,
                                        route=("keras", "tflite")))
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m["route_search"]["converters"] == ["keras_to_tflite_direct"] and res.manifest["parity"]["ok"]


def test_a_broken_plugin_is_named(registry, monkeypatch, tmp_path):
    _install(tmp_path / "site", "edgec-broken-plugin", "edgec_broken_plugin:CONVERTER",
             "raise ImportError('needs libfoo')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(DependencyError, match=r"converter plugin 'edgec-broken-plugin'.*needs libfoo") as info:
        convert.converters()
    assert "edgec-broken-plugin" in info.value.hint
