"""Suite parsing: the format, and every bad-suite message (file, line, what, how to fix)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_aigve.errors import SuiteError
from pytest_aigve.metrics.registry import MetricRegistry
from pytest_aigve.protocol import ClipProtocol
from pytest_aigve.suite import load_suite


def write_suite(folder: Path, text: str, name: str = "suite.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


@pytest.fixture
def two_sets(tmp_path: Path, make_video) -> Path:
    for index in range(2):
        make_video(f"ref/clip_{index}.mp4", seed=index)
        make_video(f"gen/clip_{index}.mp4", seed=index, degraded=True)
    return tmp_path


def load(path: Path):
    return load_suite(path, MetricRegistry())


def error_of(path: Path) -> SuiteError:
    with pytest.raises(SuiteError) as info:
        load(path)
    return info.value


BASIC = """\
suite: demo
protocol:
  frames: 8
  fps: 6
video_sets:
  ref: {folder: ref}
  gen: {glob: "gen/*.mp4"}
checks:
  - metric: flicker
    set: gen
    min: 0.5
  - metric: psnr
    reference: ref
    candidate: gen
    min: 20
    protocol: {frames: 4, resize: [32, 48], resize_mode: center_crop}
"""


def test_parses_sets_checks_and_protocol_overrides(two_sets: Path) -> None:
    suite = load(write_suite(two_sets, BASIC))
    assert suite.name == "demo"
    assert [v.label for v in suite.sets["ref"].videos] == ["clip_0.mp4", "clip_1.mp4"]
    assert [c.id for c in suite.checks] == ["flicker[gen]", "psnr[ref-vs-gen]"]
    assert suite.checks[0].protocol == ClipProtocol(frames=8, fps=6.0)
    assert suite.checks[1].protocol == ClipProtocol(frames=4, fps=6.0, resize=(32, 48), resize_mode="center_crop")
    assert suite.checks[0].threshold.min == 0.5 and suite.checks[0].line == 9
    assert [(r.key, c.key) for r, c in suite.checks[1].pairs] == [("clip_0", "clip_0"), ("clip_1", "clip_1")]


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = write_suite(tmp_path, "video_sets:\n  a: {folder: x}\nchecks:\n  - metric: [flicker\n    set: a\n")
    error = error_of(path)
    assert error.line is not None and error.line >= 4
    assert str(error).startswith(f"{path}:{error.line}: invalid YAML")


def test_unknown_metric_lists_known_ones(two_sets: Path) -> None:
    error = error_of(write_suite(two_sets, BASIC.replace("metric: flicker", "metric: flickr")))
    assert error.line == 9
    assert "unknown metric 'flickr'" in str(error) and "did you mean 'flicker'" in str(error)
    assert f"known: {', '.join(MetricRegistry().names())}" in str(error)


@pytest.mark.parametrize(("old", "new", "line", "hint"), [
    ("    min: 0.5", "    mni: 0.5", 11, "did you mean 'min'"),
    ("  frames: 8", "  frame: 8", 3, "did you mean 'frames'"),
    ("suite: demo", "suit: demo", 1, "did you mean 'suite'"),
    ("  ref: {folder: ref}", "  ref: {folder: ref, recursve: true}", 6, "did you mean 'recursive'"),
])
def test_unknown_keys_suggest_the_close_match(two_sets: Path, old: str, new: str, line: int, hint: str) -> None:
    error = error_of(write_suite(two_sets, BASIC.replace(old, new)))
    assert error.line == line
    assert "unknown" in str(error) and hint in str(error)


def test_unknown_metric_parameter(two_sets: Path) -> None:
    text = BASIC.replace("    min: 20\n", "    min: 20\n    params: {max_bd: 90}\n")
    error = error_of(write_suite(two_sets, text))
    assert "metric 'psnr' has no parameter 'max_bd'" in str(error) and "did you mean 'max_db'" in str(error)


def test_bad_protocol_value(two_sets: Path) -> None:
    error = error_of(write_suite(two_sets, BASIC.replace("  fps: 6", "  fps: -3")))
    assert error.line == 4 and "'fps' must be a positive number" in str(error)


def test_missing_folder(two_sets: Path) -> None:
    error = error_of(write_suite(two_sets, BASIC.replace("{folder: ref}", "{folder: nowhere}")))
    assert error.line == 6
    assert "folder not found" in str(error) and "relative to the suite file" in str(error)


def test_empty_set(two_sets: Path) -> None:
    (two_sets / "empty").mkdir()
    (two_sets / "empty" / "notes.txt").write_text("no videos here")
    error = error_of(write_suite(two_sets, BASIC.replace("{folder: ref}", "{folder: empty}")))
    assert error.line == 6 and "video set 'ref' is empty" in str(error)


def test_empty_glob(two_sets: Path) -> None:
    error = error_of(write_suite(two_sets, BASIC.replace('"gen/*.mp4"', '"gen/*.webm"')))
    assert error.line == 7 and "video set 'gen' is empty" in str(error)


def test_unknown_set_reference(two_sets: Path) -> None:
    error = error_of(write_suite(two_sets, BASIC.replace("    set: gen", "    set: generated")))
    assert error.line == 10 and "unknown video set 'generated'" in str(error) and "defined: ref, gen" in str(error)


def test_paired_metric_needs_two_sets(two_sets: Path) -> None:
    text = BASIC.replace("    reference: ref\n    candidate: gen\n", "    set: gen\n")
    error = error_of(write_suite(two_sets, text))
    assert "compares two sets" in str(error)


def test_duplicate_check_ids(two_sets: Path) -> None:
    text = BASIC + "  - metric: flicker\n    set: gen\n"
    error = error_of(write_suite(two_sets, text))
    assert error.line == 17 and "duplicate check 'flicker[gen]' (first on line 9)" in str(error)


def test_min_above_max(two_sets: Path) -> None:
    error = error_of(write_suite(two_sets, BASIC.replace("    min: 0.5", "    min: 0.5\n    max: 0.1")))
    assert "min 0.5 is above max 0.1" in str(error)


def test_unmatched_pairs_between_sets(two_sets: Path, make_video) -> None:
    make_video("gen/extra.mp4")
    error = error_of(write_suite(two_sets, BASIC))
    assert error.line == 12
    assert "1 unmatched video(s) between 'ref' and 'gen'" in str(error)
    assert "extra.mp4: no video 'extra' in reference set 'ref'" in str(error)
    assert "on_bad_video: skip" in str(error)


def test_unmatched_pairs_skipped_when_asked(two_sets: Path, make_video) -> None:
    make_video("gen/extra.mp4")
    suite = load(write_suite(two_sets, "on_bad_video: skip\n" + BASIC))
    check = suite.checks[1]
    assert len(check.pairs) == 2 and [s.label for s in check.unpaired] == ["gen/extra.mp4"]


def test_annotation_json_set_with_prompts_and_misspelled_key(tmp_path: Path, make_video) -> None:
    make_video("videos/a.mp4")
    make_video("videos/b_gen.mp4")
    entries = [{"video_path_pd": "b_gen.mp4", "video_path_gt": "a.mp4", "prompt_gt": "a cat"}]
    (tmp_path / "ann.json").write_text(json.dumps({"metainfo": {}, "datset_list": entries}))
    text = """\
