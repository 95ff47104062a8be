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

A clip that starts late (protocol.start > 0) is not decoded from the first frame: once the first frame's time
is known, the demuxer reads ahead to the last keyframe at or before the start and decoding resumes there. The
skipped packets still count (their timestamps go to the frame count, the truncation check and the measured
rate), and the frames after the jump are checked against the packets fed: when they are not exactly what a
full decode gives (a keyframe that is no clean entry point, an open GOP), the clip is decoded again from the
start. So the frames and timestamps picked never depend on the jump; what a jump does not see is damage in the
frames it skipped, as they are never decoded.

Frames are written, as they are picked, into one array from `allocate` (numpy's by default; shared memory in
the decode workers of pipeline.py), sized from the protocol or the container's frame count: no list of frames
is stacked at the end.
"""

from __future__ import annotations

import errno
import heapq
import itertools
import math
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.reformatter import VideoReformatter

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
    decoded_frames: int  # frames read up to where reading stopped (decoded, or skipped by a jump to the start)
    # what was done to make the clip, "kind: detail": "loop: 3 -> 16 frames", "pad: ...", "upsampled: ..."
    notes: list[str] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        return int(self.frames.nbytes)


Allocate = Callable[[tuple[int, ...]], np.ndarray]
"""allocate(shape) -> an uninitialised uint8 array of that shape for decode_clip to write frames into."""


def _new_array(shape: tuple[int, ...]) -> np.ndarray:
    return np.empty(shape, dtype=np.uint8)


@dataclass
class _Progress:
    """What decoding has seen so far: enough to tell a truncated file and the true source rate."""

    # presentation time of every frame read, seconds: decoded, or skipped by a jump to the start (not in order
    # then: sort before use)
    times: list[float] = field(default_factory=list)
    last_duration: float | None = None  # the last frame's display duration, where the container gives one
    reached_end: bool = False

    @property
    def decoded(self) -> int:
        return len(self.times)

    @property
    def first(self) -> float:
        return min(self.times)

    @property
    def last(self) -> float:
        return max(self.times)

    def interval(self) -> float | None:
        """The median gap between frames: robust to a variable frame rate's odd long or short gap."""
        if len(self.times) < 2:
            return None
        gaps = np.diff(np.sort(np.asarray(self.times)))
        gap = float(np.median(gaps[gaps > 0])) if (gaps > 0).any() else 0.0
        return gap or None

    def measured_fps(self) -> float | None:
        """Frames per second over what was read (the container's average rate can be a nominal 25)."""
        span = self.last - self.first if len(self.times) >= 2 else 0.0
        return (len(self.times) - 1) / span if span > 0 else None


class _FrameStore:
    """The distinct picked frames, written into one array from `allocate` as they are picked; `clip` gives the
    clip's frames in their final order (the array itself when it holds exactly them, else a gathered copy)."""

    def __init__(self, path: Path, allocate: Allocate, capacity: int, threads: int) -> None:
        self._path = path
        self._allocate = allocate
        self._capacity = max(capacity, 1)
        self._array: np.ndarray | None = None
        self.count = 0
        # one converter for every frame (VideoFrame.to_ndarray sets one up per frame); same output
        self._reformatter = VideoReformatter()
        self._threads = threads or None

    def add(self, frame: Any) -> int:
        """Store a decoded frame in RGB; returns its index for `clip`."""
        rgb = self._reformatter.reformat(frame, format="rgb24", threads=self._threads).to_ndarray()
        if self._array is None:
            self._array = self._allocate((self._capacity, *rgb.shape))
        elif rgb.shape != self._array.shape[1:]:
            (height, width), (new_height, new_width) = self._array.shape[1:3], rgb.shape[:2]
            raise VideoError(self._path, f"the frame size changes from {width}x{height} to {new_width}x"
                                         f"{new_height} at picked frame {self.count}",
                             "re-encode the video at one size")
        if self.count == len(self._array):  # the container's count was short: grow (a copy, never a wrong clip)
            grown = self._allocate((2 * len(self._array), *rgb.shape))
            grown[: self.count] = self._array
            self._array = grown
        self._array[self.count] = rgb
        self.count += 1
        return self.count - 1

    def clip(self, order: list[int]) -> np.ndarray:
        assert self._array is not None
        if len(order) == len(self._array) and order == list(range(len(order))):
            return self._array
        frames = self._allocate((len(order), *self._array.shape[1:]))
        np.take(self._array, order, axis=0, out=frames)
        return frames


