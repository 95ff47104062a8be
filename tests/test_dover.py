"""dover and fastvqa against the vendored references in objective-metrics 1.2.2 (DOVER v0.1.0, FasterVQA): the
samplers draw the same frames and fragment offsets as the reference's after seeding the global generators the same
way, the views are equal tensor for tensor, the networks agree on identical tensors, and the metrics run through
the engine (decoding, feature cache) equal the reference classes' `score_video` on our decoded frames, with the
same random weights files in the official formats (features/dover.py write_dover / write_fastervqa), loaded
through the user's lookup and loading path.

The references import modules that are not installed here and that the code paths compared never use (cv2 and
decord's video readers, scikit-video for .yuv files, gdown for downloads): placeholders stand in for cv2,
skvideo and gdown; DOVER's aesthetic backbone is built without its ImageNet download (the weights come from our
file anyway). The references' modules are taken out of sys.modules again after this module's tests.

Cost: one full-size forward of each network per implementation (DOVER with `clips: 1`), about 30 s on 2 cores.
"""

from __future__ import annotations

import copy
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pytest_aigve.engine import EvalContext, evaluate_check
from pytest_aigve.errors import MetricError
from pytest_aigve.examples import moving_scene, write_video
from pytest_aigve.features.dover import (
    DOVER_KEYS,
    DOVER_PARAMETERS,
    FASTERVQA_PARAMETERS,
    ConvNeXt3D,
    DoverBackbone,
    DoverNet,
    FasterVQABackbone,
    FasterVQANet,
    Swin3D,
    centred_frame_indices,
    dover_views,
    draw_fragment_offsets,
    fastervqa_view,
    fragment_view,
    resized_view,
    segment_frame_indices,
    write_dover,
    write_fastervqa,
)
from pytest_aigve.features.registry import BackboneRegistry
from pytest_aigve.features.weights import (
    METRIC_WEIGHTS,
    REGISTRY,
    WeightsError,
    file_sha256,
    is_random_test_weights,
    load_state_dict,
    locate,
)
from pytest_aigve.metrics.dover import Dover, dover_scores
from pytest_aigve.metrics.fastvqa import FasterVQA, fastervqa_score
from pytest_aigve.metrics.registry import MetricRegistry
from pytest_aigve.metrics.testing import MemoryInputs
from pytest_aigve.paths import WEIGHTS_ENV
from pytest_aigve.protocol import ClipProtocol
from pytest_aigve.random_weights import WRITERS
from pytest_aigve.suite import load_suite
from pytest_aigve.videos.cache import ClipCache
from pytest_aigve.videos.decode import decode_clip
from pytest_aigve.videos.prepare import clip_to_uint8

CPU = torch.device("cpu")
EVERY_NATIVE_FRAME = ClipProtocol(frames=None, fps=None, stride=1, resize=None)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dover-weights")
    write_dover(folder, seed=0)
    write_fastervqa(folder, seed=0)
    return folder


@pytest.fixture(scope="module")
def references() -> Iterator[types.SimpleNamespace]:
    """objective-metrics' DOVER and FasterVQA modules (see the module docstring)."""
    pytest.importorskip("objective_metrics", reason="objective-metrics (test-only reference) is not installed")
    pytest.importorskip("decord", reason="decord (read by the references' modules) is not installed")
    pytest.importorskip("timm", reason="timm (imported by the reference networks) is not installed")
    pytest.importorskip("einops", reason="einops (imported by the reference networks) is not installed")
    before = set(sys.modules)
    placeholders = {name: types.ModuleType(name) for name in ("cv2", "skvideo", "skvideo.io", "gdown")}
    for name, module in placeholders.items():
        sys.modules.setdefault(name, module)
    try:
        from objective_metrics.modules.nr_vqa import dover, fastvqa
        from objective_metrics.modules.nr_vqa.models import _dover as dover_models
        from objective_metrics.modules.nr_vqa.models import _fastvqa as fastvqa_models
        from objective_metrics.modules.nr_vqa.utils import _dover as dover_utils
        from objective_metrics.modules.nr_vqa.utils import _fastvqa as fastvqa_utils

        # the weights come from our files: the references' random initialisation is skipped (it is slow)
        for module in (dover_models, fastvqa_models):
            module.trunc_normal_ = lambda tensor, *args, **kwargs: tensor
        yield types.SimpleNamespace(dover=dover, fastvqa=fastvqa, dover_models=dover_models,
                                    fastvqa_models=fastvqa_models, dover_utils=dover_utils,
                                    fastvqa_utils=fastvqa_utils)
    finally:
        for name in set(sys.modules) - before:  # the reference's modules and our placeholders, nothing else
            if name.partition(".")[0] == "objective_metrics" or sys.modules[name] is placeholders.get(name):
                del sys.modules[name]


