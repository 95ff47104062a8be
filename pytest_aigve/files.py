"""Writing a file atomically, and a file's SHA-256 hashed once per process. No imports from the rest of the
package: every module may use these."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

FileIdentity = tuple[str, int, int]  # (resolved path, size, mtime_ns): a rewritten file gets a new identity

_CHUNK = 1 << 20
_DIGESTS: dict[FileIdentity, str] = {}


@contextlib.contextmanager
def atomic_open(path: Path) -> Iterator[BinaryIO]:
    """A binary stream to a temporary file in `path`'s folder, renamed over `path` when the block ends: a reader
    finds the old file or the new one, never half of one. If the block (or the rename) raises, the temporary file
    is removed and `path` is left as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            yield stream
        os.chmod(temp, 0o644)  # mkstemp makes it private; reports, baselines and weights are meant to be shared
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write `data` (text as UTF-8) to `path` atomically (see atomic_open)."""
    with atomic_open(path) as stream:
        stream.write(data.encode("utf-8") if isinstance(data, str) else data)


def file_identity(path: Path) -> FileIdentity:
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


class DigestMemo(Protocol):
    """Digests kept beyond the process (e.g. in a JSON file), by file identity."""

    def get(self, identity: FileIdentity) -> str | None: ...

    def put(self, identity: FileIdentity, digest: str) -> None: ...


def sha256_file(path: Path, memo: DigestMemo | None = None, rehash: bool = False) -> str:
    """The SHA-256 hex digest of a file, remembered for the process by (resolved path, size, mtime_ns). A file
    not hashed yet in this process is looked up in `memo` first, and its digest put there once hashed. With
    `rehash`, the file is hashed again whatever was remembered (e.g. a file restored with its old mtime)."""
    identity = file_identity(path)
    if rehash or identity not in _DIGESTS:
        digest = None if rehash or memo is None else memo.get(identity)
        if digest is None:
            hashed = hashlib.sha256()
            with path.open("rb") as stream:
                while chunk := stream.read(_CHUNK):
                    hashed.update(chunk)
            digest = hashed.hexdigest()
            if memo is not None:
                memo.put(identity, digest)
        _DIGESTS[identity] = digest
    return _DIGESTS[identity]