def _capacity(stream: Any, protocol: ClipProtocol, fps: float) -> int:
    """How many distinct frames the clip will hold, to size its array once: the protocol's count, bounded by the
    container's frame count where it has one (a wrong estimate costs a copy, never a wrong clip)."""
    total = int(stream.frames or 0)
    if not total:
        return protocol.frames or 64
    remaining = max(total - int(protocol.start * fps), 1)
    if protocol.fps is None:
        distinct = -(-remaining // protocol.stride)
    else:
        seconds = remaining / fps if fps else remaining / protocol.fps
        distinct = min(remaining, math.floor(seconds * protocol.fps / protocol.stride + _EPS) + 1)
    return min(protocol.frames, distinct) if protocol.frames is not None else distinct


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
    reached = progress.last + (progress.last_duration or interval)
    if end - reached <= 1.5 * interval + 1e-3:  # one lost frame is within slack, as with a frame count
        return None
    span = end - progress.first
    count = f"{round(span * fps)} frames ({span:.2f} s at {fps:g} fps)" if fps else f"{span:.2f} s"
    return (f"the container promises {count} but decoding ends at {reached - progress.first:.2f} s "
            f"after {progress.decoded} frames")


class _SkipFailed(Exception):
    """The frames after a jump to a keyframe are not what a full decode gives: decode from the start."""


def _frames_with_time(container: Any, stream: Any, path: Path, fps: float, progress: _Progress,
                      start: float = 0.0, skip: bool = False) -> Iterator[tuple[float, Any]]:
    """(timestamp, frame) pairs in presentation order; a missing timestamp falls back to index / fps. Records
    each frame in `progress`, and stops on data FFmpeg reports as damaged. With `skip`, jumps over the packets
    before `start` (see the module docstring) and raises _SkipFailed when that would change what is read."""
    reader = _Reader(stream, path, fps, progress, start if skip else 0.0)
    try:
        packets = iter(container.demux(stream))
        for packet in packets:
            for fed in reader.feed(packet, packets):
                yield from reader.decode(fed)
        reader.finish()
    except av.error.FFmpegError as exc:
        if reader.landed is not None:
            raise _SkipFailed from None
        raise VideoError(path, f"corrupt video data after frame {progress.decoded} (FFmpeg: {_ffmpeg_text(exc)})",
                         "re-encode or replace the file") from None


class _Reader:
    """Decodes packets for _frames_with_time; keeps the pts of the packets sent to the decoder whose frames have
    not come out yet (a min-heap: frames come out in pts order), which tells the frames a jump discards and
    checks that every frame after a jump comes out, exactly once."""

    def __init__(self, stream: Any, path: Path, fps: float, progress: _Progress, start: float) -> None:
        self.stream, self.path, self.fps, self.progress = stream, path, fps, progress
        self.start = start
        self.jump_possible = start > 0 and stream.time_base is not None
        # once the first frame is known: the pts from which frames are needed (at start - _EPS, as the pickers
        # compare), and the latest keyframe pts decoding may resume at (start + _EPS)
        self.needed: int | None = None
        self.latest: int | None = None
        self.waiting: list[int] = []  # pts of packets sent to the decoder whose frames have not come out
        self.landed: int | None = None  # pts of the keyframe decoding resumed at, after a jump

    def _seconds(self, pts: int) -> float:
        return float(pts * self.stream.time_base)

    def feed(self, packet: Any, packets: Iterator[Any]) -> list[Any]:
        """The packets to decode next: `packet`, or, once the first frame's time is known, the packets from the
        last keyframe at or before the start (reading ahead in `packets`)."""
        if not self.jump_possible or self.latest is None:
            return [packet]
        self.jump_possible = False  # decided here, once
        pending = [packet]
        keyframe = False
        while pending[-1].size:  # the empty packet at the end flushes the decoder
            last = pending[-1]
            if last.is_keyframe and last.pts is not None and last.pts <= self.latest and \
                    self._unneeded(pending[:-1]):
                self._skip([p.pts for p in pending[:-1] if p.size])  # never decoded
                pending, keyframe = [last], True  # only one GOP of packets is held
            clock = last.dts if last.dts is not None else last.pts
            if clock is None or clock > self.latest:  # packets come in dts order: no later keyframe is early enough
                break
            following = next(packets, None)
            if following is None:
                break
            pending.append(following)
        if not keyframe:
            self.waiting = []  # no jump: stop tracking
            return pending
        self._skip(self.waiting)  # sent to the decoder, flushed unseen
        self.waiting = []
        self.stream.codec_context.flush_buffers()
        self.landed = pending[0].pts
        return pending

    def _unneeded(self, packets: list[Any]) -> bool:
        """Whether no frame of these packets, nor any waiting in the decoder, is needed (a keyframe within _EPS
        after the start could have a needed frame before it)."""
        assert self.needed is not None
        return all(p.pts is not None and p.pts < self.needed for p in packets if p.size) and \
            all(pts < self.needed for pts in self.waiting)

    def _skip(self, skipped: list[int]) -> None:
        """Frames not decoded still count: their times go to `progress`."""
        self.progress.times.extend(self._seconds(pts) for pts in skipped)

    def decode(self, packet: Any) -> Iterator[tuple[float, Any]]:
        tracking = self.jump_possible or self.landed is not None
        if tracking and packet.size:
            if packet.pts is None:
                self.jump_possible = False
                if self.landed is not None:
                    raise _SkipFailed
            else:
                heapq.heappush(self.waiting, packet.pts)
        for frame in self.stream.decode(packet):
            time = frame.time
            if time is None:
                time = self.progress.decoded / self.fps if self.fps else float(self.progress.decoded)
            if tracking:
                self._came_out(frame)
            # FFmpeg conceals damaged data (copies blocks from neighbours) and flags the frame; H.264 and
            # MPEG-4 do so when error concealment runs, which FFmpeg enables except under slice threading
            # (decode_clip asks for frame threads, or for one thread: no threading)
            if frame.is_corrupt:
                if self.landed is not None and frame.pts is not None and frame.pts >= self.landed:
                    raise _SkipFailed  # a full decode says whether the file is damaged
                if self.landed is None:
                    raise VideoError(self.path, f"corrupt video data in frame {self.progress.decoded} (at "
                                                f"{float(time):.3f} s): FFmpeg found damaged data and concealed it",
                                     "re-encode or replace the file; a concealed frame is a guess and is never "
                                     "scored")
            self.progress.times.append(float(time))
            duration = getattr(frame, "duration", None)
            self.progress.last_duration = (float(duration * frame.time_base)
                                           if duration and frame.time_base is not None else None)
            if self.latest is None and self.jump_possible and frame.pts is not None:
                self.needed = frame.pts + math.ceil((self.start - _EPS) / self.stream.time_base)
                self.latest = frame.pts + math.floor((self.start + _EPS) / self.stream.time_base)
            yield float(time), frame

    def _came_out(self, frame: Any) -> None:
        pts = frame.pts
        if pts is None or frame.time_base != self.stream.time_base:
            self.jump_possible = False
            if self.landed is not None:
                raise _SkipFailed
            return
        while self.waiting and self.waiting[0] < pts:  # frames that did not come out
            missed = heapq.heappop(self.waiting)
            if self.landed is None:
                self.jump_possible = False  # the decoder drops frames: a jump could not be checked
            elif missed >= self.landed:
                raise _SkipFailed  # a frame after the jump is missing
            else:
                self._skip([missed])  # an open GOP's leading picture, undecodable without the previous GOP
        if self.waiting and self.waiting[0] == pts:
            heapq.heappop(self.waiting)
        elif self.landed is not None and pts >= self.landed:
            raise _SkipFailed  # a frame no packet fed after the jump accounts for
        else:
            self.jump_possible = False

    def finish(self) -> None:
        """At the end of the stream: a frame fed after the jump that never came out means the jump changed what
        is read."""
        if self.landed is None:
            return
        if any(missed >= self.landed for missed in self.waiting):
            raise _SkipFailed
        self._skip(self.waiting)


def decode_clip(path: Path, protocol: ClipProtocol, allocate: Allocate | None = None,
                threads: int = 0) -> DecodedClip:
    """The clip `protocol` cuts from the video at `path`; a VideoError says why the video cannot give one.

    allocate: makes the uint8 arrays frames are written into (numpy's by default); the clip's frames are the
              array of its last call, whole.
    threads:  decoder (and colour conversion) threads; 0: FFmpeg's choice, about one per core. 1: no threading
              at all, the least CPU per frame (concealed damage is flagged either way).
    """
    try:
        return _decode(path, protocol, allocate or _new_array, threads, skip=True)
    except _SkipFailed:
        return _decode(path, protocol, allocate or _new_array, threads, skip=False)


def _decode(path: Path, protocol: ClipProtocol, allocate: Allocate, threads: int, skip: bool) -> DecodedClip:
    container = _open(path)
    progress = _Progress()
    try:
        if not container.streams.video:
            raise VideoError(path, "has no video stream (audio or data only)", "use a video file")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if threads:
            stream.thread_count = threads
        fps = _source_fps(stream)
        store = _FrameStore(path, allocate, _capacity(stream, protocol, fps), threads)
        picked, times = _pick_frames(container, stream, path, protocol, fps, progress, store, skip)
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
    frames = store.clip(picked)
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


def _complete_short_clip(path: Path, picked: list[int], times: list[float], protocol: ClipProtocol,
                         fps: float, decoded: int) -> tuple[list[int], list[float], str]:
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
                 progress: _Progress, store: _FrameStore, skip: bool) -> tuple[list[int], list[float]]:
    """The picked frames (indices into `store`, which holds them in RGB) and their timestamps; `progress` records
    what was read and whether EOF was hit. With `skip`, packets before the start are not decoded."""
    frames = _frames_with_time(container, stream, path, fps, progress, protocol.start, skip)
    if protocol.fps is None:
        return _pick_native(frames, protocol, progress, store)
    return _pick_resampled(frames, protocol, fps, progress, store)