class FrameReader:
    """The references' video-reader interface (len, index -> (H, W, 3) uint8) over decoded frames."""

    def __init__(self, frames: np.ndarray) -> None:
        self.frames = frames

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.frames[int(index)]


def smooth_video(seed: int, frames: int, height: int, width: int) -> np.ndarray:
    return moving_scene(seed, frames=frames, size=(height, width))


def reference_dover(references: types.SimpleNamespace, weights_path: Path, clips: int,
                    monkeypatch: pytest.MonkeyPatch) -> Any:
    """objective-metrics' DOVER class on our weights file, with `clips` technical clips (its config's num_clips)."""
    models = references.dover_models
    monkeypatch.setattr(models, "convnext_3d_tiny",
                        lambda pretrained=False, **kwargs: models.ConvNeXt3D(depths=[3, 3, 9, 3],
                                                                             dims=[96, 192, 384, 768]))
    monkeypatch.setattr(references.dover, "download_checkpoints", lambda metric, logger: str(weights_path))
    scorer = references.dover.DOVER(logger=None)
    scorer.dopt = copy.deepcopy(scorer.dopt)
    scorer.dopt["sample_types"]["technical"]["num_clips"] = clips
    scorer.temporal_samplers["technical"] = references.dover_utils.UnifiedFrameSampler(32, clips, 2)
    return scorer


def recording(module: torch.nn.Module) -> list[Any]:
    """Record what `module` returns on each call."""
    outputs: list[Any] = []
    forward = module.forward

    def record(*args: Any, **kwargs: Any) -> Any:
        result = forward(*args, **kwargs)
        outputs.append(result)
        return result

    module.forward = record  # type: ignore[method-assign]
    return outputs


# --- the weights files --------------------------------------------------------------------------------------------


def test_random_weights_have_the_official_layout(weights: Path) -> None:
    dover_path, faster_path = weights / "DOVER.pth", weights / "FAST_VQA_3D_1_1.pth"
    state = load_state_dict(dover_path, REGISTRY["dover"])
    assert len(state) == DOVER_KEYS == 381
    assert sum(tensor.numel() for tensor in state.values()) == DOVER_PARAMETERS == 58_062_270
    prefixes = {key.split(".")[0] for key in state}
    assert prefixes == {"technical_backbone", "aesthetic_backbone", "technical_head", "aesthetic_head"}
    raw = torch.load(faster_path, map_location="cpu", weights_only=True)
    assert list(raw) == ["state_dict"]  # nested as the official checkpoint
    faster = load_state_dict(faster_path, REGISTRY["fastervqa"], nested_keys=("state_dict",))
    assert sum(tensor.numel() for tensor in faster.values()) == FASTERVQA_PARAMETERS == 29_971_869
    assert {key.split(".")[0] for key in faster} == {"fragments_backbone", "vqa_head"}
    assert is_random_test_weights(dover_path) and is_random_test_weights(faster_path)
    assert WRITERS["dover"] is not None and WRITERS["fastervqa"] is not None
    assert METRIC_WEIGHTS["dover"] == ("dover",) and METRIC_WEIGHTS["fastvqa"] == ("fastervqa",)
    assert REGISTRY["dover"].url.endswith("/v0.1.0/DOVER.pth") and "non-commercial" in REGISTRY["dover"].licence


