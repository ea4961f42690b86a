"""The Open Inference Protocol (KServe v2) over HTTP: inference requests in, responses out.

JSON tensors (``data`` as a flat row-major list, or nested lists) and the binary tensor extension:
the body is a JSON header of ``Inference-Header-Content-Length`` bytes followed by the raw tensors
of every input whose ``parameters.binary_data_size`` is set, in the order the inputs are listed.
Outputs come back as binary when the output asks (``parameters.binary_data``) or the request does
(``parameters.binary_data_output``); the response then carries the same header.

Every problem with a request is a ``RequestError``: an HTTP 4xx status and a message that names what
was wrong and what was expected. Nothing in here can raise anything else on a bad request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from edgec.formats import TensorSpec

HEADER = "Inference-Header-Content-Length"

# v2 datatype <-> numpy. BYTES (length-prefixed strings) has no TFLite tensor to feed here.
DATATYPES = {"BOOL": "bool", "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64",
             "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64", "FP16": "float16",
             "FP32": "float32", "FP64": "float64"}
TO_V2 = {v: k for k, v in DATATYPES.items()}


class RequestError(Exception):
    """A bad request: ``status`` (4xx), ``message``; ``expected`` shows what would have been accepted."""

    def __init__(self, status: int, message: str, expected=None):
        super().__init__(message)
        self.status, self.message, self.expected = status, message, expected

    def body(self) -> dict:
        out = {"error": self.message}
        if self.expected is not None:
            out["expected"] = self.expected
        return out


def v2_datatype(dtype: str) -> str:
    return TO_V2.get(dtype, dtype.upper())


def tensor_metadata(t: TensorSpec, quant: dict | None = None) -> dict:
    row = {"name": t.name, "datatype": v2_datatype(t.dtype), "shape": [-1 if d is None else int(d) for d in t.shape]}
    if quant and t.name in quant:
        scale, zero = quant[t.name]
        row["parameters"] = {"quantization": {"scale": scale, "zero_point": zero}}
    return row


@dataclass
class InferRequest:
    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: list[str] | None                 # names asked for; None: all
    binary_outputs: set[str] = field(default_factory=set)
    binary_all: bool = False


def _num_elements(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def split_body(body: bytes, header_length: str | None) -> tuple[dict, bytes]:
    """The JSON header (as a dict) and the binary part that follows it."""
    if header_length is not None:
        try:
            n = int(header_length.strip())
        except ValueError:
            raise RequestError(400, f"the {HEADER} header is '{header_length[:40]}', not a number",
                               expected="the byte length of the JSON header that starts the body") from None
        if n <= 0 or n > len(body):
            raise RequestError(400, f"the {HEADER} header says {n} bytes, but the body has {len(body)}",
                               expected=f"a JSON header length between 1 and {len(body)}")
        head, rest = body[:n], body[n:]
    else:
        head, rest = body, b""
    if not head.strip():
        raise RequestError(400, "the request body is empty", expected='a JSON object {"inputs": [...]}')
    try:
        doc = json.loads(head)
    except UnicodeDecodeError:
        raise RequestError(400, "the request body is not UTF-8 JSON" + (
            "" if header_length else f" (binary tensors need the {HEADER} header)"),
            expected='a JSON object {"inputs": [...]}') from None
    except json.JSONDecodeError as exc:
        hint = "" if header_length else f"; a body with binary tensors needs the {HEADER} header"
        raise RequestError(400, f"the request body is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
                           f"{hint}", expected='a JSON object {"inputs": [...]}') from None
    if not isinstance(doc, dict):
        raise RequestError(400, f"the request body is a JSON {type(doc).__name__}, not an object",
                           expected='a JSON object {"inputs": [...]}')
    return doc, rest


def parse_infer(body: bytes, header_length: str | None, specs: list[TensorSpec], output_names: list[str]) -> InferRequest:
    """Parse and check a request against the variant's inputs (names, datatypes, shapes)."""
    doc, binary = split_body(body, header_length)
    rid = doc.get("id")
    if rid is not None and not isinstance(rid, str):
        raise RequestError(400, f"'id' is a {type(rid).__name__}", expected="a string")
    params = _params(doc, "the request")
    raw = doc.get("inputs")
    want = [tensor_metadata(s) for s in specs]
    if raw is None:
        raise RequestError(400, "the request has no 'inputs' field", expected=want)
    if not isinstance(raw, list) or not raw:
        raise RequestError(400, "'inputs' must be a non-empty list of tensors", expected=want)
    by_name = {s.name: s for s in specs}
    feed: dict[str, np.ndarray] = {}
    offset = 0
    for i, t in enumerate(raw):
        name, arr, offset = _one_input(i, t, by_name, feed, want, binary, offset)
        feed[name] = arr
    if offset != len(binary):
        raise RequestError(400, f"the body has {len(binary) - offset} bytes after the last binary input",
                           expected="the binary tensors' sizes to add up to the bytes after the JSON header")
    missing = [s.name for s in specs if s.name not in feed]
    if missing:
        raise RequestError(400, f"missing input(s) {', '.join(missing)}", expected=want)
    outputs, binary_outputs = _outputs(doc, output_names)
    binary_all = params.get("binary_data_output", False)
    if not isinstance(binary_all, bool):
        raise RequestError(400, "parameters.binary_data_output is not a boolean", expected="true or false")
    return InferRequest(rid, feed, outputs, binary_outputs, binary_all)


