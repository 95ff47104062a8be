"""The decode pipeline: pooled decoding equals serial decoding, errors stay with their video, per-call
statistics, the clip cache's streams, shared memory that never leaks, and seeking that never changes a clip."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from pytest_aigve.errors import VideoError
from pytest_aigve.examples import degrade, moving_scene, write_video
from pytest_aigve.protocol import ClipProtocol
from pytest_aigve.videos import decode
from pytest_aigve.videos.cache import ClipCache
from pytest_aigve.videos.decode import DecodedClip, decode_clip
from pytest_aigve.videos.pipeline import (
    ClipSource,
    DecodeResult,
    PooledSource,
    SerialSource,
    Ticket,
    default_decode_workers,
    make_source,
)
from pytest_aigve.videos.sources import Video

from .helpers import VideoFactory

SHM = Path("/dev/shm")
PROTOCOLS = [ClipProtocol(frames=None), ClipProtocol(frames=6, fps=8, start=0.25, stride=2),
             ClipProtocol(frames=30, short_video="loop")]


@pytest.fixture(scope="module")
def pooled() -> Iterator[PooledSource]:
    source = PooledSource(workers=2)
    yield source
    source.close()


@pytest.fixture
def videos(make_video: VideoFactory) -> list[Video]:
    sizes = [(48, 64), (64, 64), (32, 48), (48, 64), (64, 32)]
    paths = [make_video(f"v{i}.mp4", seed=i, frames=20 + 2 * i, size=size) for i, size in enumerate(sizes)]
    return [Video(path, path.stem, path.name) for path in paths]


def bad_videos(folder: Path) -> tuple[Video, Video]:
    empty = folder / "empty.mp4"
    empty.write_bytes(b"")
    noise = folder / "noise.mp4"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    return Video(empty, "empty", empty.name), Video(noise, "noise", noise.name)


def assert_same_clip(got: DecodedClip | VideoError, want: DecodedClip | VideoError) -> None:
    if isinstance(want, VideoError):
        assert isinstance(got, VideoError) and str(got) == str(want)
        return
    assert isinstance(got, DecodedClip), got
    assert got.frames.dtype == want.frames.dtype and np.array_equal(got.frames, want.frames)
    np.testing.assert_array_equal(got.timestamps, want.timestamps)
    assert (got.source_fps, got.source_size, got.decoded_frames, got.notes) == \
        (want.source_fps, want.source_size, want.decoded_frames, want.notes)


def serial_outcome(video: Video, protocol: ClipProtocol) -> DecodedClip | VideoError:
    try:
        return decode_clip(video.path, protocol)
    except VideoError as exc:
        return exc


def slabs_on_disk(source: PooledSource) -> list[str]:
    assert source.shm_prefix is not None
    return sorted(name for name in os.listdir(SHM) if name.startswith(source.shm_prefix))


class Counting(ClipSource):
    """Wraps a source and records the most decodes it ever had outstanding."""

    def __init__(self, inner: ClipSource) -> None:
        self.inner, self.workers, self.prefetch = inner, inner.workers, inner.prefetch
        self.outstanding: set[Ticket] = set()
        self.most = 0
        self.submitted = 0

    def submit(self, path: Path, protocol: ClipProtocol) -> Ticket:
        ticket = self.inner.submit(path, protocol)
        self.submitted += 1
        self.outstanding.add(ticket)
        self.most = max(self.most, len(self.outstanding))
        return ticket

    def result(self, ticket: Ticket) -> DecodeResult:
        self.outstanding.discard(ticket)
        return self.inner.result(ticket)

    def discard(self, tickets: Iterable[Ticket]) -> None:
        tickets = list(tickets)
        self.outstanding.difference_update(tickets)
        self.inner.discard(tickets)

    def close(self) -> None:
        self.inner.close()


# --- pooled decoding is serial decoding, in order -----------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=["native", "resampled", "looped"])
def test_pooled_clips_equal_serial_ones_bit_for_bit_and_in_order(pooled: PooledSource, videos: list[Video],
                                                                 protocol: ClipProtocol) -> None:
    jobs = [(video.path, protocol) for video in videos * 2]
    results = list(pooled.decode(jobs))
    assert len(results) == len(jobs)
    for video, result in zip(videos * 2, results, strict=True):
        assert_same_clip(result.outcome, serial_outcome(video, protocol))
        assert result.seconds > 0
    frames = results[0].outcome.frames  # type: ignore[union-attr]
    assert frames.flags.writeable and frames.flags.c_contiguous


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads the workers' memory maps (Linux)")
def test_workers_load_pyav_but_never_torch(pooled: PooledSource, videos: list[Video]) -> None:
    list(pooled.decode([(videos[0].path, PROTOCOLS[0])]))  # this process has torch (conftest imports it)
    for pid in pooled.worker_pids():
        maps = Path(f"/proc/{pid}/maps").read_text()
        assert "libavcodec" in maps and "libtorch" not in maps


def test_one_bad_file_among_good_ones_keeps_its_place(pooled: PooledSource, videos: list[Video],
                                                      tmp_path: Path) -> None:
    empty, noise = bad_videos(tmp_path)
    mixed = [videos[0], empty, videos[1], videos[2], noise, videos[3]]
    stream = ClipCache(10**8, pooled).stream(mixed, PROTOCOLS[0])
    got = list(stream)
    assert [video for video, _ in got] == mixed
    for video, outcome in got:
        assert_same_clip(outcome, serial_outcome(video, PROTOCOLS[0]))
    assert "file is empty (0 bytes)" in str(got[1][1]) and "not a readable video" in str(got[4][1])
    assert (stream.stats.decodes, stream.stats.failures, stream.stats.hits) == (4, 2, 0)


def test_a_cache_with_the_pooled_source_gets_what_a_serial_one_gets(pooled: PooledSource,
                                                                    videos: list[Video]) -> None:
    for protocol in PROTOCOLS:
        assert_same_clip(ClipCache(10**8, pooled).get(videos[2], protocol), serial_outcome(videos[2], protocol))


# --- the clip cache's streams --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["serial", "pooled"])
def test_interleaved_streams_each_count_their_own(kind: str, pooled: PooledSource, videos: list[Video],
                                                  tmp_path: Path) -> None:
    cache = ClipCache(10**8, pooled if kind == "pooled" else SerialSource())
    cache.get(videos[0], PROTOCOLS[0])  # in memory before the streams start
    before = (cache.stats.decodes, cache.stats.hits)
    empty, _ = bad_videos(tmp_path)
    first = cache.stream([videos[0], videos[1], videos[2]], PROTOCOLS[0])
    second = cache.stream([videos[3], videos[0], empty], PROTOCOLS[0])
    for _ in range(3):
        next(first)
        next(second)
    for stream in (first, second):
        with pytest.raises(StopIteration):
            next(stream)
    assert (first.stats.decodes, first.stats.hits, first.stats.failures) == (2, 1, 0)
    assert (second.stats.decodes, second.stats.hits, second.stats.failures) == (1, 1, 1)
    assert first.stats.decode_seconds > 0 and second.stats.decode_seconds > 0
    assert (cache.stats.decodes - before[0], cache.stats.hits - before[1]) == (3, 2)


@pytest.mark.parametrize("kind", ["serial", "pooled"])
def test_the_cache_serves_hits_without_decoding(kind: str, pooled: PooledSource, videos: list[Video],
                                                tmp_path: Path) -> None:
    source = Counting(pooled if kind == "pooled" else SerialSource())
    cache = ClipCache(10**8, source)
    empty, _ = bad_videos(tmp_path)
    first = list(cache.stream([*videos, empty], PROTOCOLS[1]))
    assert source.submitted == len(videos) + 1
    again = cache.stream([empty, *reversed(videos)], PROTOCOLS[1])
    second = dict((video.label, outcome) for video, outcome in again)
    assert source.submitted == len(videos) + 1  # nothing decoded, and the bad file failed once
    assert (again.stats.decodes, again.stats.hits, again.stats.failures) == (0, len(videos), 1)
    assert all(second[video.label] is outcome for video, outcome in first)


def test_streams_keep_at_most_prefetch_decodes_outstanding_and_decode_a_repeat_once(
        pooled: PooledSource, videos: list[Video]) -> None:
    source = Counting(pooled)
    order = [videos[0], videos[1], videos[1], videos[1], *videos[2:]]
    stream = ClipCache(0, source).stream(order, PROTOCOLS[0])  # a cache that keeps nothing
    outcomes = [outcome for _, outcome in stream]
    assert 2 <= source.most <= pooled.prefetch
    assert source.submitted == len(videos) and (stream.stats.decodes, stream.stats.hits) == (len(videos), 2)
    assert outcomes[2] is outcomes[1] and outcomes[3] is outcomes[1]


def test_memory_hits_come_before_the_decodes_ahead_finish(videos: list[Video]) -> None:
    class Slow(SerialSource):
        def result(self, ticket: Ticket) -> DecodeResult:
            time.sleep(0.3)
            return super().result(ticket)

    cache = ClipCache(10**8, Slow())
    cache.get(videos[0], PROTOCOLS[0])
    started = time.perf_counter()
    stream = cache.stream([videos[0], videos[1]], PROTOCOLS[0])
    assert next(stream)[0] == videos[0] and time.perf_counter() - started < 0.2
    assert isinstance(next(stream)[1], DecodedClip)


# --- shared memory --------------------------------------------------------------------------------------------


needs_dev_shm = pytest.mark.skipif(not SHM.is_dir(), reason="lists POSIX shared memory in /dev/shm (Linux)")


@needs_dev_shm
def test_an_abandoned_stream_leaks_no_shared_memory(videos: list[Video], make_video: VideoFactory) -> None:
    slow = [Video(path, path.stem, path.name)
            for path in (make_video(f"slow{i}.mp4", seed=i, frames=90, size=(192, 256)) for i in range(3))]
    source = PooledSource(workers=2)
    try:
        cache = ClipCache(0, source)
        cache.get(videos[0], PROTOCOLS[0])  # workers started
        stream = cache.stream([videos[0], *slow], PROTOCOLS[0])
        assert next(stream)[0] == videos[0]  # three slow decodes outstanding, two of them running
        pool = source._pool
        assert pool is not None and len(pool._jobs) == 3
        stream.close()
        assert pool._abandoned  # results still to come, to be freed when they do
        assert slabs_on_disk(source)
        clips = [outcome for _, outcome in cache.stream(videos, PROTOCOLS[0])]  # the pool hears the abandoned
        assert all(isinstance(clip, DecodedClip) for clip in clips)
        del clips, stream
        source.trim()  # every slab not holding a clip in use goes
        assert not pool._abandoned and slabs_on_disk(source) == []
    finally:
        source.close()


@needs_dev_shm
def test_a_dead_worker_fails_its_video_only_and_leaks_nothing(videos: list[Video], make_video: VideoFactory) -> None:
    slow = make_video("slow.mp4", frames=150, size=(192, 256))  # decodes for a while
    source = PooledSource(workers=1)
    try:
        cache = ClipCache(10**8, source)
        kept = cache.get(videos[0], PROTOCOLS[0])  # a clip in use, in a slab of the worker about to die
        ticket = source.submit(slow, PROTOCOLS[0])
        behind = source.submit(videos[1].path, PROTOCOLS[0])  # queued behind it on the same worker
        pool = source._pool
        assert pool is not None
        while not any(worker.running == ticket for worker in pool.workers):
            pool._pump()  # until the worker says it started the slow video
        (pid,) = source.worker_pids()
        os.kill(pid, signal.SIGKILL)
        outcome = source.result(ticket).outcome
        assert isinstance(outcome, VideoError)
        assert str(outcome) == (f"{slow}: the decode worker process was killed by SIGKILL while reading this "
                                "file; FFmpeg may have crashed on it: re-encode or replace the file (decoding in "
                                "this process, --aigve-decode-workers 1, shows the crash)")
        assert_same_clip(source.result(behind).outcome, serial_outcome(videos[1], PROTOCOLS[0]))
        assert source.worker_pids() != [pid]
        assert_same_clip(kept, serial_outcome(videos[0], PROTOCOLS[0]))  # its memory outlives the worker
        del kept, cache  # the last clips in use: their slabs go back (or, the worker's, are unmapped)
        source.trim()
        assert slabs_on_disk(source) == []
    finally:
        source.close()


@needs_dev_shm
def test_close_unlinks_every_slab_even_with_clips_in_use(videos: list[Video]) -> None:
    source = PooledSource(workers=2)
    clips = [outcome for _, outcome in ClipCache(10**8, source).stream(videos, PROTOCOLS[0])]
    prefix = source.shm_prefix
    source.close()
    assert prefix and not [name for name in os.listdir(SHM) if name.startswith(prefix)]
    for video, clip in zip(videos, clips, strict=True):
        assert_same_clip(clip, serial_outcome(video, PROTOCOLS[0]))  # mapped until they are garbage
    assert isinstance(ClipCache(10**8, source).get(videos[0], PROTOCOLS[0]), DecodedClip)  # starts again
    source.close()


# --- workers ---------------------------------------------------------------------------------------------------


def test_default_decode_workers_shares_the_cores_among_xdist_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    assert default_decode_workers() == 8
    for count, workers in (("3", 2), ("8", 1), ("16", 1), ("0", 8), ("many", 8)):
        monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", count)
        assert default_decode_workers() == workers, count


def test_make_source() -> None:
    assert isinstance(make_source(1), SerialSource)
    pooled = make_source(3)
    assert isinstance(pooled, PooledSource) and pooled.workers == 3 and pooled.prefetch == 6
    assert make_source(3) is pooled and pooled.shm_prefix is None  # one pool, started at its first job
    with pytest.raises(ValueError, match="decode workers must be >= 1, got 0"):
        make_source(0)


# --- seeking ----------------------------------------------------------------------------------------------------


@pytest.fixture
def keyframed(tmp_path: Path) -> Path:
    """48 frames at 12 fps, a keyframe every 6 frames (0.5 s), B-frames."""
    return write_video(tmp_path / "keyframed.mp4", moving_scene(3, frames=48, size=(48, 64)), fps=12,
                       options={"g": "6", "bf": "2", "sc_threshold": "0"})


def full_decode(path: Path, protocol: ClipProtocol) -> DecodedClip | VideoError:
    try:
        return decode._decode(path, protocol, decode._new_array, 0, skip=False)
    except VideoError as exc:
        return exc


def jumps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The keyframe pts every decode from now on resumes at, when it jumps."""
    landed: list[int] = []
    feed = decode._Reader.feed

    def spy(self: decode._Reader, packet: object, packets: Iterator[object]) -> list[object]:
        fed = feed(self, packet, packets)
        if self.landed is not None and self.landed not in landed:
            landed.append(self.landed)
        return fed

    monkeypatch.setattr(decode._Reader, "feed", spy)
    return landed


