"""The client the plugin uses with `--aigve-remote URL`: the standard library only (urllib), so the plugin needs
neither FastAPI nor an HTTP package.

`evaluate_remote` is the one seam with the engine: given a check of a loaded suite it returns the CheckResult a
local `evaluate_check` would, computed by the service. It hashes the check's videos, asks which the service lacks,
uploads only those, submits the check and polls for its result. Idempotent calls are retried with backoff (a
submission carries a request id, so a retried one is the same job); a service that stays unreachable is a
RemoteError naming the URL: an item *error*, never a pass. Later checks of the run then try once, without
backoff, so a dead service does not slow every item down."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import AigveError
from ..files import sha256_file
from . import API_VERSION
from .wire import check_request, check_result, check_videos, restore_paths

if TYPE_CHECKING:
    from ..engine import CheckResult
    from ..metrics.registry import MetricRegistry
    from ..suite import CheckSpec, Suite

RETRIES = 4  # attempts after the first, for a connection error or a 502/504
BACKOFF_S = 0.25  # doubled after each failed attempt
BUSY_WAIT_S = 900.0  # how long a full queue (503) is waited for, honouring its Retry-After
POLL_WAIT_S = 10.0  # long poll: the service holds each status request up to this long
TIMEOUT_S = 60.0  # socket timeout per request (above POLL_WAIT_S)


class RemoteError(AigveError):
    """The service could not be reached or refused the check; the message names the URL."""


@dataclass
class Answer:
    status: int
    body: bytes
    headers: Mapping[str, str]

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return {"detail": self.body[:2000].decode("utf-8", "replace")}

    def message(self) -> str:
        """The service's message: `detail` of an HTTP error, or `error.error` of a failed job."""
        data = self.json()
        if not isinstance(data, dict):
            return str(data)
        failure = data.get("error")
        if isinstance(failure, dict):
            return str(failure.get("error"))
        return str(data.get("detail") or failure or data)


class RemoteClient:
    def __init__(self, url: str, token: str | None, retries: int = RETRIES, backoff_s: float = BACKOFF_S) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.retries = retries
        self.backoff_s = backoff_s
        self.unreachable: str | None = None  # set once the service stayed unreachable: later calls try once
        self.uploaded_bytes = 0
        self._service: dict[str, Any] | None = None

    def _open(self, method: str, path: str, body: bytes | Path | None, content_type: str) -> Answer:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data: Any = None
        if isinstance(body, Path):
            headers["Content-Length"] = str(body.stat().st_size)
            headers["Content-Type"] = "application/octet-stream"
            data = body.open("rb")
        elif body is not None:
            headers["Content-Type"] = content_type
            data = body
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                return Answer(response.status, response.read(), dict(response.headers))
        except urllib.error.HTTPError as exc:
            return Answer(exc.code, exc.read(), dict(exc.headers or {}))
        finally:
            if isinstance(body, Path) and data is not None:
                data.close()

    def call(self, method: str, path: str, body: bytes | Path | None = None,
             content_type: str = "application/json") -> Answer:
        """One idempotent call, retried with backoff on connection errors and 502/504, and while the queue is
        full (503, after its Retry-After); an unreachable service is a RemoteError naming the URL."""
        attempts = 1 if self.unreachable else self.retries + 1
        delay = self.backoff_s
        busy_until = time.monotonic() + BUSY_WAIT_S
        attempt = 0
        while True:
            attempt += 1
            try:
                answer = self._open(method, path, body, content_type)
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                reason = getattr(exc, "reason", exc)
                if attempt >= attempts:
                    self.unreachable = f"{type(exc).__name__}: {reason}"
                    raise RemoteError(f"remote service {self.url} unreachable ({self.unreachable}; {attempt} "
                                      f"attempt(s)); check the URL, that `python -m pytest_aigve serve` runs there, "
                                      "and the network") from None
                time.sleep(delay)
                delay *= 2
                continue
            self.unreachable = None
            if answer.status == 503 and time.monotonic() < busy_until:
                retry_after = answer.headers.get("Retry-After") or answer.headers.get("retry-after") or "1"
                time.sleep(float(retry_after) if retry_after.replace(".", "", 1).isdigit() else 1.0)
                continue
            if answer.status in (502, 504) and attempt < attempts:
                time.sleep(delay)
                delay *= 2
                continue
            if answer.status == 401:
                raise RemoteError(f"remote service {self.url} refused the token (401): set AIGVE_REMOTE_TOKEN to a "
                                  "token in the service's --token-file")
            return answer

    def post_json(self, path: str, data: Any) -> Answer:
        return self.call("POST", path, json.dumps(data).encode())

    def service(self) -> dict[str, Any]:
        """The service's healthz (device, versions), fetched once."""
        if self._service is None:
            answer = self.call("GET", f"/{API_VERSION}/healthz")
            if answer.status != 200:
                raise RemoteError(f"remote service {self.url}: healthz answered {answer.status}: {answer.message()}")
            self._service = answer.json()
        return self._service

    def upload(self, files: Mapping[str, Path]) -> int:
        """Upload the files (by SHA-256) the service lacks; returns the bytes sent."""
        if not files:
            return 0
        answer = self.post_json(f"/{API_VERSION}/blobs/missing", {"hashes": list(files)})
        if answer.status != 200:
            raise RemoteError(f"remote service {self.url}: blobs/missing answered {answer.status}: "
                              f"{answer.message()}")
        sent = 0
        limit = self.service().get("limits", {}).get("max_upload_bytes")
        for sha in answer.json()["missing"]:
            path = files[sha]
            if limit is not None and path.stat().st_size > limit:
                raise RemoteError(f"{path}: {path.stat().st_size} bytes, over the upload limit of the remote service "
                                  f"{self.url} ({limit} bytes; its --max-upload-mb)")
            put = self.call("PUT", f"/{API_VERSION}/blobs/{sha}", path)
            if put.status not in (200, 201):
                raise RemoteError(f"remote service {self.url}: upload of {path} answered {put.status}: "
                                  f"{put.message()}")
            size = path.stat().st_size
            sent += size
        self.uploaded_bytes += sent
        return sent

    def run_check(self, request: dict[str, Any], files: Mapping[str, Path]) -> tuple[dict[str, Any], int]:
        """Submit a check (uploading what is missing) and wait for its result; (result, bytes uploaded)."""
        sent = self.upload(files)
        request = {**request, "request_id": uuid.uuid4().hex}
        answer = self.post_json(f"/{API_VERSION}/checks", request)
        if answer.status == 409 and "missing" in answer.json():  # expired between the question and the submission
            sent += self.upload({sha: files[sha] for sha in answer.json()["missing"] if sha in files})
            answer = self.post_json(f"/{API_VERSION}/checks", request)
        if answer.status != 202:
            raise self._refusal(answer, files)
        job = answer.json()["id"]
        try:
            while True:
                answer = self.call("GET", f"/{API_VERSION}/checks/{job}?wait={POLL_WAIT_S:g}")
                data = answer.json()
                if answer.status == 200 and data.get("state") == "done":
                    return data, sent
                if answer.status != 200:
                    raise self._refusal(answer, files)
        except RemoteError:
            raise
        except BaseException:  # interrupted (Ctrl-C, a timeout plugin): the service drops the waiting job
            with contextlib.suppress(urllib.error.URLError, OSError):
                self._open("DELETE", f"/{API_VERSION}/checks/{job}", None, "application/json")
            raise

    def _refusal(self, answer: Answer, files: Mapping[str, Path]) -> RemoteError:
        """A final non-success answer as an error: the service's own message (paths put back), with the URL."""
        data = answer.json()
        failure = data.get("error") if isinstance(data, dict) and isinstance(data.get("error"), dict) else None
        message = restore_paths(str(failure["error"]) if failure else answer.message(), files)
        if failure is not None and failure.get("kind") == "check":
            return RemoteError(message)  # the message a local run gives for the same check
        if failure is not None and failure.get("kind") == "crash":
            tail = restore_paths(str(failure.get("traceback", "")), files).strip().splitlines()[-6:]
            return RemoteError(f"remote service {self.url} (500): {message}\n" + "\n".join(tail))
        return RemoteError(f"remote service {self.url} ({answer.status}): {message}")


