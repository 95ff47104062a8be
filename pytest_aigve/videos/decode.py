"""Decode one clip from a video file with PyAV, following a ClipProtocol.

Frames are picked by presentation timestamp: a target time t shows the last frame whose
timestamp is <= t (sample-and-hold, as a player would), so variable-rate and non-25-fps
videos resample correctly.

What makes a video bad here (a VideoError naming the file, the problem and the fix):
- it is not a video file: missing, a dangling symlink (git-annex content not fetched), a symlink loop, a
  folder, empty, or a Git LFS pointer left by a checkout without `git lfs pull` (see `check_file`);
- FFmpeg cannot read it, or stops with an error part-way;
- FFmpeg detected damaged data and concealed it (`frame.is_corrupt`): such a frame is a guess, never scored;
- it is truncated: fewer frames than the container's frame count, or, where the container has no count
  (mkv, webm), decoding ends well before the stream's duration;
- the protocol's `fps` samples it more than FPS_ERROR_RATIO times faster than its own frame rate.
Damage that happens to decode as valid syntax cannot be seen by any decoder; only a checksum would tell.
"""

from __future__ import annotations

import errno
import itertools
import math
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

from ..errors import VideoError
from ..protocol import ClipProtocol

_EPS = 1e-6

# Resampling above the source rate repeats frames (sample-and-hold): at 2x, every frame is shown twice, and
# frame-difference metrics such as flicker see half of their differences as zero. The ratio is the protocol's
# sampling rate (fps / stride) over the source's measured frame rate.
FPS_WARNING_RATIO = 1.5  # at or above: the clip is used, with a note ("upsampled: ...") on the score
FPS_ERROR_RATIO = 4.0  # above: the video is bad for this protocol (most frames would be copies)

LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/v1"
_LFS_POINTER_MAX_BYTES = 1024  # a pointer file is ~130 bytes; a video never is this small and starts so
_ANNEX_OBJECTS = "annex/objects/"


@dataclass
class DecodedClip:
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    timestamps: np.ndarray  # (T,) seconds of the source frame shown at each position
    source_fps: float
    source_size: tuple[int, int]  # (height, width)
    decoded_frames: int  # frames PyAV produced while reading
    # what was done to make the clip, "kind: detail": "loop: 3 -> 16 frames", "pad: ...", "upsampled: ..."
    notes: list[str] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        return int(self.frames.nbytes)


@dataclass
class _Progress:
    """What decoding has seen so far: enough to tell a truncated file and the true source rate."""

    times: list[float] = field(default_factory=list)  # presentation time of every decoded frame, seconds
    last_duration: float | None = None  # the last frame's display duration, where the container gives one
    reached_end: bool = False

    @property
    def decoded(self) -> int:
        return len(self.times)

    def interval(self) -> float | None:
        """The median gap between frames: robust to a variable frame rate's odd long or short gap."""
        if len(self.times) < 2:
            return None
        gaps = np.diff(np.asarray(self.times))
        gap = float(np.median(gaps[gaps > 0])) if (gaps > 0).any() else 0.0
        return gap or None

    def measured_fps(self) -> float | None:
        """Frames per second over what was decoded (the container's average rate can be a nominal 25)."""
        span = self.times[-1] - self.times[0] if len(self.times) >= 2 else 0.0
        return (len(self.times) - 1) / span if span > 0 else None


def check_file(path: Path) -> None:
    """Raise a VideoError saying what `path` is when it is not a video file, before FFmpeg sees it: missing,
    a dangling symlink (git-annex content not fetched), a symlink loop, a folder, empty, or a Git LFS pointer.
    Cheap (a stat and, for tiny files, one short read), so sets can be screened before any decoding."""
    try:
        info = path.stat()
    except OSError as exc:
        _raise_unreachable(path, exc)
    if stat.S_ISDIR(info.st_mode):
        raise VideoError(path, "is a folder, not a video file")
    if info.st_size == 0:
        raise VideoError(path, "file is empty (0 bytes)", "re-export or re-download the video")
    if info.st_size <= _LFS_POINTER_MAX_BYTES and _is_lfs_pointer(path):
        raise VideoError(path, "Git LFS pointer, not the video: run `git lfs pull` (or `git lfs pull --include "
                               f"'{path.name}'`) in the repository",
                         "the checkout has the small text file that names the video, not its content")


