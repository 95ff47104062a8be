"""Where ClipCache gets its clips decoded: in this process (SerialSource) or in worker processes
(PooledSource). A source takes jobs (`submit`) and hands back each job's clip or VideoError (`result`) in any
order; `decode` is the ordered, prefetching loop over them. Not thread-safe: one thread drives a source.

PooledSource runs its own worker processes, started with "forkserver" ("spawn" where there is none): the
parent may run torch threads, and a fork copies them in whatever state they are in. A worker imports decode.py
(PyAV and numpy), never torch; like any spawned process it also imports the parent's main script (pytest's,
under pytest), so a script that uses PooledSource keeps torch out of its top level. Its own processes, rather
than a concurrent.futures pool, because a worker that dies is then known by the job it was decoding: that
video gets a VideoError, the jobs queued behind it go to the other workers, and a new worker takes its place.

Frames come back through shared memory, without a copy on either side. Each worker writes a clip's frames
straight into a shared-memory block it made (a slab); the parent maps the slab and the clip's frames are a
view of it. When the clip is garbage (weakref.finalize on the view's buffer), the slab goes back to its worker,
which writes a later clip into it. Both sides keep their mappings, so a reused slab costs neither page faults
nor zeroing. That is what makes it fast: memory touched for the first time costs 0.5-1 ms per MB on the
machines we measured (the kernel's faults and zeroing; decoding costs about 1.5 ms per MB of RGB frames),
which is what sinks a pickle (three copies, two of them into fresh memory) and a fresh block per clip alike.
Measured with benchmarks/decode_throughput.py's files on 2 cores (AMD EPYC, shared with other jobs), frames/s
of 2 workers relative to a bare PyAV loop on 2 processes that throws its frames away: clips pickled through a
concurrent.futures pool 22-30%; a fresh shared-memory block per clip, copied out by the parent 40-50%, used in
place 50-65%; reused slabs 90-110%, at the bare loop's CPU time per frame (98-102%: the copy into the slab is
paid back by converting every frame with one colour converter instead of one per frame).

No slab outlives the pool. The parent learns each slab's name before the worker creates it, and unlinks
every slab of a worker that died; `close()` (also run at interpreter exit) stops the workers, which unlink
theirs, and unlinks whatever they left. A clip still in use keeps its memory (unlinking removes only the
name). Each worker keeps free slabs for reuse up to `spare` times its largest slab in bytes (so a mix of
large and small clips keeps both); `trim()` gives them all back. A worker whose parent is killed unlinks its
slabs when it sees the pipe close, and Python's resource tracker, shared by the parent and its workers,
unlinks whatever is left.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import dataclasses
import itertools
import math
import mmap
import multiprocessing
import os
import secrets
import signal
import time
import traceback
import weakref
from abc import ABC, abstractmethod
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing import connection as mp_connection
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path
from typing import Any, NewType

import numpy as np

from ..errors import AigveError, VideoError
from ..protocol import ClipProtocol
from .decode import DecodedClip, decode_clip

Ticket = NewType("Ticket", int)

_MAP_POPULATE = getattr(mmap, "MAP_POPULATE", 0)  # Linux: map every page now, in one call, not a fault each
_STOP_SECONDS = 2.0  # how long close() waits for a worker to finish its decode before terminating it
_NO_FRAMES = np.empty((0,), dtype=np.uint8)  # a clip's frames while its metadata travels without them


@dataclass
class DecodeStats:
    """What one call (one ClipCache.stream) cost: counts add up, so merge with `+=`."""

    decodes: int = 0  # clips decoded for this call
    hits: int = 0  # clips served from memory, without decoding
    failures: int = 0  # videos that gave a VideoError (found now, or remembered from an earlier decode)
    decode_seconds: float = 0.0  # the decodes' own wall times, summed (more than elapsed time with workers)
    wait_seconds: float = 0.0  # wall time the caller spent blocked on decoding

    def __iadd__(self, other: DecodeStats) -> DecodeStats:
        for item in dataclasses.fields(self):
            setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))
        return self


@dataclass(frozen=True)
class DecodeResult:
    outcome: DecodedClip | VideoError
    seconds: float  # the decode's own wall time, in whichever process ran it


class ClipSource(ABC):
    """Decodes clips for ClipCache. `prefetch` is how many decodes a caller should keep outstanding."""

    workers: int
    prefetch: int

    @abstractmethod
    def submit(self, path: Path, protocol: ClipProtocol) -> Ticket:
        """Queue a decode; its result is taken once with `result` (or dropped with `discard`)."""

    @abstractmethod
    def result(self, ticket: Ticket) -> DecodeResult:
        """The clip or the VideoError of a submitted job, waiting for it if need be."""

    @abstractmethod
    def discard(self, tickets: Iterable[Ticket]) -> None:
        """Results no longer wanted: queued decodes are dropped, running ones freed when they end."""

    @abstractmethod
    def close(self) -> None:
        """Release processes and memory; a later `submit` starts again."""

    def decode(self, jobs: Iterable[tuple[Path, ClipProtocol]]) -> Iterator[DecodeResult]:
        """Results in the order of `jobs`, with at most `prefetch` decodes outstanding."""
        pending: deque[Ticket] = deque()
        try:
            for path, protocol in jobs:
                pending.append(self.submit(path, protocol))
                if len(pending) >= self.prefetch:
                    yield self.result(pending.popleft())
            while pending:
                yield self.result(pending.popleft())
        finally:
            self.discard(pending)


class SerialSource(ClipSource):
    """Decodes in this process, when the result is asked for."""

    def __init__(self) -> None:
        self.workers = 1
        self.prefetch = 1
        self._jobs: dict[Ticket, tuple[Path, ClipProtocol]] = {}
        self._tickets = itertools.count()

    def submit(self, path: Path, protocol: ClipProtocol) -> Ticket:
        ticket = Ticket(next(self._tickets))
        self._jobs[ticket] = (path, protocol)
        return ticket

    def result(self, ticket: Ticket) -> DecodeResult:
        path, protocol = self._jobs.pop(ticket)
        started = time.perf_counter()
        try:
            outcome: DecodedClip | VideoError = decode_clip(path, protocol)
        except VideoError as exc:
            outcome = exc
        return DecodeResult(outcome, time.perf_counter() - started)

    def discard(self, tickets: Iterable[Ticket]) -> None:
        for ticket in list(tickets):
            self._jobs.pop(ticket, None)

    def close(self) -> None:
        self._jobs.clear()


class PooledSource(ClipSource):
    """Decodes in `workers` processes, started at the first job and kept until `close()` (or interpreter exit).

    prefetch: decodes a caller keeps outstanding (default 2 per worker: each has its next job queued when it
              finishes one, while the parent is busy elsewhere).
    spare:    free slabs each worker keeps for reuse, in units of its largest slab (default: its share of the
              prefetch window, plus one).
    threads:  decoder threads per worker; 0 (default): FFmpeg's choice, as in a bare PyAV loop. 1 costs the
              least CPU per frame (frame threads add 3-5%), but a single-threaded worker gets a smaller share of
              a busy machine and leaves cores idle once fewer videos than workers are left.
    """

    def __init__(self, workers: int, prefetch: int | None = None, spare: int | None = None,
                 threads: int = 0) -> None:
        if workers < 1:
            raise ValueError(f"PooledSource: workers must be >= 1, got {workers}")
        if prefetch is not None and prefetch < 1:
            raise ValueError(f"PooledSource: prefetch must be >= 1, got {prefetch}")
        self.workers = workers
        self.prefetch = prefetch if prefetch is not None else 2 * workers
        self.spare = spare if spare is not None else -(-self.prefetch // workers) + 1
        self.threads = threads
        self._pool: _Pool | None = None

    @property
    def shm_prefix(self) -> str | None:
        """The name prefix of the running pool's shared-memory blocks (diagnostics, leak tests)."""
        return self._pool.prefix if self._pool is not None else None

    def worker_pids(self) -> list[int]:
        """The running workers' process ids (diagnostics: CPU accounting, tests)."""
        return [pid for worker in (self._pool.workers if self._pool else []) if (pid := worker.process.pid)]

    def submit(self, path: Path, protocol: ClipProtocol) -> Ticket:
        if self._pool is None:
            self._pool = _Pool(self.workers, self.spare, self.threads)
            weakref.finalize(self, self._pool.close).atexit = False  # a source dropped unclosed
        return self._pool.submit(path, protocol)

    def result(self, ticket: Ticket) -> DecodeResult:
        if self._pool is None:
            raise KeyError(ticket)
        return self._pool.result(ticket)

    def discard(self, tickets: Iterable[Ticket]) -> None:
        if self._pool is not None:
            self._pool.discard(tickets)

    def trim(self) -> None:
        """Give back the free slabs the workers keep for reuse (the next clips map fresh memory)."""
        if self._pool is not None:
            self._pool.trim()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


