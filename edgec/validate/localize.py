"""Localization: the first layer where a TFLite model's numbers part from a reference model's.

The candidate is a TFLite model, run with the reference kernels (no delegate, so every op's output
exists) and ``experimental_preserve_all_tensors``; each op output is dequantized if it is quantized.
The reference is another TFLite model (its tensors matched by name: the fp32 model a quantized
variant was made from) or an ONNX model (intermediates from onnxruntime, matched by shape and
value: onnx2tf's TFLite tensors do not carry ONNX names). Where names do not match, a layer is
paired with the shape-compatible reference tensor (NCHW <-> NHWC allowed) closest to it in value on
the first sample.

Memory stays bounded: tensors are fetched one at a time from the interpreter, ONNX intermediates in
chunks of at most ``CHUNK_BYTES``; only per-layer metrics are kept.

A layer *crosses* the limits derived from the stage's budget (cosine, SNR, or max abs error scaled
by the layer's magnitude). It is *divergent* if it crosses and the error carries on: it is a model
output, or a consumer's output also crosses (an isolated mismatch is a pairing artefact).
"""

from __future__ import annotations

import math

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgec.formats import TensorSpec
from edgec.validate.compare import merge, metrics, public

CHUNK_BYTES = 64 << 20
SAMPLES = 8           # validation samples used to localize
TOP = 5               # worst layers reported


@dataclass
class Layer:
    op_index: int
    op: str
    tensor: int
    name: str
    shape: tuple
    consumers: list[str] = field(default_factory=list)   # output names of the ops that read it


def layer_limits(budget: dict) -> dict:
    """Per-layer limits from an output budget: its scale-free terms (cosine, SNR), and its ``atol``
    relative to the layer's magnitude (max abs error <= atol x max(1, max |ref|)), which also
    catches a layer that is off by a scale factor. Agreement terms (top1) have no per-layer sense."""
    lim = {k: budget[k] for k in ("cosine", "snr_db") if k in budget}
    if "atol" in budget or "atol_scaled" in budget:
        lim["rel_atol"] = min(budget.get("atol", math.inf), budget.get("atol_scaled", math.inf))
    return lim or {"cosine": 0.99}


def crosses(m: dict, lim: dict) -> list[str]:
    misses = []
    if not m.get("finite", True):
        misses.append("non-finite values")
    if "cosine" in lim and not m["cosine"] >= lim["cosine"]:
        misses.append(f"cosine {m['cosine']:.6f} < {lim['cosine']}")
    if "snr_db" in lim and not m["snr_db"] >= lim["snr_db"]:
        misses.append(f"snr {m['snr_db']:.1f} dB < {lim['snr_db']}")
    if "rel_atol" in lim and not m["max_abs_scaled"] <= lim["rel_atol"]:
        misses.append(f"max_abs/scale {m['max_abs_scaled']:.3g} > {lim['rel_atol']:.3g}")
    return misses


def _layer_metrics(ref: np.ndarray, got: np.ndarray) -> dict:
    m = metrics(ref, got)
    for k in [k for k in m if k not in ("max_abs", "mean_abs", "max_rel", "cosine", "snr_db", "finite", "_signal",
                                        "_noise")]:
        m.pop(k)
    scale = max(1.0, float(np.max(np.abs(ref)))) if ref.size and np.isfinite(ref).all() else 1.0
    m["max_abs_scaled"] = m["max_abs"] / scale
    return m


def _merge(ms: list[dict]) -> dict:
    out = public(merge(ms))
    out["max_abs_scaled"] = max(m["max_abs_scaled"] for m in ms)
    return out


# -- tensor sources -------------------------------------------------------------------------------

