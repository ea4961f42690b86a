"""Plan a route through the graph, run each step through the cache, check parity, write the manifest.

Nothing is written into the output directory until the whole build has succeeded: the build is
assembled in a staging directory beside it and moved into place file by file, manifest last.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from edgec import __version__
from edgec.environment import environment as _environment, tool_versions
from edgec.pipeline.cache import Cache, step_key
from edgec.pipeline.config import BuildConfig
from edgec.convert import Converter, StepContext
from edgec.errors import (ConversionError, DependencyError, EdgecError, InputError, NoRouteError, OutputError,
                     ParityError, UnsupportedModelError, UnsupportedOpsError, UsageError)
from edgec.fsio import replace_path
from edgec.formats import Artifact, Format, TensorSpec, detect_format, digest, size_of
from edgec.convert.planner import plan
from edgec.pipeline.progress import Progress
from edgec.targets import VARIANTS, TargetProfile, load_target

SCHEMA_VERSION = 1
BUILDABLE_VARIANTS = ("fp32", "fp16", "dynamic_int8", "int8", "int16x8")

def converter_tools(conv: Converter) -> dict[str, str]:
    """The versions that key a converter's steps: of edgec's venv, or of the converter's own environment."""
    if conv.env:
        from edgec.convert import envs

        return envs.versions(envs.get(conv.env), conv.tools)
    return tool_versions(conv.tools)


@dataclass
class BuildResult:
    out: Path
    manifest: dict
    steps: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.manifest.get("parity", {}).get("ok", True)


def build(cfg: BuildConfig, progress: Progress | None = None) -> BuildResult:
    progress = progress or Progress(enabled=False)
    target = load_target(cfg.target)
    variants = _variants(cfg, target)
    out = Path(cfg.out)
    _check_writable(out)
    from edgec.pipeline.cache import open_cache

    cache = open_cache(cfg.cache_dir, enabled=cfg.use_cache)  # a directory or an fsspec URL (s3://...)
    from edgec.validate import worker

    try:
        return _Build(cfg, target, variants, out, cache, progress).run()
    finally:
        worker.release()
        cache.close()


def _variants(cfg: BuildConfig, target: TargetProfile) -> tuple[str, ...]:
    variants = tuple(cfg.variants or target.variants)
    for v in variants:
        if v not in VARIANTS:
            raise UsageError(f"unknown variant '{v}'", hint=f"known: {', '.join(VARIANTS)}")
    if "fp32" not in variants:
        variants = ("fp32", *variants)  # the float reference every other variant is compared to
    return variants


def _check_writable(out: Path) -> None:
    """Fail before any work if the output cannot be written (tested by writing, not by mode bits)."""
    import tempfile

    if out.exists() and not out.is_dir():
        raise OutputError("output path exists and is not a directory", where=str(out), hint="pick another -o")
    parent = out.resolve().parent
    if not parent.is_dir():
        raise OutputError("parent directory of the output does not exist", where=str(out),
                          hint=f"create {parent} first")
    for d in ([out] if out.is_dir() else []) + [parent]:
        try:
            tempfile.TemporaryDirectory(prefix=".edgec-probe-", dir=d).cleanup()
        except OSError as exc:
            raise OutputError(f"output directory is not writable ({exc.strerror})", where=str(out),
                              hint="pick another -o") from None


