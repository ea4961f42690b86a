"""ONNX backend node-test conformance of edgec: the cases, one case's run and its classification.

Shared by ``benchmarks/conformance.py`` (the script) and ``tests/test_conformance.py`` (the fast
subset). Developer tooling only; edgec never imports this.

The data is the ONNX backend node test data shipped in the ``onnx==1.22.0`` wheel
(``onnx/backend/test/data/node/<case>/model.onnx`` and ``test_data_set_0/{input,output}_*.pb``).
The wheel is fetched with ``pip download`` and only that folder is extracted into a cache
(``$EDGEC_CONFORMANCE_DIR`` or ``~/.cache/edgec-conformance``); the project's pinned onnx is not
touched.

Each case is built with ``edgec.build`` (target rpi4, fp32 only, the case's own inputs as validation
data, default route) in a child process, then the fp32 TFLite is run on those inputs with edgec's
``TFLiteRunner`` (names and layouts mapped back through the manifest's ``tflite_io``) and compared
with the expected outputs. Classes:

- ``pass``: built, and the TFLite outputs match the expected ones;
- ``clean_error``: edgec raised an ``EdgecError`` other than ``ParityError``;
- ``crash``: a non-``EdgecError`` exception escaped edgec, the process died, or it timed out;
- ``flagged``: outputs wrong, and edgec's parity ledger failed (``ParityError`` / ``parity.ok`` false);
- ``silent_wrong``: outputs wrong, and edgec's parity ledger said ok;
- ``false_alarm``: the ledger failed, but the TFLite outputs match the expected ones;
- ``not_run``: the harness cannot feed or check the case (sequence/optional inputs, INT2 data that
  this onnx cannot read); edgec is still run on it (with synthetic validation when the inputs
  cannot be fed), so an edgec crash or refusal there is still counted as such.

``clean_error`` and ``crash`` come from the build; a timeout (the child's stacks are dumped into its
log with faulthandler first, and the innermost frame becomes the reason) counts as ``crash``. After
the verdict the child also runs onnxruntime on the original model (``reference_ok``): the ledger
compares with onnxruntime, so where onnxruntime itself is wrong the ledger cannot notice.

Run this file directly only as the child: ``python conformance_cases.py child CASE_DIR WORK CACHE RESULT``.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
from pathlib import Path

ONNX_WHEEL_VERSION = "1.22.0"
DATA_PREFIX = "onnx/backend/test/data/node/"
CLASSES = ("pass", "clean_error", "crash", "flagged", "silent_wrong", "false_alarm", "not_run")
RTOL, ATOL = 1e-3, 1e-5
DEFAULT_TIMEOUT = 300.0
TARGET = "rpi4"
HERE = Path(__file__).resolve()
BIN = Path(sys.executable).parent  # the venv's bin: onnx2tf calls onnxsim through PATH

# ~40 cases over the op families a vision/transformer model on an edge device is made of.
FAST_SUBSET = (
    # convolution and pooling
    "test_conv_with_strides_padding",
    "test_basic_conv_with_padding",
    "test_convtranspose",
    "test_maxpool_2d_default",
    "test_averagepool_2d_pads",
    "test_globalaveragepool",
    # normalization
    "test_batchnorm_example",
    "test_layer_normalization_2d_axis0",
    "test_instancenorm_example",
    # activations
    "test_relu",
    "test_sigmoid",
    "test_tanh",
    "test_gelu_default_1",
    "test_erf",
    "test_hardswish",
    "test_leakyrelu",
    "test_softmax_axis_1",
    "test_clip",
    # shape and data movement
    "test_reshape_reordered_all_dims",
    "test_transpose_default",
    "test_concat_2d_axis_0",
    "test_slice",
    "test_squeeze",
    "test_unsqueeze_axis_0",
    "test_flatten_axis1",
    "test_gather_0",
    # matrix products
    "test_matmul_2d",
    "test_gemm_default_no_bias",
    # reductions
    "test_reduce_mean_default_axes_keepdims_example",
    "test_reduce_sum_keepdims_example",
    "test_reduce_max_default_axes_keepdim_example",
    # elementwise
    "test_add",
    "test_add_bcast",
    "test_mul",
    "test_div",
    "test_pow",
    "test_sqrt",
    "test_where_example",
    # resize
    "test_resize_upsample_scales_nearest",
    "test_resize_downsample_scales_linear",
)


class DataUnavailable(RuntimeError):
    """The conformance data cannot be fetched or extracted (the message says why and what to do)."""


# -- the data -------------------------------------------------------------------------------------

def default_data_root() -> Path:
    return Path(os.environ.get("EDGEC_CONFORMANCE_DIR") or Path.home() / ".cache" / "edgec-conformance")


def ensure_data(root: Path | None = None, python: str = sys.executable, timeout: float = 600) -> Path:
    """The node test folder, fetched and extracted once; later calls only check it is there."""
    root = Path(root or default_data_root())
    node = root / f"onnx-{ONNX_WHEEL_VERSION}" / "node"
    if (node / ".complete").is_file():
        return node
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataUnavailable(f"cannot create the conformance cache {root}: {exc} "
                              "(set EDGEC_CONFORMANCE_DIR to a writable folder)") from exc
    wheels = root / "wheels"
    wheel = _find_wheel(wheels)
    if wheel is None:
        cmd = [python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               f"onnx=={ONNX_WHEEL_VERSION}", "-d", str(wheels)]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DataUnavailable(f"`{' '.join(cmd)}` failed: {exc}") from exc
        wheel = _find_wheel(wheels)
        if p.returncode != 0 or wheel is None:
            raise DataUnavailable(f"cannot download the onnx=={ONNX_WHEEL_VERSION} wheel with `{' '.join(cmd)}` "
                                  f"(exit {p.returncode}): {(p.stdout + p.stderr).strip()[-1500:]} "
                                  "(needs PyPI through pip; or put the wheel in "
                                  f"{wheels}, or extracted data in {node} with a .complete file)")
    tmp = Path(tempfile.mkdtemp(prefix=".node-", dir=root))
    try:
        with zipfile.ZipFile(wheel) as z:
            names = [n for n in z.namelist() if n.startswith(DATA_PREFIX) and not n.endswith("/")]
            if not names:
                raise DataUnavailable(f"{wheel} holds no {DATA_PREFIX} folder")
            for n in names:
                rel = n[len(DATA_PREFIX):]
                if ".." in Path(rel).parts or rel.startswith("/"):
                    continue
                dst = tmp / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                with z.open(n) as src, open(dst, "wb") as out:
                    shutil.copyfileobj(src, out)
        (tmp / ".complete").write_text(f"{wheel.name}\n{len(names)} files\n")
        node.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(tmp, node)
        except OSError:
            if not (node / ".complete").is_file():  # not a concurrent extraction that won the race
                raise
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataUnavailable(f"cannot extract {DATA_PREFIX} from {wheel}: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return node


def _find_wheel(d: Path) -> Path | None:
    found = sorted(d.glob(f"onnx-{ONNX_WHEEL_VERSION}-*.whl")) if d.is_dir() else []
    return found[0] if found else None


def list_cases(node: Path) -> list[str]:
    return sorted(p.name for p in Path(node).iterdir() if p.is_dir() and (p / "model.onnx").is_file())


def select(cases: list[str], *, only: str | None = None, subset: str | None = None, limit: int | None = None,
           ops: dict[str, str] | None = None) -> list[str]:
    """``subset='fast'``: FAST_SUBSET; ``only``: comma-separated substrings or globs; ``limit``: a
    sample stratified by op (the first case of every op, then every op's second, ...)."""
    chosen = list(cases)
    if subset == "fast":
        known = set(cases)
        chosen = [c for c in FAST_SUBSET if c in known]
    elif subset not in (None, "", "all"):
        raise ValueError(f"unknown subset '{subset}' (known: fast, all)")
    if only:
        pats = [p.strip() for p in only.split(",") if p.strip()]
        chosen = [c for c in chosen if any(fnmatch.fnmatchcase(c, p) if any(ch in p for ch in "*?[") else p in c
                                           for p in pats)]
    if limit is not None and limit < len(chosen):
        ops = ops or {}
        groups: dict[str, list[str]] = {}
        for c in chosen:
            groups.setdefault(ops.get(c, c), []).append(c)
        picked, rank = [], 0
        while len(picked) < limit:
            layer = [g[rank] for _, g in sorted(groups.items()) if rank < len(g)]
            if not layer:
                break
            picked.extend(layer[:limit - len(picked)])
            rank += 1
        chosen = sorted(picked)
    return chosen


# -- one case's model and data --------------------------------------------------------------------

def _norm(s: str) -> str:
    return s.lower().replace("_", "")


_SCHEMA_NAMES: list[str] | None = None


def _schema_names() -> list[str]:
    global _SCHEMA_NAMES
    if _SCHEMA_NAMES is None:
        import onnx.defs

        _SCHEMA_NAMES = sorted({s.name for s in onnx.defs.get_all_schemas_with_history()}, key=len, reverse=True)
    return _SCHEMA_NAMES


def main_op(model, case: str) -> str:
    """The op a case tests: the graph's only op type (Constant aside), else the longest op name the
    case name starts with (``test_softmax_axis_0_expanded`` -> Softmax), else the longest graph op
    named in the case, else the first node's op."""
    types = [n.op_type for n in model.graph.node]
    distinct = sorted(set(t for t in types if t != "Constant"))
    if len(distinct) == 1:
        return distinct[0]
    if not distinct and types:
        return types[0]
    name = _norm(case[5:] if case.startswith("test_") else case)
    for op in _schema_names() + sorted(distinct, key=len, reverse=True):
        if name.startswith(_norm(op)):
            return op
    inside = [op for op in sorted(distinct, key=len, reverse=True) if _norm(op) in name]
    if inside:
        return inside[0]
    return types[0] if types else "(none)"


def case_op(case_dir: Path) -> str:
    import onnx

    try:
        model = onnx.load(str(Path(case_dir) / "model.onnx"), load_external_data=False)
    except Exception:  # an unreadable model still gets a row in the table
        return "(unreadable)"
    return main_op(model, Path(case_dir).name)


def _read_value(path: Path, vtype):
    """One input/output .pb as numpy (tensors), or raise ValueError for what numpy cannot hold."""
    import onnx
    from onnx import numpy_helper

    kind = vtype.WhichOneof("value") if vtype is not None else "tensor_type"
    data = path.read_bytes()
    if kind in (None, "tensor_type"):
        t = onnx.TensorProto()
        t.ParseFromString(data)
        return numpy_helper.to_array(t)
    raise ValueError(f"{kind.replace('_type', '')} value (not a tensor)")


def load_case(case_dir: Path) -> dict:
    """The model's graph inputs/outputs (initializers aside) with the case's arrays, in graph order."""
    import onnx

    case_dir = Path(case_dir)
    model = onnx.load(str(case_dir / "model.onnx"))
    inits = {i.name for i in model.graph.initializer}
    g_in = [v for v in model.graph.input if v.name not in inits]
    g_out = list(model.graph.output)
    data = case_dir / "test_data_set_0"
    ins, outs, unreadable = [], [], []
    for kind, values, into in (("input", g_in, ins), ("output", g_out, outs)):
        for i, v in enumerate(values):
            p = data / f"{kind}_{i}.pb"
            try:
                if not p.is_file():
                    raise ValueError(f"no {p.name}")
                into.append((v.name, _read_value(p, v.type)))
            except Exception as exc:  # e.g. sequences, optionals, INT2 that this onnx cannot read
                into.append((v.name, None))
                unreadable.append(f"{kind} '{v.name}': {type(exc).__name__}: {str(exc)[:120]}")
    shapes = {}
    for v, (name, arr) in zip(g_in, ins):
        t = v.type.tensor_type
        if arr is None or not t.HasField("shape"):
            continue  # unknown rank: left for edgec to deal with
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in t.shape.dim]
        if any(d is None for d in dims) and len(dims) == arr.ndim:
            shapes[name] = tuple(int(d) for d in arr.shape)  # what a user passes as --input-shape
    return {"model": model, "op": main_op(model, case_dir.name), "inputs": ins, "outputs": outs,
            "input_shapes": shapes, "unreadable": unreadable,
            "inputs_ok": all(a is not None for _, a in ins), "outputs_ok": all(a is not None for _, a in outs)}