video_sets:
  gen: {annotations: ann.json, video_dir: videos}
  ref: {annotations: ann.json, video_dir: videos, role: reference}
checks:
  - {metric: psnr, reference: ref, candidate: gen}
"""
    suite = load(write_suite(tmp_path, text))
    gen, ref = suite.sets["gen"].videos[0], suite.sets["ref"].videos[0]
    assert gen.path == tmp_path / "videos" / "b_gen.mp4" and gen.prompt == "a cat"
    assert ref.path == tmp_path / "videos" / "a.mp4" and gen.key == ref.key == "a"
    assert len(suite.checks[0].pairs) == 1


def test_unreadable_annotation_json(tmp_path: Path) -> None:
    (tmp_path / "ann.json").write_text('{"data_list": [\n  {"video_path_pd": "a.mp4",}\n]}')
    error = error_of(write_suite(tmp_path, "video_sets:\n  gen: {annotations: ann.json}\n"
                                           "checks:\n  - {metric: flicker, set: gen}\n"))
    assert error.line == 2
    assert "ann.json is not valid JSON (line 2" in str(error)


def test_annotation_json_without_a_list(tmp_path: Path) -> None:
    (tmp_path / "ann.json").write_text('{"items": []}')
    error = error_of(write_suite(tmp_path, "video_sets:\n  gen: {annotations: ann.json}\n"
                                           "checks:\n  - {metric: flicker, set: gen}\n"))
    assert "no list under data_list / datset_list / dataset_list (found: ['items'])" in str(error)


MIXED = """\
video_sets:
  pairs: {mixed_folder: mixed, suffixes: [generated, synthetic]}