class _Build:
    def __init__(self, cfg, target, variants, out, cache, progress):
        self.cfg, self.target, self.variants, self.out = cfg, target, variants, out
        self.cache, self.progress = cache, progress
        self.steps: list[dict] = []
        self.constants: dict = {}  # ONNX inputs fixed by --input-value (fed to the source run only)
        self.static_outputs: dict = {}  # {sha256, outputs}: shapes the canonical ONNX resolved (the source may not)
        self.settings = {"exporter": cfg.exporter, "opset": cfg.opset, "keep_layout": cfg.keep_layout,
                         "input_shapes": {k: list(v) for k, v in cfg.input_shapes.items()},
                         "input_dtypes": dict(cfg.input_dtypes), "onnx2tf": None}

    # -- source and probe ---------------------------------------------------------------------------
    def _source(self) -> Artifact:
        cfg = self.cfg
        if cfg.factory:
            from edgec.pipeline.sources import materialize_factory

            return materialize_factory(cfg.factory, self.cache)
        path = Path(cfg.model)
        fmt = detect_format(path)
        if fmt is Format.TORCH_MODULE and not cfg.trust_pickle:
            from edgec.runtime.loaders import load_torch

            load_torch(path, fmt, trust_pickle=False)  # raises the refusal with its hint
        return Artifact(path, fmt, meta={"sha256": digest(path)})

    def _probe(self, src: Artifact) -> dict:
        from edgec.pipeline.sources import probe

        key = step_key("probe", src.meta["sha256"], {"shapes": self.settings["input_shapes"],
                                                      "dtypes": self.settings["input_dtypes"],
                                                      "format": src.format.value}, tool_versions(("torch",)))
        entry = self.cache.get(key)
        if entry is None:
            with self.progress.step(f"reading {src.format.value} inputs"):
                entry = self.cache.put(key, lambda p: _write_json(p, probe(src, self.cfg)))
        return json.loads(entry.output.read_text())

    # -- steps --------------------------------------------------------------------------------------
    def _step(self, conv: Converter, inp: Artifact, inputs: list[TensorSpec], extra: dict | None = None,
              label: str = "", resources: dict | None = None) -> Artifact:
        settings = dict(self.settings, **(extra or {}))
        used = {k: settings.get(k) for k in conv.uses}
        tools = converter_tools(conv)
        in_sha = inp.meta.get("sha256") or digest(inp.path)
        key = step_key(conv.name, in_sha, used, tools)
        t0 = time.perf_counter()
        entry = self.cache.get(key)
        cached = entry is not None
        title = f"{conv.src.value} -> {conv.dst.value}{label} ({conv.name})"
        if entry is None:
            _raise_cached_failure(self.cache, key, title, self.progress)

            def produce(out_path: Path) -> dict:
                ctx = StepContext(inp.path, out_path, inputs, used, resources=resources or {})
                t = time.perf_counter()
                meta = conv.run(ctx)
                return {"step": conv.name, "meta": meta, "seconds": round(time.perf_counter() - t, 3),
                        "input_sha256": in_sha}

            try:
                with self.progress.step(title):
                    entry = self.cache.put(key, produce)
                cached = entry.reused  # a concurrent build (edgec matrix) produced it while this one waited
            except (ConversionError, UnsupportedModelError) as exc:
                _cache_failure(self.cache, key, exc, round(time.perf_counter() - t0, 3))
                raise
        else:
            self.progress.done(title, cached=True)
        meta = entry.meta.get("meta", {})
        self.steps.append({"name": conv.name, "from": conv.src.value, "to": conv.dst.value,
                           "variant": settings.get("variant") if "variant" in conv.uses else None,
                           "input_sha256": in_sha, "output_sha256": entry.meta["output_sha256"],
                           "tools": tools, "settings": used, "cache_key": key, "cached": cached,
                           "seconds": entry.meta.get("seconds") if not cached else round(time.perf_counter() - t0, 3),
                           "build_seconds": entry.meta.get("seconds"),
                           **{k: v for k, v in meta.items() if k not in ("io", "outputs")}})
        return Artifact(entry.output, conv.dst, settings.get("variant") if "variant" in conv.uses else None,
                        meta={"sha256": entry.meta["output_sha256"], "io": meta.get("io"),
                              "outputs": meta.get("outputs")})

    # -- route search ---------------------------------------------------------------------------------
    def _search(self, src: Artifact, inputs: list[TensorSpec], outputs: list[TensorSpec]):
        """Try the candidate routes until one gives a fp32 TFLite within the fp32 parity budget.
        Returns (the candidate, its chain, its fp32 TFLite, the ``route_search`` record)."""
        from edgec.convert.planner import paths, plan
        from edgec.convert.routes import Search

        if self.cfg.route:
            search = Search.forced(src.format, plan(src.format, Format.TFLITE, self.cfg.route), inputs)
        else:
            search = Search.for_source(src.format, paths(src.format, Format.TFLITE), inputs,
                                       keep_layout=self.cfg.keep_layout, exporter=self.cfg.exporter)
        attempts, errors, fallback, passed = [], [], None, []
        self.not_feasible = search.not_feasible
        compare = bool(getattr(self.cfg, "compare_routes", False)) and not self.cfg.route
        while (cand := search.next()) is not None:
            n_steps = len(self.steps)
            rec, chain, fp32, error = self._attempt(cand, src, inputs, outputs)
            attempts.append(rec)
            errors.append(error)
            if self.cfg.route and error is not None:
                raise error  # a forced route fails as its step failed
            if rec["ok"] and compare:  # --compare-routes: keep it and try the other routes too
                passed.append((cand, chain, fp32, self.steps[n_steps:], rec))
                del self.steps[n_steps:]
                search.passed(cand)
                continue
            if rec["ok"] or self.cfg.route:
                chosen = "forced with --route" if self.cfg.route else \
                    f"{cand.why}: {rec['reason']}" if len(attempts) == 1 else \
                    f"attempt {len(attempts)} ({cand.why}) is the first within the fp32 parity budget: {rec['reason']}"
                return cand, chain, fp32, self._route_record(cand, chosen, attempts)
            if error is None and fallback is None and rec["parity"].get("ran", True):
                fallback = (cand, chain, fp32, self.steps[n_steps:])  # converted and runs, but misses
            del self.steps[n_steps:]  # a failed attempt's steps are in its record, not the build's
            search.failed(cand, error, _graph_ops(chain), rec.get("parity"))
        if passed:
            from edgec.pipeline.route_compare import choose

            cand, chain, fp32, steps, reason = choose(self, passed, inputs, outputs)
            self.steps.extend(steps)
            return cand, chain, fp32, self._route_record(cand, reason, attempts)
        if fallback is None:
            unsupported = all(isinstance(e, UnsupportedModelError) for e in errors)
            raise NoRouteError(src.format.value, attempts, where=str(self.cfg.model or self.cfg.factory),
                               unsupported=unsupported)
        cand, chain, fp32, steps = fallback
        self.steps.extend(steps)
        why = (f"no route was within the fp32 parity budget; kept {cand.label()}, the first that converted "
               f"(its ledger shows the miss)")
        return cand, chain, fp32, self._route_record(cand, why, attempts)

    def _attempt(self, cand, src: Artifact, inputs: list[TensorSpec], outputs: list[TensorSpec]):
        """Convert along one candidate to a fp32 TFLite and check it; (record, chain, fp32, error)."""
        n_steps, t0 = len(self.steps), time.perf_counter()
        rec = {"route": cand.formats(), "converter": [c.name for c in cand.converters],
               "options": cand.describe_options(), "why": cand.why}
        chain, fp32, error = [src], None, None
        try:
            for conv in cand.converters[:-1]:
                self._canonical(conv, chain, inputs)
                chain.append(self._step(conv, chain[-1], inputs, cand.settings))
            self._canonical(cand.converters[-1], chain, inputs)
            fp32 = self._step(cand.converters[-1], chain[-1], inputs, {**cand.settings, "variant": "fp32"},
                              label=" [fp32]")
        except (ConversionError, UnsupportedModelError, DependencyError) as exc:
            error = exc
        if error is None:
            ok, reason, rec["parity"] = self._check_fp32(src, chain, fp32, inputs, outputs)
            cached = all(st["cached"] for st in self.steps[n_steps:])
        else:
            ok, reason, cached = False, _one_line(error), bool(getattr(error, "cached", False))
        rec.update(ok=ok, reason=reason, seconds=round(time.perf_counter() - t0, 3), cached=cached)
        return rec, chain, fp32, error

    def _canonical(self, conv, chain: list[Artifact], inputs: list[TensorSpec]) -> None:
        """Before onnx2tf reads an ONNX: the canonicalization pass (fixed shapes, constant inputs,
        simplification, If folding). The canonical ONNX takes the exported one's place in the chain;
        the ledger still compares every stage with the original source."""
        from edgec.convert.routes import ONNX2TF_CONVERTERS

        last = chain[-1]
        if conv.name not in ONNX2TF_CONVERTERS or last.format is not Format.ONNX or last.meta.get("canonical"):
            return
        from edgec.passes.canonicalize import build_step

        extra = {"canonical_shapes": {s.name: list(s.shape) for s in inputs},
                 "input_values": dict(self.cfg.input_values) or None}
        art = self._step(build_step(), last, inputs, extra, label=" canonicalize")
        art.meta["canonical"] = True
        if self.static_outputs.get("sha256") != art.meta["sha256"]:  # every attempt reuses one canonical ONNX
            self.static_outputs = {"sha256": art.meta["sha256"], "outputs": _static_outputs(art)}
        art.meta["outputs"] = art.meta.get("outputs") or last.meta.get("outputs")
        if len(chain) > 1:
            chain[-1] = art       # the exported ONNX stays in the steps; the canonical one is the stage
        else:
            chain.append(art)     # an ONNX source stays the reference

    def _route_record(self, cand, reason: str, attempts: list[dict]) -> dict:
        rec = {"chosen": cand.formats(), "converters": [c.name for c in cand.converters],
               "options": cand.describe_options(), "reason": reason, "attempts": attempts}
        if getattr(self, "not_feasible", None):
            rec["not_feasible"] = self.not_feasible  # routes this source cannot take, and why (edgec.convert.routes)
        if getattr(self.cfg, "compare_routes", False) and not self.cfg.route:
            rec["compared"] = True
        return rec

    def _check_fp32(self, src, chain, fp32, inputs, outputs) -> tuple[bool, str, dict]:
        """The fp32 TFLite against the source on the validation data, with the fp32 budget."""
        from edgec.validate.ledger import run_ledger

        outputs = _refined(outputs or self._outputs_from(chain + [fp32]), self.static_outputs.get("outputs", {}))
        ledger = run_ledger(self, src, chain[1:], [fp32], inputs, outputs, self.data.validation)
        st = next(s for s in ledger["stages"] if s["stage"] == "tflite:fp32")
        check = {"ok": st["ok"], "budget": st["budget"]}
        if st.get("error"):  # a TFLite that cannot run was not converted, whatever the converter said
            check["ran"] = False
            return False, f"converted, but the fp32 TFLite does not run: {st['error']}", check
        check["shape_mismatch"] = any("shape_mismatch" in r for r in st.get("outputs") or [])
        worst = _worst(st)
        check.update(worst)
        if st["ok"]:
            return True, f"fp32 parity ok ({_fmt_worst(worst)})", check
        return False, f"converted, but missed the fp32 parity budget: {'; '.join(st['misses'][:2])}", check

    def run(self) -> BuildResult:
        src = self._source()
        if self.cfg.input_values and src.format is not Format.ONNX:
            raise UsageError(f"--input-value fixes inputs of an ONNX model; this source is {src.format.value}",
                             where=str(src.path), hint="for PyTorch, bake the value into the module (or export "
                             "ONNX with it as an input and pass the .onnx)")
        info = self._probe(src)
        inputs = [TensorSpec.from_dict(d) for d in info["inputs"]]
        self.source_input_order = [s.name for s in inputs]
        inputs, self.constants = self._constant_inputs(src, inputs)
        if not inputs and src.format is not Format.TFLITE:
            raise UnsupportedModelError("the model has no inputs left to feed: its outputs are constants, so "
                                        "there is nothing to run on a device", where=str(src.path),
                                        hint="export the model with its real inputs (or fix fewer with --input-value)")
        from edgec.bundle import precheck

        precheck(self.cfg, self.target, inputs)  # bundle settings the inputs already refuse
        from edgec.data.calibration import resolve

        forced = plan(src.format, Format.TFLITE, self.cfg.route) if self.cfg.route else []
        self.data = resolve(self.cfg, self.variants, inputs, src.format, forced)  # before any conversion
        self._prewarm(src)
        outputs = [TensorSpec.from_dict(d) for d in info.get("outputs", [])]
        if src.format is Format.TFLITE:
            cand, chain, fp32 = None, [src], None
            search = {"chosen": [src.format.value], "converters": [], "options": {}, "attempts": [],
                      "reason": "the source is already TFLite: there is nothing to convert"}
        else:
            cand, chain, fp32, search = self._search(src, inputs, outputs or None)
        route = list(cand.converters) if cand else []
        extra = cand.settings if cand else {}
        tflites, skipped = self._variants(route, chain[-1], inputs, src, fp32, extra)
        outputs = _refined(outputs or self._outputs_from(chain + tflites), self.static_outputs.get("outputs", {}))
        from edgec.pipeline.parity import run_parity

        parity = run_parity(self, src, chain[1:], tflites, inputs, outputs)
        self.chosen_parity = parity
        manifest = self._manifest(src, route, chain, tflites, skipped, inputs, outputs, parity)
        manifest["route_search"] = search
        extra_routes = None
        if getattr(self, "compared_routes", None):  # --compare-routes: the other passing routes' files
            from edgec.pipeline.route_compare import finish

            extra_routes = finish(self, search, src, inputs, outputs, fp32)
        if getattr(self.cfg, "bench", True):  # measured once per artifact and machine, then cached
            from edgec.bench.build import bench_variants

            manifest["bench"] = bench_variants(self, chain, tflites)
        from edgec.bundle import for_build

        bundle = for_build(self, manifest, tflites)
        self._publish(chain[1:] + tflites, manifest, bundle if extra_routes is None else extra_routes(bundle))
        if not parity["ok"] and self.cfg.parity == "fail":
            failed = ", ".join(f"{s['stage']}" for s in parity["stages"] if not s["ok"])
            found = f" ({parity['finding']})" if parity.get("finding") else ""
            tried = "" if len(search["attempts"]) < 2 else \
                f"; routes tried: {NoRouteError.listing(search['attempts'])}"
            err = ParityError(f"parity budget missed by {failed}{found}{tried}; build written to {self.out} "
                              "with the ledger in manifest.json", where=str(self.out / "manifest.json"),
                              hint="inspect the ledger; --parity warn writes the build without failing")
            err.result = BuildResult(self.out, manifest, self.steps)  # the CLI still prints the ledger
            raise err
        return BuildResult(self.out, manifest, self.steps)

    def _prewarm(self, src: Artifact) -> None:
        """Start the ledger's framework children now, so their imports overlap the conversion."""
        if src.format is Format.TFLITE or self.data.validation is None:
            return
        from edgec.validate import worker

        families = {"tensorflow": "tensorflow"}
        if src.format not in (Format.SAVED_MODEL, Format.KERAS):  # the source runs in torch or onnxruntime
            families["torch/onnxruntime"] = "onnxruntime" if src.format is Format.ONNX else "torch/onnxruntime"
        worker.prewarm(families)

    def _constant_inputs(self, src: Artifact, inputs: list[TensorSpec]):
        """Split off the inputs ``--input-value`` fixes: (the model's remaining inputs, {name: array})."""
        if not self.cfg.input_values:
            return inputs, {}
        from edgec.passes.canonicalize import parse_input_value

        consts = dict(parse_input_value(f"{k}={v}", inputs) for k, v in self.cfg.input_values.items())
        return [s for s in inputs if s.name not in consts], consts

    def _variants(self, route, last: Artifact, inputs, src, fp32, extra: dict) -> tuple[list[Artifact], list[dict]]:
        skipped = []
        if not route:
            art = Artifact(src.path, Format.TFLITE, "fp32", meta={"sha256": src.meta["sha256"]})
            skipped = [{"variant": v, "reason": "the source is already TFLite; no conversion was run"}
                       for v in self.variants if v != "fp32"]
            return [art], skipped
        from edgec.passes.quantize import needs_calibration

        final = route[-1]
        arts = [fp32]
        try:
            for v in self.variants:
                if v == "fp32":
                    continue
                if needs_calibration(v) and final.name != "tf_to_tflite" and not final.calibrates:
                    skipped.append({"variant": v, "reason": f"the chosen route ends with {final.name}, which "
                                    "does not calibrate; full-integer variants are made by TFLiteConverter from "
                                    "a SavedModel"})
                    continue
                step_extra, resources = {**extra, "variant": v}, None
                if needs_calibration(v):  # int8, int16x8: calibrated on the build's calibration data
                    step_extra["quantization"], resources = self.data.quantization(v, self.cfg.quant_io, last,
                                                                                   inputs)
                arts.append(self._step(final, last, inputs, step_extra, label=f" [{v}]", resources=resources))
        finally:
            self.data.close()
        return arts, skipped

    def _outputs_from(self, chain: list[Artifact]) -> list[TensorSpec]:
        """Output specs of a source that does not state them (torch): from the exported ONNX."""
        for a in chain:
            if a.meta.get("outputs"):
                return [TensorSpec.from_dict(d) for d in a.meta["outputs"]]
        return []

    # -- manifest and publishing -------------------------------------------------------------------
    def _names(self, arts: list[Artifact]) -> dict[int, str]:
        names = {}
        for a in arts:
            if a.format is Format.TFLITE:
                names[id(a)] = f"model_{a.variant}.tflite"
            elif a.format is Format.ONNX:
                names[id(a)] = "model.onnx"
            elif a.format is Format.SAVED_MODEL:
                names[id(a)] = "saved_model"
            else:
                names[id(a)] = a.path.name
        return names

    def _manifest(self, src, route, chain, tflites, skipped, inputs, outputs, parity) -> dict:
        names = self._names(chain[1:] + tflites)
        from edgec.formats.tflite import read_tflite

        fp32 = next(a for a in tflites if a.variant == "fp32")
        lite = read_tflite(fp32.path)
        io_meta = next((a.meta.get("io") for a in reversed(chain) if a.meta.get("io")), None)
        return {
            "schema_version": SCHEMA_VERSION,
            "edgec_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "target": self.target.to_dict(),
            "config": self.cfg.to_dict(),
            "source": {"path": str(src.path) if not self.cfg.factory else None, "factory": self.cfg.factory,
                       "format": src.format.value, "sha256": src.meta["sha256"], "bytes": size_of(src.path)},
            "route": [src.format.value] + [c.dst.value for c in route] if route else [src.format.value],
            "inputs": [s.to_dict() for s in inputs],
            "outputs": [s.to_dict() for s in outputs],
            "tflite_io": _tflite_io(inputs, outputs, lite, io_meta),
            "artifacts": [{"path": names[id(a)], "format": a.format.value, "variant": a.variant,
                           "sha256": a.meta.get("sha256") or digest(a.path), "bytes": size_of(a.path)}
                          for a in chain[1:] + tflites],
            "skipped_variants": skipped,
            "calibration": self.data.record()["calibration"],
            "steps": self.steps,
            "parity": parity,
            "environment": environment(),
        }

    def _publish(self, arts: list[Artifact], manifest: dict, write_extra=None) -> None:
        """``write_extra(staging)`` (the bundle) writes more entries; it may add to the manifest."""
        names = self._names(arts)
        out = self.out
        staging = out.resolve().parent / f".{out.name}.edgec-{uuid.uuid4().hex[:8]}"
        try:
            staging.mkdir()
            for a in arts:
                dst = staging / names[id(a)]
                if a.path.is_dir():
                    shutil.copytree(a.path, dst)
                else:
                    shutil.copyfile(a.path, dst)
            if write_extra is not None:
                write_extra(staging)
            _write_json(staging / "manifest.json", manifest)
            from edgec.report import write_reports_for

            write_reports_for(manifest, staging)
            out.mkdir(exist_ok=True)
            for entry in sorted(staging.iterdir(), key=lambda p: p.name == "manifest.json"):
                replace_path(entry, out / entry.name)
        except OSError as exc:
            raise OutputError(f"cannot write the build ({exc.strerror or exc})", where=str(out)) from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _tflite_io(inputs, outputs, lite, io_meta) -> dict:
    """Each source input/output with the TFLite signature name, tensor, shape, dtype and layout."""
    from edgec.convert.onnx_to_tf import layout_name
    from edgec.runtime.runners import match_io

    sig = lite.signatures.get("serving_default")
    tensors = {t.name: t for t in lite.inputs + lite.outputs}

    def rows(kind: str, source: list[TensorSpec], here_specs: list[TensorSpec]) -> list[dict]:
        if sig:
            here = [TensorSpec(n, tensors[t].shape, tensors[t].dtype) if t in tensors else TensorSpec(n, (), "")
                    for n, t in sig[kind].items()]
        else:
            here = here_specs
        pairs = (io_meta or {}).get(kind) if io_meta and sig else None
        pairs = pairs or match_io(source, here)
        by_name = {h.name: h for h in here}
        out = []
        for spec, p in zip(source, pairs):
            h = by_name.get(p["name"], TensorSpec(p["name"], (), ""))
            perm = p.get("perm")
            out.append({"source": spec.name, "name": h.name,
                        "tensor": sig[kind].get(h.name, h.name) if sig else h.name,
                        "shape": list(h.shape), "dtype": h.dtype, "source_shape": list(spec.shape),
                        "layout": layout_name(perm, len(spec.shape)) if perm is not None else None,
                        "perm": perm if perm != list(range(len(spec.shape))) else None})
        return out

    return {"inputs": rows("inputs", inputs, lite.inputs), "outputs": rows("outputs", outputs, lite.outputs)}


