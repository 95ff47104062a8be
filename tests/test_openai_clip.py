"""OpenAI CLIP image towers read from OpenAI's checkpoint formats, and VBench's background_consistency and
aesthetic_quality on them: the network against the `clip` package's own (plain state dict and TorchScript archive),
the whole pipeline against VBench's functions on the same decoded frames, the metrics' aggregation and bootstrap,
a suite run end to end, and the weights errors. Weights are small random ones in the official formats.

The references import `pkg_resources` (clip), absent here: a shim module holding `packaging` is the only stub."""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import sys
import types
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pytest_aigve.examples import moving_scene, write_video
from pytest_aigve.features.openai_clip import (
    RANDOM_WRITERS,
    LaionAestheticBackbone,
    OpenAIClipB32Backbone,
    OpenAIClipL14Backbone,
    build_vision_tower,
    clip_transform,
    is_torchscript_archive,
    read_openai_clip,
)
from pytest_aigve.features.weights import RANDOM_STATUS, REGISTRY, WeightsError, verify
from pytest_aigve.metrics.aesthetic_quality import AestheticQuality
from pytest_aigve.metrics.background_consistency import BackgroundConsistency, frame_scores
from pytest_aigve.metrics.testing import MemoryInputs

CPU = torch.device("cpu")
KEYS = ("openai_clip_b32", "openai_clip_l14")


