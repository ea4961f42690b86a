"""``edgec serve``: a real server process on a loopback port, spoken to over HTTP.

Fast tests serve a tiny CNN built in code (a build directory with fp32 and an int8 variant whose
I/O is int8, its bundle, and a single .tflite). The slow tests serve the pretrained
EfficientNet-Lite0 build: v2 infer against the interpreter run directly, and the classify endpoint
on scikit-image's cat."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests

import served
from served import EDGEC, HEADER, LABELS, infer_binary, infer_json, interpreter_outputs, serving

@pytest.fixture(scope="session")
def tiny_build(models, cache_dir) -> Path:
    return served.tiny_build(models, cache_dir)


@pytest.fixture(scope="module", params=["processes", "in-process"])
def tiny(tiny_build, request):
    """The tiny build served both ways: worker processes (the default) and ``--in-process``; every
    protocol test runs against each."""
    extra = ["--in-process"] if request.param == "in-process" else []
    with serving(tiny_build, "--max-body-mb", "1", *extra) as s:
        s.in_process = bool(extra)
        yield s


def _x(seed=0, shape=(1, 32, 32, 3)) -> np.ndarray:
    return np.random.RandomState(seed).randn(*shape).astype(np.float32)


def _int8_x(seed=1) -> np.ndarray:
    return np.random.RandomState(seed).randint(-128, 128, size=(1, 32, 32, 3)).astype(np.int8)


# -- protocol: health, metadata, infer -------------------------------------------------------------

def test_health_and_metadata_follow_the_built_models(tiny, tiny_build):
    from edgec.formats.tflite import read_tflite

    assert tiny.get("/v2/health/live").status_code == 200
    assert tiny.get("/v2/health/ready").json() == {"ready": True}
    assert "binary_tensor_data" in tiny.get("/v2").json()["extensions"]
    meta = tiny.get("/v2/models/cnn").json()
    assert meta["name"] == "cnn" and meta["versions"] == ["fp32", "int8"]
    for version in ("fp32", "int8"):
        m = tiny.get(f"/v2/models/cnn/versions/{version}").json()
        info = read_tflite(tiny_build / f"model_{version}.tflite")
        assert [(t["datatype"], t["shape"]) for t in m["inputs"]] == \
            [(t.dtype.upper().replace("FLOAT", "FP"), list(t.shape)) for t in info.inputs]
        assert m["inputs"][0]["name"] == "x" and m["outputs"][0]["name"] == "output"
        assert tiny.get(f"/v2/models/cnn/versions/{version}/ready").json()["ready"] is True
    q = tiny.get("/v2/models/cnn/versions/int8").json()["inputs"][0]
    assert q["datatype"] == "INT8" and q["parameters"]["quantization"]["scale"] > 0


def test_infer_json_and_binary_equal_the_interpreter(tiny, tiny_build):
    x = _x()
    direct = interpreter_outputs(tiny_build / "model_fp32.tflite", {"x": x})["output"]
    r = infer_json(tiny, "cnn", "fp32", {"x": x})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["model_version"] == "fp32" and doc["outputs"][0]["datatype"] == "FP32"
    got = np.asarray(doc["outputs"][0]["data"], np.float32).reshape(doc["outputs"][0]["shape"])
    assert np.max(np.abs(got - direct)) <= 1e-5
    _, outs = infer_binary(tiny, "cnn", None, {"x": x})  # the default version is fp32
    assert outs["output"].dtype == np.float32 and np.max(np.abs(outs["output"] - direct)) <= 1e-5
    # int8 I/O as built: INT8 in, INT8 out, bit-exact with the interpreter
    xq = _int8_x()
    direct_q = interpreter_outputs(tiny_build / "model_int8.tflite", {"x": xq})["output"]
    doc, outs = infer_binary(tiny, "cnn", "int8", {"x": xq})
    assert doc["outputs"][0]["datatype"] == "INT8" and np.array_equal(outs["output"], direct_q)
    # nested JSON data and one output asked for as binary
    body = {"id": "r1", "inputs": [{"name": "x", "shape": [1, 32, 32, 3], "datatype": "FP32", "data": x.tolist()}],
            "outputs": [{"name": "output", "parameters": {"binary_data": True}}]}
    r = tiny.post("/v2/models/cnn/infer", json=body)
    n = int(r.headers[HEADER])
    head = json.loads(r.content[:n])
    assert head["id"] == "r1" and head["outputs"][0]["parameters"]["binary_data_size"] == 40
    assert np.max(np.abs(np.frombuffer(r.content[n:], np.float32).reshape(1, 10) - direct)) <= 1e-5


def _bad_requests(x_bytes: bytes) -> list[tuple[str, dict, int, str]]:
    """(what, requests.post kwargs or a method, expected status, a word the error must contain)."""
    good = {"name": "x", "shape": [1, 32, 32, 3], "datatype": "FP32"}
    data = [0.0] * 3072
    head = json.dumps({"inputs": [{**good, "parameters": {"binary_data_size": 12288}}]}).encode()
    return [
        ("non-JSON body", {"data": b"hello"}, 400, "not JSON"),
        ("empty body", {"data": b""}, 400, "empty"),
        ("JSON array", {"json": [1, 2]}, 400, "not an object"),
        ("no inputs field", {"json": {"outputs": []}}, 400, "'inputs'"),
        ("inputs not a list", {"json": {"inputs": {"x": 1}}}, 400, "list"),
        ("unknown input name", {"json": {"inputs": [{**good, "name": "image", "data": data}]}}, 400, "'image'"),
        ("input without a name", {"json": {"inputs": [{"shape": [1], "datatype": "FP32", "data": [1]}]}}, 400, "name"),
        ("input twice", {"json": {"inputs": [{**good, "data": data}, {**good, "data": data}]}}, 400, "twice"),
        ("wrong datatype", {"json": {"inputs": [{**good, "datatype": "FP64", "data": data}]}}, 400, "FP64"),
        ("unknown datatype", {"json": {"inputs": [{**good, "datatype": "FLOAT", "data": data}]}}, 400, "FLOAT"),
        ("BYTES datatype", {"json": {"inputs": [{**good, "datatype": "BYTES", "data": ["a"]}]}}, 400, "BYTES"),
        ("wrong shape (NCHW)", {"json": {"inputs": [{**good, "shape": [1, 3, 32, 32], "data": data}]}}, 400,
         "[1, 3, 32, 32]"),
        ("shape not integers", {"json": {"inputs": [{**good, "shape": [1, "a"], "data": data}]}}, 400, "shape"),
        ("too few values", {"json": {"inputs": [{**good, "data": data[:10]}]}}, 400, "10 values"),
        ("strings in data", {"json": {"inputs": [{**good, "data": ["a"] * 3072}]}}, 400, "not a FP32"),
        ("missing data", {"json": {"inputs": [good]}}, 400, "no 'data'"),
        ("unknown output", {"json": {"inputs": [{**good, "data": data}], "outputs": [{"name": "logits"}]}}, 400,
         "'logits'"),
        ("binary header not a number", {"data": head + x_bytes, "headers": {HEADER: "abc"}}, 400, "not a number"),
        ("binary header longer than body", {"data": head + x_bytes, "headers": {HEADER: "999999"}}, 400,
         "999999"),
        ("binary data short", {"data": head + x_bytes[:100], "headers": {HEADER: str(len(head))}}, 400, "bytes left"),
        ("binary data extra", {"data": head + x_bytes + b"xx", "headers": {HEADER: str(len(head))}}, 400,
         "after the last"),
        ("binary body without header", {"data": head + x_bytes}, 400, HEADER),
        ("oversized body", {"data": b"{" + b" " * (2 << 20) + b"}"}, 413, "bytes"),
    ]


def test_bad_requests_get_4xx_json_naming_the_problem(tiny):
    x_bytes = _x().tobytes()
    seen = []
    for what, kw, status, word in _bad_requests(x_bytes):
        r = tiny.post("/v2/models/cnn/infer", **kw)
        assert r.status_code == status, (what, r.status_code, r.text[:300])
        body = r.json()
        assert word in body["error"], (what, body)
        assert "expected" in body, (what, body)
        seen.append(what)
    others = [
        ("unknown model", tiny.post("/v2/models/resnet/infer", json={}), 404, "resnet"),
        ("unknown version", tiny.post("/v2/models/cnn/versions/int4/infer", json={}), 404, "int4"),
        ("unknown version metadata", tiny.get("/v2/models/cnn/versions/int4"), 404, "int4"),
        ("GET on infer", tiny.get("/v2/models/cnn/infer"), 405, "GET"),
        ("unknown path", tiny.get("/v3/models"), 404, "/v3/models"),
        ("int8 input given floats", infer_json(tiny, "cnn", "int8", {"x": _x()}), 400, "FP32"),
        ("int8 input out of range", tiny.post("/v2/models/cnn/versions/int8/infer", json={"inputs": [
            {"name": "x", "shape": [1, 32, 32, 3], "datatype": "INT8", "data": [300] * 3072}]}), 400, "range"),
        ("classify: not an image", tiny.post("/v2/models/cnn/classify", files={"file": ("a.png", b"nope")}), 400,
         "a.png"),
        ("classify: form without file", tiny.post("/v2/models/cnn/classify", files={"other": ("a", b"x")}), 400,
         "'file'"),
        ("classify: unknown example", tiny.post("/v2/models/cnn/classify?example=dog"), 404, "dog"),
        ("classify: top_k too big", tiny.post("/v2/models/cnn/classify?example=chelsea&top_k=50"), 400, "top_k"),
        ("classify: top_k not a number", tiny.post("/v2/models/cnn/classify?top_k=five"), 400, "top_k"),
    ]
    for what, r, status, word in others:
        assert r.status_code == status, (what, r.status_code, r.text[:300])
        assert word in r.json()["error"], (what, r.json())
        seen.append(what)
    assert len(seen) >= 30
    # still answering, and correctly
    assert tiny.get("/v2/health/ready").status_code == 200
    assert infer_json(tiny, "cnn", "fp32", {"x": _x()}).status_code == 200
    metrics = tiny.get("/metrics").text
    assert 'edgec_serve_errors_total{kind="bad_request"}' in metrics
    assert 'code="500"' not in metrics


def test_burst_of_500_requests_16_at_a_time(tiny, tiny_build):
    xs = [_x(seed) for seed in range(8)]
    want = [interpreter_outputs(tiny_build / "model_fp32.tflite", {"x": x})["output"] for x in xs]

    def one(i):
        x = xs[i % len(xs)]
        if i % 2:
            _, outs = infer_binary(tiny, "cnn", "fp32", {"x": x})
            y = outs["output"]
        else:
            r = infer_json(tiny, "cnn", "fp32", {"x": x})
            if r.status_code != 200:
                return f"{r.status_code} {r.text[:200]}"
            y = np.asarray(r.json()["outputs"][0]["data"], np.float32).reshape(1, 10)
        return None if np.max(np.abs(y - want[i % len(xs)])) <= 1e-5 else "wrong output"

    t0 = time.perf_counter()
    with ThreadPoolExecutor(16) as ex:
        errors = [e for e in ex.map(one, range(500)) if e]
    print(f"\n500 requests, 16 at a time: {time.perf_counter() - t0:.1f} s")
    assert errors == []


def test_metrics_count_requests_latency_and_errors(tiny):
    infer_json(tiny, "cnn", "int8", {"x": _int8_x()})
    tiny.post("/v2/models/cnn/infer", data=b"nope")
    text = tiny.get("/metrics").text
    assert 'edgec_serve_requests_total{code="200",route="/v2/models/{name}/versions/{version}/infer"}' in text
    assert 'edgec_serve_requests_total{code="400",route="/v2/models/{name}/infer"}' in text
    assert 'edgec_serve_inference_seconds_bucket{le="0.01",version="int8"}' in text
    assert 'edgec_serve_request_seconds_count{route="/v2/models/{name}/versions/{version}/infer"}' in text


def test_openapi_schema_is_published(tiny):
    doc = tiny.get("/openapi.json").json()
    infer = doc["paths"]["/v2/models/{name}/versions/{version}/infer"]["post"]
    assert infer["requestBody"]["content"]["application/json"]["schema"]["$ref"] == \
        "#/components/schemas/InferenceRequest"
    schemas = doc["components"]["schemas"]
    assert {"InferenceRequest", "InferenceResponse", "RequestInput", "ErrorBody"} <= set(schemas)
    assert "/v2/health/ready" in doc["paths"] and "/v2/models/{name}/classify" in doc["paths"]


# -- classify --------------------------------------------------------------------------------------

def test_classify_every_variant_with_labels_and_agreement(tiny, tiny_build, tmp_path):
    from edgec.data.examples import photo_paths

    r = tiny.post("/v2/models/cnn/classify?example=coffee&top_k=3")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert [x["version"] for x in doc["results"]] == ["fp32", "int8"] and doc["reference"] == "fp32"
    for res in doc["results"]:
        assert len(res["top"]) == 3 and all(t["label"] in LABELS for t in res["top"])
        assert res["latency_ms"]["model"] > 0 and res["latency_ms"]["round_trip"] >= res["latency_ms"]["model"]
        assert set(res["agreement"]) == {"top1_same", "top3_overlap", "max_abs_prob_diff"}
    assert doc["results"][0]["agreement"]["top1_same"] is True
    # the same picture uploaded (multipart) and as a raw body gives the same answer
    png = next(p for p in photo_paths() if p.stem == "coffee").read_bytes()
    up = tiny.post("/v2/models/cnn/classify?top_k=3", files={"file": ("coffee.png", png, "image/png")}).json()
    raw = tiny.post("/v2/models/cnn/classify?top_k=3", data=png, headers={"content-type": "image/png"}).json()
    assert [t["index"] for t in up["results"][0]["top"]] == [t["index"] for t in doc["results"][0]["top"]]
    assert up["results"][1]["top"] == raw["results"][1]["top"]
    one = tiny.post("/v2/models/cnn/versions/int8/classify?example=coffee").json()
    assert [x["version"] for x in one["results"]] == ["int8"] and one["results"][0]["agreement_with"] == "fp32"
    # fp32's top-1 equals the argmax of the interpreter on the same preprocessing
    from edgec.serve.classify import decode, to_input
    from edgec.serve.model import load_served

    v = load_served(tiny_build).variants["fp32"]
    x = to_input(decode(png), v.prep, "float32", False)
    direct = interpreter_outputs(tiny_build / "model_fp32.tflite", {"x": x})["output"][0]
    assert up["results"][0]["top"][0]["index"] == int(np.argmax(direct))


def test_bundle_directory_zip_and_single_tflite(tiny_build):
    with serving(tiny_build / "bundle") as s:
        info = s.get("/edgec/info").json()
        assert info["kind"] == "bundle" and info["task"] == "image_classifier"
        int8 = next(v for v in info["versions"] if v["name"] == "int8")
        assert int8["inputs"][0]["datatype"] == "UINT8"  # the bundle's int8 model takes pixels
        doc = s.post("/v2/models/cnn/classify?example=coffee").json()
        assert [r["version"] for r in doc["results"]] == ["fp32", "int8"]
    with serving(tiny_build / "bundle.zip", "--variants", "fp32", "--name", "tiny") as s:
        assert s.get("/v2/models/tiny").json()["versions"] == ["fp32"]
    with serving(tiny_build / "model_fp32.tflite") as s:
        info = s.get("/edgec/info").json()
        assert info["kind"] == "tflite" and info["task"] == "generic" and info["versions"][0]["name"] == "fp32"
        r = s.post(f"/v2/models/{info['name']}/classify?example=coffee")
        assert r.status_code == 409 and "not an image classifier" in r.json()["error"]
        assert infer_json(s, info["name"], "fp32", {"x": _x()}).status_code == 200


# -- robustness ------------------------------------------------------------------------------------

def test_a_worker_that_dies_does_not_take_the_server_down(tiny_build):
    with serving(tiny_build, "--variants", "fp32") as s:
        pid = s.get("/edgec/workers").json()["fp32"]["pids"][0]
        os.kill(pid, signal.SIGSEGV)  # what a crashing kernel does to the process it runs in
        time.sleep(0.5)
        r = infer_json(s, "cnn", "fp32", {"x": _x()})
        assert r.status_code == 503 and "SIGSEGV" in r.json()["error"], r.text
        t0 = time.monotonic()
        while s.get("/v2/health/ready").status_code != 200:
            assert time.monotonic() - t0 < 60, "the worker was not replaced"
            time.sleep(0.2)
        workers = s.get("/edgec/workers").json()["fp32"]
        assert workers["restarts"] == 1 and workers["pids"] and workers["pids"][0] != pid
        assert infer_json(s, "cnn", "fp32", {"x": _x()}).status_code == 200
        assert 'edgec_serve_worker_restarts_total{version="fp32"} 1.0' in s.get("/metrics").text


def test_in_process_interpreters_live_in_the_server(tiny):
    workers = tiny.get("/edgec/workers").json()
    assert {w["in_process"] for w in workers.values()} == {tiny.in_process}
    pids = {p for w in workers.values() for p in w["pids"]}
    if tiny.in_process:
        assert pids == {tiny.proc.pid}
        assert any("--in-process" in ln for ln in tiny.lines)
    else:
        assert tiny.proc.pid not in pids and len(pids) == len(workers)


def test_in_process_inference_past_the_time_limit_is_abandoned_and_replaced(tiny_build):
    with serving(tiny_build, "--variants", "fp32", "--in-process", "--timeout", "0.000001") as s:
        # A tiny inference can still beat a 1 us limit now and then: the first that does not is the one.
        for _ in range(50):
            r = infer_json(s, "cnn", "fp32", {"x": _x()})
            if r.status_code != 200:
                break
        assert r.status_code == 503 and "abandoned" in r.json()["error"], r.text
        t0 = time.monotonic()
        while s.get("/edgec/workers").json()["fp32"]["restarts"] < 1:
            assert time.monotonic() - t0 < 60, "the interpreter was not replaced"
            time.sleep(0.1)
        assert s.get("/v2/health/live").status_code == 200


def test_sigterm_finishes_in_flight_requests_and_stops_the_workers(tiny_build):
    with serving(tiny_build, "--variants", "fp32") as s:
        pids = s.get("/edgec/workers").json()["fp32"]["pids"]
        with ThreadPoolExecutor(8) as ex:
            futures = [ex.submit(infer_json, s, "cnn", "fp32", {"x": _x(i)}) for i in range(40)]
            futures[0].result()  # requests are flowing: the signal lands while others are in flight
            s.proc.send_signal(signal.SIGTERM)
            codes = []
            for f in futures:
                try:
                    codes.append(f.result().status_code)
                except requests.ConnectionError:  # sent after the listener closed: refused, never half-answered
                    codes.append("refused")
        assert s.proc.wait(60) == 0
        assert set(codes) <= {200, "refused"} and 200 in codes, codes
        assert any("stopped" in ln for ln in s.lines)
        for pid in pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)


def test_cli_refusals_are_documented_exits(tiny_build, tmp_path):
    import socket

    def run(*args):
        return subprocess.run([*EDGEC, "serve", *args], capture_output=True, text=True, timeout=120)

    r = run(str(tmp_path / "missing"))
    assert r.returncode == 3 and "does not exist" in r.stderr
    r = run(str(tiny_build), "--variants", "fp32,int4")
    assert r.returncode == 2 and "int4" in r.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        r = run(str(tiny_build), "--port", str(taken.getsockname()[1]))
    assert r.returncode == 2 and "in use" in r.stderr
    # a custom op is named before anything starts
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(bytearray((tiny_build / "model_fp32.tflite").read_bytes()), 0)
    m.operatorCodes[0].builtinCode = m.operatorCodes[0].deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    m.operatorCodes[0].customCode = b"EdgecTestOp"
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    (tmp_path / "custom.tflite").write_bytes(b.Output())
    r = run(str(tmp_path / "custom.tflite"))
    assert r.returncode == 4 and "EdgecTestOp" in r.stderr and "Traceback" not in r.stderr


def test_serve_stays_off_the_cli_start_up_path():
    code = "import edgec.cli.main, sys; print(sorted(m for m in ('fastapi', 'uvicorn', 'prometheus_client', " \
           "'ai_edge_litert') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert out.strip() == "[]"


# -- the real model (slow) -------------------------------------------------------------------------

@pytest.fixture(scope="session")
def effnet_out(cache_dir) -> Path:
    return served.effnet_build(cache_dir)


@pytest.mark.slow
def test_effnet_fp32_infer_equals_the_interpreter(effnet_out):
    from edgec.data.examples import normalized_nchw, photo

    x = np.ascontiguousarray(normalized_nchw(photo("chelsea")).transpose(0, 2, 3, 1))  # the build's NHWC input
    with serving(effnet_out, "--variants", "fp32") as s:
        meta = s.get("/v2/models/efficientnet_lite0/versions/fp32").json()
        name = meta["inputs"][0]["name"]
        assert meta["inputs"][0]["shape"] == [1, 224, 224, 3] and meta["outputs"][0]["shape"] == [1, 1000]
        direct = interpreter_outputs(effnet_out / "model_fp32.tflite", {name: x})
        (out_name, want), = direct.items()
        _, outs = infer_binary(s, "efficientnet_lite0", "fp32", {name: x})
        assert np.max(np.abs(outs[out_name] - want)) <= 1e-5
        r = infer_json(s, "efficientnet_lite0", "fp32", {name: x})
        got = np.asarray(r.json()["outputs"][0]["data"], np.float32).reshape(1, 1000)
        assert np.max(np.abs(got - want)) <= 1e-5
        assert int(np.argmax(want)) == 285


@pytest.mark.slow
def test_effnet_classify_names_the_cat(effnet_out):
    from edgec.data.examples import photo_paths

    cat = next(p for p in photo_paths() if p.stem == "chelsea").read_bytes()
    with serving(effnet_out) as s:
        doc = s.post("/v2/models/efficientnet_lite0/classify",
                     files={"file": ("chelsea.png", cat, "image/png")}).json()
    assert [r["version"] for r in doc["results"]] == ["fp32", "fp16", "dynamic_int8"]
    for r in doc["results"]:
        assert r["top"][0]["label"] == "Egyptian cat", r
        assert len(r["top"]) == 5 and r["agreement"]["top1_same"]


def test_tritonclient_speaks_to_it(tiny, tiny_build):
    """NVIDIA's own v2 HTTP client (tritonclient), JSON and binary tensors, against the server."""
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    c = triton.InferenceServerClient(url=tiny.url.removeprefix("http://"))
    assert c.is_server_live() and c.is_server_ready() and c.is_model_ready("cnn", "int8")
    assert c.get_model_metadata("cnn", "int8")["inputs"][0]["datatype"] == "INT8"
    x = _x(3)
    direct = interpreter_outputs(tiny_build / "model_fp32.tflite", {"x": x})["output"]
    for binary in (True, False):
        inp = triton.InferInput("x", [1, 32, 32, 3], "FP32")
        inp.set_data_from_numpy(x, binary_data=binary)
        res = c.infer("cnn", [inp], model_version="fp32", outputs=[triton.InferRequestedOutput("output",
                                                                                               binary_data=binary)])
        assert np.max(np.abs(res.as_numpy("output") - direct)) <= 1e-5
    xq = _int8_x(4)
    inp = triton.InferInput("x", [1, 32, 32, 3], "INT8")
    inp.set_data_from_numpy(xq)
    res = c.infer("cnn", [inp], model_version="int8")
    assert np.array_equal(res.as_numpy("output"), interpreter_outputs(tiny_build / "model_int8.tflite",
                                                                      {"x": xq})["output"])
    bad = triton.InferInput("x", [1, 3, 32, 32], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 3, 32, 32), np.float32))
    with pytest.raises(InferenceServerException, match=r"\[1, 3, 32, 32\]"):
        c.infer("cnn", [bad])
