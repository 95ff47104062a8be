"""Silent failures in the video layer: concealed corruption, vanished symlinks and LFS pointers, frames
duplicated by a too-high fps, intact variable-frame-rate files called truncated, globs that walk the disk,
and loop/pad/duplication notes that never reached the result."""

from __future__ import annotations

import glob as globmod
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import torch

from pytest_aigve.engine import CheckResult, EvalContext, evaluate_check
from pytest_aigve.errors import ParamError, SuiteError, VideoError
from pytest_aigve.examples import degrade, moving_scene, write_video
from pytest_aigve.metrics.registry import MetricRegistry
from pytest_aigve.protocol import ClipProtocol
from pytest_aigve.suite import Suite, load_suite
from pytest_aigve.videos import sources
from pytest_aigve.videos.cache import ClipCache
from pytest_aigve.videos.decode import (
    FPS_ERROR_RATIO,
    FPS_WARNING_RATIO,
    decode_clip,
)
from pytest_aigve.videos.sources import folder_set, glob_set, mixed_folder_sets

from .helpers import VideoFactory

LFS_POINTER = ("version https://git-lfs.github.com/spec/v1\n"
               "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
               "size 1048576\n")


def load(folder: Path, text: str) -> Suite:
    path = folder / "suite.yaml"
    path.write_text(text)
    return load_suite(path, MetricRegistry())


def evaluate(suite: Suite, index: int = 0) -> CheckResult:
    ctx = EvalContext(device=torch.device("cpu"), clips=ClipCache(10**8), registry=MetricRegistry(),
                      make_thumbnails=False)
    return evaluate_check(suite, suite.checks[index], ctx)


# --- 3: corrupt data that FFmpeg conceals -------------------------------------------------------------------


def _packets(path: Path) -> list[tuple[int, int, int]]:
    """(pts, byte offset, size) of every video packet."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [(int(p.pts or 0), int(p.pos or 0), int(p.size)) for p in container.demux(stream) if p.size]


def _flagged_by_ffmpeg(path: Path) -> tuple[list[int], bool]:
    """What FFmpeg itself says, read with plain PyAV: display indices of frames it flags as corrupt, and whether
    it stopped with an error. The oracle for the test, independent of pytest_aigve's decoder."""
    flagged: list[int] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for index, frame in enumerate(container.decode(stream)):
                if frame.is_corrupt:
                    flagged.append(index)
        except av.error.FFmpegError:
            return flagged, True
    return flagged, False


def damage_middle_of_mdat(clean: Path, target: Path, attempts: int = 40) -> tuple[int, int]:
    """Overwrite 32 bytes in the middle of the mdat box with random bytes (a bad copy, a flipped disk block).

    Garbage that happens to decode as valid H.264 syntax is invisible to any decoder, and garbage that breaks
    decoding outright already raised; what was scored as clean is the case in between, where FFmpeg detects the
    damage, conceals it and flags the frame. Returns (the display index of the frame whose packet was hit, the
    seed) for the first seed that gives that case."""
    data = clean.read_bytes()
    at = data.find(b"mdat")
    box_size = int.from_bytes(data[at - 4: at], "big")
    middle = at + 4 + (box_size - 8) // 2
    packets = _packets(clean)
    display_order = sorted(pts for pts, _, _ in packets)
    hit = next(pts for pts, pos, size in packets if pos <= middle < pos + size)
    for seed in range(attempts):
        damaged = bytearray(data)
        damaged[middle: middle + 32] = np.random.default_rng(seed).bytes(32)
        target.write_bytes(bytes(damaged))
        flagged, stopped = _flagged_by_ffmpeg(target)
        if flagged and not stopped:
            assert flagged[0] == display_order.index(hit)  # FFmpeg flags the frame whose data was damaged
            return flagged[0], seed
    pytest.fail(f"no damage FFmpeg conceals and flags in {attempts} tries")


@pytest.fixture
def damaged(tmp_path: Path) -> tuple[Path, Path, int]:
    """A clean H.264 mp4 and a copy with damage that FFmpeg conceals; the flagged frame's index."""
    frames = degrade(moving_scene(1, frames=24, size=(128, 128)), seed=101)
    clean = write_video(tmp_path / "ref" / "clip.mp4", frames, fps=12)
    bad = tmp_path / "gen" / "clip.mp4"
    bad.parent.mkdir()
    index, _ = damage_middle_of_mdat(clean, bad)
    return clean, bad, index