# --- samplers and views -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("frame_count", [7, 40, 100, 333])
def test_frame_sampling_reproduces_the_reference_sampler(frame_count: int,
                                                         references: types.SimpleNamespace) -> None:
    sampler = references.dover_utils.UnifiedFrameSampler
    for seed in (0, 5):
        for clips in (1, 3):
            np.random.seed(seed)  # the reference draws from the global generator
            expected_technical = sampler(32, clips, 2)(frame_count)
            expected_aesthetic = sampler(1, 32, 2, 1)(frame_count)
            rng = np.random.RandomState(seed)
            technical = segment_frame_indices(frame_count, clips, 32, 2, rng)
            aesthetic = segment_frame_indices(frame_count, 32, 1, 2, rng)
            assert np.array_equal(technical, expected_technical), (seed, clips)
            assert np.array_equal(aesthetic, expected_aesthetic), (seed, clips)
    np.random.seed(1)
    assert not np.array_equal(sampler(32, 3, 2)(333), segment_frame_indices(333, 3, 32, 2,
                                                                            np.random.RandomState(0)))
    # FasterVQA's script path: one centred clip of 32 consecutive frames (SampleFrames, test mode)
    expected = references.fastvqa_utils.SampleFrames(clip_len=32, num_clips=1)(frame_count)
    assert np.array_equal(centred_frame_indices(frame_count), expected)


@pytest.mark.parametrize("size", [(120, 160), (240, 300)])
def test_views_equal_the_reference_views(size: tuple[int, int], references: types.SimpleNamespace) -> None:
    """Fragments (with the upsampling of small videos), the aesthetic resize and DOVER's whole view decomposition
    with its default 3 clips, from the same seeds."""
    height, width = size
    frames = smooth_video(3, 200 if height > 224 else 100, height, width)  # 200: technical starts are drawn
    video = torch.from_numpy(frames)
    channels_first = video.permute(3, 0, 1, 2)
    utils = references.dover_utils
    for seed in (0, 7):
        torch.manual_seed(seed)
        expected = utils.get_spatial_fragments(channels_first[:, :64], fragments_h=7, fragments_w=7, fsize_h=32,
                                               fsize_w=32, aligned=32)
        offsets = draw_fragment_offsets(height, width, 2, torch.Generator().manual_seed(seed))
        assert torch.equal(fragment_view(channels_first[:, :64], offsets, 32), expected)
        torch.manual_seed(seed)
        expected = references.fastvqa_utils.get_spatial_fragments(channels_first[:, :32], aligned=8)
        offsets = draw_fragment_offsets(height, width, 4, torch.Generator().manual_seed(seed))
        assert torch.equal(fragment_view(channels_first[:, :32], offsets, 8), expected)
    drawn = draw_fragment_offsets(height, width, 2, torch.Generator().manual_seed(0))
    assert bool((drawn.rows > 0).any()) == (height // 7 > 32)  # offsets are drawn where a cell exceeds 32 px

    expected_resized = utils.get_resized_video(channels_first[:, :32], size_h=224, size_w=224)
    assert torch.equal(resized_view(channels_first[:, :32], antialias=True), expected_resized.float())
    assert not torch.equal(resized_view(channels_first[:, :32], antialias=False), expected_resized.float())

    # the whole decomposition, normalised and split into clips as DOVER.score_video does
    scorer_options = {"technical": {"fragments_h": 7, "fragments_w": 7, "fsize_h": 32, "fsize_w": 32,
                                    "aligned": 32, "clip_len": 32, "frame_interval": 2, "num_clips": 3},
                      "aesthetic": {"size_h": 224, "size_w": 224, "clip_len": 32, "frame_interval": 2,
                                    "t_frag": 32, "num_clips": 1}}
    samplers = {"technical": utils.UnifiedFrameSampler(32, 3, 2), "aesthetic": utils.UnifiedFrameSampler(1, 32, 2, 1)}
    np.random.seed(11)
    torch.manual_seed(11)
    views, indices = utils.spatial_temporal_view_decomposition_v2("video", scorer_options, samplers,
                                                                  lambda path: FrameReader(frames))
    ours = dover_views(video, seed=11, clips=3, antialias=True)
    assert np.array_equal(ours.technical_frames, indices["technical"])
    assert np.array_equal(ours.aesthetic_frames, indices["aesthetic"])
    for name, view, clips in (("technical", ours.technical, 3), ("aesthetic", ours.aesthetic, 1)):
        v = views[name]
        expected = ((v.permute(1, 2, 3, 0) - utils.mean) / utils.std).permute(3, 0, 1, 2)
        expected = expected.reshape(v.shape[0], clips, -1, *v.shape[2:]).transpose(0, 1)
        assert torch.allclose(view, expected, rtol=0, atol=1e-5), name
    assert ours.technical.shape == (3, 3, 32, 224, 224) and ours.aesthetic.shape == (1, 3, 32, 224, 224)


# --- networks on identical tensors --------------------------------------------------------------------------------


def _part(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}


def test_networks_match_the_reference_networks_on_identical_tensors(weights: Path,
                                                                    references: types.SimpleNamespace) -> None:
    """Small odd-sized inputs (padding, windows shrunk to the feature map, FAST-VQA's adaptive windows); the
    full-size path is compared in the metric tests."""
    dover_state = load_state_dict(weights / "DOVER.pth", REGISTRY["dover"])
    faster_state = load_state_dict(weights / "FAST_VQA_3D_1_1.pth", REGISTRY["fastervqa"], ("state_dict",))
    generator = torch.Generator().manual_seed(0)
    first, second = torch.randn(2, 1, 3, 8, 64, 96, generator=generator)
    cases = [(Swin3D(adaptive_window=False), references.dover_models.SwinTransformer3D(),
              _part(dover_state, "technical_backbone.")),
             (Swin3D(adaptive_window=True), references.fastvqa_models.SwinTransformer3D(),
              _part(faster_state, "fragments_backbone.")),
             (ConvNeXt3D(), references.dover_models.ConvNeXt3D(depths=[3, 3, 9, 3], dims=[96, 192, 384, 768]),
              _part(dover_state, "aesthetic_backbone."))]
    with torch.no_grad():
        for ours, reference, state in cases:
            ours.load_state_dict(state)
            reference.load_state_dict(state)
            ours.eval(), reference.eval()
            expected = reference(first)
            got = ours(first)
            assert got.shape == expected.shape
            assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))
            assert not torch.allclose(ours(second), got, atol=1e-3)  # random weights still tell inputs apart
        # whole networks (heads included) on two inputs: the random files give scores that differ, mid-sigmoid
        dover, faster = DoverNet().eval(), FasterVQANet().eval()
        dover.load_state_dict(dover_state)
        faster.load_state_dict(faster_state)
        scores = [dover_scores(*(float(branch.mean()) for branch in dover(clip, clip)))["overall"]
                  for clip in (first, second)]
        faster_scores = [fastervqa_score(float(faster(clip).mean())) for clip in (first, second)]
    for pair in (scores, faster_scores):
        assert all(0.02 < score < 0.98 for score in pair) and abs(pair[0] - pair[1]) > 1e-3, pair


