"""Test helpers for ``edgec serve``: a real server process on a free loopback port, and the builds it
serves (tiny models built in code; the pretrained EfficientNet-Lite0 for the slow tests)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import requests

EDGEC = [sys.executable, "-m", "edgec.cli.main"]
HEADER = "Inference-Header-Content-Length"


class Server:
    def __init__(self, proc: subprocess.Popen, url: str, lines: list[str]):
        self.proc, self.url, self.lines = proc, url, lines

    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.url + path, timeout=60, **kw)

    def post(self, path: str, **kw) -> requests.Response:
        return requests.post(self.url + path, timeout=120, **kw)

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


@contextmanager
def serving(path, *args: str, ready_timeout: float = 180):
    """``edgec serve PATH --port 0 ARGS`` in a child process; yields a ``Server`` once it prints its URL
    and answers ready; stops it with SIGTERM and checks that it exits 0."""
    cmd = [*EDGEC, "serve", str(path), "--port", "0", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: list[str] = []
    url = []

    def pump():
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            m = re.search(r"serving at (http://[^/\s]+)/", line)
            if m:
                url.append(m.group(1))

    threading.Thread(target=pump, daemon=True).start()
    t0 = time.monotonic()
    while not url:
        if proc.poll() is not None:
            time.sleep(0.2)
            raise AssertionError(f"edgec serve exited {proc.returncode}:\n" + "\n".join(lines))
        if time.monotonic() - t0 > ready_timeout:
            proc.kill()
            raise AssertionError("edgec serve did not start:\n" + "\n".join(lines))
        time.sleep(0.05)
    server = Server(proc, url[0], lines)
    assert server.get("/v2/health/ready").status_code == 200
    try:
        yield server
    finally:
        code = server.stop()
        assert code == 0, f"edgec serve exited {code} after SIGTERM:\n" + "\n".join(lines)


def infer_json(server: Server, model: str, version: str | None, feed: dict[str, np.ndarray], **kw):
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
    from edgec.serve.protocol import v2_datatype

    body = {"inputs": [{"name": k, "shape": list(v.shape), "datatype": v2_datatype(v.dtype.name),
                        "data": v.ravel().tolist()} for k, v in feed.items()]}
    return server.post(path, json=body, **kw)


def infer_binary(server: Server, model: str, version: str | None, feed: dict[str, np.ndarray],
                 binary_output: bool = True) -> tuple[dict, dict[str, np.ndarray]]:
    """A binary-tensor-extension request, the way tritonclient writes it; the outputs decoded."""
    from edgec.serve.protocol import DATATYPES, v2_datatype

    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
    head = json.dumps({"inputs": [{"name": k, "shape": list(v.shape), "datatype": v2_datatype(v.dtype.name),
                                   "parameters": {"binary_data_size": v.nbytes}} for k, v in feed.items()],
                       "parameters": {"binary_data_output": binary_output}}).encode()
    body = head + b"".join(np.ascontiguousarray(v).tobytes() for v in feed.values())
    r = server.post(path, data=body, headers={HEADER: str(len(head)), "Content-Type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    if HEADER not in r.headers:
        doc = r.json()
        return doc, {o["name"]: np.asarray(o["data"]).reshape(o["shape"]) for o in doc["outputs"]}
    n = int(r.headers[HEADER])
    doc = json.loads(r.content[:n])
    outs, offset = {}, n
    for o in doc["outputs"]:
        size = o["parameters"]["binary_data_size"]
        outs[o["name"]] = np.frombuffer(r.content[offset:offset + size], DATATYPES[o["datatype"]]).reshape(o["shape"])
        offset += size
    assert offset == len(r.content)
    return doc, outs


def interpreter_outputs(path: Path, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The .tflite run directly with litert's signature runner, on the tensors as built."""
    from ai_edge_litert import interpreter as lite

    runner = lite.Interpreter(model_path=str(path)).get_signature_runner("serving_default")
    return {k: np.asarray(v) for k, v in runner(**feed).items()}


def build(model: Path, out: Path, cache: Path, *args: str) -> dict:
    from edgec.cli.main import main

    if not (out / "manifest.json").exists():
        assert main(["build", str(model), "-o", str(out), "-q", "--no-bench", "--cache-dir", str(cache), *args]) == 0
    return json.loads((out / "manifest.json").read_text())


LABELS = [f"class_{i}" for i in range(10)]


def tiny_build(models: Path, cache: Path) -> Path:
    """The tiny CNN with labels, fp32 and int8 with int8 I/O, and its bundle; built once per session
    (under the session's step cache, so every test module that asks gets the same build)."""
    root = cache / "serve-tiny"
    root.mkdir(exist_ok=True)
    (root / "labels.txt").write_text("\n".join(LABELS) + "\n")
    build(models / "cnn.pt", root / "out", cache, "--variants", "fp32,int8", "--quant-io", "int8",
          "--synthetic-calibration", "--synthetic-validation", "--parity", "warn", "--labels", str(root / "labels.txt"),
          "--bundle")
    return root / "out"


def effnet_build(cache: Path) -> Path:
    """The pretrained EfficientNet-Lite0 with ImageNet labels: fp32, fp16 and dynamic-range int8
    (no calibration needed), validated on real photos (a few, to keep the build short); built once
    per session."""
    from edgec.data.examples import imagenet_labels, photo_paths, write_photo_set, write_torchscript

    root = cache / "serve-effnet"
    root.mkdir(exist_ok=True)
    pt = write_torchscript(root / "efficientnet_lite0.pt")
    labels = root / "imagenet_labels.txt"
    labels.write_text("\n".join(imagenet_labels()) + "\n")
    val = root / "validation"
    write_photo_set(val, [p for p in photo_paths() if p.stem != "chelsea"][:4], views=("full",))
    build(pt, root / "out", cache, "--variants", "fp32,fp16,dynamic_int8", "--labels", str(labels),
          "--validation-data", str(val))
    return root / "out"