def _pick_native(frames: Iterator[tuple[float, Any]], protocol: ClipProtocol, progress: _Progress,
                 store: _FrameStore) -> tuple[list[int], list[float]]:
    picked: list[int] = []
    times: list[float] = []
    first_time: float | None = None
    position = 0  # index among frames at or after `start`
    for time, frame in frames:
        first_time = time if first_time is None else first_time
        if time - first_time < protocol.start - _EPS:
            continue
        if position % protocol.stride == 0:
            picked.append(store.add(frame))
            times.append(time - first_time)
            if protocol.frames is not None and len(picked) == protocol.frames:
                return picked, times
        position += 1
    progress.reached_end = True
    return picked, times


def _pick_resampled(frames: Iterator[tuple[float, Any]], protocol: ClipProtocol, fps: float,
                    progress: _Progress, store: _FrameStore) -> tuple[list[int], list[float]]:
    assert protocol.fps is not None
    step = protocol.stride / protocol.fps
    wanted = protocol.frames if protocol.frames is not None else math.inf
    picked: list[int] = []
    times: list[float] = []
    first_time: float | None = None
    previous: tuple[float, Any] | None = None
    previous_index: int | None = None  # the previous frame's place in `store`, once picked

    def take(until: float) -> None:
        """Assign the previous frame to every target time before `until`."""
        nonlocal previous_index
        assert previous is not None and first_time is not None
        while len(picked) < wanted:
            target = first_time + protocol.start + len(picked) * step
            if target < previous[0] - _EPS or target >= until - _EPS:
                return
            if previous_index is None:
                previous_index = store.add(previous[1])
            picked.append(previous_index)
            times.append(previous[0] - first_time)

    for time, frame in frames:
        if first_time is None:
            first_time = time
        if previous is not None:
            take(until=time)
            if len(picked) >= wanted:
                return picked, times
        previous, previous_index = (time, frame), None
    progress.reached_end = True
    if previous is not None:
        # the last frame is shown for its own duration where the container says (variable rates), else 1/fps
        frame_duration = progress.last_duration or (1.0 / fps if fps else step)
        take(until=previous[0] + frame_duration)
    return picked, times
