"""The evaluation service (`python -m pytest_aigve serve`): a FastAPI app over the blob store and the job queue.

Nothing is loaded until a check asks for it; the evaluation context (device, clip cache, feature cache, loaded
backbones) lives as long as the service, so backbones stay warm between requests. Every /v1 route but healthz
needs the bearer token (compared with hmac.compare_digest); a service without a token refuses to listen on a
non-loopback address. TLS is a reverse proxy's job (see README)."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from .. import __version__
from ..errors import AigveError
from . import API_VERSION
from .jobs import FINISHED, Job, JobQueue, QueueFull
from .store import BlobStore, UploadError, token_id
from .wire import dumps, rebuild, request_blobs, result_payload, scrub_paths

if TYPE_CHECKING:
    from ..engine import EvalContext
    from ..metrics.registry import MetricRegistry

MAX_WAIT_S = 20.0  # the longest a GET /v1/checks/{id}?wait= holds the connection


@dataclass
class ServiceConfig:
    host: str = "127.0.0.1"
    port: int = 8750
    tokens: list[str] = field(default_factory=list)
    store_dir: Path = Path("aigve-store")
    quota_bytes: int = 20 * 1024**3
    max_upload_bytes: int = 4 * 1024**3
    max_request_bytes: int = 8 * 1024**2
    blob_ttl_s: float = 7 * 24 * 3600.0
    queue_capacity: int = 32
    lease_s: float = 60.0
    device: str = "auto"
    weights_dir: Path | None = None
    cache_dir: Path | None = None
    clip_cache_bytes: int = 2048 * 1024**2
    allow_unverified_weights: bool = False
    plugins: list[str] = field(default_factory=list)  # modules defining pytest_aigve_register_* functions


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_tokens(path: Path) -> list[str]:
    """One token per line; blank lines and # comments ignored."""
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


class Evaluator:
    """Runs one job: the request's one-check suite over stored blobs, with the service's warm context."""

    def __init__(self, config: ServiceConfig, store: BlobStore) -> None:
        self.config = config
        self.store = store

    @cached_property
    def registry(self) -> MetricRegistry:
        """The built-in metrics and backbones and those the --plugin modules register (their hook functions)."""
        import importlib

        from ..features.registry import BackboneRegistry
        from ..metrics.registry import MetricRegistry

        modules = [importlib.import_module(name) for name in self.config.plugins]
        backbones = BackboneRegistry()
        for module in modules:
            getattr(module, "pytest_aigve_register_backbones", lambda registry: None)(registry=backbones)
        registry = MetricRegistry(backbones=backbones)
        for module in modules:
            getattr(module, "pytest_aigve_register_metrics", lambda registry: None)(registry=registry)
        return registry

    @cached_property
    def device(self) -> str:
        from ..runtime import resolve_device

        return resolve_device(self.config.device)

    @cached_property
    def context(self) -> EvalContext:
        import torch

        from ..engine import EvalContext
        from ..videos.cache import ClipCache
        from ..videos.pipeline import default_decode_workers, make_source

        device = torch.device(self.device)
        if device.type == "cuda":  # comparability first, as in a local run
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        workers = default_decode_workers()
        return EvalContext(device=device, clips=ClipCache(self.config.clip_cache_bytes, make_source(workers)),
                           registry=self.registry, decode_workers=workers, weights_dir=self.config.weights_dir,
                           allow_unverified_weights=self.config.allow_unverified_weights,
                           feature_cache_dir=self.config.cache_dir, weights_dir_source="serve --weights-dir",
                           weights_memo_dir=self.config.cache_dir)

    def suite_path(self, owner: str) -> Path:
        # suite-relative paths resolve under the owner's store, never under a folder the client names
        return self.store.root / owner / "suite.yaml"

    def run(self, job: Job) -> dict[str, Any]:
        from ..engine import evaluate_check

        request = job.request
        blob_dir = self.store.blob_dir(job.owner)
        suite, check = rebuild(request, lambda sha: self.store.path(job.owner, sha), self.registry,
                               self.suite_path(job.owner))
        ctx = self.context
        ctx.make_thumbnails = bool(request.get("thumbnails"))

        def progress(message: str, final: bool, elapsed: float) -> None:
            job.progress = scrub_paths(message, blob_dir)

        ctx.progress = progress
        try:
            outcome = evaluate_check(suite, check, ctx, bool(request.get("with_interval", True)))
        except AigveError as exc:
            raise AigveError(scrub_paths(str(exc), blob_dir)) from None
        finally:
            ctx.thumbnails.clear()  # the memo is keyed by set name and first path: not shared between jobs
        payload = result_payload(outcome, blob_dir)
        payload["service"] = {"device": str(ctx.device), "version": __version__,
                              "decode_workers": ctx.decode_workers}
        return payload