def _one_input(i: int, t, by_name: dict[str, TensorSpec], seen: dict, want: list, binary: bytes,
               offset: int) -> tuple[str, np.ndarray, int]:
    """``inputs[i]`` checked against the model's input of its name: (name, array, the offset after its
    binary bytes)."""
    where = f"inputs[{i}]"
    if not isinstance(t, dict):
        raise RequestError(400, f"{where} is a JSON {type(t).__name__}", expected="an object with name, shape, "
                           "datatype and data")
    name = t.get("name")
    if not isinstance(name, str):
        raise RequestError(400, f"{where} has no 'name'", expected=sorted(by_name))
    where = f"input '{name}'"
    if name not in by_name:
        raise RequestError(400, f"{where} is not an input of this model", expected=want)
    if name in seen:
        raise RequestError(400, f"{where} is given twice", expected=want)
    spec = by_name[name]
    shape = t.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise RequestError(400, f"{where}: 'shape' is {json.dumps(shape)[:60]}",
                           expected=f"a list of non-negative integers, here {list(tensor_metadata(spec)['shape'])}")
    dt = t.get("datatype")
    if dt not in DATATYPES:
        hint = " (BYTES tensors have no TFLite input here)" if dt == "BYTES" else ""
        raise RequestError(400, f"{where}: datatype {json.dumps(dt)} is not a v2 datatype this server takes{hint}",
                           expected=v2_datatype(spec.dtype))
    if DATATYPES[dt] != spec.dtype:
        raise RequestError(400, f"{where} has datatype {dt}", expected=v2_datatype(spec.dtype))
    model_shape = [d for d in spec.shape]
    if len(shape) != len(model_shape) or any(m is not None and m != s for m, s in zip(model_shape, shape)):
        raise RequestError(400, f"{where} has shape {shape}", expected=tensor_metadata(spec)["shape"])
    tparams = _params(t, where)
    size = tparams.get("binary_data_size")
    n = _num_elements(shape)
    dtype = np.dtype(spec.dtype)
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise RequestError(400, f"{where}: binary_data_size is {json.dumps(size)}",
                               expected=f"the tensor's byte length, {n * dtype.itemsize}")
        if "data" in t:
            raise RequestError(400, f"{where} has both 'data' and binary_data_size", expected="one of them")
        if size != n * dtype.itemsize:
            raise RequestError(400, f"{where}: binary_data_size is {size} bytes, but shape {shape} of {dt} "
                               f"is {n * dtype.itemsize} bytes", expected=n * dtype.itemsize)
        if offset + size > len(binary):
            raise RequestError(400, f"{where}: the binary part after the JSON header has {len(binary) - offset} "
                               f"bytes left, {size} needed", expected=f"{HEADER} = the JSON length, then "
                               "each binary input's bytes in order")
        arr = np.frombuffer(binary, dtype=dtype.newbyteorder("<"), count=n, offset=offset).reshape(shape)
        return name, arr.astype(dtype, copy=False), offset + size
    if "data" not in t:
        raise RequestError(400, f"{where} has no 'data' (and no binary_data_size)",
                           expected=f"{n} values of {dt}, row-major")
    return name, _json_tensor(t["data"], shape, dtype, n, where, dt), offset