class TFLiteTensors:
    """A .tflite run with the reference kernels, every tensor preserved and readable by name."""

    kind = "tflite"

    def __init__(self, path: Path, source_inputs: list[TensorSpec], source_outputs: list[TensorSpec],
                 io_map: dict | None = None, threads: int = 0):
        from edgec.runtime.runners import TFLiteRunner

        self.runner = TFLiteRunner(Path(path), source_inputs, source_outputs, threads, io_map=io_map,
                                   reference_kernels=True, preserve_all_tensors=True)
        interp = self.runner.interp
        self.details = {d["index"]: d for d in interp.get_tensor_details()}
        self.by_name = {d["name"]: d for d in self.details.values()}
        self.outputs = {d["index"] for d in interp.get_output_details()}
        self.layers = self._layers(interp)
        self.order = {name: i for i, name in enumerate(
            [self.details[d["index"]]["name"] for d in interp.get_input_details()] + [L.name for L in self.layers])}

    def _readable(self, d: dict) -> bool:
        kind = np.dtype(d["dtype"]).kind
        return kind == "f" or (kind in "iu" and len(d["quantization_parameters"]["scales"]) > 0)

    def _layers(self, interp) -> list[Layer]:
        ops = interp._get_ops_details()
        readers: dict[int, list[int]] = defaultdict(list)
        for op in ops:
            for t in op["inputs"]:
                readers[int(t)].append(op["index"])
        out_names = {op["index"]: [self.details[int(t)]["name"] for t in op["outputs"]] for op in ops}
        layers = []
        for op in ops:
            for t in op["outputs"]:
                d = self.details[int(t)]
                if self._readable(d):
                    consumers = [n for r in readers[int(t)] for n in out_names[r]]
                    layers.append(Layer(op["index"], op["op_name"], int(t), d["name"],
                                        tuple(int(x) for x in d["shape"]), consumers))
        return layers

    def shapes(self) -> dict[str, tuple]:
        """Every readable tensor: the model inputs and the op outputs."""
        interp = self.runner.interp
        names = [self.details[d["index"]]["name"] for d in interp.get_input_details()] + [L.name for L in self.layers]
        return {n: tuple(int(x) for x in self.by_name[n]["shape"]) for n in names if self._readable(self.by_name[n])}

    def run(self, feed: dict) -> None:
        self.runner.infer(feed)

    def value(self, name: str) -> np.ndarray:
        d = self.by_name[name]
        x = self.runner.interp.get_tensor(d["index"])
        q = d["quantization_parameters"]
        if np.dtype(d["dtype"]).kind in "iu" and len(q["scales"]):
            from edgec.runtime.tflite import dequantize_array

            return dequantize_array(x, q["scales"], q["zero_points"], q["quantized_dimension"])
        return np.asarray(x, dtype=np.float32)

    def fetch(self, names):
        for n in names:
            yield n, self.value(n)


class OnnxTensors:
    """ONNX intermediates from onnxruntime: every float tensor computed from the inputs, fetched
    in chunks (one session per chunk, made once) so that only one chunk is held at a time. Shapes
    that shape inference leaves open (a graph that computes its own pads) are read on the first run."""

    kind = "onnx"
    _COUNT = 32   # tensors per chunk while their sizes are unknown

    def __init__(self, path: Path, source_inputs: list[TensorSpec], threads: int = 0):
        from edgec.errors import require
        from edgec.runtime.runners import OnnxRunner

        onnx = require("onnx", purpose="ONNX intermediates")
        self.runner = OnnxRunner(Path(path), source_inputs, threads)
        model = onnx.load(str(path))
        try:
            model = onnx.shape_inference.infer_shapes(model)
        except Exception:  # shapes are then read from a run
            pass
        self._shapes, self.order = _onnx_tensors(model)
        self._model, self._threads, self._sessions = model, threads, {}
        self.feed = None

    def shapes(self) -> dict[str, tuple]:
        unknown = [n for n, s in self._shapes.items() if s is None]
        if unknown:  # one pass over the model with those tensors as outputs, a chunk at a time
            for i in range(0, len(unknown), self._COUNT):
                chunk = unknown[i:i + self._COUNT]
                for n, v in self._session(tuple(chunk)).infer(self.feed, chunk).items():
                    self._shapes[n] = tuple(v.shape) if np.asarray(v).dtype.kind == "f" else False
            self._sessions.clear()
            self._shapes = {n: s for n, s in self._shapes.items() if s}
        return dict(self._shapes)

    def run(self, feed: dict) -> None:
        self.feed = {p["name"]: np.ascontiguousarray(np.transpose(feed[p["source"]], p["perm"]))
                     if p["perm"] is not None else feed[p["source"]] for p in self.runner.pairs}

    def _session(self, names: tuple):
        """The model with ``names`` as its outputs, loaded once per chunk."""
        if names not in self._sessions:
            import onnx

            from edgec.runtime.onnxruntime import OnnxRuntime

            m = onnx.ModelProto()
            m.CopyFrom(self._model)
            del m.graph.output[:]
            for n in names:
                m.graph.output.append(onnx.ValueInfoProto(name=n))
            self._sessions[names] = OnnxRuntime(m.SerializeToString(), threads=self._threads).load()
        return self._sessions[names]

    def fetch(self, names):
        shapes = self.shapes()
        wanted = sorted((n for n in set(names) if n in shapes), key=lambda n: self.order.get(n, 0))
        for chunk in _chunks(wanted, shapes):
            values = self._session(tuple(chunk)).infer(self.feed, list(chunk))
            for n in chunk:
                yield n, values.pop(n)
            del values


