"""Decoded clips shared by every item of a pytest process: a set is decoded once per protocol."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from ..errors import VideoError
from ..protocol import ClipProtocol
from .decode import DecodedClip, decode_clip
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
    hits: int = 0
    decodes: int = 0
    decode_seconds: float = 0.0


class ClipCache:
    """LRU over decoded clips, bounded in bytes; failures are remembered too, so a bad file fails once."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
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
        key: CacheKey = (*file_identity(video.path), protocol.decode_key())
        if key in self._failures:
            raise self._failures[key]
        clip = self._clips.get(key)
        if clip is not None:
            self._clips.move_to_end(key)
            self.stats.hits += 1
            return clip
        started = time.perf_counter()
        try:
            clip = decode_clip(video.path, protocol)
        except VideoError as exc:
            self._failures[key] = exc
            raise
        finally:
            self.stats.decode_seconds += time.perf_counter() - started
        self.stats.decodes += 1
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
