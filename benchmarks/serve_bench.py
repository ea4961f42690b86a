"""`edgec serve` latency against a bare interpreter loop on the same .tflite, in the same run.

Bare: in this process, litert's Interpreter with the same thread count as the server's worker:
``set_tensor``, ``invoke``, ``get_tensor`` per iteration, one sample per iteration.
Serve: a real ``edgec serve`` process on loopback (one worker, same threads); the client sends
v2 binary-tensor-extension requests (the way tritonclient does) over one keep-alive connection per
client thread (``http.client``, TCP_NODELAY), one sample per request, at concurrency 1 and 16. At
concurrency 1 the two sides alternate sample by sample (pairs, alternating which goes first), so
the drift of this shared machine hits both alike.

Prints p50/p99 of each side, the p50 overhead ratio at concurrency 1 (target <= 10 %), and
throughput. Exit status 1 when the target is missed.

    .venv/bin/python benchmarks/serve_bench.py [--model efficientnet-lite0|tiny] [--out BUILD]
        [--threads 2] [--requests 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EDGEC, MODELS, env, save_model  # noqa: E402

HEADER = "Inference-Header-Content-Length"
TARGET = 0.10


def build(model: str, work: Path) -> Path:
    out = work / f"serve-bench-{model}"
    if not (out / "manifest.json").exists():
        pt = work / f"{model}.pt"
        save_model(model, pt)
        subprocess.run([EDGEC, "build", str(pt), "-o", str(out), "--variants", "fp32", "--synthetic-validation",
                        "--no-bench", "-q"], check=True, env=env())
    return out


def pct(xs, q) -> float:
    return float(np.percentile(np.asarray(xs) * 1e3, q))


class Bare:
    """The same .tflite in this process, same threads: set_tensor, invoke, get_tensor."""

    def __init__(self, path: Path, threads: int, feed: np.ndarray):
        from edgec.runtime.tflite import TFLite

        self.runner = TFLite(path, threads=threads, signature=None).load()  # edgec's runner, loaded once
        self.it = self.runner.interpreter  # timed bare: the interpreter's own calls, nothing of edgec's
        self.i, self.o = self.runner.inputs()[0].index, self.runner.outputs()[0].index
        self.feed = feed

    def one(self) -> float:
        t0 = time.perf_counter()
        self.it.set_tensor(self.i, self.feed)
        self.it.invoke()
        self.it.get_tensor(self.o)
        return time.perf_counter() - t0


class Client:
    def __init__(self, host: str, port: int, model: str, name: str, x: np.ndarray):
        self.conn = http.client.HTTPConnection(host, port, timeout=120)
        self.conn.connect()  # http.client sends headers and body in two writes: without TCP_NODELAY the
        self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # second waits ~40 ms for an ACK
        head = json.dumps({"inputs": [{"name": name, "shape": list(x.shape), "datatype": "FP32",
                                       "parameters": {"binary_data_size": x.nbytes}}],
                           "parameters": {"binary_data_output": True}}).encode()
        self.body, self.hlen = head + x.tobytes(), str(len(head))
        self.path = f"/v2/models/{model}/versions/fp32/infer"

    def one(self) -> float:
        t0 = time.perf_counter()
        self.conn.request("POST", self.path, body=self.body,
                          headers={HEADER: self.hlen, "Content-Type": "application/octet-stream"})
        r = self.conn.getresponse()
        data = r.read()
        dt = time.perf_counter() - t0
        if r.status != 200:
            raise RuntimeError(f"{r.status}: {data[:300]!r}")
        return dt


def served(out: Path, threads: int):
    proc = subprocess.Popen([EDGEC, "serve", str(out), "--variants", "fp32", "--port", "0", "--threads",
                             str(threads)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env())
    for line in proc.stdout:
        m = re.search(r"serving at http://([\d.]+):(\d+)/", line)
        if m:
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return proc, m.group(1), int(m.group(2))
    raise SystemExit(f"edgec serve did not start (exit {proc.wait()})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=MODELS, default="efficientnet-lite0")
    ap.add_argument("--out", help="an existing build directory with model_fp32.tflite (default: build --model)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--requests", type=int, default=200, help="samples per round (default 200)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds (default 3): requests x rounds pairs at "
                    "concurrency 1, as many requests at 16")
    args = ap.parse_args()

    out = Path(args.out) if args.out else build(args.model, Path(tempfile.gettempdir()))
    manifest = json.loads((out / "manifest.json").read_text())
    tfl = out / "model_fp32.tflite"
    proc, host, port = served(out, args.threads)
    try:
        import urllib.request

        base = f"http://{host}:{port}"
        info = json.load(urllib.request.urlopen(base + "/edgec/info"))
        model, inp = info["name"], info["versions"][0]["inputs"][0]
        x = np.random.default_rng(0).standard_normal(inp["shape"], dtype=np.float32)
        c1, bare_side = Client(host, port, model, inp["name"], x), Bare(tfl, args.threads, x)
        for _ in range(20):  # warm-up
            c1.one()
            bare_side.one()
        bare, serve1 = [], []
        for i in range(args.requests * args.rounds):  # pairs, alternating which side goes first
            first, second = (bare_side, c1) if i % 2 else (c1, bare_side)
            a, b = first.one(), second.one()
            bare.append(a if first is bare_side else b)
            serve1.append(b if first is bare_side else a)
        clients = [Client(host, port, model, inp["name"], x) for _ in range(16)]
        n16 = args.requests * args.rounds
        t0 = time.perf_counter()
        with ThreadPoolExecutor(16) as ex:  # one client (one connection) per thread
            per = list(ex.map(lambda c: [c.one() for _ in range(n16 // 16)], clients))
        serve16 = [t for ts in per for t in ts]
        n16 = len(serve16)
        wall16 = time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(60)

    ratio = pct(serve1, 50) / pct(bare, 50) - 1
    load = os.getloadavg()
    pairs = np.median(np.asarray(serve1) / np.asarray(bare)) - 1
    print(f"model {manifest['source']['path']} fp32, input {inp['shape']}, {args.threads} thread(s); "
          f"{len(bare)} alternating pairs; load average {load[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'side':<28}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}{'req/s':>9}")
    print(f"{'bare interpreter loop':<28}{len(bare):>6}{pct(bare, 50):>10.3f}{pct(bare, 99):>10.3f}"
          f"{1 / np.mean(bare):>9.1f}")
    print(f"{'serve, concurrency 1':<28}{len(serve1):>6}{pct(serve1, 50):>10.3f}{pct(serve1, 99):>10.3f}"
          f"{1 / np.mean(serve1):>9.1f}")
    print(f"{'serve, concurrency 16':<28}{len(serve16):>6}{pct(serve16, 50):>10.3f}{pct(serve16, 99):>10.3f}"
          f"{n16 / wall16:>9.1f}")
    print(f"median of per-pair ratios - 1: {pairs * 100:+.1f} %")
    print(f"p50 overhead at concurrency 1: {ratio * 100:+.1f} % ({pct(serve1, 50) - pct(bare, 50):+.3f} ms) "
          f"-> {'PASS' if ratio <= TARGET else 'FAIL'} (target <= {TARGET * 100:.0f} %)")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