# -- comparing ------------------------------------------------------------------------------------

def compare(expected: list, got: list, rtol: float = RTOL, atol: float = ATOL) -> tuple[bool, str, list[dict]]:
    """Expected vs got per output: floats np.allclose-style (NaN == NaN), everything else exact."""
    import numpy as np

    rows, bad = [], []
    if len(got) != len(expected):
        return False, f"{len(got)} output(s), expected {len(expected)}", rows
    for (name, e), g in zip(expected, got):
        e, g = np.asarray(e), np.asarray(g)
        row = {"output": name, "expected_shape": list(e.shape), "shape": list(g.shape),
               "expected_dtype": str(e.dtype), "dtype": str(g.dtype)}
        rows.append(row)
        if e.shape != g.shape:
            same = e.size == g.size and _equal(e.reshape(-1), g.reshape(-1), rtol, atol)
            row["ok"] = False
            bad.append(f"{name}: shape {list(g.shape)}, expected {list(e.shape)}"
                       f"{' (values equal)' if same else ''}")
            continue
        ok = _equal(e, g, rtol, atol)
        row["ok"] = ok
        if e.dtype.kind == "f" or g.dtype.kind == "f":
            with np.errstate(all="ignore"):
                diff = np.abs(e.astype(np.float64) - g.astype(np.float64)) if e.size else np.zeros(0)
            finite = diff[np.isfinite(diff)]
            row["max_abs"] = float(finite.max()) if finite.size else 0.0
        if not ok:
            detail = f"max abs {row['max_abs']:.3g}" if "max_abs" in row else \
                f"{int(np.sum(e != g.astype(e.dtype, copy=False)))} of {e.size} differ"
            bad.append(f"{name}: {detail} ({g.dtype} vs expected {e.dtype})")
    return not bad, "; ".join(bad), rows