@pytest.mark.parametrize("start", [0.5, 0.7, 1.37, 2.9])
@pytest.mark.parametrize("protocol", [
    ClipProtocol(frames=8), ClipProtocol(frames=5, stride=2), ClipProtocol(frames=None),
    ClipProtocol(frames=8, fps=5), ClipProtocol(frames=8, fps=20), ClipProtocol(frames=None, fps=7.5),
    ClipProtocol(frames=40, short_video="pad"),
], ids=["native", "stride", "all", "fps5", "fps20-upsampled", "all-fps7.5", "padded"])
def test_seeking_picks_the_frames_and_times_of_a_full_decode(keyframed: Path, monkeypatch: pytest.MonkeyPatch,
                                                             start: float, protocol: ClipProtocol) -> None:
    protocol = ClipProtocol(**{**protocol.to_dict(), "start": start})
    landed = jumps(monkeypatch)
    assert_same_clip(serial_outcome(Video(keyframed, "k", "k.mp4"), protocol), full_decode(keyframed, protocol))
    assert len(landed) == 1  # it did jump: past the first keyframes, to the last one at or before the start
    with av.open(str(keyframed)) as container:
        time_base = container.streams.video[0].time_base
    assert time_base is not None
    keyframe_time = float(landed[0] * time_base)
    assert keyframe_time <= start + 1e-9 and start - keyframe_time < 0.5