def environment() -> dict:
    from edgec.convert import envs

    return {**_environment(),
            "converter_environments": envs.summary()}  # the other converter families' venvs (edgec doctor)


def _write_json(path: Path, data) -> dict:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)
    return {}


def load_manifest(out: Path) -> dict:
    p = Path(out) / "manifest.json"
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise InputError("no manifest.json (not an edgec build directory)", where=str(out)) from None
    except ValueError as exc:
        raise InputError(f"corrupt manifest ({exc})", where=str(p)) from exc


# -- route search helpers --------------------------------------------------------------------------

def _one_line(exc: Exception) -> str:
    text = exc.what if isinstance(exc, EdgecError) else str(exc)
    kind = type(exc).__name__
    return f"{kind}: {text}"[:400]


def _graph_ops(chain: list[Artifact]) -> set[str]:
    """Op types of the last ONNX in ``chain`` (what a failed onnx2tf attempt ran on)."""
    onnx_art = next((a for a in reversed(chain) if a.format is Format.ONNX), None)
    if onnx_art is None:
        return set()
    from edgec.runtime.loaders import load_onnx

    try:
        model = load_onnx(onnx_art.path)
    except EdgecError:
        return set()
    from edgec.convert._onnx2tf import _walk_nodes

    return {n.op_type for n, _ in _walk_nodes(model.graph)}


