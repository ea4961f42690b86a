"""The HTTP app (FastAPI): the Open Inference Protocol (KServe v2) endpoints, classify, the page,
Prometheus metrics. Every bad request is a 4xx JSON ``{"error": ..., "expected": ...}``; the OpenAPI
schema is at ``/openapi.json``."""

from __future__ import annotations

import json
import time
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from edgec.environment import __version__
from edgec.serve import classify as cls
from edgec.serve.metrics import Metrics
from edgec.serve.model import ServedModel, Variant
from edgec.serve.pool import PoolBusy, Pools, WorkerDied
from edgec.serve.protocol import HEADER, RequestError, encode_response, parse_infer, tensor_metadata
from edgec.serve.schemas import add_schemas, infer_body_doc

PAGE = resources.files("edgec.serve").joinpath("page")
EXTENSIONS = ["binary_tensor_data", "edgec_classify"]


class Settings:
    def __init__(self, max_body: int = 64 << 20, timeout: float = 60.0, top_k: int = 5):
        self.max_body, self.timeout, self.top_k = max_body, timeout, top_k


class Service:
    """What every route shares: the served model, its pools, the limits and the metrics, with the checks
    and the inference call that the v2 routes, classify and the direct infer path all use."""

    def __init__(self, model: ServedModel, pools: Pools, settings: Settings):
        self.model, self.pools, self.s = model, pools, settings
        self.metrics = Metrics(model.name)
        self.examples = _examples()
        restarts = self.metrics.restarts
        for p in pools.pools.values():
            p.on_restart = lambda v: restarts.labels(version=v).inc()

    def variant(self, name: str, version: str | None) -> Variant:
        model = self.model
        if name != model.name:
            raise RequestError(404, f"no model named '{name}' is served here", expected=[model.name])
        v = version or model.default_variant
        if v not in model.variants:
            raise RequestError(404, f"model '{name}' has no version '{v}'", expected=list(model.variants))
        return model.variants[v]

    async def body_of(self, request: Request) -> bytes:
        return await read_body(request.headers.get("content-length"), request.receive, self.s.max_body)

    async def run(self, v: Variant, feed: dict) -> "object":
        try:
            res = await self.pools.pools[v.name].arun(feed, self.s.timeout)
        except (WorkerDied, PoolBusy) as exc:
            self.metrics.errors.labels(kind="worker").inc()
            raise RequestError(503, str(exc), expected="retry: the server keeps running") from None
        except RuntimeError as exc:
            self.metrics.errors.labels(kind="runtime").inc()
            raise RequestError(422, f"variant '{v.name}' failed on this input: {exc}",
                               expected="an input the model can run") from None
        self.metrics.inference.labels(version=v.name).observe(res.seconds)
        return res

    def bug(self, exc: Exception) -> dict:  # a bug: still one JSON line, and counted
        self.metrics.errors.labels(kind="internal").inc()
        return {"error": f"internal error ({type(exc).__name__}: {exc}); please report it", "expected": None}

    def ready(self, v: Variant) -> dict:
        if not self.pools.pools[v.name].serving:
            raise RequestError(400, f"version '{v.name}' is not ready: its worker is (re)loading",
                               expected="retry shortly")
        return {"name": self.model.name, "version": v.name, "ready": True}

    async def infer_bytes(self, v: Variant, body: bytes, header: str | None) -> tuple[bytes, dict[str, str]]:
        req = parse_infer(body, header, v.inputs, [o.name for o in v.outputs])
        res = await self.run(v, req.inputs)
        return encode_response(self.model.name, v.name, req.id, [o.name for o in v.outputs], res.outputs, req)

    def example(self, name: str) -> Path:
        if name not in self.examples:
            raise RequestError(404, f"no example photo '{name}'", expected=sorted(self.examples))
        return self.examples[name]

    async def classify(self, request: Request, name: str, version: str | None, top_k: int | None,
                       example: str | None) -> dict:
        model = self.model
        self.variant(name, version)
        if model.task != "image_classifier":
            raise RequestError(409, f"model '{name}' is not an image classifier here: {'; '.join(model.notes)}",
                               expected="use /v2/models/{name}/infer")
        k = top_k or self.s.top_k
        if not 1 <= k <= len(model.labels or ()):
            raise RequestError(400, f"top_k is {k}", expected=f"1 to {len(model.labels or ())}")
        if example is not None:
            data, where = self.example(example).read_bytes(), f"example '{example}'"
        else:
            data, where = await _upload(request, self.body_of)
        img = cls.decode(data, where)
        names = [version] if version else list(model.variants)
        ref_name = model.default_variant
        results, probs = [], {}
        for vn in ([ref_name] if ref_name not in names else []) + names:
            v = model.variants[vn]
            x = cls.to_input(img, v.prep, v.inputs[0].dtype, v.prep.input in v.quant)
            t0 = time.perf_counter()
            res = await self.run(v, {v.inputs[0].name: x})
            total = time.perf_counter() - t0
            p, how = cls.scores(v, res.outputs[0])
            probs[vn] = p
            if vn in names:
                results.append({"version": vn, "top": cls.top(model, p, k), "scores": how,
                                "latency_ms": {"model": res.seconds * 1e3, "round_trip": total * 1e3}})
        for r in results:
            r["agreement_with"] = ref_name
            r["agreement"] = cls.agreement(probs[r["version"]], probs[ref_name], k)
        return {"model_name": model.name, "image": {"source": where, "width": img.width, "height": img.height},
                "reference": ref_name, "results": results}