def _equal(e, g, rtol, atol) -> bool:
    import numpy as np

    if e.dtype.kind in "OUS" or g.dtype.kind in "OUS":
        return bool(np.array_equal(e.astype(str), g.astype(str)))
    if e.dtype.kind == "f" or g.dtype.kind == "f":
        return bool(np.allclose(g.astype(np.float64), e.astype(np.float64), rtol=rtol, atol=atol, equal_nan=True))
    return bool(np.array_equal(e.astype(np.int64) if e.dtype != bool else e,
                               g.astype(np.int64) if e.dtype != bool else g.astype(bool)))


# -- the parent side: one child process per case --------------------------------------------------

def child_env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env.setdefault("PYTHONHASHSEED", "0")
    env.setdefault("CUDA_VISIBLE_DEVICES", "")
    return env


def run_case(case_dir: Path, work_root: Path, cache_dir: Path, timeout: float = DEFAULT_TIMEOUT,
             keep: bool = False, op: str | None = None) -> dict:
    """Build and check one case in its own child process; a crash, signal or timeout there becomes a record."""
    case_dir = Path(case_dir)
    work = _fresh_work(work_root, case_dir.name)
    cmd = [sys.executable, str(HERE), "child", str(case_dir), str(work), str(cache_dir), str(work / "result.json")]
    t0 = time.perf_counter()
    rc, timed_out = None, False
    with open(work / "child.log", "wb") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=child_env(), start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _dump_stacks(proc)  # where it hangs, into the log, before the kill
        finally:
            _kill_group(proc)  # the child's own workers (ledger, onnx2tf) go with it
    return _record(case_dir, work, rc, timed_out, round(time.perf_counter() - t0, 2), timeout, keep, op)


