"""Backbone features shared across metrics (FID, IS and KID on one set run Inception once).

A FeatureStore memoises per-video features in memory and, content-addressed, on disk: the key is
the SHA-256 of the video's bytes, the backbone identity (network, weights SHA-256, precision) and the
clip protocol's fingerprint. A warm run with unchanged videos neither decodes nor runs the backbone
(the backbone's network is built only when a feature must be computed).

On disk, an entry `<key[:2]>/<key>.npy` is a NumPy .npy payload followed by a one-line trailer holding the
entry's key and the SHA-256 of the payload (np.load still reads the payload and ignores the trailer). An entry
that does not check out (unreadable, empty, truncated, damaged, another entry's key, non-finite values) is
never used: it is reported in `stats.warnings`, deleted and recomputed. A cache folder that cannot be written
(read-only, full disk) is reported once in `stats.warnings` (and kept in `disk_problem`); the store then
computes without writing to it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import VideoError
from ..files import sha256_file, write_atomic
from ..protocol import ClipProtocol
from ..videos.cache import ClipCache
from ..videos.pipeline import DecodeStats
from ..videos.prepare import clip_to_uint8
from ..videos.sources import Video
from .backbones import Backbone, TextEncoder

try:
    import fcntl
except ImportError:  # Windows: no cross-process lock; workers may compute the same features twice
    fcntl = None  # type: ignore[assignment]

CACHE_FORMAT = "v2"  # v2: entries carry their key and a SHA-256 of the payload

_TRAILER_PREFIX = b"\nAIGVE-FEATURES " + CACHE_FORMAT.encode() + b" key="
_TRAILER_RE = re.compile(re.escape(_TRAILER_PREFIX) + rb"([0-9a-f]{64}) sha256=([0-9a-f]{64})\n")
_TRAILER_LEN = len(_TRAILER_PREFIX) + 64 + len(b" sha256=") + 64 + 1


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
    # bad cache entries and an unwritable cache folder, in order; append-only, so a caller reads what one call
    # added as warnings[len_before:]
    warnings: list[str] = field(default_factory=list)


class BadEntry(Exception):
    """A cache entry that must not be used; the message says what is wrong with it."""


def encode_entry(key: str, features: np.ndarray) -> bytes:
    """The bytes of one cache entry: the .npy payload, then the trailer with the key and the payload's SHA-256."""
    buffer = io.BytesIO()
    np.save(buffer, features, allow_pickle=False)
    payload = buffer.getvalue()
    digest = hashlib.sha256(payload).hexdigest()
    return payload + _TRAILER_PREFIX + key.encode() + b" sha256=" + digest.encode() + b"\n"


