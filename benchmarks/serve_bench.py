"""`edgec serve` latency against a bare interpreter loop on the same .tflite, in the same run.

Bare: in this process, litert's Interpreter with the same thread count as the server's worker:
``set_tensor``, ``invoke``, ``get_tensor`` per iteration, one sample per iteration.
Serve: a real ``edgec serve`` process on loopback (one worker process, or ``--in-process`` one
interpreter thread in the server; same threads); clients send v2 binary-tensor-extension requests
(the way tritonclient does) over one keep-alive connection each (TCP_NODELAY), one sample per
request, at concurrency 1 and 16. Two clients: *socket*, a minimal HTTP/1.1 client (the request
bytes built once, one ``sendall``, the response read by its Content-Length: what a C client such
as Triton's perf_analyzer costs, so the overhead measured is the server's), and *http.client*,
Python's standard one (its own ~0.3-0.4 ms included). At concurrency 1 the three sides (bare,
socket, http.client) take turns sample by sample, rotating which goes first, so the drift of this
shared machine hits all alike.

Prints p50/p99 of each side, the p50 overhead at concurrency 1 of each client (target <= 10 %,
judged on the socket client), and throughput. Exit status 1 when the target is missed.

    .venv/bin/python benchmarks/serve_bench.py [--model efficientnet-lite0|tiny] [--out BUILD]
        [--threads 2] [--in-process] [--requests 200] [--rounds 3]
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


class SocketClient:
    """A minimal HTTP/1.1 keep-alive client: the request bytes built once, sent with one ``sendall``;
    the response read into a reused buffer until its Content-Length is in."""

    def __init__(self, host: str, port: int, model: str, name: str, x: np.ndarray):
        self.sock = socket.create_connection((host, port), timeout=120)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        head = json.dumps({"inputs": [{"name": name, "shape": list(x.shape), "datatype": "FP32",
                                       "parameters": {"binary_data_size": x.nbytes}}],
                           "parameters": {"binary_data_output": True}}).encode()
        body = head + x.tobytes()
        self.request = (f"POST /v2/models/{model}/versions/fp32/infer HTTP/1.1\r\nHost: {host}:{port}\r\n"
                        f"Content-Type: application/octet-stream\r\n{HEADER}: {len(head)}\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        self.buf = bytearray(1 << 20)

    def one(self) -> float:
        t0 = time.perf_counter()
        self.sock.sendall(self.request)
        view, n, end = memoryview(self.buf), 0, -1
        while end < 0 or n < end:
            got = self.sock.recv_into(view[n:])
            if not got:
                raise RuntimeError("the server closed the connection")
            n += got
            if end < 0 and (h := self.buf.find(b"\r\n\r\n", 0, n)) >= 0:
                m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", bytes(self.buf[:h]))
                end = h + 4 + int(m.group(1))
        dt = time.perf_counter() - t0
        if self.buf[9:12] != b"200":
            raise RuntimeError(bytes(self.buf[:min(n, 300)]).decode("latin-1"))
        return dt


def served(out: Path, threads: int, in_process: bool = False):
    proc = subprocess.Popen([EDGEC, "serve", str(out), "--variants", "fp32", "--port", "0", "--threads",
                             str(threads), *(["--in-process"] if in_process else [])],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env())
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
    ap.add_argument("--in-process", action="store_true", help="serve with edgec serve --in-process")
    ap.add_argument("--requests", type=int, default=200, help="samples per round (default 200)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds (default 3): requests x rounds pairs at "
                    "concurrency 1, as many requests at 16")
    args = ap.parse_args()

    out = Path(args.out) if args.out else build(args.model, Path(tempfile.gettempdir()))
    manifest = json.loads((out / "manifest.json").read_text())
    tfl = out / "model_fp32.tflite"
    proc, host, port = served(out, args.threads, args.in_process)
    try:
        import urllib.request

        base = f"http://{host}:{port}"
        info = json.load(urllib.request.urlopen(base + "/edgec/info"))
        model, inp = info["name"], info["versions"][0]["inputs"][0]
        x = np.random.default_rng(0).standard_normal(inp["shape"], dtype=np.float32)
        sides = {"bare interpreter loop": Bare(tfl, args.threads, x),
                 "serve c=1, socket client": SocketClient(host, port, model, inp["name"], x),
                 "serve c=1, http.client": Client(host, port, model, inp["name"], x)}
        for _ in range(20):  # warm-up
            for side in sides.values():
                side.one()
        times: dict[str, list[float]] = {k: [] for k in sides}
        order = list(sides)
        for i in range(args.requests * args.rounds):  # turns, rotating which side goes first
            for k in order[i % 3:] + order[:i % 3]:
                times[k].append(sides[k].one())
        clients = [SocketClient(host, port, model, inp["name"], x) for _ in range(16)]
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

    bare = times["bare interpreter loop"]
    load = os.getloadavg()
    mode = "--in-process (an interpreter thread in the server)" if args.in_process else "one worker process"
    print(f"model {manifest['source']['path']} fp32, input {inp['shape']}, {args.threads} thread(s), {mode}; "
          f"{len(bare)} turns; load average {load[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'side':<28}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}{'req/s':>9}")
    for k, ts in list(times.items()) + [("serve c=16, socket clients", serve16)]:
        rate = n16 / wall16 if ts is serve16 else 1 / np.mean(ts)
        print(f"{k:<28}{len(ts):>6}{pct(ts, 50):>10.3f}{pct(ts, 99):>10.3f}{rate:>9.1f}")
    ratio = 0.0
    for k in ("serve c=1, http.client", "serve c=1, socket client"):
        r = pct(times[k], 50) / pct(bare, 50) - 1
        turns = np.median(np.asarray(times[k]) / np.asarray(bare)) - 1
        print(f"p50 overhead, {k[11:]}: {r * 100:+.1f} % ({pct(times[k], 50) - pct(bare, 50):+.3f} ms); "
              f"median of per-turn ratios {turns * 100:+.1f} %")
        ratio = r
    print(f"-> {'PASS' if ratio <= TARGET else 'FAIL'} (target <= {TARGET * 100:.0f} % p50 overhead at concurrency 1, "
          "socket client)")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