def _fresh_work(work_root: Path, case: str) -> Path:
    work = Path(work_root) / case
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    return work


def _record(case_dir: Path, work: Path, rc, timed_out: bool, seconds: float, timeout: float, keep: bool,
            op: str | None) -> dict:
    """The record of one case from what its child left in ``work`` (result.json, stage, child.log)."""
    case = case_dir.name
    result, log, stage = work / "result.json", work / "child.log", work / "stage"
    rec = None
    if result.is_file():
        try:
            rec = json.loads(result.read_text())
        except ValueError:
            rec = None
    at = stage.read_text().strip() if stage.is_file() else "start"
    if rec is None or rec.get("partial"):  # the child did not get to its verdict
        rec = dict(rec or {})
        rec.pop("partial", None)
        if timed_out:
            site = _hang_site(log)
            rec["where"] = site
            why = f"timeout after {timeout:.0f} s (during {at}){'; at ' + site if site else ''}"
        else:
            why = f"process died: {_describe_rc(rc)} (during {at}); {_last_line(log)}"
        rec.update({"class": "crash", "stage": at, "reason": why})
    elif at == "reference" and (timed_out or rc != 0):  # the verdict stands; onnxruntime itself died
        rec["reference_ok"] = None
        rec["reference_reason"] = "timeout" if timed_out else f"onnxruntime died: {_describe_rc(rc)}"
    rec = {"case": case, "op": rec.get("op") or op or case_op(case_dir), "class": rec["class"],
           "reason": rec.get("reason", ""), "seconds": seconds,
           **{k: v for k, v in rec.items() if k not in ("case", "op", "class", "reason", "seconds")}}
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    elif not rec.get("log"):
        rec["log"] = str(log)
    return rec