def create_app(model: ServedModel, pools: Pools, settings: Settings | None = None) -> FastAPI:
    svc = Service(model, pools, settings or Settings())
    # No /docs or /redoc: their pages load scripts from a CDN, and this server must work offline.
    app = FastAPI(title="edgec serve", version=__version__, docs_url=None, redoc_url=None,
                  description=f"Open Inference Protocol (KServe v2) server for '{model.name}' "
                              f"({', '.join(model.variants)}), with classify and a page at /.")
    _error_handlers(app, svc)
    _v2_routes(app, svc)
    _edgec_routes(app, svc)

    def openapi():
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            app.openapi_schema = add_schemas(schema)
        return app.openapi_schema

    app.openapi = openapi
    # Innermost first: the fast path runs inside the metrics middleware, which counts its requests.
    app.add_middleware(_fast_infer(app, svc.variant, svc.infer_bytes, svc.bug, svc.s.max_body))
    app.add_middleware(svc.metrics.middleware)
    return app


def _error_handlers(app: FastAPI, svc: Service) -> None:
    """Errors: all JSON, all named."""
    @app.exception_handler(RequestError)
    async def _request_error(request: Request, exc: RequestError):
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        msg = f"no endpoint {request.method} {request.url.path}" if exc.status_code in (404, 405) else str(exc.detail)
        return JSONResponse({"error": msg, "expected": "see /openapi.json for the endpoints"},
                            status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):
        return JSONResponse(svc.bug(exc), status_code=500)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        errs = exc.errors()
        first = errs[0] if errs else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid')}", "expected": "see /openapi.json"},
                            status_code=400)


def _v2_routes(app: FastAPI, svc: Service) -> None:
    """The Open Inference Protocol: health, metadata, readiness, infer."""
    model, variant = svc.model, svc.variant

    @app.get("/v2", tags=["v2"], summary="Server metadata")
    async def server_metadata():
        return {"name": "edgec", "version": __version__, "extensions": EXTENSIONS}

    @app.get("/v2/health/live", tags=["v2"], summary="Liveness")
    async def live():
        return {"live": True}

    @app.get("/v2/health/ready", tags=["v2"], summary="Readiness: every variant has a loaded worker")
    async def ready():
        if not svc.pools.ready():
            raise RequestError(400, "not ready: a variant's worker is (re)loading", expected="retry shortly")
        return {"ready": True}

    @app.get("/v2/models/{name}", tags=["v2"], summary="Model metadata (the default version: fp32 if built)")
    async def model_metadata(name: str):
        return _metadata(model, variant(name, None), list(model.variants))

    @app.get("/v2/models/{name}/versions/{version}", tags=["v2"], summary="Model metadata of one variant")
    async def version_metadata(name: str, version: str):
        return _metadata(model, variant(name, version), [version])

    @app.get("/v2/models/{name}/ready", tags=["v2"], summary="Model readiness")
    async def model_ready(name: str):
        return svc.ready(variant(name, None))

    @app.get("/v2/models/{name}/versions/{version}/ready", tags=["v2"], summary="Variant readiness")
    async def version_ready(name: str, version: str):
        return svc.ready(variant(name, version))

    async def infer(request: Request, name: str, version: str | None):
        v = variant(name, version)
        data, headers = await svc.infer_bytes(v, await svc.body_of(request), request.headers.get(HEADER))
        return Response(data, headers=headers)

    @app.post("/v2/models/{name}/infer", tags=["v2"], summary="Infer on the default version",
              openapi_extra=infer_body_doc())
    async def infer_default(request: Request, name: str):
        return await infer(request, name, None)

    @app.post("/v2/models/{name}/versions/{version}/infer", tags=["v2"], summary="Infer on one variant",
              openapi_extra=infer_body_doc())
    async def infer_version(request: Request, name: str, version: str):
        return await infer(request, name, version)


