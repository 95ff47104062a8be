"""Default folders and the AIGVE_* environment variables, read in one place; importable without torch.

The pytest plugin reads them once, into its options (pytest_aigve.options); `python -m pytest_aigve` reads them
with `from_environment(os.environ)`. Library functions take what they need as parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CACHE_ENV = "AIGVE_CACHE_DIR"
WEIGHTS_ENV = "AIGVE_WEIGHTS_DIR"
ALLOW_UNVERIFIED_ENV = "AIGVE_ALLOW_UNVERIFIED_WEIGHTS"  # =1: accept weights whose hash differs (recorded)
REHASH_ENV = "AIGVE_REHASH_WEIGHTS"  # =1: hash every weights file again, ignoring the remembered digests


def default_cache_dir(environ: Mapping[str, str]) -> Path:
    """$AIGVE_CACHE_DIR, else $XDG_CACHE_HOME/pytest-aigve/features, else ~/.cache/pytest-aigve/features."""
    if environ.get(CACHE_ENV):
        return Path(environ[CACHE_ENV])
    base = Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "pytest-aigve" / "features"


def _flag(environ: Mapping[str, str], name: str) -> bool:
    return environ.get(name, "") not in ("", "0")


@dataclass(frozen=True)
class Environment:
    """What the AIGVE_* environment variables say."""

    weights_dir: Path | None  # $AIGVE_WEIGHTS_DIR
    cache_dir: Path  # the feature cache's default folder, also where weights digests are remembered
    allow_unverified_weights: bool
    rehash_weights: bool


def from_environment(environ: Mapping[str, str]) -> Environment:
    return Environment(
        weights_dir=Path(environ[WEIGHTS_ENV]) if environ.get(WEIGHTS_ENV) else None,
        cache_dir=default_cache_dir(environ),
        allow_unverified_weights=_flag(environ, ALLOW_UNVERIFIED_ENV),
        rehash_weights=_flag(environ, REHASH_ENV),
    )
