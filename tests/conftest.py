"""Shared fixtures. numpy, torch and av are imported here first: in-process pytester runs
snapshot sys.modules, and C extensions first imported inside such a run break the next one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import av  # noqa: F401
import numpy as np
import pytest
import torch  # noqa: F401

from pytest_aigve.examples import degrade, moving_scene, write_video

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

VideoFactory = Callable[..., Path]


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test videos not present at {SHARED_DATA} (only on the project's machines)")
    return SHARED_DATA


@pytest.fixture
def make_video(tmp_path: Path) -> VideoFactory:
    """Write a small synthetic H.264 video; relative names land under tmp_path."""

    def factory(name: str | Path, *, seed: int = 0, frames: int = 24, size: tuple[int, int] = (64, 64),
                fps: float = 12, degraded: bool = False, root: Path | None = None, **kwargs: object) -> Path:
        clip = moving_scene(seed, frames=frames, size=size)
        if degraded:
            clip = degrade(clip, seed + 100)
        return write_video((root or tmp_path) / name, clip, fps=fps, **kwargs)  # type: ignore[arg-type]

    return factory


def indexed_frames(count: int, size: tuple[int, int] = (32, 32)) -> np.ndarray:
    """Frame i is a flat grey of level 8*i: the decoded brightness tells which source frame it was."""
    levels = (np.arange(count) * 8 + 8).astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (count, *size, 3)).copy()


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every backbone's weights, deterministic and random (BatchNorm recalibrated), in a weights folder."""
    from pytest_aigve.random_weights import write_all

    folder = tmp_path_factory.mktemp("weights")
    write_all(folder, seed=0)
    return folder
