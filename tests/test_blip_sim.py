"""blip_sim: BLIP ITC frame-prompt cosine, per video the mean over frames. Our cached image and text embeddings
(features/blip.py) reproduce transformers' BlipForImageTextRetrieval(..., use_itm_head=False) on a tiny random
folder in the published format, loaded through the same lookup, verification and engine a user's run takes."""

from __future__ import annotations

import functools
import http.server
import json
import math
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from pytest_aigve.engine import EvalContext, evaluate_check
from pytest_aigve.engine.inputs import SuiteInputs
from pytest_aigve.errors import SuiteError
from pytest_aigve.examples import moving_scene, write_video
from pytest_aigve.features import blip
from pytest_aigve.features.weights import (
    FOLDER_REGISTRY,
    RANDOM_FOLDER_MARKER,
    RANDOM_STATUS,
    WeightsError,
    fetch,
    locate,
    resolve_keys,
    verify,
)
from pytest_aigve.metrics.registry import MetricRegistry
from pytest_aigve.random_weights import WRITERS
from pytest_aigve.suite import Suite, load_suite
from pytest_aigve.videos.cache import ClipCache

transformers = pytest.importorskip("transformers")

ENTRY = FOLDER_REGISTRY["blip_itm_base_coco"]
PROMPTS = {"clip_0.mp4": "a red fox runs in the snow", "clip_1.mp4": "a zebra crossing at dusk",
           "clip_2.mp4": "a red fox runs in the snow"}  # one prompt shared by two videos


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The random folder as `weights random` writes it: <dir>/Salesforce/blip-itm-base-coco."""
    folder = tmp_path_factory.mktemp("blip-weights")
    WRITERS["blip_itm_base_coco"](folder, 0)
    return folder


@pytest.fixture
def no_hub_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))  # a real cache never answers


def backbones(folder: Path) -> tuple[blip.BlipImageBackbone, blip.BlipTextBackbone]:
    check = verify(ENTRY, folder)
    device = torch.device("cpu")
    return (blip.BlipImageBackbone(folder, check.sha256, device, weights_status=check.status),
            blip.BlipTextBackbone(folder, check.sha256, device, weights_status=check.status))


def reference_cosines(folder: Path, frames: np.ndarray, prompts: list[str]) -> np.ndarray:
    """transformers' own way: BlipProcessor on PIL images and the prompts, BlipForImageTextRetrieval without the
    ITM head -> (frames, prompts) cosine matrix."""
    from PIL import Image

    processor = transformers.BlipProcessor.from_pretrained(str(folder), local_files_only=True)
    model = transformers.BlipForImageTextRetrieval.from_pretrained(str(folder), local_files_only=True).eval()
    inputs = processor(images=[Image.fromarray(frame) for frame in frames], text=prompts, padding=True,
                       truncation=True, max_length=77, return_tensors="pt")
    with torch.inference_mode():
        output = model(input_ids=inputs["input_ids"], pixel_values=inputs["pixel_values"],
                       attention_mask=inputs["attention_mask"], use_itm_head=False)
    return output.itm_score.double().numpy()


def test_random_folder_is_found_marked_and_its_embeddings_differ(weights_dir: Path, no_hub_cache: None) -> None:
    folder = locate(ENTRY, None, weights_dir)
    assert folder == weights_dir / "Salesforce" / "blip-itm-base-coco"
    assert verify(ENTRY, folder).status == RANDOM_STATUS
    image, text = backbones(folder)
    assert image.model is text.model  # one load for both halves
    frames = [torch.from_numpy(moving_scene(seed, frames=2, size=(40, 56))) for seed in (0, 1)]
    embeddings = np.concatenate(image.extract(frames))
    prompts = np.stack(text.extract_text(["a red fox", "the blue sea", "a man walks"]))
    assert embeddings.shape == (4, 16) and prompts.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-6)
    # random weights that saw different inputs give different embeddings (BLIP's default init would not)
    assert np.ptp(embeddings @ prompts.T, axis=0).min() > 1e-3 and np.ptp(embeddings @ prompts.T, axis=1).min() > 1e-3


def test_per_frame_scores_equal_blip_for_image_text_retrieval(weights_dir: Path, no_hub_cache: None) -> None:
    folder = locate(ENTRY, None, weights_dir)
    frames = np.concatenate([moving_scene(0, frames=2, size=(48, 64)), moving_scene(3, frames=1, size=(48, 64))])
    long_prompt = " ".join(["a white bird flies over the river at night"] * 12)  # over 77 tokens: truncated
    prompts = ["a red fox runs in the snow", "zebra crossing at dusk", long_prompt]
    image, text = backbones(folder)
    ours = image.extract([torch.from_numpy(frames)])[0] @ np.stack(text.extract_text(prompts, batch_size=1)).T
    expected = reference_cosines(folder, frames, prompts)
    assert ours.shape == expected.shape == (3, 3)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-6)


# --- the metric through the engine ---------------------------------------------------------------------------------


def project(root: Path, prompts: dict[str, str], checks: str = "  - {metric: blip_sim, set: gen}\n") -> Suite:
    for index in range(3):
        target = root / "gen" / f"clip_{index}.mp4"
        if not target.exists():
            write_video(target, moving_scene(index, frames=8, size=(48, 64)))
    (root / "prompts.json").write_text(json.dumps(prompts), encoding="utf-8")
    (root / "suite.yaml").write_text("suite: blip\nprotocol: {frames: 3}\nvideo_sets:\n"
                                     "  gen: {folder: gen, prompts: prompts.json}\n" f"checks:\n{checks}")
    return load_suite(root / "suite.yaml", MetricRegistry())


def context(weights_dir: Path, cache: Path) -> EvalContext:
    return EvalContext(device=torch.device("cpu"), clips=ClipCache(10**8), registry=MetricRegistry(),
                       make_thumbnails=False, weights_dir=weights_dir, feature_cache_dir=cache)


def test_the_metric_is_the_mean_over_videos_of_the_mean_frame_cosine(weights_dir: Path, tmp_path: Path,
                                                                      no_hub_cache: None) -> None:
    suite = project(tmp_path, PROMPTS)
    ctx = context(weights_dir, tmp_path / "cache")
    checked = evaluate_check(suite, suite.checks[0], ctx)
    result = checked.result
    assert list(result.per_video) == list(PROMPTS)
    # each video's score from transformers' model on the very frames the protocol cut
    folder = weights_dir / ENTRY.folder
    for video, clip in SuiteInputs(suite, suite.checks[0], ctx).clips():
        frames = clip.frames.permute(0, 2, 3, 1).numpy()
        assert frames.shape[0] == 3
        expected = reference_cosines(folder, frames, [PROMPTS[video.label]]).mean()
        assert result.per_video[video.label] == pytest.approx(expected, rel=1e-4, abs=1e-6)
    assert result.value == pytest.approx(np.mean(list(result.per_video.values())), rel=1e-12)
    assert len(set(result.per_video.values())) == 3  # different videos, different scores
    assert checked.interval is not None and checked.interval.low <= result.value <= checked.interval.high
    assert result.details["frames"] == 9 and result.details["embedding_dim"] == 16
    backbone = result.backbone
    assert backbone is not None and backbone.licence == "BSD-3-Clause (Salesforce BLIP)"
    assert backbone.weights == "blip-itm-base-coco" and backbone.weights_check.startswith(RANDOM_STATUS)
    assert "BlipImageProcessor" in backbone.input and "77 tokens" in backbone.input
    assert any("RANDOM TEST WEIGHTS" in warning for warning in result.warnings)

    # a warm run reads every embedding from the cache; a new prompt costs one text embedding, no frame
    warm = evaluate_check(suite, suite.checks[0], context(weights_dir, tmp_path / "cache"), with_interval=False)
    assert warm.result.per_video == result.per_video
    assert warm.result.backbone is not None and warm.result.backbone.features_computed == 0
    changed = project(tmp_path, {**PROMPTS, "clip_1.mp4": "a dog on the road"})
    rerun_ctx = context(weights_dir, tmp_path / "cache")
    rerun = evaluate_check(changed, changed.checks[0], rerun_ctx, with_interval=False)
    assert rerun_ctx.features.stats.computed == 1 and rerun.result.backbone is not None
    assert rerun.result.backbone.features_computed == 0  # frames: all cached
    assert rerun.result.per_video["clip_0.mp4"] == result.per_video["clip_0.mp4"]
    assert rerun.result.per_video["clip_1.mp4"] != result.per_video["clip_1.mp4"]


def test_a_video_without_a_prompt_is_a_collection_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(SuiteError) as info:
        project(tmp_path, {"clip_0.mp4": "a fox", "clip_2.mp4": "a dog"})
    assert "metric 'blip_sim' needs the prompt of each video; 1 video(s) of set 'gen' have none: clip_1.mp4" in \
        str(info.value)


# --- weights --------------------------------------------------------------------------------------------------------


def test_missing_weights_name_the_fetch_command(tmp_path: Path, no_hub_cache: None) -> None:
    assert resolve_keys(["blip_sim"]) == ["blip_itm_base_coco"]
    suite = project(tmp_path, PROMPTS)
    with pytest.raises(WeightsError) as info:
        evaluate_check(suite, suite.checks[0], context(tmp_path / "no-weights", tmp_path / "cache"))
    assert "missing weights folder Salesforce/blip-itm-base-coco" in str(info.value)
    assert "fetch with: python -m pytest_aigve weights fetch blip_itm_base_coco" in str(info.value)


def test_folder_under_its_short_name_incomplete_or_of_another_model(weights_dir: Path, tmp_path: Path,
                                                                    no_hub_cache: None) -> None:
    short = tmp_path / "blip-itm-base-coco"  # e.g. `huggingface-cli download ... --local-dir blip-itm-base-coco`
    shutil.copytree(weights_dir / ENTRY.folder, short)
    assert locate(ENTRY, None, tmp_path) == short
    (short / "tokenizer.json").unlink()
    with pytest.raises(WeightsError, match=r"incomplete weights folder .*missing tokenizer\.json.*weights fetch "
                                           r"blip_itm_base_coco"):
        locate(ENTRY, None, tmp_path)
    shutil.copy(weights_dir / ENTRY.folder / "tokenizer.json", short)
    torch.save({"text_proj.weight": torch.zeros(16, 32)}, short / "pytorch_model.bin")  # no vision tower
    with pytest.raises(WeightsError, match=r"is not a complete BLIP image-text retrieval model: \d+ of its weights are "
                                           r"missing.*weights fetch blip_itm_base_coco"):
        blip.load_blip_itm(short, ENTRY)


def test_random_writer_never_overwrites_a_real_folder(tmp_path: Path) -> None:
    real = tmp_path / ENTRY.folder
    real.mkdir(parents=True)
    (real / "config.json").write_text("{}")
    with pytest.raises(WeightsError, match="is not random test weights; it is left alone"):
        blip.write_random_blip_itm(tmp_path)
    assert (real / "config.json").read_text() == "{}"


def test_the_nested_folder_is_fetched_from_a_mirror_under_its_repository_id(weights_dir: Path,
                                                                          tmp_path: Path) -> None:
    served: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            served.append(self.path)
            super().do_GET()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(weights_dir)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        folder = fetch(ENTRY, tmp_path / "weights", mirror=f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
    assert folder == tmp_path / "weights" / "Salesforce" / "blip-itm-base-coco"
    assert sorted(served) == sorted(f"/Salesforce/blip-itm-base-coco/{file.name}" for file in ENTRY.files)
    assert not (folder / RANDOM_FOLDER_MARKER).exists()  # the files, not the marker, travel
    assert verify(ENTRY, folder).sha256 == verify(ENTRY, weights_dir / ENTRY.folder).sha256


# --- as users run it -------------------------------------------------------------------------------------------------


def test_suite_run_records_the_score_backbone_and_licence(pytester: pytest.Pytester, weights_dir: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(pytester.path / "torch-home"))
    monkeypatch.delenv("AIGVE_WEIGHTS_DIR", raising=False)
    shutil.copytree(weights_dir / ENTRY.folder, pytester.path / "models" / "blip")
    project(pytester.path, PROMPTS, "  - {metric: blip_sim, set: gen, min: -1, params: {weights: models/blip}}\n")
    (pytester.path / "suite.yaml").rename(pytester.path / "aigve_blip.yaml")
    result = pytester.runpytest_subprocess("--aigve-report-dir", "out", "--aigve-cache-dir", "cache")
    result.assert_outcomes(passed=1)
    (record,) = json.loads((pytester.path / "out" / "aigve-results.json").read_text())["records"]
    assert record["check"] == "blip_sim[gen]" and math.isfinite(record["value"])
    assert record["backbone"]["licence"] == "BSD-3-Clause (Salesforce BLIP)"
    assert record["backbone"]["weights_check"].startswith(RANDOM_STATUS)
    assert sorted(record["per_video"]) == sorted(PROMPTS)