def _static_outputs(art: Artifact) -> dict:
    from edgec.runtime.loaders import load_onnx, onnx_io

    return {o.name: o for o in onnx_io(load_onnx(art.path))[1] if o.is_static}


def _refined(outputs: list[TensorSpec], static: dict) -> list[TensorSpec]:
    """Source outputs with dynamic dims take the static shape the canonical ONNX inferred (same
    name, same rank), so the runners can tell a layout change from a wrong shape."""
    out = []
    for o in outputs:
        s = static.get(o.name)
        fits = s is not None and len(s.shape) == len(o.shape) and all(a is None or a == b for a, b in zip(o.shape, s.shape))
        out.append(TensorSpec(o.name, s.shape, o.dtype) if fits and not o.is_static else o)
    return out


def _worst(stage: dict) -> dict:
    rows = stage.get("outputs") or []
    if not rows:
        return {}
    out = {"max_abs": max(r.get("max_abs", 0.0) for r in rows)}
    cos = [r["cosine"] for r in rows if r.get("cosine") is not None]
    if cos:
        out["cosine"] = min(cos)
    return out


def _fmt_worst(w: dict) -> str:
    parts = [f"max abs {w['max_abs']:.2g}"] if "max_abs" in w else []
    if "cosine" in w:
        parts.append(f"cosine {w['cosine']:.6f}")
    return ", ".join(parts) or "no outputs"


