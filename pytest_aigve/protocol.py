"""The clip protocol: which frames of a video a metric sees. Recorded with every score."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from .errors import ParamError

ShortVideoPolicy = Literal["error", "loop", "pad"]
ResizeMode = Literal["stretch", "center_crop", "cdfvd"]

SHORT_VIDEO_POLICIES: tuple[str, ...] = ("error", "loop", "pad")
# Bounds that keep a typo from exhausting memory: a clip of MAX_FRAMES frames at MAX_SIDE² is already tens of GB.
MAX_FRAMES = 4096
MAX_SIDE = 8192
MAX_FPS = 1000.0
MAX_START_S = 86_400.0  # a day of video
RESIZE_MODES: tuple[str, ...] = ("stretch", "center_crop", "cdfvd")


@dataclass(frozen=True)
class ClipProtocol:
    """How a clip is cut from a video.

    frames:      number of frames per clip; None takes every frame from `start` on.
    fps:         resample to this rate by presentation timestamps; None keeps the native frames.
    start:       seconds from the first frame.
    stride:      take every `stride`-th frame (after resampling).
    resize:      None (native), (height, width), or an int for the shorter side (aspect kept).
    resize_mode: for (height, width): "stretch" or "center_crop" (scale to cover, then crop); "cdfvd" (a square
                 size only) is cd-fvd's own resize and crop, bit for bit (set by the cd_fvd metric's `resolution`).
    short_video: a video with too few frames is an "error" (default), or is completed by "loop"
                 (repeat from the first taken frame) or "pad" (repeat the last frame).
    """

    frames: int | None = 16
    fps: float | None = None
    start: float = 0.0
    stride: int = 1
    resize: tuple[int, int] | int | None = None
    resize_mode: ResizeMode = "stretch"
    short_video: ShortVideoPolicy = "error"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if isinstance(self.resize, tuple):
            data["resize"] = list(self.resize)
        return data

    def decode_key(self) -> tuple[Any, ...]:
        """The fields that change which frames are decoded (resizing happens later)."""
        return (self.frames, self.fps, self.start, self.stride, self.short_video)

    def fingerprint(self) -> str:
        payload = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:16]

    def describe(self) -> str:
        frames = "all frames" if self.frames is None else f"{self.frames} frames"
        fps = "native fps" if self.fps is None else f"{self.fps:g} fps"
        resize = "native size" if self.resize is None else f"resize {self.resize} ({self.resize_mode})"
        return f"{frames} @ {fps}, start {self.start:g}s, stride {self.stride}, {resize}, short: {self.short_video}"


PROTOCOL_KEYS: tuple[str, ...] = tuple(f.name for f in fields(ClipProtocol))


def _positive_int(key: str, value: Any, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ParamError(key, f"'{key}' must be a positive integer, got {value!r}")
    if maximum is not None and value > maximum:
        raise ParamError(key, f"'{key}' must be at most {maximum}, got {value!r} (a clip that large does not fit "
                              "in memory; lower it)")
    return value


def _finite_number(key: str, value: Any, low: float, high: float, what: str) -> float:
    """A real number in [low, high]; NaN and infinities are refused (YAML reads `.nan` and `.inf` as floats)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not low <= value <= high:
        raise ParamError(key, f"'{key}' must be {what}, got {value!r}")
    return float(value)


def _parse_resize(value: Any) -> tuple[int, int] | int | None:
    if value is None or value == "none":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return _positive_int("resize", value, MAX_SIDE)
    if isinstance(value, list | tuple) and len(value) == 2:
        height, width = (_positive_int("resize", v, MAX_SIDE) for v in value)
        return (height, width)
    raise ParamError(
        "resize", f"'resize' must be null, an int (shorter side) or [height, width], got {value!r}"
    )


def protocol_from_mapping(data: Mapping[str, Any], base: ClipProtocol | None = None) -> ClipProtocol:
    """Validate a protocol mapping from a suite; unknown keys and bad values raise ParamError."""
    base = base or ClipProtocol()
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in PROTOCOL_KEYS:
            raise ParamError(key, f"unknown protocol key '{key}'")
        if key == "frames":
            values[key] = None if value in (None, "all") else _positive_int(key, value, MAX_FRAMES)
        elif key == "fps":
            values[key] = None if value is None else _finite_number(
                key, value, 1e-6, MAX_FPS, f"a positive number (at most {MAX_FPS:g}) or null (native)")
        elif key == "start":
            values[key] = _finite_number(key, value, 0.0, MAX_START_S, f"seconds in [0, {MAX_START_S:g}]")
        elif key == "stride":
            values[key] = _positive_int(key, value, MAX_FRAMES)
        elif key == "resize":
            values[key] = _parse_resize(value)
        elif key == "resize_mode":
            if value not in RESIZE_MODES:
                raise ParamError(key, f"'resize_mode' must be one of {', '.join(RESIZE_MODES)}; got {value!r}")
            values[key] = value
        elif key == "short_video":
            if value not in SHORT_VIDEO_POLICIES:
                raise ParamError(
                    key, f"'short_video' must be one of {', '.join(SHORT_VIDEO_POLICIES)}; got {value!r}"
                )
            values[key] = value
    return replace(base, **values)
