"""Backbone features shared across metrics (FID, IS and KID on one set run Inception once).

A FeatureStore memoises per-video features in memory and, content-addressed, on disk: the key is
the SHA-256 of the video's bytes, the backbone identity (network, weights SHA-256, precision) and the
clip protocol's fingerprint. A warm run with unchanged videos neither decodes nor runs the backbone
(the backbone's network is built only when a feature must be computed).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import VideoError
from ..protocol import ClipProtocol
from ..videos.cache import ClipCache, file_identity
from ..videos.prepare import clip_to_uint8
from ..videos.sources import Video
from .backbones import Backbone

try:
    import fcntl
except ImportError:  # Windows: no cross-process lock; workers may compute the same features twice
    fcntl = None  # type: ignore[assignment]

CACHE_FORMAT = "v1"


def clear_cache(folder: Path) -> int:
    """Remove every cached feature file; returns how many there were."""
    if not folder.is_dir():
        return 0
    count = sum(1 for _ in folder.rglob("*.npy"))
    shutil.rmtree(folder)
    return count


@dataclass
class FeatureStoreStats:
    memory_hits: int = 0
    disk_hits: int = 0
    computed: int = 0


_CONTENT_HASHES: dict[tuple[str, int, int], str] = {}


def content_sha256(path: Path) -> str:
    identity = file_identity(path)
    if identity not in _CONTENT_HASHES:
        digest = hashlib.sha256()
        with path.open("rb") as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
        _CONTENT_HASHES[identity] = digest.hexdigest()
    return _CONTENT_HASHES[identity]


class FeatureStore:
    def __init__(self, clips: ClipCache, disk_dir: Path | None) -> None:
        self.clips = clips
        self.disk_dir = disk_dir
        self._memory: dict[str, np.ndarray] = {}
        self.stats = FeatureStoreStats()

    def key(self, video: Video, protocol: ClipProtocol, backbone: Backbone) -> str:
        if not video.path.is_file():
            raise VideoError(video.path, "file not found", "check the path or remove the entry")
        payload = "|".join((CACHE_FORMAT, content_sha256(video.path), backbone.identity, protocol.fingerprint()))
        return hashlib.sha256(payload.encode()).hexdigest()

    def _disk_path(self, key: str) -> Path | None:
        return None if self.disk_dir is None else self.disk_dir / key[:2] / f"{key}.npy"

    def _lookup(self, key: str) -> np.ndarray | None:
        if key in self._memory:
            self.stats.memory_hits += 1
            return self._memory[key]
        path = self._disk_path(key)
        if path is not None and path.is_file():
            try:
                features = np.load(path, allow_pickle=False)
            except (OSError, ValueError):
                return None  # unreadable entry: computed again and overwritten
            self.stats.disk_hits += 1
            self._memory[key] = features
            return features
        return None

    def _save(self, key: str, features: np.ndarray) -> None:
        self._memory[key] = features
        path = self._disk_path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as stream:
                np.save(stream, features, allow_pickle=False)
            os.replace(temp, path)  # atomic: concurrent xdist workers write the same bytes
        finally:
            Path(temp).unlink(missing_ok=True)

    def features(self, videos: Sequence[Video], protocol: ClipProtocol, backbone: Backbone,
                 on_bad_video: Callable[[Video, VideoError], None] | None = None,
                 progress: Callable[[int], None] | None = None) -> list[tuple[Video, np.ndarray]]:
        """Features per video, in order; bad videos raise, or go to `on_bad_video` and are left out."""
        found: dict[int, np.ndarray] = {}
        missing: list[tuple[int, Video, str]] = []
        for index, video in enumerate(videos):
            try:
                key = self.key(video, protocol, backbone)
            except (VideoError, OSError) as exc:
                error = exc if isinstance(exc, VideoError) else VideoError(video.path, f"cannot read ({exc})")
                if on_bad_video is None:
                    raise error from None
                on_bad_video(video, error)
                continue
            cached = self._lookup(key)
            if cached is not None:
                found[index] = cached
            else:
                missing.append((index, video, key))
        if not missing:
            return [(videos[index], found[index]) for index in sorted(found)]
        with self._compute_lock(backbone, protocol):
            # another xdist worker may have computed them while this one waited for the lock
            still_missing = []
            for index, video, key in missing:
                cached = self._lookup(key)
                if cached is not None:
                    found[index] = cached
                else:
                    still_missing.append((index, video, key))
            self._compute(still_missing, protocol, backbone, found, on_bad_video, progress)
        return [(videos[index], found[index]) for index in sorted(found)]

    @contextlib.contextmanager
    def _compute_lock(self, backbone: Backbone, protocol: ClipProtocol) -> Iterator[None]:
        """One process at a time computes features of one backbone and protocol (xdist workers share the
        disk cache): FID, KID and IS on one set run the backbone once per pytest run, not once per worker."""
        if self.disk_dir is None or fcntl is None:
            yield
            return
        name = hashlib.sha256(f"{backbone.identity}|{protocol.fingerprint()}".encode()).hexdigest()[:24]
        lock_path = self.disk_dir / "locks" / f"{name}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _compute(self, missing: list[tuple[int, Video, str]], protocol: ClipProtocol, backbone: Backbone,
                 found: dict[int, np.ndarray], on_bad_video: Callable[[Video, VideoError], None] | None,
                 progress: Callable[[int], None] | None) -> None:
        for start in range(0, len(missing), backbone.batch_size):
            chunk = missing[start: start + backbone.batch_size]
            clips, kept = [], []
            for index, video, key in chunk:
                try:
                    clip = clip_to_uint8(self.clips.get(video, protocol).frames, protocol, backbone.device)
                except VideoError as exc:
                    if on_bad_video is None:
                        raise
                    on_bad_video(video, exc)
                    continue
                backbone.check_clip(clip, str(video.path))
                clips.append(clip)
                kept.append((index, key))
            for (index, key), features in zip(kept, backbone.extract(clips) if clips else [], strict=True):
                self._save(key, features)
                self.stats.computed += 1
                found[index] = features
            if progress:
                progress(min(start + backbone.batch_size, len(missing)))