def decode_entry(data: bytes, key: str) -> np.ndarray:
    """The features of an entry written by encode_entry for `key`, or BadEntry saying why not."""
    if not data:
        raise BadEntry("empty file (0 bytes)")
    match = _TRAILER_RE.fullmatch(data[-_TRAILER_LEN:])
    if len(data) <= _TRAILER_LEN or match is None:
        raise BadEntry(f"no valid integrity trailer ({len(data)} bytes: truncated or damaged)")
    payload = data[:-_TRAILER_LEN]
    stored_key, digest = match.group(1).decode(), match.group(2).decode()
    if stored_key != key:
        raise BadEntry(f"holds another entry's features (key {stored_key[:16]}…; copied or renamed?)")
    if hashlib.sha256(payload).hexdigest() != digest:
        raise BadEntry("checksum mismatch: the stored features were changed on disk")
    try:
        features = np.load(io.BytesIO(payload), allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise BadEntry(f"unreadable payload ({exc})") from None
    if not isinstance(features, np.ndarray) or features.dtype.kind != "f" or features.ndim not in (1, 2):
        raise BadEntry(f"unexpected array ({getattr(features, 'dtype', type(features))}, "
                       f"{getattr(features, 'shape', '?')})")
    if not np.isfinite(features).all():
        raise BadEntry("holds NaN or inf values")
    return features


class FeatureStore:
    """Per-video features in memory and in the on-disk cache `disk_dir` (None: memory only).

    Warnings (bad entries, an unwritable folder) go to `stats.warnings`; `disk_problem` holds the unwritable
    folder's warning for the store's lifetime, so a caller can attach it to every score made without the cache.
    """

    def __init__(self, clips: ClipCache, disk_dir: Path | None) -> None:
        self.clips = clips
        self.disk_dir = disk_dir
        self._memory: dict[str, np.ndarray] = {}
        self._bad: set[str] = set()  # keys whose disk entry was bad and could not be deleted: not read again
        self.stats = FeatureStoreStats()
        self.disk_problem: str | None = None  # set when the folder cannot be written: the store stops writing
        self._records: dict[tuple[str, str], dict[str, Any]] = {}

    def key(self, video: Video, protocol: ClipProtocol, backbone: Backbone) -> str:
        if not video.path.is_file():
            raise VideoError(video.path, "file not found", "check the path or remove the entry")
        return self.content_key(sha256_file(video.path), protocol, backbone)

    @staticmethod
    def content_key(content: str, protocol: ClipProtocol, backbone: Backbone) -> str:
        payload = "|".join((CACHE_FORMAT, content, backbone.identity, protocol.fingerprint()))
        return hashlib.sha256(payload.encode()).hexdigest()

    def text_features(self, prompts: Sequence[str], encoder: TextEncoder,
                      batch_size: int | None = None) -> list[np.ndarray]:
        """Features per prompt, in order, cached by the prompt's text and the encoder's identity (memory and
        disk, like clip features); only the prompts not cached go through the encoder."""
        keys = [hashlib.sha256("|".join((CACHE_FORMAT, "text", encoder.identity, prompt)).encode()).hexdigest()
                for prompt in prompts]
        found: dict[str, np.ndarray] = {}
        for key in keys:
            cached = self._lookup(key)
            if cached is not None:
                found[key] = cached
        missing = list(dict.fromkeys((key, prompt) for key, prompt in zip(keys, prompts, strict=True)
                                     if key not in found))
        if missing:
            computed = encoder.extract_text([prompt for _, prompt in missing], batch_size)
            for (key, _), features in zip(missing, computed, strict=True):
                self._save(key, features)
                self.stats.computed += 1
                found[key] = features
        return [found[key] for key in keys]

    def _record_path(self, kind: str, key: str) -> Path | None:
        return None if self.disk_dir is None else self.disk_dir / kind / key[:2] / f"{key}.json"

    def record(self, kind: str, key: str) -> dict[str, Any] | None:
        """A small JSON record of `kind` (e.g. "intervals") saved under `key`, from memory or disk, or None. A file
        that does not parse or holds another key is ignored (and replaced by the next save)."""
        if (kind, key) in self._records:
            return self._records[(kind, key)]
        path = self._record_path(kind, key)
        if path is None or self.disk_problem is not None:
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("key") != key or not isinstance(data.get("value"), dict):
            return None
        self._records[(kind, key)] = data["value"]
        return self._records[(kind, key)]

    def save_record(self, kind: str, key: str, value: dict[str, Any]) -> None:
        self._records[(kind, key)] = value
        path = self._record_path(kind, key)
        if path is None or self.disk_problem is not None:
            return
        try:
            write_atomic(path, json.dumps({"key": key, "value": value}, sort_keys=True))
        except OSError as exc:
            self._unwritable(exc)

    def cached(self, content: str, protocol: ClipProtocol, backbone: Backbone) -> np.ndarray | None:
        """Features of a video known only by the SHA-256 of its bytes (a baseline run's video that may no longer
        exist), if this process or the disk cache has them; never computes."""
        return self._lookup(self.content_key(content, protocol, backbone))

    def _disk_path(self, key: str) -> Path | None:
        return None if self.disk_dir is None else self.disk_dir / key[:2] / f"{key}.npy"

    def _warn(self, message: str) -> None:
        self.stats.warnings.append(message)

    def _unwritable(self, exc: OSError) -> None:
        """Stop writing to the folder; one warning per store (the runner keeps one store per process)."""
        if self.disk_problem is None:
            self.disk_problem = (f"feature cache {self.disk_dir} is not writable ({exc}): computing without it; "
                                 "fix permissions or free space there, or pass --aigve-no-cache")
            self._warn(self.disk_problem)

    def _lookup(self, key: str) -> np.ndarray | None:
        if key in self._memory:
            self.stats.memory_hits += 1
            return self._memory[key]
        path = self._disk_path(key)
        if path is None or key in self._bad:
            return None
        try:
            if not path.is_file():  # raises PermissionError in a folder that cannot be searched
                return None
        except OSError:
            return None
        try:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise BadEntry(f"unreadable ({exc})") from None
            features = decode_entry(data, key)
        except BadEntry as exc:
            self._discard(path, key, str(exc))
            return None
        self.stats.disk_hits += 1
        self._memory[key] = features
        return features

    def _discard(self, path: Path, key: str, problem: str) -> None:
        """A bad entry is reported and deleted; the caller computes the features again."""
        try:
            path.unlink(missing_ok=True)
            outcome = "deleted; the features are recomputed"
        except OSError as exc:  # a read-only cache: never read it again in this process
            self._bad.add(key)
            outcome = f"could not be deleted ({exc}); the features are recomputed and the entry ignored"
        self._warn(f"feature cache entry {path}: {problem}; {outcome}")

    def _save(self, key: str, features: np.ndarray) -> None:
        self._memory[key] = features
        path = self._disk_path(key)
        if path is None or self.disk_problem is not None:
            return
        blob = encode_entry(key, features)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            try:
                with os.fdopen(handle, "wb") as stream:
                    stream.write(blob)
                os.replace(temp, path)  # atomic: concurrent xdist workers write the same bytes
            finally:
                with contextlib.suppress(OSError):
                    Path(temp).unlink(missing_ok=True)
        except OSError as exc:  # read-only folder, full disk, quota: compute without the cache
            self._unwritable(exc)
            return
        self._bad.discard(key)

    def features(self, videos: Sequence[Video], protocol: ClipProtocol, backbone: Backbone,
                 on_bad_video: Callable[[Video, VideoError], None] | None = None,
                 progress: Callable[[int], None] | None = None,
                 batch_size: int | None = None, decode_stats: DecodeStats | None = None
                 ) -> list[tuple[Video, np.ndarray]]:
        """Features per video, in order (all of the backbone's outputs, concatenated); bad videos raise, or go to
        `on_bad_video` and are left out. `batch_size`: samples per forward pass (default: the backbone's); what
        decoding cost is added to `decode_stats`."""
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
            stats = self._compute(still_missing, protocol, backbone, found, on_bad_video, progress, batch_size)
            if decode_stats is not None:
                decode_stats += stats
        return [(videos[index], found[index]) for index in sorted(found)]

    @contextlib.contextmanager
    def _compute_lock(self, backbone: Backbone, protocol: ClipProtocol) -> Iterator[None]:
        """One process at a time computes features of one backbone and protocol (xdist workers share the
        disk cache): FID, KID and IS on one set run the backbone once per pytest run, not once per worker.
        Without a writable cache folder there is nothing to share and no lock."""
        handle = None
        if self.disk_dir is not None and fcntl is not None and self.disk_problem is None:
            name = hashlib.sha256(f"{backbone.identity}|{protocol.fingerprint()}".encode()).hexdigest()[:24]
            lock_path = self.disk_dir / "locks" / f"{name}.lock"
            try:
                lock_path.parent.mkdir(parents=True, exist_ok=True)
                handle = lock_path.open("a")
            except OSError as exc:
                self._unwritable(exc)
        if handle is None:
            yield
            return
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX)
            except OSError as exc:  # e.g. a file system without locks: workers may compute twice, still correct
                self._warn(f"feature cache {self.disk_dir}: cannot lock {handle.name} ({exc}); parallel workers "
                           "may compute the same features twice")
                yield
                return
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _compute(self, missing: list[tuple[int, Video, str]], protocol: ClipProtocol, backbone: Backbone,
                 found: dict[int, np.ndarray], on_bad_video: Callable[[Video, VideoError], None] | None,
                 progress: Callable[[int], None] | None, batch_size: int | None) -> DecodeStats:
        """Decode (ahead, through the clip cache's source) and run the backbone in batches; returns what decoding
        cost."""
        batch_size = batch_size or backbone.batch_size
        stream = self.clips.stream([video for _, video, _ in missing], protocol)
        clips: list[torch.Tensor] = []
        kept: list[tuple[int, str]] = []
        done = 0

        def run_batch() -> None:
            for (index, key), features in zip(kept, backbone.extract(clips, batch_size) if clips else [],
                                              strict=True):
                self._save(key, features)
                self.stats.computed += 1
                found[index] = features
            clips.clear()
            kept.clear()
            if progress:
                progress(done)

        try:
            for (index, _, key), (video, outcome) in zip(missing, stream, strict=True):  # stream keeps input order
                done += 1
                if isinstance(outcome, VideoError):
                    if on_bad_video is None:
                        raise outcome
                    on_bad_video(video, outcome)
                else:
                    clip = clip_to_uint8(outcome.frames, protocol, backbone.device)
                    backbone.check_clip(clip, str(video.path))
                    clips.append(clip)
                    kept.append((index, key))
                if len(clips) >= batch_size or done == len(missing):
                    run_batch()
        finally:
            stream.close()
        return stream.stats
