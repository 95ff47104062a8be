"""Decoded clips shared by every item of a pytest process: a set is decoded once per protocol.

`ClipCache.stream` is the way in: each video with its clip or its VideoError, in input order. Clips in memory
are served at once; the others are decoded by the cache's ClipSource (pipeline.py: in process, or in worker
processes), a few ahead of the one being used. What one stream cost (decodes, hits, failures, seconds) is on
the stream itself when its iteration ends, so two streams that interleave each count their own.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from ..errors import VideoError
from ..protocol import ClipProtocol
from .decode import DecodedClip
from .pipeline import ClipSource, DecodeResult, DecodeStats, SerialSource, Ticket
from .sources import Video

CacheKey = tuple[str, int, int, tuple[object, ...]]


def file_identity(path: Path) -> tuple[str, int, int]:
    """(resolved path, size, mtime): a rewritten file gets a new identity."""
    try:
        stat = path.stat()
    except OSError:
        return (str(path), -1, -1)
    return (str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@dataclass
class CacheStats:
    """Process-wide totals; per-call figures are on each ClipStream (`stream(...).stats`)."""

    hits: int = 0
    decodes: int = 0
    decode_seconds: float = 0.0


@dataclass(eq=False)
class _Entry:
    """A video of a stream, from when the stream looks at it until it is yielded."""

    video: Video
    key: CacheKey
    ticket: Ticket | None = None  # its decode, when it was not in memory
    first: _Entry | None = None  # the same clip, earlier in this stream and being decoded
    outcome: DecodedClip | VideoError | None = None


@dataclass(eq=False)
class ClipStream(Iterator[tuple[Video, DecodedClip | VideoError]]):
    """Each video with its clip or its VideoError, in input order; `stats` is what this stream cost (complete
    when the iteration ends). Closing it early (or dropping it) discards the decodes still outstanding."""

    _items: Generator[tuple[Video, DecodedClip | VideoError], None, None]
    stats: DecodeStats = field(default_factory=DecodeStats)

    def __next__(self) -> tuple[Video, DecodedClip | VideoError]:
        return next(self._items)

    def close(self) -> None:
        self._items.close()

    def __enter__(self) -> ClipStream:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()


class ClipCache:
    """LRU over decoded clips, bounded in bytes; failures are remembered too, so a bad file fails once.
    Clips are decoded by `source` (default: in this process)."""

    def __init__(self, max_bytes: int, source: ClipSource | None = None) -> None:
        self.max_bytes = max_bytes
        self.source: ClipSource = source if source is not None else SerialSource()
        self._clips: OrderedDict[CacheKey, DecodedClip] = OrderedDict()
        self._failures: dict[CacheKey, VideoError] = {}
        # what decoding did to each clip (loop, pad, upsampled), kept past eviction: a few strings per video
        self._notes: dict[CacheKey, tuple[str, ...]] = {}
        self._bytes = 0
        self.stats = CacheStats()

    def peek(self, video: Video, protocol: ClipProtocol) -> DecodedClip | None:
        """The clip if it is in memory; never decodes."""
        return self._clips.get((*file_identity(video.path), protocol.decode_key()))

    def notes(self, video: Video, protocol: ClipProtocol) -> list[str]:
        """DecodedClip.notes of a clip this process decoded, even if evicted since; never decodes. Empty for a
        clip never decoded here (its features came from the on-disk feature cache)."""
        return list(self._notes.get((*file_identity(video.path), protocol.decode_key()), ()))

    def get(self, video: Video, protocol: ClipProtocol) -> DecodedClip:
        """One clip; raises its VideoError."""
        with self.stream([video], protocol) as clips:
            _, outcome = next(clips)
        if isinstance(outcome, VideoError):
            raise outcome
        return outcome

    def stream(self, videos: Iterable[Video], protocol: ClipProtocol) -> ClipStream:
        """Each video with its clip or its VideoError, in input order: clips in memory at once, the others
        decoded by the source with up to `source.prefetch` decodes outstanding."""
        stats = DecodeStats()
        return ClipStream(self._stream(videos, protocol, stats), stats)

    def _stream(self, videos: Iterable[Video], protocol: ClipProtocol,
                stats: DecodeStats) -> Generator[tuple[Video, DecodedClip | VideoError], None, None]:
        upcoming = iter(videos)
        window: deque[_Entry] = deque()  # looked at, not yet yielded
        decoding: dict[CacheKey, _Entry] = {}  # submitted, not yet resolved
        # how far past the video being yielded the stream looks for clips to decode (hits cost nothing)
        horizon = 4 * self.source.prefetch + 16
        try:
            while True:
                while len(decoding) < self.source.prefetch and len(window) < horizon:
                    video = next(upcoming, None)
                    if video is None:
                        break
                    window.append(self._look(video, protocol, decoding))
                if not window:
                    return
                entry = window[0]
                entry.outcome = self._resolve(entry, protocol, stats, decoding)
                window.popleft()
                yield entry.video, entry.outcome
        finally:  # stopped early (or failed): the decodes still outstanding are not wanted
            self.source.discard(entry.ticket for entry in window if entry.ticket is not None)

    def _look(self, video: Video, protocol: ClipProtocol, decoding: dict[CacheKey, _Entry]) -> _Entry:
        key: CacheKey = (*file_identity(video.path), protocol.decode_key())
        entry = _Entry(video, key)
        if key in self._failures or key in self._clips:
            return entry
        if key in decoding:
            entry.first = decoding[key]
            return entry
        entry.ticket = self.source.submit(video.path, protocol)
        decoding[key] = entry
        return entry

    def _resolve(self, entry: _Entry, protocol: ClipProtocol, stats: DecodeStats,
                 decoding: dict[CacheKey, _Entry]) -> DecodedClip | VideoError:
        if entry.first is not None and entry.first.outcome is not None:  # decoded a moment ago for this stream
            return self._served(entry.first.outcome, stats)
        if entry.ticket is None:
            failure = self._failures.get(entry.key)
            if failure is not None:
                return self._served(failure, stats)
            clip = self._clips.get(entry.key)
            if clip is not None:
                self._clips.move_to_end(entry.key)
                return self._served(clip, stats)
            entry.ticket = self.source.submit(entry.video.path, protocol)  # evicted since the stream looked
        started = time.perf_counter()
        result = self.source.result(entry.ticket)
        stats.wait_seconds += time.perf_counter() - started
        entry.ticket = None
        decoding.pop(entry.key, None)
        return self._decoded(entry.key, result, stats)

    def _served(self, outcome: DecodedClip | VideoError, stats: DecodeStats) -> DecodedClip | VideoError:
        if isinstance(outcome, VideoError):
            stats.failures += 1
        else:
            stats.hits += 1
            self.stats.hits += 1
        return outcome

    def _decoded(self, key: CacheKey, result: DecodeResult, stats: DecodeStats) -> DecodedClip | VideoError:
        self.stats.decode_seconds += result.seconds
        stats.decode_seconds += result.seconds
        if isinstance(result.outcome, VideoError):
            self._failures[key] = result.outcome
            stats.failures += 1
            return result.outcome
        clip = result.outcome
        self.stats.decodes += 1
        stats.decodes += 1
        if clip.notes:
            self._notes[key] = tuple(clip.notes)
        self._store(key, clip)
        return clip

    def _store(self, key: CacheKey, clip: DecodedClip) -> None:
        if clip.nbytes > self.max_bytes:
            return
        self._clips[key] = clip
        self._bytes += clip.nbytes
        while self._bytes > self.max_bytes:
            _, evicted = self._clips.popitem(last=False)
            self._bytes -= evicted.nbytes
