"""Decoding by the clip protocol, and every bad-video case, on real encoded files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pytest_aigve.errors import VideoError
from pytest_aigve.examples import degrade, moving_scene, write_video
from pytest_aigve.protocol import ClipProtocol
from pytest_aigve.videos.cache import ClipCache
from pytest_aigve.videos.decode import decode_clip
from pytest_aigve.videos.sources import Video

from .helpers import indexed_frames


def source_indices(frames: np.ndarray) -> list[int]:
    """Recover which source frame each decoded frame was (frame i is grey level 8*i+8)."""
    return [round((float(f.mean()) - 8) / 8) for f in frames]


@pytest.fixture
def indexed_video(tmp_path: Path) -> Path:
    return write_video(tmp_path / "indexed.mp4", indexed_frames(24), fps=12)


def test_native_frames_with_start_and_stride(indexed_video: Path) -> None:
    clip = decode_clip(indexed_video, ClipProtocol(frames=5, start=0.5, stride=2))
    assert source_indices(clip.frames) == [6, 8, 10, 12, 14]
    assert clip.source_fps == pytest.approx(12) and clip.frames.dtype == np.uint8
    np.testing.assert_allclose(clip.timestamps, np.array([6, 8, 10, 12, 14]) / 12)


def test_resamples_by_timestamps_not_by_assumed_rate(indexed_video: Path) -> None:
    # 12 fps -> 8 fps: target time k/8 shows source frame floor(1.5 k)
    clip = decode_clip(indexed_video, ClipProtocol(frames=16, fps=8))
    assert source_indices(clip.frames) == [int(1.5 * k) for k in range(16)]
    # 12 fps -> 24 fps repeats frames; stride 3 at 24 fps is 8 fps again
    clip = decode_clip(indexed_video, ClipProtocol(frames=6, fps=24))
    assert source_indices(clip.frames) == [0, 0, 1, 1, 2, 2]
    clip = decode_clip(indexed_video, ClipProtocol(frames=4, fps=24, stride=3))
    assert source_indices(clip.frames) == [0, 1, 3, 4]


def test_all_frames(indexed_video: Path) -> None:
    clip = decode_clip(indexed_video, ClipProtocol(frames=None))
    assert source_indices(clip.frames) == list(range(24)) and clip.decoded_frames == 24


def test_short_video_is_an_error_by_default(indexed_video: Path) -> None:
    with pytest.raises(VideoError) as info:
        decode_clip(indexed_video, ClipProtocol(frames=40, fps=8))
    message = str(info.value)
    assert str(indexed_video) in message
    assert "too short: 16 of 40 frames available at 8 fps" in message
    assert "the video has 24 frames at 12 fps" in message and "short_video: loop" in message


@pytest.mark.parametrize(("policy", "expected"), [
    ("loop", [18, 20, 22, 18, 20, 22]),
    ("pad", [18, 20, 22, 22, 22, 22]),
])
def test_short_video_loop_and_pad(indexed_video: Path, policy: str, expected: list[int]) -> None:
    clip = decode_clip(indexed_video, ClipProtocol(frames=6, start=1.5, stride=2, short_video=policy))  # type: ignore[arg-type]
    assert source_indices(clip.frames) == expected
    assert clip.notes == [f"{policy}: 3 -> 6 frames"]


def expect_video_error(path: Path, *fragments: str) -> None:
    with pytest.raises(VideoError) as info:
        decode_clip(path, ClipProtocol(frames=8))
    assert str(path) in str(info.value)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    expect_video_error(tmp_path / "nope.mp4", "file not found")


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.touch()
    expect_video_error(path, "file is empty (0 bytes)")


def test_not_a_video_with_a_video_extension(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    expect_video_error(path, "not a readable video (FFmpeg:", "re-encode or replace")


def test_truncated_mp4(indexed_video: Path) -> None:
    data = indexed_video.read_bytes()
    indexed_video.write_bytes(data[: len(data) // 2])
    expect_video_error(indexed_video, "not a readable video")


def test_truncated_mkv_is_caught_by_frame_count(tmp_path: Path) -> None:
    # a cut mkv opens and decodes silently with fewer frames: compare with the promised duration
    noisy = degrade(moving_scene(0, frames=48, size=(64, 64)), seed=1, noise=20.0)
    path = write_video(tmp_path / "clip.mkv", noisy, fps=12)
    full = decode_clip(path, ClipProtocol(frames=None))
    assert full.decoded_frames == 48
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(VideoError) as info:
        decode_clip(path, ClipProtocol(frames=None))
    assert "truncated: the container promises 48 frames" in str(info.value)
    with pytest.raises(VideoError, match="truncated"):
        decode_clip(path, ClipProtocol(frames=40))


def test_single_frame_video(tmp_path: Path) -> None:
    path = write_video(tmp_path / "still.mp4", indexed_frames(1))
    expect_video_error(path, "has a single frame", "at least 2 frames")


def test_start_beyond_the_end(indexed_video: Path) -> None:
    with pytest.raises(VideoError, match="too short: 0 of 4 frames"):
        decode_clip(indexed_video, ClipProtocol(frames=4, start=5.0))


def test_clip_cache_decodes_once_and_remembers_failures(tmp_path: Path, indexed_video: Path) -> None:
    cache = ClipCache(max_bytes=10**8)
    video = Video(indexed_video, "indexed", "indexed.mp4")
    first = cache.get(video, ClipProtocol(frames=8))
    assert cache.get(video, ClipProtocol(frames=8, resize=(16, 16))) is first  # resize happens after the cache
    assert (cache.stats.decodes, cache.stats.hits) == (1, 1)
    cache.get(video, ClipProtocol(frames=4))
    assert cache.stats.decodes == 2
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"")
    for _ in range(2):
        with pytest.raises(VideoError):
            cache.get(Video(bad, "bad", "bad.mp4"), ClipProtocol(frames=8))
    assert cache.stats.decodes == 2


def test_clip_cache_respects_its_byte_budget(indexed_video: Path) -> None:
    clip_bytes = 8 * 32 * 32 * 3
    cache = ClipCache(max_bytes=clip_bytes)
    video = Video(indexed_video, "indexed", "indexed.mp4")
    cache.get(video, ClipProtocol(frames=8))
    cache.get(video, ClipProtocol(frames=8, start=0.5))
    cache.get(video, ClipProtocol(frames=8))
    assert cache.stats.decodes == 3