def test_concealed_corruption_is_a_bad_video_naming_the_frame(damaged: tuple[Path, Path, int]) -> None:
    clean, bad, index = damaged
    assert decode_clip(clean, ClipProtocol(frames=None)).decoded_frames == 24
    with pytest.raises(VideoError) as info:
        decode_clip(bad, ClipProtocol(frames=None))
    message = str(info.value)
    assert str(bad) in message and f"frame {index} " in message and "corrupt" in message
    assert "re-encode or replace" in message


def test_concealed_corruption_is_skipped_and_listed_or_an_error(damaged: tuple[Path, Path, int]) -> None:
    clean, _, index = damaged
    folder = clean.parent.parent
    for seed in (5, 6):
        frames = moving_scene(seed, frames=24, size=(128, 128))
        write_video(folder / "ref" / f"other_{seed}.mp4", frames)
        write_video(folder / "gen" / f"other_{seed}.mp4", degrade(frames, seed=seed))
    text = ("protocol: {frames: all}\non_bad_video: POLICY\nvideo_sets:\n  ref: {folder: ref}\n  gen: {folder: gen}\n"
            "checks:\n  - {metric: psnr, reference: ref, candidate: gen, min: 5}\n")
    result = evaluate(load(folder, text.replace("POLICY", "skip")))
    assert result.videos_used["gen"] == ["other_5.mp4", "other_6.mp4"]
    assert [s.label for s in result.skipped] == ["clip.mp4"]
    assert f"frame {index} " in result.skipped[0].reason
    with pytest.raises(VideoError, match=f"frame {index} "):
        evaluate(load(folder, text.replace("POLICY", "error")))


# --- 4: dangling symlinks, symlink loops, Git LFS pointers --------------------------------------------------


@pytest.fixture
def unfetched(tmp_path: Path, make_video: VideoFactory) -> Path:
    """A folder as a checkout leaves it when large files were not fetched."""
    folder = tmp_path / "videos"
    make_video("videos/good.mp4")
    make_video("videos/good_2.mp4", seed=1)
    annex_object = "../.git/annex/objects/Xq/9M/SHA256E-s4096--1f2e.mp4/SHA256E-s4096--1f2e.mp4"
    (folder / "annexed.mp4").symlink_to(annex_object)
    (folder / "moved.mp4").symlink_to("../elsewhere/clip.mp4")
    (folder / "loop.mp4").symlink_to("loop.mp4")
    (folder / "lfs.mp4").write_text(LFS_POINTER)
    return folder


BROKEN = ["annexed.mp4", "lfs.mp4", "loop.mp4", "moved.mp4"]


def test_folder_and_glob_sets_keep_broken_links_and_pointers(unfetched: Path) -> None:
    found = folder_set("v", {"folder": "videos"}, unfetched.parent)
    assert [v.label for v in found.videos] == sorted([*BROKEN, "good.mp4", "good_2.mp4"])
    globbed = glob_set("v", {"glob": "videos/*.mp4"}, unfetched.parent)
    assert sorted(v.label for v in globbed.videos) == sorted(f"videos/{n}" for n in [*BROKEN, "good.mp4",
                                                                                        "good_2.mp4"])


@pytest.mark.parametrize(("name", "fragments"), [
    ("annexed.mp4", ["dangling symlink", ".git/annex/objects", "git annex get"]),
    ("moved.mp4", ["dangling symlink", "elsewhere/clip.mp4"]),
    ("loop.mp4", ["symlink loop"]),
    ("lfs.mp4", ["Git LFS pointer, not the video: run `git lfs pull`"]),
])
def test_broken_entries_say_what_they_are(unfetched: Path, name: str, fragments: list[str]) -> None:
    with pytest.raises(VideoError) as info:
        decode_clip(unfetched / name, ClipProtocol(frames=8))
    message = str(info.value)
    assert str(unfetched / name) in message
    for fragment in fragments:
        assert fragment in message
    if name != "moved.mp4":
        assert "file not found" not in message