def run_batch(cases: list[Path], work_root: Path, cache_dir: Path, timeout: float = DEFAULT_TIMEOUT,
              keep: bool = False, ops: dict[str, str] | None = None, on_record=None) -> list[dict]:
    """Build and check ``cases`` one after another in ONE child process (TensorFlow and edgec imported
    once, ~2x faster than ``run_case`` per case). Each case still gets its own work folder, log (the
    child points fds 1/2 at it), stage file and verdict. When the child dies or a case runs past
    ``timeout``, that case gets the same crash record ``run_case`` would give, and a fresh child takes
    the rest."""
    ops = ops or {}
    pending = [Path(c) for c in cases]
    records = []
    while pending:
        works = [_fresh_work(work_root, c.name) for c in pending]
        batch = Path(tempfile.mkdtemp(prefix="batch-", dir=work_root))
        (batch / "cases.json").write_text(json.dumps([[str(c), str(w)] for c, w in zip(pending, works)]))
        current = batch / "current"
        cmd = [sys.executable, str(HERE), "batch", str(batch / "cases.json"), str(cache_dir), str(current)]
        with open(batch / "batch.log", "wb") as logf:
            proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=child_env(), start_new_session=True)
        idx, started, finished, timed_out = -1, time.perf_counter(), 0, False

        def reached() -> int:
            try:
                return int(current.read_text().strip() or -1)
            except (OSError, ValueError):
                return idx

        def done_one(i: int) -> int:  # case i finished normally: its record, then the next index
            w = works[i]
            secs = float((w / "seconds").read_text()) if (w / "seconds").is_file() else 0.0
            rec = _record(pending[i], w, 0, False, secs, timeout, keep, ops.get(pending[i].name))
            records.append(rec)
            if on_record:
                on_record(rec)
            return i + 1

        try:
            while True:
                rc = proc.poll()
                now_idx = reached()
                while finished < now_idx:  # every case before the current one is done
                    finished = done_one(finished)
                if now_idx != idx:
                    idx, started = now_idx, time.perf_counter()
                if rc is not None:
                    break
                if idx >= 0 and time.perf_counter() - started > timeout:
                    timed_out = True
                    _dump_stacks(proc)
                    break
                time.sleep(0.1)
        finally:
            _kill_group(proc)
        rc = proc.returncode
        # the child writes len(cases) into ``current`` after the last case
        now_idx = reached()
        while finished < min(now_idx, len(pending)):
            finished = done_one(finished)
        if finished < len(pending):  # the child stopped in this case: it gets the blame, a new child the rest
            c = pending[finished]
            rec = _record(c, works[finished], rc, timed_out, round(time.perf_counter() - started, 2), timeout, keep,
                          ops.get(c.name))
            records.append(rec)
            if on_record:
                on_record(rec)
            finished += 1
        if not keep:
            shutil.rmtree(batch, ignore_errors=True)
        pending = pending[finished:]
    return records


def _dump_stacks(proc: subprocess.Popen) -> None:
    try:
        os.kill(proc.pid, signal.SIGUSR1)  # the child registered faulthandler on it
        proc.wait(timeout=3)
    except (ProcessLookupError, PermissionError, subprocess.TimeoutExpired):
        pass