def _params(obj: dict, where: str) -> dict:
    p = obj.get("parameters", {})
    if p is None:
        return {}
    if not isinstance(p, dict):
        raise RequestError(400, f"{where}: 'parameters' is a JSON {type(p).__name__}", expected="an object")
    return p


def _json_tensor(data, shape, dtype: np.dtype, n: int, where: str, dt: str) -> np.ndarray:
    if not isinstance(data, list):
        data = [data]
    flat = data
    if any(isinstance(x, list) for x in data):
        flat = []
        stack = [iter(data)]
        while stack:  # flatten nested lists without recursion limits
            for x in stack[-1]:
                if isinstance(x, list):
                    stack.append(iter(x))
                    break
                flat.append(x)
            else:
                stack.pop()
    if len(flat) != n:
        raise RequestError(400, f"{where} has {len(flat)} values in 'data', but shape {shape} needs {n}",
                           expected=f"{n} values of {dt}, row-major")
    kind = dtype.kind
    try:
        if kind == "b":
            if not all(isinstance(x, bool) for x in flat):
                raise TypeError
            return np.asarray(flat, dtype=dtype).reshape(shape)
        arr = np.asarray(flat)
        if arr.dtype.kind not in ("i", "u", "f", "b") or arr.dtype.kind == "b" and kind != "b":
            raise TypeError
        if kind in "iu":
            if arr.dtype.kind == "f":
                raise TypeError
            info = np.iinfo(dtype)
            if arr.size and (arr.min() < info.min or arr.max() > info.max):
                raise RequestError(400, f"{where} has values outside {dt}'s range [{info.min}, {info.max}]",
                                   expected=f"integers in [{info.min}, {info.max}]")
        return arr.astype(dtype).reshape(shape)
    except (TypeError, ValueError, OverflowError):
        sample = next((x for x in flat if not isinstance(x, (int, float)) or isinstance(x, bool) != (kind == "b")
                       or (kind in "iu" and isinstance(x, float))), flat[0] if flat else None)
        raise RequestError(400, f"{where}: 'data' holds {json.dumps(sample)[:40]}, which is not a {dt} value",
                           expected=f"{n} {'booleans' if kind == 'b' else 'integers' if kind in 'iu' else 'numbers'}"
                           ", row-major") from None


def _outputs(doc: dict, names: list[str]) -> tuple[list[str] | None, set[str]]:
    raw = doc.get("outputs")
    if raw is None:
        return None, set()
    if not isinstance(raw, list):
        raise RequestError(400, "'outputs' is not a list", expected=[{"name": n} for n in names])
    asked, binary = [], set()
    for i, o in enumerate(raw):
        if not isinstance(o, dict) or not isinstance(o.get("name"), str):
            raise RequestError(400, f"outputs[{i}] has no 'name'", expected=names)
        if o["name"] not in names:
            raise RequestError(400, f"output '{o['name']}' is not an output of this model", expected=names)
        p = _params(o, f"output '{o['name']}'")
        b = p.get("binary_data", False)
        if not isinstance(b, bool):
            raise RequestError(400, f"output '{o['name']}': binary_data is not a boolean", expected="true or false")
        if b:
            binary.add(o["name"])
        asked.append(o["name"])
    return asked or None, binary


def encode_response(model: str, version: str, rid: str | None, names: list[str], arrays: list[np.ndarray],
                    req: InferRequest) -> tuple[bytes, dict[str, str]]:
    """The response body and the headers it needs (binary outputs after a JSON header)."""
    chosen = req.outputs or names
    outs, chunks = [], []
    for name in chosen:
        a = np.ascontiguousarray(arrays[names.index(name)])
        row = {"name": name, "datatype": v2_datatype(a.dtype.name), "shape": list(a.shape)}
        if req.binary_all or name in req.binary_outputs:
            b = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
            row["parameters"] = {"binary_data_size": len(b)}
            chunks.append(b)
        else:
            row["data"] = a.reshape(-1).tolist()
        outs.append(row)
    doc = {"model_name": model, "model_version": version, "outputs": outs}
    if rid is not None:
        doc["id"] = rid
    head = json.dumps(doc, separators=(",", ":")).encode()
    if not chunks:
        return head, {"content-type": "application/json"}
    return head + b"".join(chunks), {"content-type": "application/octet-stream", HEADER: str(len(head))}