checks:
  - {metric: ssim, reference: pairs.real, candidate: pairs.generated}
"""


def test_mixed_folder_pairs_by_suffix(tmp_path: Path, make_video) -> None:
    make_video("mixed/cat.mp4")
    make_video("mixed/cat_generated.webm", codec="libvpx-vp9", pix_fmt="yuv420p")
    make_video("mixed/cat.webm", codec="libvpx-vp9", pix_fmt="yuv420p")
    make_video("mixed/Dog.mp4")
    make_video("mixed/Dog-SYNTHETIC.mp4")
    make_video("mixed/regenerated.mp4", seed=3)  # not a suffix match: a real video with no partner
    error = error_of(write_suite(tmp_path, MIXED))
    assert "unmatched file(s)" in str(error) and "regenerated.mp4" in str(error)
    assert "cat.mp4: no generated video" in str(error)  # the .webm real one was preferred
    (tmp_path / "mixed" / "regenerated.mp4").unlink()
    (tmp_path / "mixed" / "cat.mp4").unlink()
    suite = load(write_suite(tmp_path, MIXED))
    pairs = [(r.label, c.label) for r, c in suite.checks[0].pairs]
    assert pairs == [("Dog.mp4", "Dog-SYNTHETIC.mp4"), ("cat.webm", "cat_generated.webm")]


def test_mixed_folder_unmatched_skip_lists_them(tmp_path: Path, make_video) -> None:
    make_video("mixed/cat.mp4")
    make_video("mixed/cat_generated.mp4")
    make_video("mixed/lonely_generated.mp4")
    suite = load(write_suite(tmp_path, MIXED.replace("synthetic]", "synthetic], unmatched: skip")))
    assert [s.label for s in suite.sets["pairs.generated"].skipped] == ["lonely_generated.mp4"]
    assert "no real video named 'lonely.*'" in suite.sets["pairs.generated"].skipped[0].reason


def test_empty_suite_and_missing_sections(tmp_path: Path) -> None:
    assert "suite file is empty" in str(error_of(write_suite(tmp_path, "")))
    assert "no 'checks' section" in str(error_of(write_suite(tmp_path, "video_sets: {}\n")))


def test_validate_reports_every_problem_at_once(two_sets: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_aigve.__main__ import main

    broken = (BASIC.replace("  fps: 6", "  fps: .nan")
              .replace("{folder: ref}", "{folder: nowhere}")        # a missing folder: its checks are not re-reported
              .replace("    min: 0.5", "    mni: 0.5")
              + "  - metric: fdi\n    set: gen\n")
    path = write_suite(two_sets, broken)
    assert main(["validate", str(path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(": ", 1)[0] for line in lines[:-1]] == [f"{path}:4", f"{path}:6", f"{path}:11", f"{path}:17"]
    assert "'fps' must be a positive number" in lines[0] and "folder not found" in lines[1]
    assert "did you mean 'min'" in lines[2] and "unknown metric 'fdi'" in lines[3]
    assert lines[-1] == "4 problem(s) in 1 suite file(s)"
    assert main(["validate", str(write_suite(two_sets, BASIC))]) == 0
    assert capsys.readouterr().out.endswith("ok: 2 checks over 2 video sets (4 videos)\n")