def _hang_site(log: Path) -> str:
    """The innermost frame of the main thread in a faulthandler dump (``File "...", line N in f``)."""
    import re

    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    dumps = text.split("Current thread")
    if len(dumps) < 2:
        return ""
    frames = re.findall(r'File "([^"]+)", line (\d+) in (\S+)', dumps[-1])
    if not frames:
        return ""
    inner = frames[0]  # faulthandler prints the innermost frame first
    ours = next((f for f in frames if f"{os.sep}edgec{os.sep}" in f[0]), None)
    site = f"{Path(inner[0]).name}:{inner[1]} in {inner[2]}"
    if ours:
        site += f", from edgec/{ours[0].rsplit(os.sep + 'edgec' + os.sep, 1)[1]}:{ours[1]} in {ours[2]}"
    return site


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass


def _describe_rc(rc) -> str:
    if rc is None:
        return "no exit status"
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name} (exit {rc})"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit {rc} without a result"


def _last_line(log: Path) -> str:
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else "no output"


def run_many(cases: list[str], node: Path, work_root: Path, cache_dir: Path, *, jobs: int = 1,
             timeout: float = DEFAULT_TIMEOUT, keep: bool = False, ops: dict[str, str] | None = None,
             on_record=None, batch: int = 0) -> list[dict]:
    """Every case, ``jobs`` at a time; ``on_record(rec, done, total)`` as each ends. ``batch`` > 1 runs up
    to that many cases per child process (``run_batch``); otherwise each case has its own (``run_case``)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    ops = ops or {}
    records: list[dict] = []
    lock = threading.Lock()
    queue = list(cases)

    def emit(rec):
        with lock:
            records.append(rec)
            n = len(records)
        if on_record:
            on_record(rec, n, len(cases))

    def take(k: int) -> list[str]:
        with lock:
            got, queue[:k] = queue[:k], []
            return got

    def lane():
        while True:
            chunk = take(max(1, batch))
            if not chunk:
                return
            try:
                if batch > 1:
                    run_batch([Path(node) / c for c in chunk], work_root, cache_dir, timeout, keep, ops, emit)
                else:
                    emit(run_case(Path(node) / chunk[0], work_root, cache_dir, timeout, keep, ops.get(chunk[0])))
            except Exception as exc:  # the harness itself failed: keep going, say so
                seen = {r["case"] for r in records}
                for c in chunk:
                    if c not in seen:
                        emit({"case": c, "op": ops.get(c, "?"), "class": "not_run",
                              "reason": f"harness error: {type(exc).__name__}: {exc}", "seconds": 0.0})

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for f in [pool.submit(lane) for _ in range(max(1, jobs))]:
            f.result()
    return sorted(records, key=lambda r: r["case"])


# -- summaries ------------------------------------------------------------------------------------

def counts(records: list[dict]) -> dict[str, int]:
    c = {k: 0 for k in CLASSES}
    for r in records:
        c[r["class"]] = c.get(r["class"], 0) + 1
    return c


def per_op(records: list[dict]) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    for r in records:
        row = table.setdefault(r["op"], {k: 0 for k in CLASSES})
        row[r["class"]] = row.get(r["class"], 0) + 1
    return dict(sorted(table.items()))


def reason_group(r: dict) -> str:
    """A crash's reason without its case-specific parts, for grouping."""
    import re

    text = r.get("error_type") or ""
    if r.get("reason", "").startswith("timeout"):  # group hangs by the edgec module they hang in
        site = r.get("where") or ""
        mod = re.search(r"(edgec/[\w/]+\.py)", site)
        return f"timeout in {mod.group(1) if mod else site.split(':')[0] or 'unknown'}"
    if r.get("where"):
        return f"{text} at {r['where']}"
    reason = r.get("reason", "")
    reason = re.sub(r"'[^']*'", "'…'", reason)
    reason = re.sub(r"\d+(\.\d+)?", "N", reason)
    return reason[:140]


# -- the child ------------------------------------------------------------------------------------

