"""Start-up and shutdown: load the model, start every variant's workers (so a model that cannot run
fails before the port opens), bind the socket, serve with uvicorn until SIGTERM or SIGINT. uvicorn
stops taking connections, lets in-flight requests finish, then the workers are stopped."""

from __future__ import annotations

import errno
import ipaddress
import os
import signal
import socket

from edgec.errors import DependencyError, UsageError, require
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgec.serve import ServeConfig


def _threads(cfg: ServeConfig) -> int:
    return cfg.threads or max(1, min(4, os.cpu_count() or 1))


def bind(host: str, port: int) -> socket.socket:
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        family = socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and without
    # it every response waits ~40 ms for the client's delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(f"port {port} on {host} is in use", hint="pass another --port (0 picks a free one)") \
                from None
        raise UsageError(f"cannot listen on {host}:{port} ({exc.strerror})", hint="check --host and --port") from None
    sock.listen(512)
    sock.set_inheritable(True)
    return sock


def run(cfg: ServeConfig, announce=print) -> int:
    for mod in ("fastapi", "uvicorn", "prometheus_client", "multipart"):
        try:
            require(mod, extra="serve", purpose="edgec serve")
        except DependencyError:
            raise
    import uvicorn

    from edgec.serve.app import Settings, create_app
    from edgec.serve.model import load_served
    from edgec.serve.pool import Pools

    if cfg.workers < 1:
        raise UsageError(f"--workers is {cfg.workers}", hint="give 1 or more worker processes per variant")
    model = load_served(cfg.path, cfg.name, cfg.variants)
    sock = bind(cfg.host, cfg.port)  # before the workers: a taken port fails fast
    pools = Pools(model.variants, cfg.workers, _threads(cfg), in_process=cfg.in_process)
    try:
        pools.start()
        max_body = int(cfg.max_body_mb * (1 << 20))
        app = create_app(model, pools, Settings(max_body, cfg.timeout_s))
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        loopback = _loopback(cfg.host)
        announce(f"edgec serve: model '{model.name}' ({model.kind}, {model.task}), versions "
                 f"{', '.join(model.variants)}; {cfg.workers} {'in-process interpreter' if cfg.in_process else 'worker'}(s) x "
                 f"{_threads(cfg)} thread(s) per version")
        if cfg.in_process:
            announce("  note: --in-process: the interpreters run inside this server; a runtime crash stops it")
        for note in model.notes:
            announce(f"  note: {note}")
        if not loopback:
            announce(f"  WARNING: listening on {cfg.host}, not loopback: anyone who can reach this machine can use it")
        announce(f"serving at http://{shown}:{port}/  (v2 API under /v2, OpenAPI schema at /openapi.json)")
        config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=30,
                                lifespan="off")
        # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal to the handler
        # that was there before it; make that one a no-op so the shutdown ends here (exit 0).
        stops: list[int] = []
        previous = {sig: signal.signal(sig, lambda s, _f: stops.append(s)) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        pools.close()
        sock.close()
    announce("edgec serve: stopped")
    return 0


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
