"""Prompts on every video set (`prompts:` manifests and .txt sidecars) and the needs-prompts rule of metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from pytest_aigve.engine import EvalContext, evaluate_check
from pytest_aigve.errors import SuiteError
from pytest_aigve.metrics.base import PerVideoMetric
from pytest_aigve.metrics.contract import InputsSpec
from pytest_aigve.metrics.registry import MetricRegistry
from pytest_aigve.suite import Suite, load_suite
from pytest_aigve.videos.cache import ClipCache

from .helpers import make_videos

PROMPTS = {"clip_0.mp4": "a red fox in snow", "clip_1.mp4": "zebra crossing at dusk"}


class NeedsText(PerVideoMetric):
    name = "needs_text"
    description = "mean brightness; reads prompts"
    higher_is_better = True
    spec = InputsSpec("single", needs_prompts=True)

    def score_clip(self, clip: Any) -> float:
        return float(clip.mean())


def registry() -> MetricRegistry:
    found = MetricRegistry()
    found.register("needs_text", NeedsText)
    return found


@pytest.fixture
def videos(tmp_path: Path) -> Path:
    make_videos(tmp_path)
    return tmp_path


def load(folder: Path, sets: str, checks: str = "  - {metric: flicker, set: gen}\n") -> Suite:
    path = folder / "suite.yaml"
    path.write_text(f"video_sets:\n{sets}checks:\n{checks}")
    return load_suite(path, registry())


def error_of(folder: Path, sets: str, checks: str = "  - {metric: flicker, set: gen}\n") -> SuiteError:
    with pytest.raises(SuiteError) as info:
        load(folder, sets, checks)
    return info.value


def prompts_of(suite: Suite, name: str = "gen") -> dict[str, str | None]:
    return {video.path.name: video.prompt for video in suite.sets[name].videos}


# --- the formats ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("column", ["path", "video"])
def test_csv_manifest_with_paths_relative_to_its_folder(videos: Path, column: str) -> None:
    rows = "".join(f'gen/{name},"{prompt}"\n' for name, prompt in PROMPTS.items())
    (videos / "videos" / "prompts.csv").write_text(f"{column},prompt\n{rows}", encoding="utf-8")
    suite = load(videos, "  gen: {folder: videos/gen, prompts: videos/prompts.csv}\n")
    assert prompts_of(suite) == PROMPTS


def test_jsonl_manifest_with_bare_names_and_stems(videos: Path) -> None:
    lines = [{"path": "clip_0.mp4", "prompt": PROMPTS["clip_0.mp4"]}, {"video": "clip_1",
                                                                       "prompt": PROMPTS["clip_1.mp4"]}]
    (videos / "prompts.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    suite = load(videos, "  gen: {glob: 'videos/gen/*.mp4', prompts: prompts.jsonl}\n")
    assert prompts_of(suite) == PROMPTS


def test_json_mapping_keeps_unicode_and_html_verbatim(videos: Path) -> None:
    mapping = {"clip_0": "un café « crème » 猫 🐈", "clip_1.mp4": "<b>x</b> & <i>y</i>", "other.mp4": "ignored"}
    (videos / "prompts.json").write_text(json.dumps(mapping, ensure_ascii=False), encoding="utf-8")
    suite = load(videos, "  gen: {folder: videos/gen, prompts: prompts.json}\n")
    assert prompts_of(suite) == {"clip_0.mp4": mapping["clip_0"], "clip_1.mp4": mapping["clip_1.mp4"]}


def test_txt_sidecars_lose_only_the_trailing_newline(videos: Path) -> None:
    (videos / "videos" / "gen" / "clip_0.txt").write_text("  two\nlines  \n", encoding="utf-8")
    (videos / "videos" / "gen" / "clip_1.txt").write_text("ünïcode", encoding="utf-8")
    suite = load(videos, "  gen: {files: [videos/gen/clip_0.mp4, videos/gen/clip_1.mp4], prompts: txt}\n")
    assert prompts_of(suite) == {"clip_0.mp4": "  two\nlines  ", "clip_1.mp4": "ünïcode"}


def test_manifest_prompts_take_precedence_over_annotation_prompts(videos: Path) -> None:
    entries = [{"video_path_pd": name, "prompt_gt": "from annotations"} for name in PROMPTS]
    (videos / "ann.json").write_text(json.dumps({"data_list": entries}))
    (videos / "prompts.csv").write_text("path,prompt\nclip_1.mp4,from the manifest\n")
    suite = load(videos, "  gen: {annotations: ann.json, video_dir: videos/gen, prompts: prompts.csv}\n")
    assert prompts_of(suite) == {"clip_0.mp4": "from annotations", "clip_1.mp4": "from the manifest"}


def test_mixed_folder_prompts_reach_both_sets(tmp_path: Path) -> None:
    make_videos(tmp_path)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (tmp_path / "videos" / "ref" / "clip_0.mp4").rename(mixed / "clip_0.mp4")
    (tmp_path / "videos" / "gen" / "clip_0.mp4").rename(mixed / "clip_0_generated.mp4")
    (tmp_path / "prompts.json").write_text(json.dumps({"clip_0_generated.mp4": "a fox", "clip_0.mp4": "a fox"}))
    suite = load(tmp_path, "  pairs: {mixed_folder: mixed, prompts: prompts.json}\n",
                 "  - {metric: psnr, reference: pairs.real, candidate: pairs.generated}\n")
    assert prompts_of(suite, "pairs.real") == {"clip_0.mp4": "a fox"}
    assert prompts_of(suite, "pairs.generated") == {"clip_0_generated.mp4": "a fox"}


# --- bad prompt sources --------------------------------------------------------------------------------------


def test_a_manifest_naming_no_video_is_an_error_naming_it(videos: Path) -> None:
    (videos / "prompts.csv").write_text("path,prompt\nelsewhere/clip_0.mp4,a\nnope.mp4,b\n")
    error = error_of(videos, "  gen:\n    folder: videos/gen\n    prompts: prompts.csv\n")
    assert error.line == 4
    assert (f"prompts file {videos / 'prompts.csv'} names no video of set 'gen' (2 entries: "
            f"'elsewhere/clip_0.mp4', 'nope.mp4'); give paths relative to {videos}") in str(error)


def test_a_bad_csv_header_is_an_error_at_the_prompts_line(videos: Path) -> None:
    (videos / "prompts.csv").write_text("file,text\nclip_0.mp4,a\n")
    error = error_of(videos, "  gen:\n    folder: videos/gen\n    prompts: prompts.csv\n")
    assert error.line == 4
    assert (f"prompts file {videos / 'prompts.csv'}: line 1 must be a header with a 'path' (or 'video') column "
            "and a 'prompt' column, found ['file', 'text']; e.g. 'path,prompt'") in str(error)


@pytest.mark.parametrize(("name", "text", "expected"), [
    ("prompts.json", '{"clip_0.mp4": "a",}', "is not valid JSON (line 1, column 20"),
    ("prompts.json", '["a"]', "must be one JSON object mapping video file names"),
    ("prompts.jsonl", '{"path": "clip_0.mp4", "prompt": "a"}\n{"path": 1}\n', ": line 2 needs a string 'path'"),
    ("prompts.csv", b"path,prompt\nclip_0.mp4,caf\xe9\n", "is not UTF-8"),
    ("prompts.txt", "a", "'prompts' must name a .csv, .jsonl or .json file, or be 'txt'"),
])
def test_bad_prompt_files(videos: Path, name: str, text: str | bytes, expected: str) -> None:
    target = videos / name
    target.write_bytes(text) if isinstance(text, bytes) else target.write_text(text)
    error = error_of(videos, f"  gen: {{folder: videos/gen, prompts: {name}}}\n")
    assert error.line == 2 and expected in str(error)


def test_missing_manifest_and_missing_sidecars(videos: Path) -> None:
    assert "prompts file not found: " in str(error_of(videos, "  gen: {folder: videos/gen, prompts: p.csv}\n"))
    error = error_of(videos, "  gen: {folder: videos/gen, prompts: txt}\n")
    assert "'prompts: txt': no video of set 'gen' has a .txt beside it" in str(error)


# --- metrics that need prompts -------------------------------------------------------------------------------


NEEDS_TEXT = "  - {metric: needs_text, set: gen}\n"


def test_videos_without_a_prompt_are_a_collection_error_naming_them(videos: Path) -> None:
    (videos / "prompts.json").write_text(json.dumps({"clip_0.mp4": "a fox"}))
    error = error_of(videos, "  gen: {folder: videos/gen, prompts: prompts.json}\n", NEEDS_TEXT)
    assert error.line == 4
    assert ("check 'needs_text': metric 'needs_text' needs the prompt of each video; 1 video(s) of set 'gen' have "
            "none: clip_1.mp4; add them to the 'prompts:' source of set 'gen' (a CSV, JSONL or JSON manifest, or "
            "'txt' sidecar files; see README, video sets), or set 'on_bad_video: skip' to leave them out"
            ) in str(error)


def test_a_long_list_of_videos_without_prompts_is_cut_at_ten(tmp_path: Path) -> None:
    make_videos(tmp_path, count=12)
    error = error_of(tmp_path, "  gen: {folder: videos/gen}\n", NEEDS_TEXT)
    assert "12 video(s) of set 'gen' have none: clip_0.mp4, clip_1.mp4, " in str(error)
    assert "clip_7.mp4 and 2 more; add them" in str(error) and "on_bad_video: skip" not in str(error)


def test_under_skip_videos_without_a_prompt_are_left_out_and_listed(videos: Path) -> None:
    (videos / "prompts.json").write_text(json.dumps({"clip_0.mp4": "a fox"}))
    suite = load(videos, "  gen: {folder: videos/gen, prompts: prompts.json}\n",
                 "  - {metric: needs_text, set: gen, on_bad_video: skip}\n")
    assert [(s.label, s.reason) for s in suite.checks[0].without_prompt] == [("clip_1.mp4", "no prompt")]
    ctx = EvalContext(device=torch.device("cpu"), clips=ClipCache(10**8), registry=registry(), make_thumbnails=False)
    result = evaluate_check(suite, suite.checks[0], ctx)
    assert result.videos_used == {"gen": ["clip_0.mp4"]}
    assert [(s.label, s.reason) for s in result.skipped] == [("clip_1.mp4", "no prompt")]
    assert list(result.result.per_video) == ["clip_0.mp4"]