def _child(case_dir: Path, work: Path, cache_dir: Path, result: Path) -> int:
    import faulthandler

    faulthandler.enable()  # a fatal signal leaves its stack in the log
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # the parent asks for it on a timeout
    stage_file = work / "stage"

    def stage(name: str):
        stage_file.write_text(name)

    def write(rec: dict):
        tmp = result.with_name(result.name + ".tmp")
        tmp.write_text(json.dumps(rec, indent=1, default=str))
        os.replace(tmp, result)

    stage("load")
    t0 = time.perf_counter()
    try:
        case = load_case(case_dir)
    except Exception as exc:
        write({"class": "not_run", "reason": f"the harness cannot read the case: {type(exc).__name__}: {exc}",
               "stage": "load"})
        return 0
    rec = {"op": case["op"], "inputs": [_desc(n, a) for n, a in case["inputs"]],
           "outputs": [_desc(n, a) for n, a in case["outputs"]]}
    if case["input_shapes"]:
        rec["input_shapes"] = {k: list(v) for k, v in case["input_shapes"].items()}
    if case["unreadable"]:
        rec["unreadable"] = case["unreadable"]
    write({**rec, "class": "crash", "reason": "did not finish", "partial": True})

    import numpy as np

    # The case's own inputs, one sample. Inputs the harness cannot express as arrays (sequences,
    # optionals, INT2) leave only edgec's own refusal (or crash) to observe: synthetic validation.
    data = {}
    if case["inputs_ok"]:
        val = work / "validation.npz"
        np.savez(val, **{name: np.asarray(a)[None] for name, a in case["inputs"]})
        data = {"validation_data": str(val)}
    else:
        data = {"synthetic_validation": True}
        rec["synthetic_validation"] = True

    import edgec
    from edgec.errors import EdgecError, ParityError

    stage("build")
    out = work / "out"
    cfg_kwargs = dict(model=str(Path(case_dir) / "model.onnx"), target=TARGET, out=str(out), variants=("fp32",),
                      bench=False, cache_dir=str(cache_dir), parity="fail", input_shapes=case["input_shapes"],
                      **data)
    manifest, parity_ok = None, True
    try:
        res = edgec.build(edgec.BuildConfig(**cfg_kwargs))
        manifest, parity_ok = res.manifest, res.ok
    except ParityError as exc:
        parity_ok = False
        manifest = getattr(getattr(exc, "result", None), "manifest", None)
        rec["parity_error"] = exc.one_line()[:500]
    except EdgecError as exc:
        write({**rec, "class": "clean_error", "error_type": type(exc).__name__,
               "reason": f"{type(exc).__name__}: {exc.one_line()[:400]}", "stage": "build",
               "build_seconds": round(time.perf_counter() - t0, 2)})
        return 0
    except BaseException as exc:  # noqa: BLE001 - what escapes edgec is what we are counting
        if isinstance(exc, KeyboardInterrupt):
            raise
        write({**rec, "class": "crash", "error_type": type(exc).__name__, "where": _where(exc),
               "reason": f"{type(exc).__name__}: {str(exc).strip()[:400]}", "stage": "build",
               "traceback": "".join(traceback.format_exception(exc))[-3000:],
               "build_seconds": round(time.perf_counter() - t0, 2)})
        return 0
    rec["build_seconds"] = round(time.perf_counter() - t0, 2)
    rec["parity_ok"] = bool(parity_ok)
    if manifest:
        rec["route"] = manifest.get("route")
        rec["parity"] = _parity_summary(manifest.get("parity") or {})
        if manifest.get("parity", {}).get("ok") is False:
            parity_ok = rec["parity_ok"] = False

    if not (case["inputs_ok"] and case["outputs_ok"]):
        write({**rec, "class": "not_run", "stage": "done",
               "reason": "built (parity ok: %s), but the harness cannot check it: %s"
                         % (parity_ok, "; ".join(case["unreadable"])[:400])})
        return 0

    stage("check")
    write({**rec, "class": "crash", "reason": "did not finish the check", "partial": True})
    try:
        got = run_tflite(out / "model_fp32.tflite", manifest, case["inputs"])
        ok, why, rows = compare(case["outputs"], got)
        rec["compare"] = rows
    except Exception as exc:  # the built model does not run on the case's own inputs
        ok, why = False, f"the fp32 TFLite does not run on the case's inputs: {type(exc).__name__}: {str(exc)[:300]}"
        rec["check_error"] = why
    if ok:
        cls = "pass" if parity_ok else "false_alarm"
        why = "" if parity_ok else f"outputs match; ledger: {rec.get('parity_error') or rec.get('parity')}"
    else:
        cls = "flagged" if not parity_ok else "silent_wrong"
    write({**rec, "class": cls, "reason": why[:600], "stage": "done"})

    # The reference itself: onnxruntime on the original model vs the expected outputs. It can kill
    # the process (SIGFPE on integer division by zero), so the record above is already written.
    stage("reference")
    try:
        ref = run_onnxruntime(Path(case_dir) / "model.onnx", case["inputs"])
        rec["reference_ok"], rec["reference_reason"], _ = compare(case["outputs"], ref)
    except Exception as exc:
        rec["reference_ok"], rec["reference_reason"] = None, f"{type(exc).__name__}: {str(exc)[:200]}"
    write({**rec, "class": cls, "reason": why[:600], "stage": "done"})
    return 0