def _raise_unreachable(path: Path, exc: OSError) -> None:
    if exc.errno == errno.ELOOP:
        raise VideoError(path, "symlink loop: the link leads back to itself and names no file",
                         "point the link at the video, or remove it") from None
    if path.is_symlink():
        target = os.readlink(path)
        if _ANNEX_OBJECTS in Path(target).as_posix():
            raise VideoError(path, f"dangling symlink to {target}: git-annex content not fetched; run "
                                   f"`git annex get {path.name}` in its folder",
                             "or remove the entry from the set") from None
        raise VideoError(path, f"dangling symlink: its target {target} does not exist",
                         "restore or fetch the target, point the link elsewhere, or remove it") from None
    if isinstance(exc, FileNotFoundError):
        raise VideoError(path, "file not found",
                         "check the path (relative to the suite file) or remove the entry") from None
    raise VideoError(path, f"cannot read ({exc.strerror or exc})", "check the file's permissions") from None


def _is_lfs_pointer(path: Path) -> bool:
    try:
        with path.open("rb") as stream:
            return stream.read(len(LFS_POINTER_PREFIX)) == LFS_POINTER_PREFIX
    except OSError:
        return False  # FFmpeg will say what is wrong


def _open(path: Path) -> Any:
    check_file(path)
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


def _promised_end(container: Any, stream: Any) -> float | None:
    """Where the stream should end, in seconds on the frames' clock: the stream's own duration where the
    container has one, else the container's (mkv and webm give only that)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(((stream.start_time or 0) + stream.duration) * stream.time_base)
    if container.duration:
        return ((container.start_time or 0) + container.duration) / 1_000_000
    return None


def _truncation(container: Any, stream: Any, progress: _Progress, fps: float) -> str | None:
    """Why the decoded frames fall short of what the container promises, or None.

    The container's frame count is trusted where it has one (mp4). Otherwise the end of the last decoded frame
    is compared with the promised end: a variable-rate file's frame count is not duration x average rate."""
    if not progress.reached_end or progress.decoded == 0:
        return None
    if stream.frames:
        promised = int(stream.frames)
        if progress.decoded < promised - 1:  # one frame of slack, as edit lists may hide one
            return f"the container promises {promised} frames but only {progress.decoded} decode"
        return None
    end = _promised_end(container, stream)
    interval = progress.interval() or (1.0 / fps if fps else None)
    if end is None or interval is None:
        return None
    reached = progress.times[-1] + (progress.last_duration or interval)
    if end - reached <= 1.5 * interval + 1e-3:  # one lost frame is within slack, as with a frame count
        return None
    span = end - progress.times[0]
    count = f"{round(span * fps)} frames ({span:.2f} s at {fps:g} fps)" if fps else f"{span:.2f} s"
    return (f"the container promises {count} but decoding ends at {reached - progress.times[0]:.2f} s "
            f"after {progress.decoded} frames")


def _frames_with_time(container: Any, stream: Any, path: Path, fps: float,
                      progress: _Progress) -> Iterator[tuple[float, Any]]:
    """(timestamp, frame) pairs; a missing timestamp falls back to index / fps. Records each frame in
    `progress`, and stops on data FFmpeg reports as damaged."""
    index = 0
    try:
        for frame in container.decode(stream):
            time = frame.time
            if time is None:
                time = index / fps if fps else float(index)
            # FFmpeg conceals damaged data (copies blocks from neighbours) and flags the frame; H.264 and
            # MPEG-4 do so when error concealment runs, which FFmpeg enables except under slice threading
            # (decode_clip asks for frame threads)
            if frame.is_corrupt:
                raise VideoError(path, f"corrupt video data in frame {index} (at {float(time):.3f} s): FFmpeg "
                                       "found damaged data and concealed it",
                                 "re-encode or replace the file; a concealed frame is a guess and is never scored")
            progress.times.append(float(time))
            duration = getattr(frame, "duration", None)
            progress.last_duration = (float(duration * frame.time_base)
                                      if duration and frame.time_base is not None else None)
            yield float(time), frame
            index += 1
    except av.error.FFmpegError as exc:
        raise VideoError(path, f"corrupt video data after frame {index} (FFmpeg: {_ffmpeg_text(exc)})",
                         "re-encode or replace the file") from None


