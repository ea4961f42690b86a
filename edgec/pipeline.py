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

from . import __version__
from .cache import Cache, step_key
from .config import BuildConfig
from .convert import Converter, StepContext
from .errors import InputError, OutputError, ParityError, UsageError
from .fsio import replace_path
from .formats import Artifact, Format, TensorSpec, detect_format, digest, size_of
from .planner import plan
from .progress import Progress
from .targets import VARIANTS, TargetProfile, load_target

SCHEMA_VERSION = 1
BUILDABLE_VARIANTS = ("fp32", "fp16", "dynamic_int8", "int8", "int16x8")
ENV_PACKAGES = ("torch", "onnx", "onnxruntime", "onnx2tf", "tensorflow", "tf-keras", "keras", "tf2onnx",
                "ai-edge-litert", "onnxsim", "onnxscript", "numpy", "protobuf", "flatbuffers")


@functools.lru_cache(maxsize=None)
def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def tool_versions(dists) -> dict[str, str]:
    return {d: _version(d) for d in dists}


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
    cache = Cache(Path(cfg.cache_dir) if cfg.cache_dir else None, enabled=cfg.use_cache)
    try:
        return _Build(cfg, target, variants, out, cache, progress).run()
    finally:
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
        self.settings = {"exporter": cfg.exporter, "opset": cfg.opset, "keep_layout": cfg.keep_layout,
                         "input_shapes": {k: list(v) for k, v in cfg.input_shapes.items()},
                         "input_dtypes": dict(cfg.input_dtypes)}

    # -- source and probe ---------------------------------------------------------------------------
    def _source(self) -> Artifact:
        cfg = self.cfg
        if cfg.factory:
            from .sources import materialize_factory

            return materialize_factory(cfg.factory, self.cache)
        path = Path(cfg.model)
        fmt = detect_format(path)
        if fmt is Format.TORCH_MODULE and not cfg.trust_pickle:
            from .loaders import load_torch

            load_torch(path, fmt, trust_pickle=False)  # raises the refusal with its hint
        return Artifact(path, fmt, meta={"sha256": digest(path)})

    def _probe(self, src: Artifact) -> dict:
        from .sources import probe

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
        tools = tool_versions(conv.tools)
        in_sha = inp.meta.get("sha256") or digest(inp.path)
        key = step_key(conv.name, in_sha, used, tools)
        t0 = time.perf_counter()
        entry = self.cache.get(key)
        cached = entry is not None
        title = f"{conv.src.value} -> {conv.dst.value}{label} ({conv.name})"
        if entry is None:
            def produce(out_path: Path) -> dict:
                ctx = StepContext(inp.path, out_path, inputs, used, resources=resources or {})
                t = time.perf_counter()
                meta = conv.run(ctx)
                return {"step": conv.name, "meta": meta, "seconds": round(time.perf_counter() - t, 3),
                        "input_sha256": in_sha}

            with self.progress.step(title):
                entry = self.cache.put(key, produce)
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

    def run(self) -> BuildResult:
        src = self._source()
        route = plan(src.format, Format.TFLITE, self.cfg.route)
        info = self._probe(src)
        inputs = [TensorSpec.from_dict(d) for d in info["inputs"]]
        from .bundler import precheck

        precheck(self.cfg, self.target, inputs)  # bundle settings the inputs already refuse
        from .calibration import resolve

        self.data = resolve(self.cfg, self.variants, inputs, src.format, route)  # before any conversion
        chain = [src]
        for conv in route[:-1]:
            chain.append(self._step(conv, chain[-1], inputs))
        tflites, skipped = self._variants(route, chain[-1], inputs, src)
        outputs = [TensorSpec.from_dict(d) for d in info.get("outputs", [])] or self._outputs_from(chain)
        from .parity import run_parity

        parity = run_parity(self, src, chain[1:], tflites, inputs, outputs)
        manifest = self._manifest(src, route, chain, tflites, skipped, inputs, outputs, parity)
        if getattr(self.cfg, "bench", True):  # measured once per artifact and machine, then cached
            from .bench.build import bench_variants

            manifest["bench"] = bench_variants(self, chain, tflites)
        from .bundler import for_build

        self._publish(chain[1:] + tflites, manifest, for_build(self, manifest, tflites))
        if not parity["ok"] and self.cfg.parity == "fail":
            failed = ", ".join(f"{s['stage']}" for s in parity["stages"] if not s["ok"])
            found = f" ({parity['finding']})" if parity.get("finding") else ""
            err = ParityError(f"parity budget missed by {failed}{found}; build written to {self.out} "
                              "with the ledger in manifest.json", where=str(self.out / "manifest.json"),
                              hint="inspect the ledger; --parity warn writes the build without failing")
            err.result = BuildResult(self.out, manifest, self.steps)  # the CLI still prints the ledger
            raise err
        return BuildResult(self.out, manifest, self.steps)

    def _variants(self, route, last: Artifact, inputs, src) -> tuple[list[Artifact], list[dict]]:
        skipped = []
        if not route:
            if src.format is not Format.TFLITE:
                raise UsageError(f"nothing to do for a {src.format.value} source")
            art = Artifact(src.path, Format.TFLITE, "fp32", meta={"sha256": src.meta["sha256"]})
            skipped = [{"variant": v, "reason": "the source is already TFLite; no conversion was run"}
                       for v in self.variants if v != "fp32"]
            return [art], skipped
        from .passes.quantize import needs_calibration

        final = route[-1]
        arts = []
        try:
            for v in self.variants:
                extra, resources = {"variant": v}, None
                if needs_calibration(v):  # int8, int16x8: calibrated on the build's calibration data
                    extra["quantization"], resources = self.data.quantization(v, self.cfg.quant_io, last, inputs)
                arts.append(self._step(final, last, inputs, extra, label=f" [{v}]", resources=resources))
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
        from .tflite_model import read_tflite

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
            from .report import write_reports_for

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
    from .convert.onnx_to_tf import layout_name
    from .validate.runners import match_io

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
    return {"python": platform.python_version(), "platform": platform.platform(),
            "machine": platform.machine(), "cpu_count": os.cpu_count(), "packages": tool_versions(ENV_PACKAGES)}


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
