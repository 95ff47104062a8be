"""Shared fixtures. numpy, torch and av are imported here first: in-process pytester runs
snapshot sys.modules, and C extensions first imported inside such a run break the next one."""

from __future__ import annotations

from pathlib import Path

import av  # noqa: F401
import numpy  # noqa: F401
import pytest
import torch  # noqa: F401

from pytest_aigve.examples import degrade, moving_scene, write_video

from .helpers import SUITE, VideoFactory, make_videos

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


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


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    """A pytester project: the suite helpers.SUITE (aigve_demo.yaml) over two reference and two generated videos."""
    make_videos(pytester.path)
    pytester.makefile(".yaml", aigve_demo=SUITE)
    return pytester.path


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The distribution backbones' weights, deterministic and random (BatchNorm recalibrated), in a weights folder."""
    from pytest_aigve.random_weights import DISTRIBUTION_KEYS, write_all

    folder = tmp_path_factory.mktemp("weights")
    write_all(folder, seed=0, keys=DISTRIBUTION_KEYS)  # the quality and text models' tests write their own
    return folder
