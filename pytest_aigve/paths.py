"""Default folders, importable without torch."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "AIGVE_CACHE_DIR"


def default_cache_dir() -> Path:
    """$AIGVE_CACHE_DIR, else $XDG_CACHE_HOME/pytest-aigve/features, else ~/.cache/pytest-aigve/features."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "pytest-aigve" / "features"