def _cores() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_decode_workers() -> int:
    """The cores this process may use, shared among pytest-xdist's workers; at least 1."""
    cores = _cores()
    try:
        sharing = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    except ValueError:
        sharing = 1
    return max(1, cores // max(sharing, 1))


_SOURCES: dict[int, PooledSource] = {}


def make_source(workers: int) -> ClipSource:
    """1: decode in process; more: the process-wide PooledSource of that many workers (one pool, reused)."""
    if workers < 1:
        raise ValueError(f"decode workers must be >= 1, got {workers}")
    if workers == 1:
        return SerialSource()
    if workers not in _SOURCES:
        _SOURCES[workers] = PooledSource(workers)
    return _SOURCES[workers]


# --- the parent's side of the pool -------------------------------------------------------------------------


@dataclass
class _Worker:
    serial: int
    process: BaseProcess
    conn: Connection
    tasks: deque[Ticket] = field(default_factory=deque)  # sent to it, in order
    running: Ticket | None = None  # the task it said it started and has not finished
    slabs: set[str] = field(default_factory=set)  # slabs it made and has not retired
    ready: bool = False
    trimming: bool = False


@dataclass(frozen=True)
class _Crash:
    """An unexpected exception in a worker (a bug, not a bad video): raised by `result`."""

    text: str


_POOLS: set[_Pool] = set()  # open pools, closed at interpreter exit
_ATEXIT_REGISTERED = False


def _close_pools() -> None:
    for pool in list(_POOLS):
        pool.close()


def _context() -> Any:  # a ForkServerContext or a SpawnContext (typeshed's BaseContext has no Process)
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method)