def _edgec_routes(app: FastAPI, svc: Service) -> None:
    """Beyond the protocol: classify, the page and its data, workers, metrics."""
    model, pools = svc.model, svc.pools

    @app.post("/v2/models/{name}/classify", tags=["edgec"],
              summary="Top-k labels of an image for every variant (multipart 'file', a raw image body, "
                      "or ?example=NAME)")
    async def classify_all(request: Request, name: str, top_k: int | None = None, example: str | None = None):
        return await svc.classify(request, name, None, top_k, example)

    @app.post("/v2/models/{name}/versions/{version}/classify", tags=["edgec"],
              summary="Top-k labels of an image for one variant")
    async def classify_one(request: Request, name: str, version: str, top_k: int | None = None,
                           example: str | None = None):
        return await svc.classify(request, name, version, top_k, example)

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(str(PAGE.joinpath("index.html")), media_type="text/html")

    @app.get("/page/{file}", include_in_schema=False)
    async def page_asset(file: str):
        if file not in ("page.js", "page.css"):
            raise RequestError(404, f"no page asset '{file}'", expected=["page.js", "page.css"])
        return FileResponse(str(PAGE.joinpath(file)),
                            media_type="text/javascript" if file.endswith(".js") else "text/css")

    @app.get("/edgec/info", tags=["edgec"], summary="What is served: variants, their I/O, task, labels, examples")
    async def info():
        return {"name": model.name, "kind": model.kind, "source": model.source, "task": model.task,
                "default_version": model.default_variant, "labels": len(model.labels or ()),
                "notes": model.notes, "examples": sorted(svc.examples),
                "versions": [{"name": v.name, "file": Path(v.path).name,
                              "inputs": [tensor_metadata(t, v.quant) for t in v.inputs],
                              "outputs": [tensor_metadata(t, v.quant) for t in v.outputs],
                              "image": v.prep.to_dict() if v.prep else None} for v in model.variants.values()]}

    @app.get("/edgec/examples/{example}", tags=["edgec"], summary="An example photo (scikit-image)")
    async def example_photo(example: str):
        p = svc.example(example)
        return FileResponse(str(p), media_type="image/jpeg" if p.suffix == ".jpg" else "image/png")

    @app.get("/edgec/workers", tags=["edgec"], summary="Worker processes per variant (pids) and restarts")
    async def workers():
        return {name: {"pids": pids, "restarts": pools.pools[name].restarts, "size": pools.pools[name].size,
                       "in_process": pools.in_process}
                for name, pids in pools.pids().items()}

    @app.get("/metrics", tags=["edgec"], summary="Prometheus metrics")
    async def prometheus():
        data, ctype = svc.metrics.render()
        return Response(data, media_type=ctype)