def _onnx_tensors(model) -> tuple[dict[str, tuple | None], dict[str, int]]:
    """Tensors computed from the graph inputs (float or of unknown type), in node order, with
    their static shape where shape inference found one (None where not)."""
    inits = {i.name for i in model.graph.initializer}
    live = {i.name for i in model.graph.input if i.name not in inits}
    info = {v.name: v for v in list(model.graph.value_info) + list(model.graph.output)}
    shapes, order = {}, {}
    for node in model.graph.node:
        if not any(i in live for i in node.input if i):
            continue
        for out in node.output:
            live.add(out)
            v = info.get(out)
            elem = v.type.tensor_type.elem_type if v is not None else 0
            if elem not in (0, 1):
                continue
            dims = v.type.tensor_type.shape.dim if v is not None else []
            static = dims and all(d.HasField("dim_value") and d.dim_value > 0 for d in dims)
            shapes[out] = tuple(int(d.dim_value) for d in dims) if static and elem == 1 else None
            order[out] = len(order)
    return shapes, order


def _chunks(names: list[str], shapes: dict) -> list[list[str]]:
    chunks, cur, size = [], [], 0
    for n in names:
        b = 4 * int(np.prod(shapes[n]))
        if cur and size + b > CHUNK_BYTES:
            chunks.append(cur)
            cur, size = [], 0
        cur.append(n)
        size += b
    return chunks + ([cur] if cur else [])


# -- pairing and comparing ------------------------------------------------------------------------

def _perms(ref_shape: tuple, got_shape: tuple) -> list:
    """Permutations p with ref.transpose(p).shape == got.shape: identity, or channels-last."""
    out = []
    if tuple(ref_shape) == tuple(got_shape):
        out.append(None)
    rank = len(ref_shape)
    if rank >= 3:
        last = (0, *range(2, rank), 1)
        if tuple(ref_shape[i] for i in last) == tuple(got_shape):  # also when square: both are tried
            out.append(last)
    return out


def _t(x: np.ndarray, perm) -> np.ndarray:
    return np.transpose(x, perm) if perm is not None else x


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if not (np.isfinite(na) and np.isfinite(nb)):
        return -1.0
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    return float(np.dot(a, b) / (na * nb))


def pair_layers(ref, got, by_name: bool = True) -> dict[str, tuple]:
    """Pair each of ``got``'s layers with a reference tensor: the same name and shape, else the
    shape-compatible reference tensor closest in value (cosine) on the current sample.
    Both models must have been ``run`` on the same sample. Returns {layer: (ref name, perm, how)}."""
    ref_shapes = ref.shapes()
    pairs, wanted = {}, defaultdict(list)
    for L in got.layers:
        if by_name and L.name in ref_shapes and tuple(ref_shapes[L.name]) == L.shape:
            pairs[L.name] = (L.name, None, "name")
            continue
        for r, shape in ref_shapes.items():
            for perm in _perms(shape, L.shape):
                wanted[r].append((L.name, perm))
    best: dict[str, tuple] = {}
    ranks = ref.order
    for r, value in ref.fetch(sorted(wanted, key=lambda n: ranks.get(n, 0))):
        for lname, perm in wanted[r]:
            score = _cosine(_t(value, perm), got.value(lname))
            if lname not in best or score > best[lname][0] + 1e-9:
                best[lname] = (score, r, perm)
    for lname, (_, r, perm) in best.items():
        pairs[lname] = (r, perm, "value")
    return pairs


def compare_layers(ref, got, feeds: list[dict], limits: dict, top: int = TOP, by_name: bool = True) -> dict:
    """Per-layer metrics of ``got`` against ``ref`` over ``feeds``; the first divergent layer and
    the worst ``top`` by SNR. Only metrics are kept between samples."""
    ref.run(feeds[0])
    got.run(feeds[0])
    pairs = pair_layers(ref, got, by_name)
    by_ref = defaultdict(list)
    for lname, (r, perm, _) in pairs.items():
        by_ref[r].append((lname, perm))
    stats: dict[str, list] = defaultdict(list)
    for i, feed in enumerate(feeds):
        if i:
            ref.run(feed)
            got.run(feed)
        for r, value in ref.fetch(list(by_ref)):
            for lname, perm in by_ref[r]:
                stats[lname].append(_layer_metrics(_t(value, perm), got.value(lname)))
    merged = {n: _merge(v) for n, v in stats.items()}
    return _report(got, pairs, merged, limits, top, len(feeds))


