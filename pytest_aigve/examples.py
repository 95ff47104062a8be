"""Synthetic example videos: what the quickstart suite ships, and what tests write on the fly."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np


def write_video(path: Path, frames: np.ndarray, fps: float | Fraction = 12, codec: str = "libx264",
                pix_fmt: str = "yuv420p", options: dict[str, str] | None = None) -> Path:
    """Encode (T, H, W, 3) uint8 RGB frames; sizes must be even for yuv420p."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w") as container:
        stream: Any = container.add_stream(codec, rate=rate)
        stream.width, stream.height = int(frames.shape[2]), int(frames.shape[1])
        stream.pix_fmt = pix_fmt
        if codec == "libx264":
            stream.options = {"crf": "18", "preset": "veryfast", **(options or {})}
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")))
        container.mux(stream.encode(None))
    return path


def moving_scene(seed: int, frames: int = 24, size: tuple[int, int] = (96, 96)) -> np.ndarray:
    """A smooth colour gradient with a drifting bright disc: slow motion, little flicker."""
    rng = np.random.default_rng(seed)
    height, width = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    base = rng.uniform(40, 200, size=3)
    slope = rng.uniform(-0.6, 0.6, size=(3, 2))
    center = rng.uniform(0.3, 0.7, size=2) * (height, width)
    velocity = rng.uniform(-1.5, 1.5, size=2)
    radius = rng.uniform(0.12, 0.22) * min(height, width)
    clip = np.empty((frames, height, width, 3), dtype=np.uint8)
    for t in range(frames):
        image = base[None, None, :] + slope[:, 0] * yy[..., None] + slope[:, 1] * xx[..., None]
        cy, cx = center + velocity * t
        disc = ((yy - cy) ** 2 + (xx - cx) ** 2) < radius**2
        image[disc] = 235.0
        clip[t] = np.clip(image, 0, 255).astype(np.uint8)
    return clip


def degrade(clip: np.ndarray, seed: int, noise: float = 4.0, flicker: float = 0.0) -> np.ndarray:
    """A 'generated' version: 3x3 box blur, Gaussian noise, optional per-frame brightness flicker."""
    rng = np.random.default_rng(seed)
    padded = np.pad(clip.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    height, width = clip.shape[1:3]
    blurred = sum(padded[:, dy:dy + height, dx:dx + width] for dy in range(3) for dx in range(3)) / 9.0
    out = blurred + rng.normal(0.0, noise, size=clip.shape)
    if flicker:
        out += rng.uniform(-flicker, flicker, size=(clip.shape[0], 1, 1, 1))
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def make_quickstart_videos(folder: Path, count: int = 4) -> list[Path]:
    """The quickstart's videos: reference/, generated/ and a mixed/ folder (clip_N.mp4 + clip_N_generated.mp4)."""
    written = []
    for index in range(count):
        reference = moving_scene(seed=index)
        generated = degrade(reference, seed=100 + index)
        written.append(write_video(folder / "reference" / f"clip_{index}.mp4", reference))
        written.append(write_video(folder / "generated" / f"clip_{index}.mp4", generated))
        written.append(write_video(folder / "mixed" / f"scene_{index}.mp4", reference))
        written.append(write_video(folder / "mixed" / f"scene_{index}_generated.mp4", generated))
    return written