def _desc(name, a) -> str:
    import numpy as np

    if a is None:
        return f"{name}:(unreadable)"
    a = np.asarray(a)
    return f"{name}:{a.dtype}{list(a.shape)}"


def _where(exc: BaseException) -> str:
    """The innermost edgec frame (else the innermost frame): file:line in function."""
    tb = traceback.extract_tb(exc.__traceback__)
    if not tb:
        return ""
    edgec_frames = [f for f in tb if f"{os.sep}edgec{os.sep}" in f.filename]
    f = (edgec_frames or tb)[-1]
    path = f.filename
    if f"{os.sep}edgec{os.sep}" in path:
        path = "edgec/" + path.rsplit(f"{os.sep}edgec{os.sep}", 1)[1]
    else:
        path = Path(path).name
    return f"{path}:{f.lineno} in {f.name}"


def _parity_summary(parity: dict) -> dict:
    stages = [{"stage": s.get("stage"), "ok": s.get("ok")} for s in parity.get("stages", [])]
    return {"ok": parity.get("ok"), "verdict": parity.get("verdict"), "finding": parity.get("finding"),
            "stages": stages}


def run_tflite(path: Path, manifest: dict | None, inputs: list) -> list:
    """The fp32 TFLite on the case's inputs through edgec's runner; names and layouts from the manifest."""
    from edgec.formats import TensorSpec
    from edgec.runtime.runners import TFLiteRunner

    ins = [TensorSpec.from_dict(d) for d in (manifest or {}).get("inputs", [])]
    outs = [TensorSpec.from_dict(d) for d in (manifest or {}).get("outputs", [])]
    io = (manifest or {}).get("tflite_io") or {}
    io_map = None
    if io.get("inputs") is not None and io.get("outputs") is not None:
        io_map = {k: [{"source": r["source"], "name": r["name"], "perm": r.get("perm")} for r in io[k]]
                  for k in ("inputs", "outputs")}
    runner = TFLiteRunner(Path(path), ins, outs, threads=1, io_map=io_map)
    return runner.infer({name: a for name, a in inputs})


def run_onnxruntime(path: Path, inputs: list) -> list:
    """The ONNX on the case's inputs through edgec's ONNX Runtime runner (one thread, CPU)."""
    from edgec.runtime.onnxruntime import OnnxRuntime

    with OnnxRuntime(path, threads=1) as runner:
        return list(runner.infer({name: a for name, a in inputs}).values())


def _batch_child(cases_json: Path, cache_dir: Path, current: Path) -> int:
    """Run the cases of ``cases_json`` ([[case_dir, work], ...]) in this process, one after another.
    ``current`` holds the index of the case under way (len(cases) at the end); each case's output
    goes to its own ``work/child.log`` and its wall time to ``work/seconds``."""
    import gc

    pairs = json.loads(Path(cases_json).read_text())
    for i, (case_dir, work) in enumerate(pairs):
        work = Path(work)
        log = os.open(work / "child.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        _write_atomic(current, str(i))
        t0 = time.perf_counter()
        _child(Path(case_dir), work, Path(cache_dir), work / "result.json")
        (work / "seconds").write_text(f"{time.perf_counter() - t0:.2f}")
        if "tensorflow" in sys.modules:  # the next case starts from an empty Keras graph
            sys.modules["tensorflow"].keras.backend.clear_session()
        gc.collect()
    _write_atomic(current, str(len(pairs)))
    return 0


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "child":
        sys.exit(_child(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]), Path(sys.argv[5])))
    if len(sys.argv) == 5 and sys.argv[1] == "batch":
        sys.exit(_batch_child(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])))
    sys.exit("usage: conformance_cases.py child CASE_DIR WORK CACHE RESULT | batch CASES_JSON CACHE CURRENT "
             "(run benchmarks/conformance.py instead)")
