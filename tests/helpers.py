"""Helpers shared by test modules: suites and videos for pytester projects, reports read back, synthetic frames and
feature blocks. Test modules import from here, never from each other (fixtures live in conftest.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_aigve.examples import degrade, moving_scene, write_video

if TYPE_CHECKING:
    from pytest_aigve.metrics.testing import MemoryInputs

VideoFactory = Callable[..., Path]  # the make_video fixture

# --- a pytester project: one suite over two small folders of videos ----------------------------------------------

SUITE = """\
suite: demo
protocol: {frames: 8, fps: 6}
video_sets:
  ref: {folder: videos/ref}
  gen: {folder: videos/gen}
checks:
  - metric: flicker
    set: gen
    min: 0.5
  - metric: psnr
    reference: ref
    candidate: gen
    min: 20
  - metric: ssim
    reference: ref
    candidate: gen
    min: 0.5
"""

CRASHING_CONFTEST = """
from pytest_aigve.metrics.base import PerVideoMetric

class Exploding(PerVideoMetric):
    name = "exploding"
    description = "raises {exc}"
    higher_is_better = True

    def score_clip(self, clip):
        raise {exc}("boom from the metric")

def pytest_aigve_register_metrics(registry):
    registry.register("exploding", Exploding)
"""


def make_videos(root: Path, count: int = 2, size: tuple[int, int] = (64, 64)) -> None:
    for index in range(count):
        clip = moving_scene(index, frames=24, size=size)
        write_video(root / "videos" / "ref" / f"clip_{index}.mp4", clip)
        write_video(root / "videos" / "gen" / f"clip_{index}.mp4", degrade(clip, seed=50 + index))


# --- reports read back -------------------------------------------------------------------------------------------


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def records_by_check(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {record["check"]: record for record in results["records"]}


class HTMLDigest(HTMLParser):
    """Collects what a reader sees: text, table rows, image sources, links."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.rows: list[list[str]] = []
        self.images: list[str] = []
        self.set_strip_images: list[str] = []  # the thumbnail strips of the "Video sets" section
        self._in_sets = False
        self.urls: list[str] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(values.get("src") or "")
            if self._in_sets:
                self.set_strip_images.append(values.get("src") or "")
        for key in ("href", "src"):
            if values.get(key):
                self.urls.append(values[key] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if data.strip() in ("Video sets", "Environment"):
            self._in_sets = data.strip() == "Video sets"
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def read_html(path: Path) -> HTMLDigest:
    digest = HTMLDigest()
    digest.feed(path.read_text())
    return digest


# --- synthetic frames and features ------------------------------------------------------------------------------


def indexed_frames(count: int, size: tuple[int, int] = (32, 32)) -> np.ndarray:
    """Frame i is a flat grey of level 8*i: the decoded brightness tells which source frame it was."""
    levels = (np.arange(count) * 8 + 8).astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (count, *size, 3)).copy()


def BlockInputs(blocks: dict[str, list[np.ndarray]]) -> MemoryInputs:
    """Feature blocks per video (rows: frames) for a set-level metric, without videos or a backbone."""
    from pytest_aigve.metrics.testing import MemoryInputs

    return MemoryInputs(features=blocks)  # type: ignore[arg-type]


def inception_like_blocks(seed: int, videos: int, frames: int, dim: int = 2048, shift: float = 0.0
                          ) -> list[np.ndarray]:
    """Non-negative features (pool3 is after a ReLU and an average) with a per-video component."""
    rng = np.random.default_rng(seed)
    base = rng.gamma(2.0, 0.15, size=(videos, 1, dim))
    return [np.abs(base[v] + rng.normal(shift, 0.05, size=(frames, dim))) for v in range(videos)]