def _record(L: Layer, pair: tuple, m: dict, limits: dict) -> dict:
    return {"index": L.op_index, "op": L.op, "tensor": L.name, "reference_tensor": pair[0],
            "matched_by": pair[2], "shape": list(L.shape), **{k: m.get(k) for k in
            ("cosine", "cosine_min", "snr_db", "snr_db_min", "max_abs", "mean_abs", "max_abs_scaled", "finite")},
            "misses": crosses(m, limits)}


def _report(got, pairs: dict, merged: dict, limits: dict, top: int, samples: int) -> dict:
    by_name = {L.name: L for L in got.layers}
    records = {n: _record(by_name[n], pairs[n], m, limits) for n, m in merged.items()}
    ordered = [records[L.name] for L in got.layers if L.name in records]
    first = None
    for rec in ordered:
        L = by_name[rec["tensor"]]
        if not rec["misses"]:
            continue
        after = [records[c] for c in L.consumers if c in records]
        if L.tensor in got.outputs or not after or any(c["misses"] for c in after):
            first = rec
            break
    inputs_of = defaultdict(list)
    for rec in ordered:
        for c in by_name[rec["tensor"]].consumers:
            inputs_of[c].append(rec["snr_db"])
    for rec in ordered:  # how much SNR this layer loses over the worst of its matched inputs
        ins = inputs_of.get(rec["tensor"])
        rec["snr_drop_db"] = (min(ins) - rec["snr_db"]) if ins else None
    drops = [r for r in ordered if r["snr_drop_db"] is not None and np.isfinite(r["snr_drop_db"])]
    curve = [{k: r[k] for k in ("index", "op", "tensor", "snr_db", "cosine")} for r in ordered]
    return {"samples": samples, "limits": limits, "total_layers": len(got.layers), "compared": len(ordered),
            "layers": curve, "first_divergent_index": ordered.index(first) if first else None,
            "threshold_db": limits.get("snr_db"),
            "matched_by_name": sum(1 for p in pairs.values() if p[2] == "name"),
            "first_divergent": first,
            "worst": sorted(ordered, key=lambda r: r["snr_db"])[:top],
            "largest_snr_drop": max(drops, key=lambda r: r["snr_drop_db"]) if drops else None}


# -- the worker task ------------------------------------------------------------------------------

def run_layer_task(task: dict) -> dict:
    """In the worker: compare ``task['got']`` (TFLite) with ``task['ref']`` (TFLite or ONNX)."""
    specs_in = [TensorSpec.from_dict(d) for d in task["source_inputs"]]
    specs_out = [TensorSpec.from_dict(d) for d in task["source_outputs"]]
    threads = task.get("threads", 0)
    if task["ref_kind"] == "onnx":
        ref = OnnxTensors(Path(task["ref"]), specs_in, threads)
    else:
        ref = TFLiteTensors(Path(task["ref"]), specs_in, specs_out, task.get("ref_io_map"), threads)
    got = TFLiteTensors(Path(task["got"]), specs_in, specs_out, task.get("got_io_map"), threads)
    from edgec.runtime.isolated import read_feeds

    feeds = list(read_feeds(Path(task["inputs"]), task.get("samples", SAMPLES)))
    report = compare_layers(ref, got, feeds, task["limits"], task.get("top", TOP),
                            by_name=task["ref_kind"] == "tflite")
    return {"reference": task["ref"], "reference_kind": task["ref_kind"], "model": task["got"], **report}


def describe(loc: dict) -> str:
    """One line: the first divergent layer, or why there is none."""
    if loc.get("error"):
        return f"localization failed: {loc['error']}"
    f = loc.get("first_divergent")
    if not f:
        return (f"no layer crosses {_limits_text(loc.get('limits', {}))} over {loc.get('compared', 0)} compared "
                "layers: the error builds up gradually")
    return (f"first divergent layer: #{f['index']} {f['op']} '{f['tensor']}' (cosine {f['cosine']:.6f}, "
            f"snr {f['snr_db']:.1f} dB; {'; '.join(f['misses'])})")


def _limits_text(lim: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in lim.items()) or "the limits"
