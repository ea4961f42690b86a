"""``edgec serve``: flags -> ServeConfig -> ``edgec.serve.serve``. Light at import time."""

from __future__ import annotations

import argparse


def add_parsers(sub, common, epilog: str) -> None:
    s = sub.add_parser("serve", parents=[common], epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter,
                       help="serve a build, a bundle or a .tflite over HTTP (Open Inference Protocol / KServe v2), "
                            "with a page to try it")
    s.add_argument("path", metavar="OUT", help="a build directory (manifest.json + model_<variant>.tflite), a bundle "
                   "(directory or bundle.zip), or one .tflite")
    s.add_argument("--name", help="the model name in the URLs (default: the build's source file name)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: loopback only)")
    s.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one and prints it)")
    s.add_argument("--variants", help="comma-separated variants to serve (default: all that were built)")
    s.add_argument("--workers", type=int, default=1, help="worker processes per variant (default 1)")
    s.add_argument("--in-process", action="store_true",
                   help="run the interpreters on threads of the server's own process instead of worker processes: "
                        "less latency per request (no process hop), but a model that crashes its runtime stops the "
                        "server, and an inference past --timeout cannot be stopped")
    s.add_argument("--threads", type=int, default=0, help="interpreter threads per worker (default min(4, CPUs))")
    s.add_argument("--max-body-mb", type=float, default=64.0, help="largest request body (default 64 MiB)")
    s.add_argument("--timeout", type=float, default=60.0, metavar="S",
                   help="per-inference time limit; a worker past it is replaced (default 60 s)")


def cmd_serve(args) -> int:
    from edgec.serve import ServeConfig, serve

    cfg = ServeConfig(args.path, args.name, args.host, args.port,
                      tuple(v for v in args.variants.split(",") if v) if args.variants else None,
                      args.workers, args.threads, args.max_body_mb, args.timeout, args.in_process)
    return serve(cfg, announce=lambda line: print(line, flush=True))