def test_seeking_decodes_fewer_frames_but_counts_all(keyframed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[float] = []
    frames_of = decode._Reader.decode

    def counting(self: decode._Reader, packet: object) -> Iterator[tuple[float, object]]:
        for time_and_frame in frames_of(self, packet):
            decoded.append(time_and_frame[0])
            yield time_and_frame

    monkeypatch.setattr(decode._Reader, "decode", counting)
    protocol = ClipProtocol(frames=None, start=3.0)
    clip = decode_clip(keyframed, protocol)
    assert clip.decoded_frames == 48 and len(clip.frames) == 12  # the skipped frames count, as in a full decode
    assert len(decoded) < 24 and decoded[-12:] == [3.0 + i / 12 for i in range(12)]
    decoded.clear()
    assert_same_clip(clip, full_decode(keyframed, protocol))
    assert len(decoded) == 48


def test_seeking_falls_back_to_a_full_decode_when_the_frames_after_a_jump_are_off(
        keyframed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    came_out = decode._Reader._came_out

    def refuse(self: decode._Reader, frame: object) -> None:
        if self.landed is not None:
            raise decode._SkipFailed
        came_out(self, frame)

    monkeypatch.setattr(decode._Reader, "_came_out", refuse)
    protocol = ClipProtocol(frames=8, start=1.2)
    assert_same_clip(decode_clip(keyframed, protocol), full_decode(keyframed, protocol))


@pytest.mark.parametrize("start", [0.0, 1.1])
def test_seeking_keeps_truncation_detection(tmp_path: Path, start: float) -> None:
    noisy = degrade(moving_scene(0, frames=48, size=(64, 64)), seed=1, noise=20.0)
    path = write_video(tmp_path / "clip.mkv", noisy, fps=12, options={"g": "8"})
    assert decode_clip(path, ClipProtocol(frames=None, start=start)).decoded_frames == 48
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(VideoError) as info:
        decode_clip(path, ClipProtocol(frames=None, start=start))
    assert "truncated: the container promises 48 frames" in str(info.value)
    assert str(info.value) == str(full_decode(path, ClipProtocol(frames=None, start=start)))
