"""The service's content-addressed blob store: one folder per token (named by a digest of the token, never by
anything a client sends), each blob stored under its SHA-256, verified while it is written, with a size quota per
token and an expiry (a blob not used for `ttl_s` seconds is deleted). A client asks which hashes are missing and
uploads only those, so a re-run of unchanged videos uploads nothing."""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

from .wire import SHA256_RE


class UploadError(Exception):
    """An upload refused: `status` is the HTTP status (400 hash mismatch, 413 too large or over quota)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def token_id(token: str) -> str:
    """A token's store folder name: a digest, so the token itself is never on disk."""
    return hashlib.sha256(f"pytest-aigve store {token}".encode()).hexdigest()[:24]


@dataclass
class StoreStats:
    blobs_received: int = 0
    bytes_received: int = 0


class BlobStore:
    def __init__(self, root: Path, quota_bytes: int, max_upload_bytes: int, ttl_s: float) -> None:
        self.root = root
        self.quota_bytes = quota_bytes
        self.max_upload_bytes = max_upload_bytes
        self.ttl_s = ttl_s
        self.stats = StoreStats()
        self._lock = threading.Lock()

    def blob_dir(self, owner: str) -> Path:
        return self.root / owner / "blobs"

    def path(self, owner: str, sha256: str) -> Path:
        if not SHA256_RE.match(sha256):
            raise UploadError(400, f"{sha256[:80]!r} is not a lowercase SHA-256 hex digest")
        return self.blob_dir(owner) / sha256

    def missing(self, owner: str, hashes: Iterable[str]) -> list[str]:
        """The hashes not stored; the stored ones are marked as used (their expiry starts again)."""
        self.expire(owner)
        missing = []
        for sha in hashes:
            path = self.path(owner, sha)
            try:
                os.utime(path)
            except FileNotFoundError:
                missing.append(sha)
        return missing

    def used_bytes(self, owner: str) -> int:
        folder = self.blob_dir(owner)
        return sum(entry.stat().st_size for entry in folder.iterdir() if entry.is_file()) if folder.is_dir() else 0

    def expire(self, owner: str) -> int:
        """Delete the owner's blobs not used within the expiry; returns how many."""
        folder = self.blob_dir(owner)
        if not folder.is_dir():
            return 0
        limit = time.time() - self.ttl_s
        removed = 0
        for entry in folder.iterdir():
            try:
                if entry.is_file() and entry.stat().st_mtime < limit:
                    entry.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    async def put(self, owner: str, sha256: str, chunks: AsyncIterator[bytes], declared: int | None) -> bool:
        """Store an upload under its hash, verifying it while writing; False when it was stored already. Too
        large, over the quota, or not matching its hash: UploadError, and nothing is kept."""
        target = self.path(owner, sha256)
        if declared is not None and declared > self.max_upload_bytes:
            raise UploadError(413, f"upload of {declared} bytes is over the service's limit of "
                                   f"{self.max_upload_bytes} bytes per video")
        self.expire(owner)
        if target.exists():  # content-addressed: the same bytes are stored already
            os.utime(target)
            return False
        room = self.quota_bytes - self.used_bytes(owner)
        if declared is not None and declared > room:
            raise UploadError(413, f"upload of {declared} bytes does not fit the store quota ({self.quota_bytes} "
                                   f"bytes per token, {max(room, 0)} free); wait for unused blobs to expire")
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        handle, temp = tempfile.mkstemp(dir=target.parent, prefix=".upload.", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as stream:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_upload_bytes:
                        raise UploadError(413, f"upload is over the service's limit of {self.max_upload_bytes} "
                                               "bytes per video")
                    if size > room:
                        raise UploadError(413, f"upload does not fit the store quota ({self.quota_bytes} bytes "
                                               "per token)")
                    digest.update(chunk)
                    stream.write(chunk)
            if digest.hexdigest() != sha256:
                raise UploadError(400, f"upload does not match its hash: {size} bytes with SHA-256 "
                                       f"{digest.hexdigest()}, expected {sha256}; nothing stored")
            with self._lock:
                if target.exists():
                    os.utime(target)
                    return False
                os.replace(temp, target)
                self.stats.blobs_received += 1
                self.stats.bytes_received += size
            return True
        finally:
            Path(temp).unlink(missing_ok=True)