def _failure_key(key: str) -> str:
    return "failed-" + key


def _cache_failure(cache: Cache, key: str, exc: EdgecError, seconds: float) -> None:
    """Remember a deterministic failure (same input bytes, settings, tool and edgec versions), so a
    rebuild reports it again instead of re-running the converter."""
    record = {"class": type(exc).__name__, "what": exc.what, "where": exc.where, "hint": exc.hint,
              "advice": list(getattr(exc, "advice", None) or []), "seconds": seconds}
    if isinstance(exc, UnsupportedOpsError):
        record["stage"], record["ops"] = exc.stage, exc.ops

    def produce(path: Path) -> dict:
        path.write_text(json.dumps(record))
        return {"failure": True}

    try:
        cache.put(_failure_key(key), produce)
    except OutputError:
        pass  # not remembering a failure only costs a retry


def _raise_cached_failure(cache: Cache, key: str, title: str, progress) -> None:
    entry = cache.get(_failure_key(key))
    if entry is None:
        return
    from edgec import errors

    rec = json.loads(entry.output.read_text())
    if rec.get("class") == "UnsupportedOpsError":
        exc = UnsupportedOpsError(rec["stage"], rec["ops"], where=rec.get("where"), hint=rec.get("hint"))
    else:
        cls = getattr(errors, rec.get("class", ""), ConversionError)
        cls = cls if isinstance(cls, type) and issubclass(cls, EdgecError) else ConversionError
        exc = cls(rec["what"], where=rec.get("where"), hint=rec.get("hint"))
    exc.advice, exc.cached = rec.get("advice", []), True
    progress.done(f"{title}: failed before with the same inputs and tools", cached=True)
    raise exc
