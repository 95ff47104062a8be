"""The service's job queue: one job at a time on the device (one worker thread, which keeps the loaded backbones
warm between jobs), at most `capacity` jobs waiting (a full queue is refused: HTTP 503 with Retry-After), and
a lease: a waiting job whose client has not asked about it for `lease_s` seconds (it went away) is cancelled,
as is one whose client disconnects from a wait or cancels it (DELETE). Finished jobs are kept `keep_s` seconds
for the client to fetch the result. No FastAPI here: the queue is tested on its own."""

from __future__ import annotations

import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import AigveError

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)


class QueueFull(Exception):
    """The queue holds `capacity` waiting jobs already."""


@dataclass
class Job:
    owner: str  # the token's store id
    request: dict[str, Any]
    request_id: str = ""  # the client's id of this submission: a retried POST gets the same job
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    state: str = QUEUED
    created: float = field(default_factory=time.monotonic)
    seen: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    progress: str = ""
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None  # status (HTTP), error (message), kind (check, crash, cancelled)
    done: threading.Event = field(default_factory=threading.Event)

    def view(self, position: int | None) -> dict[str, Any]:
        timings = {"queued_s": round((self.started or self.finished or time.monotonic()) - self.created, 4)}
        if self.started is not None:
            timings["run_s"] = round((self.finished or time.monotonic()) - self.started, 4)
        return {"id": self.id, "state": self.state, "queue_position": position, "progress": self.progress,
                "timings": timings, "result": self.result, "error": self.error}


Runner = Callable[[Job], dict[str, Any]]


class JobQueue:
    def __init__(self, run: Runner, capacity: int, lease_s: float = 60.0, keep_s: float = 600.0) -> None:
        self.run = run
        self.capacity = capacity
        self.lease_s = lease_s
        self.keep_s = keep_s
        self.max_waiting_seen = 0
        self.completed = 0
        self.refused = 0  # submissions answered "queue full"
        self._jobs: dict[str, Job] = {}
        self._by_request: dict[tuple[str, str], str] = {}
        self._waiting: deque[Job] = deque()
        self._current: Job | None = None
        self._lock = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._work, name="aigve-jobs", daemon=True)
        self._thread.start()

    def __len__(self) -> int:
        with self._lock:
            return len(self._waiting)

    @property
    def running(self) -> Job | None:
        return self._current

    def submit(self, job: Job) -> Job:
        """Queue a job; a resubmission with the same request id returns the job already queued."""
        with self._lock:
            self._sweep()
            if job.request_id:
                known = self._jobs.get(self._by_request.get((job.owner, job.request_id), ""))
                if known is not None:
                    known.seen = time.monotonic()
                    return known
            if len(self._waiting) >= self.capacity:
                self.refused += 1
                raise QueueFull(f"{len(self._waiting)} jobs are waiting (the limit)")
            self._jobs[job.id] = job
            if job.request_id:
                self._by_request[(job.owner, job.request_id)] = job.id
            self._waiting.append(job)
            self.max_waiting_seen = max(self.max_waiting_seen, len(self._waiting))
            self._lock.notify_all()
            return job

    def get(self, owner: str, job_id: str) -> Job | None:
        """A job of this owner (another token's jobs are not found), marked as seen."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.owner != owner:
                return None
            job.seen = time.monotonic()
            return job

    def position(self, job: Job) -> int | None:
        with self._lock:
            try:
                return self._waiting.index(job) + 1
            except ValueError:
                return None

    def cancel(self, job: Job, reason: str) -> bool:
        """Cancel a waiting job; a running one finishes (a metric cannot be stopped halfway safely)."""
        with self._lock:
            if job.state != QUEUED:
                return False
            self._waiting.remove(job)
            self._finish(job, CANCELLED, error={"status": 409, "kind": "cancelled", "error": reason})
            return True

    def stop(self) -> None:
        with self._lock:
            self._stop = True
            self._lock.notify_all()

    def _finish(self, job: Job, state: str, result: dict[str, Any] | None = None,
                error: dict[str, Any] | None = None) -> None:
        job.state, job.result, job.error, job.finished = state, result, error, time.monotonic()
        job.done.set()
        self.completed += 1

    def _sweep(self) -> None:
        """Cancel waiting jobs whose client went away; forget finished jobs nobody fetched (lock held)."""
        now = time.monotonic()
        for job in [j for j in self._waiting if now - j.seen > self.lease_s]:
            self._waiting.remove(job)
            self._finish(job, CANCELLED, error={"status": 409, "kind": "cancelled",
                                                "error": f"cancelled: the client did not ask about it for "
                                                         f"{self.lease_s:g} s (it went away)"})
        for job in [j for j in self._jobs.values() if j.finished is not None and now - j.finished > self.keep_s]:
            del self._jobs[job.id]
            self._by_request.pop((job.owner, job.request_id), None)

    def _next(self) -> Job | None:
        with self._lock:
            while not self._stop:
                self._sweep()
                if self._waiting:
                    job = self._waiting.popleft()
                    job.state, job.started = RUNNING, time.monotonic()
                    self._current = job
                    return job
                self._lock.wait(timeout=min(1.0, self.lease_s / 4))
            return None

    def _work(self) -> None:
        while (job := self._next()) is not None:
            try:
                result = self.run(job)
            except AigveError as exc:  # the check cannot be computed: what a local run says, as it says it
                outcome: tuple[str, dict[str, Any] | None, dict[str, Any] | None] = (
                    FAILED, None, {"status": 422, "kind": "check", "error": str(exc)})
            except Exception as exc:  # a crash in a metric: reported, and the service keeps serving
                metric = job.request.get("metric", "?")
                outcome = (FAILED, None, {"status": 500, "kind": "crash",
                                          "error": f"{metric} crashed on the service: {type(exc).__name__}: {exc}",
                                          "traceback": traceback.format_exc()[-4000:]})
            else:
                outcome = (DONE, result, None)
            with self._lock:
                self._current = None
                self._finish(job, *outcome)
