"""``edgec serve``: a local prediction server for a finished build, a bundle or a ``.tflite``, on the
Open Inference Protocol (KServe v2), with a classify endpoint and a page to try it.

- ``model``: what is served (variants = versions, their I/O, image preprocessing, labels);
- ``pool``: the interpreters, in worker processes, a pool per variant (crash-isolated), or with
  ``in_process`` on threads of the server's own process (faster per request, not isolated);
- ``protocol``: v2 requests and responses, JSON and the binary tensor extension;
- ``app``: the FastAPI app; ``server``: binding, start-up and graceful shutdown (uvicorn).

FastAPI, uvicorn and prometheus_client are imported only when a server starts.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServeConfig:
    path: str
    name: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    variants: tuple[str, ...] | None = None
    workers: int = 1
    threads: int = 0              # interpreter threads per worker; 0: min(4, CPUs)
    max_body_mb: float = 64.0
    timeout_s: float = 60.0
    in_process: bool = False      # interpreters on threads here: no process hop, no crash isolation


def serve(cfg: ServeConfig, announce=print) -> int:
    """Load, start the workers, serve until SIGTERM/SIGINT; returns 0 after a graceful shutdown."""
    from edgec.serve.server import run

    return run(cfg, announce)