def test_broken_entries_are_skipped_and_listed_or_one_error_naming_them(unfetched: Path) -> None:
    text = ("protocol: {frames: 8}\non_bad_video: POLICY\nvideo_sets:\n  v: {folder: videos}\n"
            "checks:\n  - {metric: flicker, set: v, min: 0}\n")
    result = evaluate(load(unfetched.parent, text.replace("POLICY", "skip")))
    assert result.videos_used["v"] == ["good.mp4", "good_2.mp4"]
    reasons = {s.label: s.reason for s in result.skipped}
    assert sorted(reasons) == BROKEN
    assert "git lfs pull" in reasons["lfs.mp4"] and "git annex get" in reasons["annexed.mp4"]
    assert "symlink loop" in reasons["loop.mp4"]
    with pytest.raises(VideoError) as info:
        evaluate(load(unfetched.parent, text.replace("POLICY", "error")))
    message = str(info.value)
    for name in BROKEN:
        assert name in message
    assert "on_bad_video: skip" in message


def test_mixed_folder_keeps_a_dangling_generated_link(tmp_path: Path, make_video: VideoFactory) -> None:
    make_video("mixed/a.mp4")
    (tmp_path / "mixed" / "a_generated.mp4").symlink_to("../.git/annex/objects/x/y/SHA256E-s1--0.mp4")
    real, generated = mixed_folder_sets("s", {"mixed_folder": "mixed"}, tmp_path)
    assert [v.label for v in generated.videos] == ["a_generated.mp4"] and [v.label for v in real.videos] == ["a.mp4"]


# --- 5: fps far above the source rate -----------------------------------------------------------------------


@pytest.fixture
def eight_fps(make_video: VideoFactory) -> Path:
    return make_video("slow.mp4", frames=24, fps=8)


def test_fps_far_above_the_source_rate_is_an_error(eight_fps: Path) -> None:
    for fps in (1000.0, 8 * FPS_ERROR_RATIO + 1):
        with pytest.raises(VideoError) as info:
            decode_clip(eight_fps, ClipProtocol(frames=16, fps=fps))
        message = str(info.value)
        assert str(eight_fps) in message and f"fps {fps:g}" in message and "8 fps" in message
        assert f"{FPS_ERROR_RATIO:g}" in message and "lower 'fps'" in message


def test_fps_above_the_source_rate_is_a_note_with_the_repeats(eight_fps: Path) -> None:
    clip = decode_clip(eight_fps, ClipProtocol(frames=16, fps=16))
    repeats = int(np.sum(clip.timestamps[1:] == clip.timestamps[:-1]))
    assert repeats >= 7  # 16 fps from 8 fps shows every source frame twice
    assert len(clip.notes) == 1 and clip.notes[0].startswith("upsampled:")
    assert "fps 16 is 2x the source's 8 fps" in clip.notes[0] and f"{repeats} of 16 frames repeat" in clip.notes[0]
    edge = decode_clip(eight_fps, ClipProtocol(frames=12, fps=8 * FPS_WARNING_RATIO))
    assert len(edge.notes) == 1 and edge.notes[0].startswith("upsampled:")
    for fine in (ClipProtocol(frames=12, fps=8 * FPS_WARNING_RATIO - 1),
                 ClipProtocol(frames=8, fps=8 * FPS_ERROR_RATIO, stride=int(FPS_ERROR_RATIO))):
        assert decode_clip(eight_fps, fine).notes == []  # below the warning ratio; stride brings it back to 8


def test_fps_notes_reach_the_result_as_a_warning(tmp_path: Path, make_video: VideoFactory) -> None:
    make_video("gen/a.mp4", frames=24, fps=8)
    make_video("gen/b.mp4", frames=24, fps=8, seed=1)
    make_video("gen/c.mp4", frames=24, fps=16, seed=2)
    result = evaluate(load(tmp_path, "protocol: {frames: 16, fps: 16}\nvideo_sets:\n  gen: {folder: gen}\n"
                                     "checks:\n  - {metric: flicker, set: gen, min: 0}\n"))
    assert sorted(result.video_notes["gen"]) == ["a.mp4", "b.mp4"]
    assert all(n[0].startswith("upsampled:") for n in result.video_notes["gen"].values())
    summary = [w for w in result.result.warnings if "fps above the source rate" in w]
    assert len(summary) == 1 and "2 videos" in summary[0] and "a.mp4" in summary[0] and "c.mp4" not in summary[0]