@pytest.fixture(scope="module")
def clip_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random ViT-B-32.pt, ViT-L-14.pt (plain state dicts with OpenAI's key names) and the LAION head."""
    folder = tmp_path_factory.mktemp("openai-clip-weights")
    for writer in RANDOM_WRITERS.values():
        writer(folder, 0)
    return folder


def import_clip(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The `clip` package (the reference), importable with a `pkg_resources` shim that only holds `packaging`."""
    import packaging.version

    shim = types.ModuleType("pkg_resources")
    shim.packaging = packaging  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pkg_resources", shim)
    import clip

    return clip


@pytest.fixture
def clip_package(monkeypatch: pytest.MonkeyPatch) -> Any:
    return import_clip(monkeypatch)


def trace_to_archive(clip_package: Any, source: Path, target: Path) -> torch.nn.Module:
    """The reference CLIP built from `source`, traced and saved as a half-precision TorchScript archive at `target`
    (the published files' format); returns the float32 reference model."""
    model = reference_model(clip_package, source)
    images = torch.randn(1, 3, 224, 224)
    tokens = torch.randint(0, 128, (1, 77))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.trace's deprecation and tracer warnings
        traced = torch.jit.trace(model, (images, tokens), check_trace=False).half()
    target.parent.mkdir(parents=True, exist_ok=True)
    traced.save(str(target))
    return model


@pytest.fixture(scope="module")
def archives(clip_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ViT-B-32.pt and ViT-L-14.pt as TorchScript archives (as OpenAI publishes them), with the LAION head."""
    folder = tmp_path_factory.mktemp("openai-clip-archives")
    with pytest.MonkeyPatch.context() as patch:
        clip_package = import_clip(patch)
        for key in KEYS:
            name = REGISTRY[key].filename
            trace_to_archive(clip_package, clip_weights / name, folder / name)
    name = REGISTRY["laion_aes_v1"].filename
    (folder / name).write_bytes((clip_weights / name).read_bytes())
    return folder


def reference_model(clip_package: Any, path: Path) -> torch.nn.Module:
    """clip.model.build_model on the file's state dict, in float32 as clip.load makes it on the CPU."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    return clip_package.model.build_model(dict(state)).float().eval()


def relative_error(ours: torch.Tensor | np.ndarray, reference: torch.Tensor | np.ndarray) -> float:
    ours_array = np.asarray(ours, dtype=np.float64)
    reference_array = np.asarray(reference, dtype=np.float64)
    return float(np.abs(ours_array - reference_array).max() / np.abs(reference_array).max())


def scene_cut_clips() -> list[np.ndarray]:
    """Three small uint8 clips of different sizes and lengths; one cuts to another scene half-way, so that the
    CLIP similarities to the previous and the first frame differ."""
    cut = np.concatenate([moving_scene(3, frames=2, size=(40, 56)), moving_scene(9, frames=2, size=(40, 56))])
    return [moving_scene(0, frames=3, size=(48, 64)), cut, moving_scene(5, frames=2, size=(64, 40))]


# --- the network --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", KEYS)
def test_image_tower_equals_the_clip_package_on_a_state_dict(clip_weights: Path, clip_package: Any,
                                                             key: str) -> None:
    entry = REGISTRY[key]
    path = clip_weights / entry.filename
    ours = build_vision_tower(read_openai_clip(path, entry), path, entry).eval()
    reference = reference_model(clip_package, path).visual
    images = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got, expected = ours(images), reference(images)
    assert got.shape == (3, {"openai_clip_b32": 512, "openai_clip_l14": 768}[key])
    assert relative_error(got, expected) <= 1e-4
    assert ours.config.patch_size == reference.conv1.kernel_size[0]  # read off the shapes as build_model does
    assert not torch.allclose(got[0], got[1], rtol=1e-3)  # the random network tells inputs apart
    # precision fp16 (offered on CUDA only) is VBench's GPU model: build_model's half-precision weights with
    # float32 LayerNorms; the same half-precision arithmetic runs on the CPU here
    half_reference = clip_package.model.build_model(dict(torch.load(path, weights_only=True))).eval()
    with torch.no_grad():
        half = ours.half()(images.half())
        assert half.dtype == torch.float16
        assert relative_error(half, half_reference.encode_image(images.half())) <= 1e-3


@pytest.mark.parametrize("key", KEYS)
def test_torchscript_archive_is_read_without_running_it(archives: Path, clip_package: Any, key: str) -> None:
    """The published files are TorchScript archives: a traced CLIP saved with torch.jit.save (half precision, as
    OpenAI's) is read through our restricted reader, its tensors equal to the scripted module's own state dict, and
    the tower equals the one clip.load builds from the same archive."""
    entry = REGISTRY[key]
    archive = archives / entry.filename
    assert is_torchscript_archive(archive)
    state = read_openai_clip(archive, entry)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load's deprecation warning
        scripted = torch.jit.load(str(archive), map_location="cpu").state_dict()
    assert set(state) == set(scripted)  # the module tree's tensors by attribute name are its state dict
    visual = {k for k in scripted if k.startswith("visual.")}
    assert visual
    for name in visual:
        assert state[name].dtype == torch.float16 and torch.equal(state[name], scripted[name]), name
    ours = build_vision_tower(state, archive, entry).eval()
    reference, _ = clip_package.load(str(archive), device="cpu")  # VBench's call
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert relative_error(ours(images), reference.encode_image(images)) <= 1e-4


def test_archive_with_other_python_objects_is_refused(tmp_path: Path) -> None:
    class Runs:
        def __reduce__(self) -> tuple[Any, tuple[str]]:
            return (os.system, ("echo should-not-run",))

    path = tmp_path / "ViT-B-32.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model/data.pkl", pickle.dumps({"visual": Runs()}, protocol=2))
        archive.writestr("model/constants.pkl", pickle.dumps((), protocol=2))
    with pytest.raises(WeightsError, match="refused for safety") as caught:
        read_openai_clip(path, REGISTRY["openai_clip_b32"])
    assert "system" in str(caught.value) and "weights fetch openai_clip_b32" in str(caught.value)


def test_preprocessing_is_vbench_clip_transform() -> None:
    from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Lambda, Normalize, Resize

    frames = torch.from_numpy(moving_scene(2, frames=2, size=(50, 70))).permute(0, 3, 1, 2).contiguous()
    # vbench.utils.clip_transform(224), spelled out here so that it is checked without importing vbench, on what
    # VBench's load_video gives it for an .mp4: float32 0-255 (torch.Tensor of the decoded uint8 frames)
    vbench = Compose([Resize(224, interpolation=InterpolationMode.BICUBIC, antialias=False), CenterCrop(224),
                      Lambda(lambda x: x.float().div(255.0)),
                      Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))])
    assert torch.equal(clip_transform(frames), vbench(torch.Tensor(frames.numpy())))
    # a uint8 resize would round and clamp the bicubic overshoot: not what VBench computes
    assert not torch.equal(vbench(frames), vbench(torch.Tensor(frames.numpy())))


# --- the pipeline against VBench's own functions ---------------------------------------------------------------


@pytest.fixture
def vbench_modules(clip_package: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    import vbench.aesthetic_quality as aesthetic
    import vbench.background_consistency as background

    yield background, aesthetic


def feed_frames(monkeypatch: pytest.MonkeyPatch, module: Any, clips: list[np.ndarray]) -> list[str]:
    """VBench's load_video in `module` returns our decoded frames for names v0.mp4, ... as it returns an .mp4's:
    `torch.Tensor(frames).permute(0, 3, 1, 2)`, float32 0-255 (T, 3, H, W)."""
    frames = {f"v{index}.mp4": torch.Tensor(clip).permute(0, 3, 1, 2) for index, clip in enumerate(clips)}
    monkeypatch.setattr(module, "load_video", lambda path, *args, **kwargs: frames[path].clone())
    return list(frames)


def our_features(backbone_cls: type, weights: Path, clips: list[np.ndarray], **kwargs: Any) -> list[np.ndarray]:
    backbone = backbone_cls(weights / backbone_cls.weights_file.filename, "0" * 64, CPU, **kwargs)
    return backbone.extract([torch.from_numpy(clip) for clip in clips])


def test_background_consistency_equals_vbench(archives: Path, clip_package: Any, vbench_modules: tuple[Any, Any],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    background, _ = vbench_modules
    clips = scene_cut_clips()
    names = feed_frames(monkeypatch, background, clips)
    model, preprocess = clip_package.load(str(archives / "ViT-B-32.pt"), device="cpu")  # as VBench loads it
    with torch.no_grad():
        expected, per_video = background.background_consistency(model, preprocess, names, "cpu", False)
    features = our_features(OpenAIClipB32Backbone, archives, clips)
    result = BackgroundConsistency(BackgroundConsistency.validate_params({}), CPU).evaluate(
        MemoryInputs(features={"set": features}))
    assert relative_error(result.value, expected) <= 1e-4
    ours = [result.per_video[name] for name in names]
    assert relative_error(ours, [video["video_results"] for video in per_video]) <= 1e-4
    # frame-weighted, as VBench: not the mean of the videos when their lengths differ
    assert result.details["scored_frames"] == sum(len(clip) - 1 for clip in clips) == 6
    assert abs(result.value - float(np.mean(ours))) > 1e-6


def test_aesthetic_quality_equals_vbench(archives: Path, clip_package: Any, vbench_modules: tuple[Any, Any],
                                         monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _, aesthetic = vbench_modules
    clips = scene_cut_clips()
    names = feed_frames(monkeypatch, aesthetic, clips)
    monkeypatch.setattr(aesthetic, "batch_size", 2)  # several batches per video, as VBench's 32 on long videos
    head_folder = tmp_path / "aesthetic_model"
    head_folder.mkdir()
    (head_folder / "sa_0_4_vit_l_14_linear.pth").write_bytes((archives / "sa_0_4_vit_l_14_linear.pth").read_bytes())
    head = aesthetic.get_aesthetic_model(str(head_folder))
    model, _ = clip_package.load(str(archives / "ViT-L-14.pt"), device="cpu")
    expected, per_video = aesthetic.laion_aesthetic(head, model, names, "cpu")
    monkeypatch.setenv("AIGVE_ALLOW_UNVERIFIED_WEIGHTS", "1")  # the random head is not the published file
    features = our_features(LaionAestheticBackbone, archives, clips, batch_size=2)
    result = AestheticQuality(AestheticQuality.validate_params({}), CPU).evaluate(
        MemoryInputs(features={"set": features}))
    assert relative_error(result.value, expected) <= 1e-4
    assert relative_error([result.per_video[name] for name in names],
                          [video["video_results"] for video in per_video]) <= 1e-4
    assert len({round(value, 6) for value in result.per_video.values()}) == 3  # the videos' scores differ


# --- the metrics ------------------------------------------------------------------------------------------------


def test_background_consistency_frame_scores_and_frame_weighted_bootstrap() -> None:
    first = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])  # 45° steps: cos(prev) = 0.707, cos(first) = 0.707, 0
    second = np.array([[1.0, 0.0], [-1.0, 0.0]])  # opposite: both cosines clipped to 0
    assert np.allclose(frame_scores(first), [math.sqrt(0.5), (math.sqrt(0.5) + 0.0) / 2])
    assert np.allclose(frame_scores(second), [0.0])
    metric = BackgroundConsistency(BackgroundConsistency.validate_params({}), CPU)
    result = metric.evaluate(MemoryInputs(features={"set": [first, second]}))
    sums = np.array([frame_scores(first).sum(), 0.0])
    counts = np.array([2.0, 1.0])
    assert result.value == pytest.approx(sums.sum() / counts.sum())
    assert result.per_video == pytest.approx({"v0.mp4": sums[0] / 2, "v1.mp4": 0.0})
    assert result.resample is not None
    draws = np.random.default_rng(7).integers(0, 2, 2)
    assert result.resample(np.random.default_rng(7)) == pytest.approx(sums[draws].sum() / counts[draws].sum())
    with pytest.raises(Exception, match="at least 2 frames"):
        metric.evaluate(MemoryInputs(features={"set": [first[:1]]}))


def test_aesthetic_quality_is_mean_over_frames_then_videos() -> None:
    metric = AestheticQuality(AestheticQuality.validate_params({"precision": "fp16"}), CPU)
    result = metric.evaluate(MemoryInputs(features={"set": [np.array([[4.0], [6.0], [8.0]]), np.array([[3.0]])]}))
    assert result.per_video == pytest.approx({"v0.mp4": 0.6, "v1.mp4": 0.3})
    assert result.value == pytest.approx(0.45)  # each video weighs the same
    assert result.details["precision"] == "fp16"
    assert AestheticQuality.backbone_requests(metric.options)[0].precision == "fp16"


def test_fp16_is_cuda_only_and_only_for_these_backbones() -> None:
    assert OpenAIClipB32Backbone.precision_problem("fp16", "cpu") is not None
    assert OpenAIClipB32Backbone.precision_problem("fp16", "cuda") is None
    assert OpenAIClipB32Backbone.precision_problem("bf16", "cuda") is not None
    with pytest.raises(Exception, match="fp16 runs on CUDA"):
        OpenAIClipL14Backbone(Path("ViT-L-14.pt"), "0" * 64, CPU, "fp16")


# --- a suite run ------------------------------------------------------------------------------------------------


SUITE = """\
suite: vbench-clip
protocol: {frames: all, fps: null, stride: 1, resize: null}
video_sets:
  gen: {folder: gen}
checks:
  - metric: background_consistency
    set: gen
    min: 0.0
  - metric: aesthetic_quality
    set: gen
    params: {batch_size: 2}
"""


def test_suite_run_with_random_weights(pytester: pytest.Pytester, clip_weights: Path) -> None:
    for index, clip in enumerate(scene_cut_clips()[:2]):
        write_video(pytester.path / "gen" / f"v{index}.mp4", np.ascontiguousarray(clip[:, :40, :40]), fps=8)
    pytester.makefile(".yaml", aigve_clip=SUITE)
    result = pytester.runpytest_subprocess("--aigve-weights-dir", str(clip_weights), "--aigve-allow-unverified-weights",
                                           "--aigve-report-dir", "out", "-p", "no:cacheprovider")
    records = {r["check"]: r for r in json.loads((pytester.path / "out" / "aigve-results.json").read_text())["records"]}
    background, aesthetic = records["background_consistency[gen]"], records["aesthetic_quality[gen]"]
    for record in (background, aesthetic):
        assert record["outcome"] in ("passed", "failed"), record["message"]
        assert math.isfinite(record["value"]) and record["backbone"]["weights_check"].startswith(RANDOM_STATUS)
        assert "not_reference_protocol" not in record["details"]  # every native frame, as VBench
    assert 0.0 <= background["value"] <= 1.0 and background["backbone"]["name"] == "openai-clip-vit-b-32"
    assert aesthetic["backbone"]["weights"] == "ViT-L-14.pt + sa_0_4_vit_l_14_linear.pth"
    assert "frame-weighted" in background["details"]["aggregation"]
    assert result.ret in (0, 1)


# --- weights errors ---------------------------------------------------------------------------------------------


def test_missing_weights_name_the_fetch_command(pytester: pytest.Pytester, tmp_path: Path,
                                                clip_weights: Path) -> None:
    write_video(pytester.path / "gen" / "v0.mp4", moving_scene(0, frames=3, size=(32, 32)), fps=8)
    pytester.makefile(".yaml", aigve_clip=SUITE)
    empty = tmp_path / "empty"
    empty.mkdir()
    result = pytester.runpytest_subprocess("--aigve-weights-dir", str(empty), "-p", "no:cacheprovider")
    output = result.stdout.str()
    assert "missing weights ViT-B-32.pt" in output and "weights fetch openai_clip_b32" in output
    assert "missing weights ViT-L-14.pt" in output and "weights fetch openai_clip_l14" in output
    # the CLIP file without LAION's head beside it
    only_clip = tmp_path / "only-clip"
    only_clip.mkdir()
    (only_clip / "ViT-L-14.pt").write_bytes((clip_weights / "ViT-L-14.pt").read_bytes())
    with pytest.raises(WeightsError, match=r"missing weights sa_0_4_vit_l_14_linear.pth.*weights fetch laion_aes_v1"):
        LaionAestheticBackbone(only_clip / "ViT-L-14.pt", "0" * 64, CPU)


def test_corrupt_and_wrong_architecture_weights(clip_weights: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    entry = REGISTRY["openai_clip_b32"]
    good = (clip_weights / "ViT-B-32.pt").read_bytes()
    corrupt = tmp_path / "ViT-B-32.pt"
    corrupt.write_bytes(good[: len(good) // 2])
    with pytest.raises(WeightsError, match=r"corrupt.*weights fetch openai_clip_b32"):
        read_openai_clip(corrupt, entry)
    # a TorchScript archive cut short: its data.pkl and storages partly missing
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("m/constants.pkl", pickle.dumps((), protocol=2))
        archive.writestr("m/data.pkl", b"\x80\x02c__torch__.m\nM\n")
    corrupt.write_bytes(buffer.getvalue())
    with pytest.raises(WeightsError, match=r"corrupt.*weights fetch openai_clip_b32"):
        read_openai_clip(corrupt, entry)
    # the LAION head where CLIP is expected
    wrong = tmp_path / "wrong" / "ViT-B-32.pt"
    wrong.parent.mkdir()
    wrong.write_bytes((clip_weights / "sa_0_4_vit_l_14_linear.pth").read_bytes())
    with pytest.raises(WeightsError, match=r"not an OpenAI CLIP ViT checkpoint.*weights fetch openai_clip_b32"):
        build_vision_tower(read_openai_clip(wrong, entry), wrong, entry)
    # a CLIP file with a block key missing
    state = dict(torch.load(clip_weights / "ViT-B-32.pt", weights_only=True))
    del state["visual.transformer.resblocks.1.mlp.c_fc.bias"]
    with pytest.raises(WeightsError, match=r"missing keys .*c_fc.bias"):
        build_vision_tower(state, wrong, entry)
    # ViT-B/32 where the aesthetic head needs ViT-L/14's 768-d embeddings
    b32_as_l14 = tmp_path / "b32" / "ViT-L-14.pt"
    b32_as_l14.parent.mkdir()
    b32_as_l14.write_bytes(good)
    (b32_as_l14.parent / "sa_0_4_vit_l_14_linear.pth").write_bytes(
        (clip_weights / "sa_0_4_vit_l_14_linear.pth").read_bytes())
    monkeypatch.setenv("AIGVE_ALLOW_UNVERIFIED_WEIGHTS", "1")  # the random head
    backbone = LaionAestheticBackbone(b32_as_l14, "0" * 64, CPU)
    with pytest.raises(WeightsError, match=r"512-d image embeddings.*768"):
        backbone.extract([torch.from_numpy(moving_scene(0, frames=1, size=(32, 32)))])


def test_laion_head_is_verified_like_any_weights_file(clip_weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = REGISTRY["laion_aes_v1"]
    head = clip_weights / entry.filename
    with pytest.raises(WeightsError, match=r"random test weights.*weights fetch laion_aes_v1"):
        verify(entry, head)
    assert verify(entry, head, allow_unverified=True).status.startswith(RANDOM_STATUS)
    # the aesthetic backbone verifies the head it finds beside the CLIP file, and names both in its status
    monkeypatch.delenv("AIGVE_ALLOW_UNVERIFIED_WEIGHTS", raising=False)
    with pytest.raises(WeightsError, match="random test weights"):
        LaionAestheticBackbone(clip_weights / "ViT-L-14.pt", "0" * 64, CPU)
    backbone = LaionAestheticBackbone(clip_weights / "ViT-L-14.pt", "1" * 64, CPU, weights_status="UNVERIFIED: x")
    assert backbone.weights_status.startswith(RANDOM_STATUS) and "sa_0_4_vit_l_14_linear.pth" in backbone.weights_status
    assert backbone.weights_sha256[:16] in backbone.identity
    assert backbone.weights_sha256 not in ("1" * 64, backbone.companions["laion_aes_v1"][1].sha256)  # covers both