# --- the metrics through the engine, against the reference classes ------------------------------------------------


def suite_file(folder: Path, videos: list[Path]) -> Path:
    path = folder / "suite.yaml"
    path.write_text(f"""\
protocol: {{frames: all, fps: null, stride: 1, resize: null}}
video_sets:
  gen: {{files: {[str(p) for p in videos]}}}
checks:
  - {{metric: dover, set: gen, params: {{clips: 1}}}}
  - {{metric: dover, name: technical, set: gen, params: {{clips: 1, output: technical}}}}
  - {{metric: fastvqa, set: gen, params: {{seed: 1}}}}
""")
    return path


def run_checks(suite_path: Path, weights: Path, cache: Path) -> list[Any]:
    registry = MetricRegistry()
    suite = load_suite(suite_path, registry)
    ctx = EvalContext(device=CPU, clips=ClipCache(10**9), registry=registry, weights_dir=weights,
                      allow_unverified_weights=True, feature_cache_dir=cache)
    return [evaluate_check(suite, check, ctx).result for check in suite.checks]


def test_metrics_match_the_reference_classes(weights: Path, references: types.SimpleNamespace, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    video_path = write_video(tmp_path / "v" / "a.mp4", smooth_video(5, 100, 240, 256))
    suite_path = suite_file(tmp_path, [video_path])
    cache = tmp_path / "features"
    overall, technical, faster = run_checks(suite_path, weights, cache)
    assert overall.backbone.features_computed == 1 and technical.backbone.features_computed == 0  # one row shared
    assert faster.backbone.features_computed == 1
    assert overall.details["clips"] == 1 and overall.details["seed"] == 0 and overall.details["antialias"] is True
    assert "RANDOM TEST WEIGHTS" in overall.backbone.weights_check

    frames = clip_to_uint8(decode_clip(video_path, EVERY_NATIVE_FRAME).frames, EVERY_NATIVE_FRAME, CPU).numpy()
    assert frames.shape == (100, 240, 256, 3)

    # DOVER: the reference class with 1 clip, seeded as our default seed 0, on the same decoded frames
    scorer = reference_dover(references, weights / "DOVER.pth", clips=1, monkeypatch=monkeypatch)
    outputs = recording(scorer.evaluator)
    np.random.seed(0)
    torch.manual_seed(0)
    expected = scorer.score_video("a.mp4", lambda path: FrameReader(frames))
    raw_technical, raw_aesthetic = (float(r.mean()) for r in outputs[0])
    assert overall.details["raw_technical"] == pytest.approx(raw_technical, rel=1e-4)
    assert overall.details["raw_aesthetic"] == pytest.approx(raw_aesthetic, rel=1e-4)
    assert overall.value == pytest.approx(float(expected), rel=1e-4, abs=1e-6)
    assert 0.02 < overall.value < 0.98  # random weights stay off the sigmoid's flat ends
    assert technical.value == pytest.approx(1 / (1 + np.exp(-(raw_technical - 0.1107) / 0.07355)), rel=1e-4)

    # FasterVQA: the reference class (f3dvqa-b config), seeded as our seed 1
    monkeypatch.setattr(references.fastvqa, "download_checkpoints",
                        lambda metric, logger: str(weights / "FAST_VQA_3D_1_1.pth"))
    faster_reference = references.fastvqa.FastVQA("FasterVQA", logger=None)
    faster_outputs = recording(faster_reference.evaluator)
    torch.manual_seed(1)
    expected_faster = faster_reference.score_video("a.mp4", lambda path: FrameReader(frames))
    assert faster.details["raw"] == pytest.approx(float(faster_outputs[0].mean()), rel=1e-4)
    assert faster.value == pytest.approx(float(expected_faster), rel=1e-4, abs=1e-6)
    assert 0.02 < faster.value < 0.98

    # a warm re-run (new process state, same feature cache) computes nothing and gives the same values
    warm = run_checks(suite_path, weights, cache)
    assert [result.backbone.features_computed for result in warm] == [0, 0, 0]
    assert [result.value for result in warm] == [overall.value, technical.value, faster.value]


def test_sampling_settings_name_the_backbone(weights: Path) -> None:
    """Seed, clips and antialias are backbone options: part of its identity, so features never mix settings."""
    default = Dover.backbone_requests(Dover.validate_params({}))[0]
    assert default.key == "dover" and dict(default.options) == {"seed": 0, "clips": 3, "antialias": True}
    other = Dover.backbone_requests(Dover.validate_params({"clips": 1, "seed": 3, "antialias": False}))[0]
    assert other.key == "dover" and dict(other.options) == {"seed": 3, "clips": 1, "antialias": False}
    assert Dover.requirement_problems(Dover.validate_params({"clips": 1}), EVERY_NATIVE_FRAME, BackboneRegistry(),
                                      "cpu") == []
    path = weights / "DOVER.pth"
    sha = file_sha256(path)
    identities = {DoverBackbone(path, sha, CPU, options=dict(request.options)).identity for request in (default, other)}
    assert len(identities) == 2 and any("seed=3" in identity for identity in identities)
    with pytest.raises(MetricError, match="has no option frames"):
        DoverBackbone(path, sha, CPU, options={"frames": 8})
    assert dict(FasterVQA.backbone_requests(FasterVQA.validate_params({"seed": 2}))[0].options) == {"seed": 2}
    assert FasterVQA.backbone_requests(FasterVQA.validate_params({}))[0].key == FasterVQABackbone.key
    assert Dover.params["seed"].affects_score and Dover.params["antialias"].affects_score
    with pytest.raises(Exception, match="true or false"):
        Dover.validate_params({"antialias": "yes"})


def test_metric_scores_from_backbone_rows() -> None:
    """The fusion: DOVER's constants and sigmoids per output; FasterVQA's published mean and std."""
    rows = [np.array([[0.2, -0.05]]), np.array([[0.05, -0.1]])]
    for output in ("overall", "technical", "aesthetic"):
        metric = Dover(Dover.validate_params({"output": output}), CPU)
        result = metric.evaluate(MemoryInputs(features={"set": rows}))
        expected = [dover_scores(0.2, -0.05)[output], dover_scores(0.05, -0.1)[output]]
        assert result.value == pytest.approx(np.mean(expected)) and list(result.per_video.values()) == expected
        assert result.details["output"] == output and result.details["raw_technical"] == pytest.approx(0.125)
    x = (0.2 - 0.1107) / 0.07355 * 0.6104 + (-0.05 + 0.08285) / 0.03774 * 0.3896
    assert dover_scores(0.2, -0.05)["overall"] == pytest.approx(1 / (1 + np.exp(-x)), rel=1e-12)
    assert dover_scores(0.2, -0.05)["aesthetic"] == pytest.approx(1 / (1 + np.exp(-(0.03285 / 0.03774))))
    result = FasterVQA(FasterVQA.validate_params({}), CPU).evaluate(MemoryInputs(features={"set": [np.array([[0.2]])]}))
    assert result.value == pytest.approx(1 / (1 + np.exp(-(0.2 - 0.14759505) / 0.03613452)))
    assert fastervqa_score(0.14759505) == pytest.approx(0.5)


# --- missing, corrupt and wrong weights ---------------------------------------------------------------------------


def test_missing_corrupt_and_wrong_weights(weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    for key, filename in (("dover", "DOVER.pth"), ("fastervqa", "FAST_VQA_3D_1_1.pth")):
        with pytest.raises(WeightsError) as info:
            locate(REGISTRY[key], None, tmp_path / "nowhere")
        assert str(info.value).startswith(f"missing weights {filename}")
        assert f"fetch with: python -m pytest_aigve weights fetch {key}" in str(info.value)

    backbones: list[tuple[type[Any], str, str]] = [(DoverBackbone, "DOVER.pth", "dover"),
                                                   (FasterVQABackbone, "FAST_VQA_3D_1_1.pth", "fastervqa")]
    for backbone_cls, filename, key in backbones:
        path = tmp_path / filename
        path.write_bytes((weights / filename).read_bytes()[:300_000])
        with pytest.raises(WeightsError) as info:
            backbone_cls(path, "0" * 64, CPU).model  # noqa: B018 - built on first use
        assert f"cannot load weights {path} for {key}" in str(info.value) and "truncated" in str(info.value)
        assert f"weights fetch {key}" in str(info.value)
        torch.save({"state_dict": {"conv1.weight": torch.zeros(4, 3, 7, 7)}}, path)
        with pytest.raises(WeightsError) as info:
            backbone_cls(path, "0" * 64, CPU).model  # noqa: B018
        assert "missing keys" in str(info.value) and f"right file for {key}" in str(info.value)
    # DOVER's file is not FasterVQA's (and the other way round): the architectures differ
    with pytest.raises(WeightsError, match="right file for fastervqa"):
        FasterVQABackbone(weights / "DOVER.pth", "0" * 64, CPU).model  # noqa: B018


def test_clip_too_small_is_a_metric_error(weights: Path) -> None:
    backbone = DoverBackbone(weights / "DOVER.pth", "0" * 64, CPU)
    with pytest.raises(Exception, match="at least 32x32"):
        backbone.extract([torch.zeros((4, 16, 64, 3), dtype=torch.uint8)])
    view, frames, _ = fastervqa_view(torch.zeros((10, 64, 64, 3), dtype=torch.uint8), seed=0)
    assert view.shape == (1, 3, 32, 224, 224) and list(frames[:12]) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]

