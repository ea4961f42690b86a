"""Prometheus metrics of one server (its own registry): requests and their latency per route
template and status, inference time per variant (inside the worker), errors, worker restarts."""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self, model: str):
        self.registry = r = CollectorRegistry()
        self.requests = Counter("edgec_serve_requests", "HTTP requests by route template and status", ["route", "code"],
                                registry=r)
        self.latency = Histogram("edgec_serve_request_seconds", "HTTP request latency by route template", ["route"],
                                 buckets=BUCKETS, registry=r)
        self.inference = Histogram("edgec_serve_inference_seconds", "interpreter time per variant (in the worker)",
                                   ["version"], buckets=BUCKETS, registry=r)
        self.errors = Counter("edgec_serve_errors", "errors: bad requests (4xx), failed or dead workers",
                              ["kind"], registry=r)
        self.restarts = Counter("edgec_serve_worker_restarts", "worker processes replaced after dying or hanging",
                                ["version"], registry=r)
        self.middleware = _middleware(self)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def _middleware(m: Metrics):
    class MetricsMiddleware:
        """A plain ASGI middleware (no per-request task, unlike BaseHTTPMiddleware)."""

        def __init__(self, app):
            self.app = app

        async def __call__(self, scope, receive, send):
            if scope["type"] != "http":
                return await self.app(scope, receive, send)
            t0 = time.perf_counter()
            status = [500]

            async def send_status(msg):
                if msg["type"] == "http.response.start":
                    status[0] = msg["status"]
                await send(msg)

            try:
                await self.app(scope, receive, send_status)
            finally:
                route = scope.get("route")
                name = getattr(route, "path", None) or "unmatched"
                m.requests.labels(route=name, code=str(status[0])).inc()
                m.latency.labels(route=name).observe(time.perf_counter() - t0)
                if 400 <= status[0] < 500:
                    m.errors.labels(kind="bad_request").inc()

    return MetricsMiddleware
