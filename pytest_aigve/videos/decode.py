"""Decode one clip from a video file with PyAV, following a ClipProtocol.

Frames are picked by presentation timestamp: a target time t shows the last frame whose
timestamp is <= t (sample-and-hold, as a player would), so variable-rate and non-25-fps
videos resample correctly.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

from ..errors import VideoError
from ..protocol import ClipProtocol

_EPS = 1e-6


@dataclass
class DecodedClip:
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    timestamps: np.ndarray  # (T,) seconds of the source frame shown at each position
    source_fps: float
    source_size: tuple[int, int]  # (height, width)
    decoded_frames: int  # frames PyAV produced while reading
    notes: list[str] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        return int(self.frames.nbytes)


def _open(path: Path) -> Any:
    if not path.exists():
        raise VideoError(path, "file not found", "check the path (relative to the suite file) or remove the entry")
    if path.is_dir():
        raise VideoError(path, "is a folder, not a video file")
    if path.stat().st_size == 0:
        raise VideoError(path, "file is empty (0 bytes)", "re-export or re-download the video")
    try:
        return av.open(str(path))
    except av.error.FFmpegError as exc:
        raise VideoError(path, f"not a readable video (FFmpeg: {_ffmpeg_text(exc)})",
                         "the file is truncated, corrupt or not a video; re-encode or replace it") from None


def _ffmpeg_text(exc: BaseException) -> str:
    strerror = getattr(exc, "strerror", None)
    return str(strerror or exc).strip()


def _source_fps(stream: Any) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def _promised_frames(container: Any, stream: Any, fps: float) -> int:
    """What the container says the stream holds; 0 when it does not say."""
    if stream.frames:
        return int(stream.frames)
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration:
        duration = container.duration / 1_000_000
    return round(duration * fps) if duration and fps else 0


def _frames_with_time(container: Any, stream: Any, path: Path, fps: float) -> Iterator[tuple[float, Any]]:
    """(timestamp, frame) pairs; a missing timestamp falls back to index / fps."""
    index = 0
    try:
        for frame in container.decode(stream):
            time = frame.time
            if time is None:
                time = index / fps if fps else float(index)
            yield float(time), frame
            index += 1
    except av.error.FFmpegError as exc:
        raise VideoError(path, f"corrupt video data after frame {index} (FFmpeg: {_ffmpeg_text(exc)})",
                         "re-encode or replace the file") from None


def decode_clip(path: Path, protocol: ClipProtocol) -> DecodedClip:
    container = _open(path)
    try:
        if not container.streams.video:
            raise VideoError(path, "has no video stream (audio or data only)", "use a video file")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = _source_fps(stream)
        promised = _promised_frames(container, stream, fps)
        picked, times, decoded, reached_end = _pick_frames(container, stream, path, protocol, fps)
    finally:
        container.close()
    if decoded == 1:
        raise VideoError(path, "has a single frame (a still image?)", "a video needs at least 2 frames")
    if decoded == 0:
        raise VideoError(path, "no frame could be decoded", "the file is corrupt or truncated; replace it")
    truncated = reached_end and promised > 0 and decoded < promised - 1
    notes: list[str] = []
    wanted = protocol.frames
    if wanted is not None and len(picked) < wanted:
        if truncated:
            raise VideoError(path, f"truncated: the container promises {promised} frames but only {decoded} "
                                   "decode", "re-export or re-download the file")
        picked, times, note = _complete_short_clip(path, picked, times, protocol, fps, decoded)
        notes.append(note)
    elif truncated and wanted is None:
        raise VideoError(path, f"truncated: the container promises {promised} frames but only {decoded} decode",
                         "re-export or re-download the file")
    if not picked:
        raise VideoError(path, f"no frame at or after start={protocol.start:g}s "
                               f"(video has {decoded} frames at {fps:g} fps)", "lower 'start' in the protocol")
    frames = np.stack(picked)
    return DecodedClip(frames, np.asarray(times, dtype=np.float64), fps,
                       (int(frames.shape[1]), int(frames.shape[2])), decoded, notes)


def _complete_short_clip(path: Path, picked: list[np.ndarray], times: list[float], protocol: ClipProtocol,
                         fps: float, decoded: int) -> tuple[list[np.ndarray], list[float], str]:
    wanted = protocol.frames or 0
    have = len(picked)
    if protocol.short_video == "error" or not picked:
        rate = f"{protocol.fps:g} fps" if protocol.fps else "native fps"
        raise VideoError(path, f"too short: {have} of {wanted} frames available at {rate} "
                               f"(stride {protocol.stride}, start {protocol.start:g}s; the video has {decoded} "
                               f"frames at {fps:g} fps)",
                         "lower 'frames' or 'stride', or set 'short_video: loop' or 'pad' in the protocol")
    if protocol.short_video == "loop":
        order = [i % have for i in range(wanted)]
    else:  # pad with the last frame
        order = [min(i, have - 1) for i in range(wanted)]
    return ([picked[i] for i in order], [times[i] for i in order],
            f"{protocol.short_video}: {have} -> {wanted} frames")


def _pick_frames(container: Any, stream: Any, path: Path, protocol: ClipProtocol,
                 fps: float) -> tuple[list[np.ndarray], list[float], int, bool]:
    """Returns the picked RGB frames, their timestamps, how many frames were decoded, and whether EOF was hit."""
    if protocol.fps is None:
        return _pick_native(container, stream, path, protocol, fps)
    return _pick_resampled(container, stream, path, protocol, fps)


def _pick_native(container: Any, stream: Any, path: Path, protocol: ClipProtocol,
                 fps: float) -> tuple[list[np.ndarray], list[float], int, bool]:
    picked: list[np.ndarray] = []
    times: list[float] = []
    decoded = 0
    first_time: float | None = None
    position = 0  # index among frames at or after `start`
    for time, frame in _frames_with_time(container, stream, path, fps):
        decoded += 1
        first_time = time if first_time is None else first_time
        if time - first_time < protocol.start - _EPS:
            continue
        if position % protocol.stride == 0:
            picked.append(frame.to_ndarray(format="rgb24"))
            times.append(time - first_time)
            if protocol.frames is not None and len(picked) == protocol.frames:
                return picked, times, decoded, False
        position += 1
    return picked, times, decoded, True


def _pick_resampled(container: Any, stream: Any, path: Path, protocol: ClipProtocol,
                    fps: float) -> tuple[list[np.ndarray], list[float], int, bool]:
    assert protocol.fps is not None
    step = protocol.stride / protocol.fps
    wanted = protocol.frames if protocol.frames is not None else math.inf
    picked: list[np.ndarray] = []
    times: list[float] = []
    decoded = 0
    first_time: float | None = None
    previous: tuple[float, Any] | None = None
    previous_rgb: np.ndarray | None = None

    def take(until: float) -> None:
        """Assign the previous frame to every target time before `until`."""
        nonlocal previous_rgb
        assert previous is not None and first_time is not None
        while len(picked) < wanted:
            target = first_time + protocol.start + len(picked) * step
            if target < previous[0] - _EPS or target >= until - _EPS:
                return
            if previous_rgb is None:
                previous_rgb = previous[1].to_ndarray(format="rgb24")
            picked.append(previous_rgb)
            times.append(previous[0] - first_time)

    for time, frame in _frames_with_time(container, stream, path, fps):
        decoded += 1
        if first_time is None:
            first_time = time
        if previous is not None:
            take(until=time)
            if len(picked) >= wanted:
                return picked, times, decoded, False
        previous, previous_rgb = (time, frame), None
    if previous is not None:
        frame_duration = 1.0 / fps if fps else step
        take(until=previous[0] + frame_duration)
    return picked, times, decoded, True