async def read_body(length: str | None, receive, max_body: int) -> bytes:
    """The request body from ASGI ``receive``, refused (413) once it is over ``max_body``."""
    if length is not None:
        try:
            n = int(length)
        except ValueError:
            raise RequestError(400, f"Content-Length is '{length[:40]}'", expected="a byte count") from None
        if n > max_body:
            raise RequestError(413, f"the body is {n} bytes", expected=f"at most {max_body} bytes "
                               "(edgec serve --max-body-mb)")
    chunks, total = [], 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = msg.get("body", b"")
        total += len(chunk)
        if total > max_body:
            raise RequestError(413, f"the body is over {max_body} bytes",
                               expected=f"at most {max_body} bytes (edgec serve --max-body-mb)")
        if chunk:
            chunks.append(chunk)
        if not msg.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _fast_infer(app: FastAPI, variant, infer_bytes, bug, max_body: int):
    """The two v2 infer routes, answered straight from ASGI: the same checks, errors and responses as
    their FastAPI routes (which stay for the OpenAPI schema), without the router and the request
    objects in between (~0.2 ms a request here, a tenth of the serving overhead). Anything else
    passes through to FastAPI."""
    routes = {r.path: r for r in app.routes if getattr(r, "path", "").endswith("/infer")}
    default, versioned = routes["/v2/models/{name}/infer"], routes["/v2/models/{name}/versions/{version}/infer"]
    header = HEADER.lower().encode()

    class FastInfer:
        def __init__(self, inner):
            self.inner = inner

        async def __call__(self, scope, receive, send):
            parts = scope["path"].split("/") if scope["type"] == "http" and scope["method"] == "POST" else ()
            if len(parts) == 5 and parts[:3] == ["", "v2", "models"] and parts[4] == "infer" and parts[3]:
                route, name, version = default, parts[3], None
            elif len(parts) == 7 and parts[:3] == ["", "v2", "models"] and parts[4] == "versions" \
                    and parts[6] == "infer" and parts[3] and parts[5]:
                route, name, version = versioned, parts[3], parts[5]
            else:
                return await self.inner(scope, receive, send)
            scope["route"] = route  # for the metrics, as the router would set it
            heads = dict(scope["headers"])
            try:
                v = variant(name, version)
                length, hlen = heads.get(b"content-length"), heads.get(header)
                body = await read_body(length.decode("latin-1") if length is not None else None, receive, max_body)
                data, headers = await infer_bytes(v, body, hlen.decode("latin-1") if hlen is not None else None)
                status = 200
            except RequestError as exc:
                data, headers, status = _json(exc.body()), {"content-type": "application/json"}, exc.status
            except ClientDisconnect:
                return
            except Exception as exc:
                data, headers, status = _json(bug(exc)), {"content-type": "application/json"}, 500
            raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
            await send({"type": "http.response.start", "status": status,
                        "headers": raw + [(b"content-length", str(len(data)).encode())]})
            await send({"type": "http.response.body", "body": data})

    return FastInfer


def _json(doc) -> bytes:
    return json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _metadata(model: ServedModel, v: Variant, versions: list[str]) -> dict:
    return {"name": model.name, "versions": versions, "platform": "tensorflow_lite",
            "inputs": [tensor_metadata(t, v.quant) for t in v.inputs],
            "outputs": [tensor_metadata(t, v.quant) for t in v.outputs],
            "parameters": {"version": v.name, "file": Path(v.path).name, "task": model.task}}


async def _upload(request: Request, body_of) -> tuple[bytes, str]:
    ctype = request.headers.get("content-type", "")
    body = await body_of(request)  # the size limits hold for forms too
    if ctype.startswith("multipart/form-data"):
        async def receive():
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            form = await Request(request.scope, receive).form(max_files=1, max_fields=10)
        except Exception as exc:  # python-multipart's parse errors, a body over the limits
            raise RequestError(400, f"the multipart form cannot be read ({type(exc).__name__}: {exc})",
                               expected="multipart/form-data with one 'file' field") from None
        f = form.get("file")
        if f is None or isinstance(f, str):
            raise RequestError(400, "the form has no 'file' upload", expected="multipart/form-data with one 'file' field")
        data = await f.read()
        return data, f"upload '{f.filename}'"
    return body, "the request body"


def _examples() -> dict[str, Path]:
    """The example photos that ship in the scikit-image (and scikit-learn) wheels, when installed."""
    try:
        from edgec.data.examples import photo_paths

        return {p.stem: p for p in photo_paths()}
    except Exception:  # scikit-image is an extra: no examples without it
        return {}