# --- 7: variable frame rate ---------------------------------------------------------------------------------

VFR_GAPS_MS = [40, 120, 40, 200, 33, 33, 33, 250, 80, 40]


def write_vfr(path: Path, count: int = 30) -> list[float]:
    """H.264 with irregular frame times (ms time base); returns the presentation times in seconds."""
    frames = moving_scene(3, frames=count, size=(64, 64))
    pts = [0]
    for index in range(count - 1):
        pts.append(pts[-1] + VFR_GAPS_MS[index % len(VFR_GAPS_MS)])
    with av.open(str(path), mode="w") as container:
        stream: Any = container.add_stream("libx264", rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        stream.codec_context.time_base = Fraction(1, 1000)
        for image, stamp in zip(frames, pts, strict=True):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts, frame.time_base = stamp, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return [p / 1000 for p in pts]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_intact_variable_frame_rate_is_not_truncated(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"vfr{suffix}"
    times = write_vfr(path)
    clip = decode_clip(path, ClipProtocol(frames=None))
    assert clip.decoded_frames == 30
    np.testing.assert_allclose(clip.timestamps, times, atol=1e-3)
    looped = decode_clip(path, ClipProtocol(frames=40, short_video="loop"))
    assert looped.frames.shape[0] == 40 and looped.notes == ["loop: 30 -> 40 frames"]
    resampled = decode_clip(path, ClipProtocol(frames=None, fps=4))
    assert resampled.frames.shape[0] == int(times[-1] * 4) + 1


def test_truncated_variable_frame_rate_mkv_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "vfr.mkv"
    write_vfr(path, count=60)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(VideoError, match="truncated"):
        decode_clip(path, ClipProtocol(frames=None))
    with pytest.raises(VideoError, match="truncated"):
        decode_clip(path, ClipProtocol(frames=80, short_video="loop"))


# --- 14: globs confined to the suite's folder, bounded walks ------------------------------------------------


def test_glob_outside_the_suite_folder_is_an_error_unless_allowed(tmp_path: Path, make_video: VideoFactory) -> None:
    suite_dir = tmp_path / "suite"
    (suite_dir / "sub").mkdir(parents=True)
    make_video("outside/a.mp4")
    for pattern in (f"{tmp_path}/outside/*.mp4", "../outside/*.mp4", "sub/../../outside/*.mp4"):
        with pytest.raises(ParamError) as info:
            glob_set("v", {"glob": pattern}, suite_dir)
        message = str(info.value)
        assert info.value.key == "glob" and pattern in message and "allow_outside: true" in message
        allowed = glob_set("v", {"glob": pattern, "allow_outside": True}, suite_dir)
        assert [v.path.resolve() for v in allowed.videos] == [(tmp_path / "outside" / "a.mp4").resolve()]
    with pytest.raises(ParamError, match="'allow_outside' must be true or false"):
        glob_set("v", {"glob": "*.mp4", "allow_outside": "yes"}, suite_dir)


def test_root_glob_in_a_suite_names_the_pattern_and_the_line(tmp_path: Path, make_video: VideoFactory) -> None:
    make_video("gen/a.mp4")
    suite_dir = tmp_path / "suite"
    suite_dir.mkdir()
    text = "video_sets:\n  gen:\n    glob: '/**/*.mp4'\nchecks:\n  - {metric: flicker, set: gen}\n"
    with pytest.raises(SuiteError) as info:
        load(suite_dir, text)
    assert info.value.line == 3 and "'/**/*.mp4'" in str(info.value) and "outside" in str(info.value)
    ok = load(suite_dir, text.replace("'/**/*.mp4'", f"'{tmp_path}/gen/*.mp4'\n    allow_outside: true"))
    assert [v.label for v in ok.sets["gen"].videos] == [f"{tmp_path}/gen/a.mp4"]
    inside = load(suite_dir.parent, text.replace("'/**/*.mp4'", f"'{tmp_path}/gen/*.mp4'"))
    assert [v.label for v in inside.sets["gen"].videos] == ["gen/a.mp4"]  # absolute but inside: fine


def test_glob_matches_like_before(tmp_path: Path, make_video: VideoFactory) -> None:
    for name in ("a/x.mp4", "a/b/y.mp4", "a/b/c/z.mkv", "a/b/c/b/w.mp4", ".hidden/h.mp4", "a/.dot.mp4"):
        make_video(name)
    (tmp_path / "a" / "dir.mp4").mkdir()
    found = glob_set("v", {"glob": ["**/*.mp4", "a/b/**/*.mkv", "a/x.mp4"]}, tmp_path)
    assert [v.label for v in found.videos] == ["a/b/c/b/w.mp4", "a/b/y.mp4", "a/x.mp4", "a/b/c/z.mkv"]
    assert [v.key for v in found.videos] == ["w", "y", "x", "z"]
    # the standard library's glob (files only) is the reference for the matching rules
    for pattern in ("**", "**/*", "a/**/b/**/*.mp4", "*/[xy].mp4", "a/?/*.mp4", ".hidden/*.mp4", "a/.*.mp4",
                    "**/c/*"):
        expected = sorted({Path(m).relative_to(tmp_path).as_posix()  # glob repeats a file '**' reaches twice
                           for m in globmod.glob(str(tmp_path / pattern), recursive=True) if Path(m).is_file()})
        assert [v.label for v in glob_set("v", {"glob": pattern}, tmp_path).videos] == expected, pattern


class CountingScandir:
    """Wraps os.scandir to count the folders a walk opens."""

    def __init__(self) -> None:
        self.opened = 0
        self._scandir = os.scandir

    def __call__(self, path: Any) -> Any:
        self.opened += 1
        return self._scandir(path)


@pytest.mark.parametrize("spec", [{"glob": "**/*.mp4"}, {"folder": ".", "recursive": True}])
def test_walks_stop_at_the_scan_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      spec: dict[str, Any]) -> None:
    for folder in range(6):
        for index in range(10):
            path = tmp_path / f"d{folder}" / f"f{index}.txt"
            path.parent.mkdir(exist_ok=True)
            path.touch()
    counter = CountingScandir()
    monkeypatch.setattr(os, "scandir", counter)
    monkeypatch.setattr(sources, "MAX_SCANNED_PATHS", 25, raising=False)
    builder = glob_set if "glob" in spec else folder_set
    with pytest.raises(ParamError) as info:
        builder("v", spec, tmp_path)
    message = str(info.value)
    assert "more than 25 paths" in message and "narrow" in message
    assert counter.opened <= 4  # stopped while walking, not after listing all 7 folders


# --- notes: loop / pad / upsampling per video, and one warning ----------------------------------------------


def test_short_video_notes_are_recorded_per_video(tmp_path: Path, make_video: VideoFactory) -> None:
    make_video("ref/a.mp4", frames=6)
    make_video("ref/b.mp4", frames=20, seed=1)
    make_video("gen/a.mp4", frames=6, degraded=True)
    make_video("gen/b.mp4", frames=5, seed=1, degraded=True)
    suite = load(tmp_path, "protocol: {frames: 16, short_video: loop}\nvideo_sets:\n  ref: {folder: ref}\n"
                           "  gen: {folder: gen}\n"
                           "checks:\n  - {metric: psnr, reference: ref, candidate: gen, min: 5}\n")
    result = evaluate(suite)
    assert result.video_notes == {"ref": {"a.mp4": ["loop: 6 -> 16 frames"]},
                                  "gen": {"a.mp4": ["loop: 6 -> 16 frames"], "b.mp4": ["loop: 5 -> 16 frames"]}}
    summary = [w for w in result.result.warnings if w.startswith("short_video loop")]
    assert summary == ["short_video loop applied to 3 videos: a.mp4 (ref: 6 -> 16 frames), "
                       "a.mp4 (gen: 6 -> 16 frames), b.mp4 (gen: 5 -> 16 frames)"]