_CLIENTS: dict[tuple[str, str | None], RemoteClient] = {}
_CLIENTS_LOCK = threading.Lock()


def client_for(url: str, token: str | None) -> RemoteClient:
    """One client per service and token per process (it remembers an unreachable service)."""
    with _CLIENTS_LOCK:
        return _CLIENTS.setdefault((url, token), RemoteClient(url, token))


def evaluate_remote(url: str, token: str | None, suite: Suite, check: CheckSpec, registry: MetricRegistry,
                    with_interval: bool, thumbnails: bool) -> tuple[CheckResult, dict[str, Any]]:
    """The check's CheckResult computed by the service at `url`, and where it ran (URL, device, version,
    decode workers, bytes uploaded, queue and run seconds)."""
    import torch

    client = client_for(url, token)
    hashes, problems = _screen(suite, check)
    files = {sha: path for path, sha in hashes.items()}
    request = check_request(suite, check, hashes, problems, with_interval, thumbnails)
    data, sent = client.run_check(request, files)
    result = data["result"]
    service = result.get("service", {})
    where = {"url": client.url, "device": service.get("device", "?"), "version": service.get("version", "?"),
             "decode_workers": service.get("decode_workers", 0), "uploaded_bytes": sent,
             "queued_s": data.get("timings", {}).get("queued_s"), "run_s": data.get("timings", {}).get("run_s")}
    metric = registry.get(check.metric)(check.params, torch.device("cpu"))
    return check_result(result, metric, files, where), where


def _screen(suite: Suite, check: CheckSpec) -> tuple[dict[Path, str], dict[Path, str]]:
    """The SHA-256 of each usable video of the check, and the problem of each file that is no video (missing,
    a Git LFS pointer, ...). Those are left out and listed under `on_bad_video: skip`; otherwise the first is
    raised, as a local run raises it."""
    from ..errors import VideoError
    from ..videos.decode import check_file

    hashes: dict[Path, str] = {}
    problems: dict[Path, str] = {}
    for path in check_videos(suite, check):
        try:
            check_file(path)
            hashes[path] = sha256_file(path)
        except VideoError as exc:
            if check.on_bad_video != "skip":
                raise
            problems[path] = exc.problem
        except OSError as exc:
            if check.on_bad_video != "skip":
                raise VideoError(path, f"cannot read ({exc.strerror or exc})") from None
            problems[path] = f"cannot read ({exc.strerror or exc})"
    return hashes, problems