DRAIN_BYTES = 64 * 1024**2  # a refused body up to this size is read and dropped, so the client sees the answer


def error(status: int, message: str, headers: dict[str, str] | None = None) -> HTTPException:
    return HTTPException(status_code=status, detail=message, headers=headers)


async def drain(chunks: AsyncIterator[bytes]) -> None:
    """Read and drop the rest of a refused body (up to DRAIN_BYTES): a connection closed with unread data is
    reset, and the client would see a broken connection instead of the 413 that says why."""
    dropped = 0
    try:
        async for chunk in chunks:
            dropped += len(chunk)
            if dropped > DRAIN_BYTES:
                return
    except Exception:  # the client went away meanwhile: nothing to answer
        return


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 beyond `limit` bytes (by its Content-Length or while reading)."""
    chunks = request.stream()
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        await drain(chunks)
        raise error(413, f"request body of {declared} bytes is over the service's limit of {limit} bytes")
    body = bytearray()
    async for chunk in chunks:
        body.extend(chunk)
        if len(body) > limit:
            await drain(chunks)
            raise error(413, f"request body is over the service's limit of {limit} bytes")
    return bytes(body)


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    try:
        data = json.loads(await read_body(request, limit))
    except (ValueError, UnicodeDecodeError) as exc:
        raise error(400, f"request body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise error(400, "request body must be a JSON object")
    return data


def create_app(config: ServiceConfig) -> FastAPI:
    store = BlobStore(config.store_dir, config.quota_bytes, config.max_upload_bytes, config.blob_ttl_s)
    evaluator = Evaluator(config, store)
    queue = JobQueue(evaluator.run, config.queue_capacity, config.lease_s)
    tokens = [token.encode() for token in config.tokens]

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        queue.stop()

    app = FastAPI(title="pytest-aigve evaluation service", version=__version__, lifespan=lifespan,
                  description="Computes the checks of pytest-aigve suites for a pytest run elsewhere "
                              "(`pytest --aigve-remote URL`).")
    app.state.queue, app.state.store, app.state.evaluator = queue, store, evaluator

    def owner(request: Request) -> str:
        """The caller's store id, from its bearer token; 401 without a valid one (no token configured: a
        loopback-only service, one owner)."""
        if not tokens:
            return "local"
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        matched = [hmac.compare_digest(given.strip().encode(), token) for token in tokens]  # every one: no timing
        if scheme.lower() == "bearer" and any(matched):
            return token_id(config.tokens[matched.index(True)])
        raise error(401, "missing or wrong bearer token (Authorization: Bearer <token>; the client reads "
                         "AIGVE_REMOTE_TOKEN)", {"WWW-Authenticate": "Bearer"})

    @app.get(f"/{API_VERSION}/healthz")
    def healthz() -> dict[str, Any]:
        """Liveness, the device, versions and the queue (no token needed: for probes and load balancers)."""
        import torch

        running = queue.running
        return {"status": "ok", "api": API_VERSION, "version": __version__, "torch": torch.__version__,
                "device": evaluator.device,
                "queue": {"waiting": len(queue), "running": running is not None, "capacity": queue.capacity,
                          "max_waiting_seen": queue.max_waiting_seen, "completed": queue.completed,
                          "refused_busy": queue.refused},
                "uploads": {"blobs": store.stats.blobs_received, "bytes": store.stats.bytes_received},
                "limits": {"max_upload_bytes": config.max_upload_bytes, "max_request_bytes": config.max_request_bytes}}

    @app.get(f"/{API_VERSION}/metrics")
    def metrics(request: Request) -> dict[str, Any]:
        """Every metric: direction, inputs, parameters, and whether the weights of its backbones are present."""
        owner(request)
        registry = evaluator.registry
        listing: dict[str, dict[str, Any]] = {}
        for name in registry.names():
            try:
                metric_cls = registry.get(name)
            except AigveError as exc:
                listing[name] = {"error": str(exc)}
                continue
            params = {key: {"default": spec.default, "help": spec.help} for key, spec in metric_cls.params.items()}
            listing[name] = {"description": metric_cls.description, "higher_is_better": metric_cls.higher_is_better,
                             "inputs": metric_cls.spec.kind, "params": params,
                             "weights": _weights_present(evaluator, metric_cls)}
        return json.loads(dumps({"metrics": listing}))

    @app.post(f"/{API_VERSION}/blobs/missing")
    async def blobs_missing(request: Request) -> dict[str, Any]:
        """The hashes (of `hashes`) the caller's store lacks: upload only those."""
        who = owner(request)
        data = await read_json(request, config.max_request_bytes)
        hashes = data.get("hashes")
        if not isinstance(hashes, list) or not all(isinstance(h, str) for h in hashes):
            raise error(400, "'hashes' must be a list of SHA-256 hex digests")
        try:
            return {"missing": store.missing(who, hashes)}
        except UploadError as exc:
            raise error(exc.status, exc.message) from None

    @app.put(f"/{API_VERSION}/blobs/{{sha256}}", status_code=201)
    async def put_blob(sha256: str, request: Request) -> Response:
        """A video's bytes, streamed and verified against the hash in the path (400 and nothing stored when they
        differ; 413 over the size limit or the quota)."""
        who = owner(request)
        declared = request.headers.get("content-length")

        chunks = request.stream()
        try:
            stored = await store.put(who, sha256, chunks, int(declared) if declared and declared.isdigit() else None)
        except UploadError as exc:
            await drain(chunks)
            raise error(exc.status, exc.message) from None
        return JSONResponse({"sha256": sha256, "stored": stored}, status_code=201 if stored else 200)

    @app.post(f"/{API_VERSION}/checks", status_code=202)
    async def submit_check(request: Request) -> Response:
        """Queue a check (see the README for the request); answers the job to poll. 400: a request a local run
        would refuse too (unknown metric, bad parameters), 409: blobs missing, 503: the queue is full."""
        who = owner(request)
        data = await read_json(request, config.max_request_bytes)
        try:
            hashes = request_blobs(data)
            rebuild(data, lambda sha: store.path(who, sha), evaluator.registry, evaluator.suite_path(who))
        except (AigveError, KeyError, TypeError, ValueError) as exc:
            message = str(exc) if isinstance(exc, AigveError) else f"malformed request: {type(exc).__name__}: {exc}"
            raise error(400, message) from None
        missing = store.missing(who, hashes)
        if missing:
            return JSONResponse({"detail": f"{len(missing)} video(s) not uploaded (or expired)",
                                 "missing": missing}, status_code=409)
        request_id = data.get("request_id")
        job = Job(who, data, request_id if isinstance(request_id, str) else "")
        try:
            job = queue.submit(job)
        except QueueFull as exc:
            raise error(503, f"the service is busy: {exc}; retry later", {"Retry-After": "1"}) from None
        return JSONResponse(job.view(queue.position(job)), status_code=202)

    @app.get(f"/{API_VERSION}/checks/{{job_id}}")
    async def check_status(job_id: str, request: Request, wait: float = 0.0) -> Response:
        """A job's state and, once done, its result (200); a check that failed: 422 with the message a local run
        gives, or 500 naming what crashed; cancelled: 409. `wait` holds the answer up to that many seconds for
        the job to finish; a client disconnecting meanwhile cancels its waiting job."""
        who = owner(request)
        job = queue.get(who, job_id)
        if job is None:
            raise error(404, f"no job {job_id} (finished jobs are kept {queue.keep_s:g} s)")
        deadline = time.monotonic() + min(max(wait, 0.0), MAX_WAIT_S)
        while job.state not in FINISHED and time.monotonic() < deadline:
            if await request.is_disconnected():
                queue.cancel(job, "cancelled: the client disconnected")
                break
            await asyncio.sleep(0.02)
        job.seen = time.monotonic()
        status = 200 if job.error is None else int(job.error["status"])
        return Response(dumps(job.view(queue.position(job))), status_code=status, media_type="application/json")

    @app.delete(f"/{API_VERSION}/checks/{{job_id}}")
    def cancel_check(job_id: str, request: Request) -> dict[str, Any]:
        """Cancel a waiting job (a running one finishes)."""
        job = queue.get(owner(request), job_id)
        if job is None:
            raise error(404, f"no job {job_id}")
        return {"id": job_id, "cancelled": queue.cancel(job, "cancelled by the client")}

    return app


def _weights_present(evaluator: Evaluator, metric_cls: Any) -> dict[str, bool]:
    """Backbone key -> whether its weights are found (default parameters)."""
    from ..features.weights import locate

    found = {}
    for request in metric_cls.backbone_requests(metric_cls.validate_params({})):
        try:
            backbone_cls = evaluator.registry.backbones.get(request.key)
            locate(backbone_cls.weights_file, None, evaluator.config.weights_dir, "serve --weights-dir")
            found[request.key] = True
        except Exception:  # missing, unknown, or a folder-style backbone this check does not cover: not present
            found[request.key] = False
    return found


def serve(config: ServiceConfig) -> int:
    """Run the service until interrupted."""
    import uvicorn

    if not config.tokens and not is_loopback(config.host):
        raise SystemExit(f"serve: refusing to listen on {config.host} without a token; give --token-file (a file "
                         "with one token per line), or listen on 127.0.0.1 only")
    config.store_dir.mkdir(parents=True, exist_ok=True)
    uvicorn.run(create_app(config), host=config.host, port=config.port, log_level="warning")
    return 0