def decode_clip(path: Path, protocol: ClipProtocol) -> DecodedClip:
    container = _open(path)
    progress = _Progress()
    try:
        if not container.streams.video:
            raise VideoError(path, "has no video stream (audio or data only)", "use a video file")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = _source_fps(stream)
        picked, times = _pick_frames(container, stream, path, protocol, fps, progress)
        truncated = _truncation(container, stream, progress, fps)
    finally:
        container.close()
    decoded = progress.decoded
    if decoded == 1:
        raise VideoError(path, "has a single frame (a still image?)", "a video needs at least 2 frames")
    if decoded == 0:
        raise VideoError(path, "no frame could be decoded", "the file is corrupt or truncated; replace it")
    notes: list[str] = []
    if protocol.fps is not None and picked:
        note = _upsampling(path, protocol, progress.measured_fps() or fps, times)
        if note:
            notes.append(note)
    wanted = protocol.frames
    if truncated and (wanted is None or len(picked) < wanted):
        raise VideoError(path, f"truncated: {truncated}", "re-export or re-download the file")
    if wanted is not None and len(picked) < wanted:
        picked, times, note = _complete_short_clip(path, picked, times, protocol, fps, decoded)
        notes.append(note)
    if not picked:
        raise VideoError(path, f"no frame at or after start={protocol.start:g}s "
                               f"(video has {decoded} frames at {fps:g} fps)", "lower 'start' in the protocol")
    frames = np.stack(picked)
    return DecodedClip(frames, np.asarray(times, dtype=np.float64), fps,
                       (int(frames.shape[1]), int(frames.shape[2])), decoded, notes)


def _upsampling(path: Path, protocol: ClipProtocol, source_fps: float, times: list[float]) -> str | None:
    """A note when the protocol samples faster than the video has frames; an error far above (see the ratios)."""
    assert protocol.fps is not None
    if source_fps <= 0:
        return None
    ratio = protocol.fps / protocol.stride / source_fps
    if ratio < FPS_WARNING_RATIO:
        return None
    sampling = f"fps {protocol.fps:g}" + (f" (stride {protocol.stride})" if protocol.stride > 1 else "")
    if ratio > FPS_ERROR_RATIO:
        raise VideoError(path, f"{sampling} samples {ratio:.3g}x faster than the video's {source_fps:.4g} fps: "
                               "most frames of the clip would be copies of the previous one",
                         f"lower 'fps' in the protocol to at most {FPS_ERROR_RATIO:g}x the source rate "
                         f"({FPS_ERROR_RATIO * source_fps:.4g}), or use fps: null for the native frames")
    repeats = sum(1 for before, after in itertools.pairwise(times) if after == before)
    return (f"upsampled: {sampling} is {ratio:.3g}x the source's {source_fps:.4g} fps; {repeats} of "
            f"{len(times)} frames repeat the previous one")


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


def _pick_frames(container: Any, stream: Any, path: Path, protocol: ClipProtocol, fps: float,
                 progress: _Progress) -> tuple[list[np.ndarray], list[float]]:
    """The picked RGB frames and their timestamps; `progress` records what was decoded and whether EOF was hit."""
    if protocol.fps is None:
        return _pick_native(container, stream, path, protocol, fps, progress)
    return _pick_resampled(container, stream, path, protocol, fps, progress)


def _pick_native(container: Any, stream: Any, path: Path, protocol: ClipProtocol, fps: float,
                 progress: _Progress) -> tuple[list[np.ndarray], list[float]]:
    picked: list[np.ndarray] = []
    times: list[float] = []
    first_time: float | None = None
    position = 0  # index among frames at or after `start`
    for time, frame in _frames_with_time(container, stream, path, fps, progress):
        first_time = time if first_time is None else first_time
        if time - first_time < protocol.start - _EPS:
            continue
        if position % protocol.stride == 0:
            picked.append(frame.to_ndarray(format="rgb24"))
            times.append(time - first_time)
            if protocol.frames is not None and len(picked) == protocol.frames:
                return picked, times
        position += 1
    progress.reached_end = True
    return picked, times


def _pick_resampled(container: Any, stream: Any, path: Path, protocol: ClipProtocol, fps: float,
                    progress: _Progress) -> tuple[list[np.ndarray], list[float]]:
    assert protocol.fps is not None
    step = protocol.stride / protocol.fps
    wanted = protocol.frames if protocol.frames is not None else math.inf
    picked: list[np.ndarray] = []
    times: list[float] = []
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

    for time, frame in _frames_with_time(container, stream, path, fps, progress):
        if first_time is None:
            first_time = time
        if previous is not None:
            take(until=time)
            if len(picked) >= wanted:
                return picked, times
        previous, previous_rgb = (time, frame), None
    progress.reached_end = True
    if previous is not None:
        # the last frame is shown for its own duration where the container says (variable rates), else 1/fps
        frame_duration = progress.last_duration or (1.0 / fps if fps else step)
        take(until=previous[0] + frame_duration)
    return picked, times