class _Pool:
    def __init__(self, workers: int, spare: int, threads: int) -> None:
        global _ATEXIT_REGISTERED
        self._ctx = _context()
        self._spare = spare
        self._threads = threads
        # short: macOS allows 31 characters in a shared-memory name
        self.prefix = f"ag{os.getpid():x}_{secrets.token_hex(3)}_"
        self._serials = itertools.count()
        self._tickets = itertools.count()
        self._jobs: dict[Ticket, tuple[Path, ClipProtocol]] = {}  # submitted, result not taken yet
        self._results: dict[Ticket, DecodeResult | _Crash] = {}  # come back, not taken yet
        self._abandoned: set[Ticket] = set()  # discarded while a worker had them
        self._maps: dict[str, mmap.mmap] = {}  # the parent's mapping of each slab it has seen
        self._released: deque[tuple[int, str]] = deque()  # (worker serial, slab) of clips gone; by finalizers
        self._closed = False
        self.workers: list[_Worker] = []
        _POOLS.add(self)
        if not _ATEXIT_REGISTERED:  # after multiprocessing's own exit hook, so it runs before it
            atexit.register(_close_pools)
            _ATEXIT_REGISTERED = True
        for _ in range(workers):
            self.workers.append(self._start())

    def _start(self) -> _Worker:
        serial = next(self._serials)
        ours, theirs = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(target=_worker_main, name=f"aigve-decode-{serial}", daemon=True,
                                    args=(theirs, f"{self.prefix}{serial}_", self._spare, self._threads))
        process.start()
        theirs.close()
        return _Worker(serial, process, ours)

    # jobs

    def submit(self, path: Path, protocol: ClipProtocol) -> Ticket:
        if self._closed:
            raise RuntimeError("the decode pool is closed")
        self._drain_released()
        ticket = Ticket(next(self._tickets))
        self._jobs[ticket] = (path, protocol)
        self._dispatch(ticket)
        return ticket

    def _dispatch(self, ticket: Ticket) -> None:
        path, protocol = self._jobs[ticket]
        worker = min(self.workers, key=lambda w: len(w.tasks))
        worker.tasks.append(ticket)
        self._send(worker, ("decode", ticket, path, protocol))

    def _send(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        try:
            worker.conn.send(message)
        except OSError:  # it died: its jobs, this one included, go elsewhere
            self._reap(worker)

    def result(self, ticket: Ticket) -> DecodeResult:
        if ticket not in self._jobs:
            raise KeyError(ticket)
        while ticket not in self._results:
            if not self.workers:
                raise RuntimeError("the decode pool is closed")
            self._pump()
        path, _ = self._jobs.pop(ticket)
        result = self._results.pop(ticket)
        if isinstance(result, _Crash):
            raise RuntimeError(f"decoding {path} failed in a decode worker process:\n{result.text}")
        return result

    def discard(self, tickets: Iterable[Ticket]) -> None:
        cancel: dict[int, list[Ticket]] = defaultdict(list)
        for ticket in list(tickets):
            if self._jobs.pop(ticket, None) is None:
                continue
            if self._results.pop(ticket, None) is not None:
                continue  # its clip is garbage now: the finalizer gives the slab back
            self._abandoned.add(ticket)
            for worker in self.workers:
                if ticket in worker.tasks:
                    cancel[worker.serial].append(ticket)
        for worker in list(self.workers):
            if cancel.get(worker.serial):
                self._send(worker, ("cancel", cancel[worker.serial]))

    def trim(self) -> None:
        """Every worker unlinks its free slabs; returns once they all said so (after a decode under way)."""
        self._drain_released()
        for worker in list(self.workers):
            worker.trimming = True
            self._send(worker, ("trim",))
        while any(worker.trimming for worker in self.workers):
            self._pump()

    # messages

    def _pump(self) -> None:
        """Wait for any worker to say something (or die), and handle it."""
        self._drain_released()
        waiting: dict[Any, _Worker] = {}
        for worker in self.workers:
            waiting[worker.conn] = worker
            waiting[worker.process.sentinel] = worker
        for ready in mp_connection.wait(list(waiting)):
            worker = waiting[ready]
            if worker not in self.workers:
                continue  # reaped while handling another
            if ready is worker.conn:
                self._receive(worker)
            else:
                self._reap(worker)

    def _receive(self, worker: _Worker) -> None:
        try:
            while worker.conn.poll():
                self._handle(worker, worker.conn.recv())
        except (EOFError, OSError):
            self._reap(worker)

    def _handle(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "ready":
            worker.ready = True
        elif kind == "slab":
            worker.slabs.add(message[1])
        elif kind == "retired":
            for name in message[1]:
                worker.slabs.discard(name)
                self._unmap(name)
        elif kind == "trimmed":
            worker.trimming = False
        elif kind == "started":
            worker.running = message[1]
        elif kind == "cancelled":
            worker.tasks.remove(message[1])
            self._abandoned.discard(message[1])
        elif kind == "done":
            _, ticket, outcome, seconds = message
            worker.tasks.remove(ticket)
            worker.running = None
            if ticket in self._abandoned:
                self._abandoned.discard(ticket)
                if outcome[0] == "slab":
                    self._send(worker, ("free", [outcome[1]]))
                return
            self._results[ticket] = self._outcome(worker, outcome, seconds)

    def _outcome(self, worker: _Worker, outcome: tuple[Any, ...], seconds: float) -> DecodeResult | _Crash:
        kind = outcome[0]
        if kind == "slab":
            _, name, shape, clip = outcome
            return DecodeResult(dataclasses.replace(clip, frames=self._lease(worker, name, shape)), seconds)
        if kind == "clip":  # pickled whole: shared memory was not available
            return DecodeResult(outcome[1], seconds)
        if kind == "error":
            return DecodeResult(VideoError(*outcome[1]), seconds)
        return _Crash(outcome[1])

    def _lease(self, worker: _Worker, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """The frames a worker left in slab `name`, as a view; the slab goes back to the worker when the last
        view of it is garbage."""
        mapping = self._maps.get(name)
        if mapping is None:
            mapping = self._maps[name] = _map(name)
        exporter = (ctypes.c_ubyte * math.prod(shape)).from_buffer(mapping)
        weakref.finalize(exporter, self._released.append, (worker.serial, name)).atexit = False
        return np.frombuffer(memoryview(exporter).cast("B"), dtype=np.uint8).reshape(shape)

    def _drain_released(self) -> None:
        freed: dict[int, list[str]] = defaultdict(list)
        while self._released:
            serial, name = self._released.popleft()
            freed[serial].append(name)
        for serial, names in freed.items():
            worker = next((w for w in self.workers if w.serial == serial), None)
            if worker is None:  # its worker is gone and so is the slab's name
                for name in names:
                    self._unmap(name)
            else:
                self._send(worker, ("free", names))

    def _unmap(self, name: str) -> None:
        mapping = self._maps.pop(name, None)
        if mapping is not None:
            with contextlib.suppress(BufferError):  # a clip still uses it; the memory goes with the clip
                mapping.close()

    # workers that die

    def _reap(self, worker: _Worker) -> None:
        """A worker died: its running job gets a VideoError, its queued jobs go to the others, its slabs are
        unlinked, and a new worker takes its place."""
        if worker not in self.workers:
            return
        self.workers.remove(worker)
        try:
            while worker.conn.poll():  # what it said before dying
                self._handle(worker, worker.conn.recv())
        except (EOFError, OSError):
            pass
        worker.conn.close()
        worker.process.join(timeout=5)
        how = _exit_text(worker.process.exitcode)
        for name in worker.slabs:
            _unlink(name)
            self._unmap(name)  # a slab a clip still uses stays mapped until the clip is garbage
        if not worker.ready:
            self.close()
            raise AigveError(f"a decode worker process {how} before it started; decode in this process with "
                             "--aigve-decode-workers 1")
        if not self._closed:
            self.workers.append(self._start())
        for ticket in worker.tasks:
            if ticket in self._abandoned:
                self._abandoned.discard(ticket)
            elif ticket == worker.running:
                path, _ = self._jobs[ticket]
                self._results[ticket] = DecodeResult(VideoError(
                    path, f"the decode worker process {how} while reading this file",
                    "FFmpeg may have crashed on it: re-encode or replace the file (decoding in this process, "
                    "--aigve-decode-workers 1, shows the crash)"), 0.0)
            elif not self._closed:
                self._dispatch(ticket)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        _POOLS.discard(self)
        for worker in self.workers:
            with contextlib.suppress(OSError):
                worker.conn.send(("stop",))
        deadline = time.monotonic() + _STOP_SECONDS
        for worker in self.workers:
            worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():  # still decoding: it will not unlink its slabs, we will
                worker.process.terminate()
                worker.process.join(timeout=5)
            try:
                while worker.conn.poll():  # slabs it made since we last listened
                    self._handle(worker, worker.conn.recv())
            except (EOFError, OSError):
                pass
            worker.conn.close()
            for name in worker.slabs:
                _unlink(name)
        for name in list(self._maps):
            self._unmap(name)
        self.workers = []


def _exit_text(code: int | None) -> str:
    if code is None:
        return "did not exit"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _fd(block: SharedMemory) -> int:
    # CPython's POSIX SharedMemory keeps its file descriptor here; mmap flags and fallocate need it
    return int(block._fd)  # type: ignore[attr-defined]


def _map(name: str) -> mmap.mmap:
    """The parent's mapping of a slab, every page mapped at once (MAP_POPULATE)."""
    block = SharedMemory(name=name)
    try:
        return mmap.mmap(_fd(block), block.size, flags=mmap.MAP_SHARED | _MAP_POPULATE)
    finally:
        block.close()


def _unlink(name: str) -> None:
    try:
        block = SharedMemory(name=name)
    except FileNotFoundError:
        return
    block.close()
    block.unlink()


# --- the worker's side -------------------------------------------------------------------------------------


@dataclass
class _Slab:
    block: SharedMemory  # closed; kept to unlink the name
    mapping: mmap.mmap
    size: int


class _Slabs:
    """A worker's slabs, mapped for as long as they live. A slab holding a clip the parent uses is busy until
    the parent frees it; free slabs are reused for a clip of their size (up to a quarter larger)."""

    def __init__(self, conn: Connection, prefix: str, spare: int) -> None:
        self._conn = conn
        self._prefix = prefix
        self._spare = spare
        self._count = itertools.count()
        self._slabs: dict[str, _Slab] = {}
        self._free: list[str] = []  # least recently freed first
        self._largest = 0  # bytes: the free slabs kept are at most `spare` times this
        self._handed: list[tuple[str, np.ndarray]] = []  # arrays given to the decode under way

    def allocate(self, shape: tuple[int, ...]) -> np.ndarray:
        size = math.prod(shape)
        name = (self._take(size) or self._create(size)) if size else None
        if name is None:  # shared memory unavailable: the clip travels pickled
            return np.empty(shape, dtype=np.uint8)
        array = np.frombuffer(self._slabs[name].mapping, dtype=np.uint8, count=size).reshape(shape)
        self._handed.append((name, array))
        return array

    def _take(self, size: int) -> str | None:
        fitting = [name for name in self._free if size <= self._slabs[name].size <= size + size // 4]
        if not fitting:
            return None
        name = min(fitting, key=lambda candidate: self._slabs[candidate].size)
        self._free.remove(name)
        return name

    def _create(self, size: int) -> str | None:
        name = f"{self._prefix}{next(self._count)}"
        self._conn.send(("slab", name))  # before it exists: the parent can unlink it whatever happens next
        try:
            block = SharedMemory(name=name, create=True, size=size)
        except OSError:
            return None
        try:
            if hasattr(os, "posix_fallocate"):  # a full /dev/shm fails here (ENOSPC), not with SIGBUS mid-write
                os.posix_fallocate(_fd(block), 0, size)
            mapping = mmap.mmap(_fd(block), size, flags=mmap.MAP_SHARED | _MAP_POPULATE)
        except OSError:
            block.close()
            block.unlink()
            self._conn.send(("retired", [name]))
            return None
        block.close()
        self._slabs[name] = _Slab(block, mapping, size)
        self._largest = max(self._largest, size)
        return name

    def settle(self, frames: np.ndarray | None) -> str | None:
        """After a decode: the slab holding `frames` (busy now), or None; the decode's other slabs are free."""
        holding = next((name for name, array in self._handed if array is frames), None)
        for name, _ in self._handed:
            if name != holding and name not in self._free:
                self._free.append(name)
        self._handed.clear()
        self._keep_spare()
        return holding

    def free(self, names: list[str]) -> None:
        self._free.extend(name for name in names if name in self._slabs and name not in self._free)
        self._keep_spare()

    def _keep_spare(self) -> None:
        """Retire the least recently freed slabs beyond the spare budget."""
        kept = sum(self._slabs[name].size for name in self._free)
        retired = []
        for name in self._free:
            if kept <= self._spare * self._largest:
                break
            kept -= self._slabs[name].size
            retired.append(name)
        self._retire(retired)

    def trim(self) -> None:
        self._retire(list(self._free))

    def _retire(self, names: list[str]) -> None:
        if not names:
            return
        for name in names:
            self._free.remove(name)
            slab = self._slabs.pop(name)
            with contextlib.suppress(BufferError):  # an array still points into it: unmapped when garbage
                slab.mapping.close()
            slab.block.unlink()
        self._conn.send(("retired", names))

    def unlink_all(self) -> None:
        for slab in self._slabs.values():
            with contextlib.suppress(OSError):
                slab.block.unlink()
        self._slabs.clear()


def _worker_main(conn: Connection, prefix: str, spare: int, threads: int) -> None:
    """A decode worker: control messages (free, cancel, trim, stop) are read as soon as they come, ahead of
    the decode jobs queued before them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops the workers
    slabs = _Slabs(conn, prefix, spare)
    jobs: deque[tuple[Ticket, Path, ClipProtocol]] = deque()
    cancelled: set[Ticket] = set()
    try:
        conn.send(("ready",))
        while True:
            while not jobs or conn.poll():  # wait for a job; read whatever came meanwhile
                message = conn.recv()
                kind = message[0]
                if kind == "decode":
                    jobs.append(message[1:])
                elif kind == "cancel":
                    cancelled.update(message[1])
                elif kind == "free":
                    slabs.free(message[1])
                elif kind == "trim":
                    slabs.trim()
                    conn.send(("trimmed",))
                elif kind == "stop":
                    return
            ticket, path, protocol = jobs.popleft()
            if ticket in cancelled:
                cancelled.discard(ticket)
                conn.send(("cancelled", ticket))
                continue
            conn.send(("started", ticket))
            outcome, seconds = _decode_into(slabs, path, protocol, threads)
            conn.send(("done", ticket, outcome, seconds))
    except (EOFError, OSError):  # the parent is gone
        pass
    finally:
        slabs.unlink_all()


def _decode_into(slabs: _Slabs, path: Path, protocol: ClipProtocol,
                 threads: int) -> tuple[tuple[Any, ...], float]:
    started = time.perf_counter()
    clip: DecodedClip | None = None
    outcome: tuple[Any, ...]
    try:
        clip = decode_clip(path, protocol, slabs.allocate, threads)
    except VideoError as exc:  # sent as its parts: VideoError's own pickling would not rebuild it
        outcome = ("error", (str(exc.path), exc.problem, exc.hint))
    except Exception:
        outcome = ("crash", traceback.format_exc())
    finally:
        holding = slabs.settle(clip.frames if clip is not None else None)
    if clip is not None:
        outcome = (("clip", clip) if holding is None else
                   ("slab", holding, clip.frames.shape, dataclasses.replace(clip, frames=_NO_FRAMES)))
    return outcome, time.perf_counter() - started
