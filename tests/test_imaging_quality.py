"""imaging_quality (VBench): our MUSIQ against pyiqa's on identical tensors, VBench's frame preprocessing, and the
whole metric against vbench's `technical_quality` on our decoded frames, with the same random weights file in the
official format (pytest_aigve.features.musiq.write_musiq_spaq), loaded through the user's lookup and loading path.

The references are imported without their packages' `__init__` (pyiqa's imports cv2 and every dataset, VBench's
utils import decord, neither installed here): `pyiqa`, `pyiqa.archs`, `pyiqa.data` and `pyiqa.utils` are placeholder
packages whose path is the real folder, so only `pyiqa.archs.musiq_arch` and what it imports run; `decord` is a
placeholder with the two names `vbench.utils` imports (VBench's frame loading is replaced by our decoded frames).
Their modules are taken out of sys.modules again after this module's tests.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pytest_aigve.engine import EvalContext, evaluate_check
from pytest_aigve.errors import MetricError
from pytest_aigve.features.musiq import (
    PARAMETERS,
    PREPROCESS_INPUTS,
    PREPROCESS_MODES,
    TENSORS,
    MusiqSpaqBackbone,
    vbench_frames,
    write_musiq_spaq,
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
    resolve_keys,
    verify,
)
from pytest_aigve.metrics.imaging_quality import ImagingQuality
from pytest_aigve.metrics.registry import MetricRegistry
from pytest_aigve.metrics.testing import MemoryInputs
from pytest_aigve.paths import WEIGHTS_ENV
from pytest_aigve.protocol import ClipProtocol
from pytest_aigve.suite import load_suite
from pytest_aigve.videos.cache import ClipCache
from pytest_aigve.videos.decode import decode_clip
from pytest_aigve.videos.prepare import clip_to_uint8

CPU = torch.device("cpu")
ENTRY = REGISTRY["musiq_spaq"]
EVERY_NATIVE_FRAME = ClipProtocol(frames=None, fps=None, stride=1, resize=None)


@pytest.fixture(scope="module")
def musiq_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_musiq_spaq(tmp_path_factory.mktemp("musiq"), seed=0)


@pytest.fixture(scope="module")
def references() -> Iterator[types.SimpleNamespace]:
    """pyiqa's MUSIQ class and VBench's imaging_quality module (see the module docstring)."""
    before = set(sys.modules)
    spec = importlib.util.find_spec("pyiqa")
    if spec is None or spec.origin is None:
        pytest.skip("pyiqa (test-only reference) is not installed")
    root = Path(spec.origin).parent
    placeholders = {"pyiqa": root, "pyiqa.archs": root / "archs", "pyiqa.data": root / "data",
                    "pyiqa.utils": root / "utils"}
    for name, folder in placeholders.items():
        package = types.ModuleType(name)
        package.__path__ = [str(folder)]
        sys.modules[name] = package
    decord = types.ModuleType("decord")
    decord.VideoReader = None  # type: ignore[attr-defined]
    decord.cpu = None  # type: ignore[attr-defined]
    sys.modules.setdefault("decord", decord)
    try:
        from pyiqa.archs.musiq_arch import MUSIQ as ReferenceMUSIQ
        from vbench import imaging_quality as vbench_imaging_quality
        yield types.SimpleNamespace(MUSIQ=ReferenceMUSIQ, vbench=vbench_imaging_quality)
    finally:
        for name in set(sys.modules) - before:  # only the references' own modules (never torch's, scipy's ...)
            if name.partition(".")[0] in ("pyiqa", "vbench", "decord"):
                del sys.modules[name]


def our_backbone(path: Path, key: str = "musiq_spaq", **kwargs: Any) -> MusiqSpaqBackbone:
    backbone_cls = BackboneRegistry().get(key)
    backbone = backbone_cls(path, file_sha256(path), CPU, **kwargs)
    assert isinstance(backbone, MusiqSpaqBackbone)
    return backbone


def smooth_frames(seed: int, count: int, height: int, width: int) -> torch.Tensor:
    """(count, 3, H, W) float 0-255: low-frequency colour fields (not noise), different per frame."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, 4, 5, generator=generator) * 255
    return torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)


# --- the weights file ---------------------------------------------------------------------------------------------


def test_random_weights_have_the_official_layout(musiq_weights: Path, references: types.SimpleNamespace) -> None:
    state = load_state_dict(musiq_weights, ENTRY)
    assert len(state) == TENSORS == 248
    assert sum(tensor.numel() for tensor in state.values()) == PARAMETERS == 27_125_825
    reference = references.MUSIQ(pretrained=False).state_dict()
    assert {key: tuple(t.shape) for key, t in state.items()} == {key: tuple(t.shape) for key, t in reference.items()}
    assert is_random_test_weights(musiq_weights)
    assert musiq_weights.name == "musiq_spaq_ckpt-358bb6af.pth" and ENTRY.sha256_prefix == "358bb6af"
    assert METRIC_WEIGHTS["imaging_quality"] == ("musiq_spaq",) and resolve_keys(["imaging_quality"]) == ["musiq_spaq"]


# --- the network and the preprocessing ---------------------------------------------------------------------------


def test_network_matches_pyiqa_on_identical_tensors(musiq_weights: Path, references: types.SimpleNamespace) -> None:
    ours = our_backbone(musiq_weights).model
    reference = references.MUSIQ(pretrained_model_path=str(musiq_weights))  # as VBench builds it
    reference.training = False  # as VBench sets it (pyiqa's forward normalises and cuts patches only then)
    scores: list[float] = []
    for images in (smooth_frames(1, 2, 64, 96) / 255, smooth_frames(2, 1, 40, 600) / 255):
        with torch.inference_mode():
            expected = reference(images).reshape(-1)
            got = ours(images)
        assert got.shape == expected.shape
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))
        scores.extend(float(score) for score in got)
    # random weights still tell frames apart (no BatchNorm: nothing to recalibrate)
    first, second = scores[:2]
    assert abs(first - second) > 1e-3 * max(abs(first), abs(second))


@pytest.mark.parametrize("mode", PREPROCESS_MODES)
def test_frame_preprocessing_is_vbench_transform(mode: str, references: types.SimpleNamespace) -> None:
    vbench_mode = "None" if mode == "none" else mode  # VBench's spelling
    for height, width in ((520, 700), (40, 600), (64, 96), (700, 300)):
        frames = smooth_frames(height, 2, height, width)
        expected = references.vbench.transform(frames.clone(), vbench_mode)
        got = vbench_frames(frames.clone(), mode)
        assert got.shape == expected.shape, (mode, height, width)
        assert torch.equal(got, expected), (mode, height, width)
    assert vbench_frames(smooth_frames(0, 1, 40, 600), "longer").shape[-2:] == (34, 512)  # int(), not round()


def test_frames_of_different_sizes_batch_like_single_frames(musiq_weights: Path) -> None:
    backbone = our_backbone(musiq_weights, batch_size=2)
    # thin frames: few patches at every scale (a network forward costs about 35 MMAC per patch)
    clips = [smooth_frames(5, 3, 16, 96).round().to(torch.uint8).permute(0, 2, 3, 1),
             smooth_frames(6, 1, 24, 160).round().to(torch.uint8).permute(0, 2, 3, 1)]
    scores = backbone.extract(clips)
    assert [s.shape for s in scores] == [(3, 1), (1, 1)] and all(s.dtype == np.float64 for s in scores)
    with torch.inference_mode():
        alone = [np.array([[float(backbone.model(backbone.prepare(clip[i: i + 1])))] for i in range(len(clip))])
                 for clip in clips]
    for got, expected in zip(scores, alone, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_preprocess_mode_is_part_of_the_backbone_identity(musiq_weights: Path) -> None:
    registry = BackboneRegistry()
    identities, descriptions = set(), set()
    for mode in PREPROCESS_MODES:
        (request,) = ImagingQuality.backbone_requests(ImagingQuality.validate_params({"preprocess": mode}))
        assert request.key == "musiq_spaq" and request.output == "score"
        assert request.options == (("preprocess", mode),)
        assert registry.get(request.key).options_problem(dict(request.options)) is None
        backbone = our_backbone(musiq_weights, request.key, options=dict(request.options))
        assert backbone.preprocess == mode and backbone.weights_file is ENTRY
        assert backbone.input_description == PREPROCESS_INPUTS[mode] == backbone.info().input
        identities.add(backbone.identity)
        descriptions.add(backbone.input_description)
    # one backbone for every mode; scores of one mode never served for another (the identity keys the cache)
    assert len(identities) == len(descriptions) == len(PREPROCESS_MODES)
    spelled_out = our_backbone(musiq_weights, options={"preprocess": "longer"})
    assert our_backbone(musiq_weights).identity == spelled_out.identity
    assert not {"musiq_spaq_shorter", "musiq_spaq_shorter_centercrop", "musiq_spaq_none"} & set(registry.names())
    assert ImagingQuality.validate_params({})["preprocess"] == "longer"
    assert not ImagingQuality.params["batch_size"].affects_score and not ImagingQuality.params["weights"].affects_score
    assert ImagingQuality.params["preprocess"].affects_score


def test_a_bad_preprocess_option_is_an_error_naming_the_allowed_values(musiq_weights: Path) -> None:
    with pytest.raises(MetricError, match=r"preprocess='longest'.*longer, shorter, shorter_centercrop, none"):
        our_backbone(musiq_weights, options={"preprocess": "longest"})
    with pytest.raises(MetricError, match="no option resize"):
        our_backbone(musiq_weights, options={"resize": "aigve"})
    problem = MusiqSpaqBackbone.options_problem({"preprocess": "None"})
    assert problem is not None and "preprocess" in problem and "shorter_centercrop" in problem


# --- the metric ----------------------------------------------------------------------------------------------------


def test_per_video_mean_over_frames_and_set_mean_divided_by_100() -> None:
    inputs = MemoryInputs(features={"set": [np.array([[50.0], [70.0], [90.0]]), np.array([[30.0]])]})
    result = ImagingQuality(ImagingQuality.validate_params({}), CPU).evaluate(inputs)
    assert dict(result.per_video) == pytest.approx({"v0.mp4": 0.7, "v1.mp4": 0.3}, rel=1e-15)
    assert result.value == pytest.approx(0.5, rel=1e-15)  # VBench: mean over videos of frame means, / 100
    assert result.details["frames"] == 4 and result.resample is not None
    assert {result.resample(np.random.default_rng(seed)) for seed in range(20)} <= {0.7, 0.3, 0.5}


def suite_file(folder: Path, videos: list[Path], preprocess: str = "longer") -> Path:
    path = folder / "suite.yaml"
    path.write_text(f"""\
protocol: {{frames: all, fps: null, stride: 1, resize: null}}
video_sets:
  gen: {{files: {[str(p) for p in videos]}}}
checks:
  - {{metric: imaging_quality, set: gen, params: {{preprocess: {preprocess}}}}}
""")
    return path


def run_metric(suite_path: Path, weights: Path, cache: Path | None) -> Any:
    registry = MetricRegistry()
    suite = load_suite(suite_path, registry)
    ctx = EvalContext(device=CPU, clips=ClipCache(10**9), registry=registry, weights_dir=weights,
                      allow_unverified_weights=True, feature_cache_dir=cache)
    return evaluate_check(suite, suite.checks[0], ctx)


def test_metric_matches_vbench_technical_quality(musiq_weights: Path, references: types.SimpleNamespace,
                                                 make_video: Callable[..., Path], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    videos = [make_video("v/a.mp4", seed=1, frames=2, size=(32, 128)),
              make_video("v/b.mp4", seed=2, frames=2, size=(40, 600))]  # longer than 512: resized
    suite_path = suite_file(tmp_path, videos)
    cache = tmp_path / "features"
    first = run_metric(suite_path, musiq_weights.parent, cache)
    result = first.result
    assert result.backbone.name == "musiq-spaq" and result.backbone.features_computed == 2
    assert result.backbone.input == PREPROCESS_INPUTS["longer"]
    assert result.backbone.weights_check.startswith("UNVERIFIED: RANDOM TEST WEIGHTS")

    # VBench on the same decoded frames (its loader returns float (T, 3, H, W) 0-255), the reference MUSIQ from the
    # same file, built and switched as compute_imaging_quality does
    decoded = {str(path): torch.from_numpy(clip_to_uint8(decode_clip(path, EVERY_NATIVE_FRAME).frames,
                                                         EVERY_NATIVE_FRAME, CPU).numpy()).float().permute(0, 3, 1, 2)
               for path in videos}
    assert [frames.shape[0] for frames in decoded.values()] == [2, 2]
    monkeypatch.setattr(references.vbench, "load_video", lambda path: decoded[path].clone())
    reference = references.MUSIQ(pretrained_model_path=str(musiq_weights))
    reference.training = False
    with torch.no_grad():  # VBench runs with autograd on; the values are the same, the memory and time less
        average, per_video = references.vbench.technical_quality(reference, [str(p) for p in videos], CPU)
    assert result.value == pytest.approx(average, rel=1e-4)
    expected = {item["video_path"]: item["video_results"] / 100 for item in per_video}
    assert dict(result.per_video) == pytest.approx(expected, rel=1e-4)
    assert len(set(result.per_video.values())) == 2  # the two videos score differently

    # a warm re-run (new process state, same feature cache) computes nothing and gives the same value
    warm = run_metric(suite_path, musiq_weights.parent, cache).result
    assert warm.backbone.features_computed == 0 and warm.backbone.features_cached == 2
    assert warm.value == result.value

    # another preprocess mode on the same cache: its own features (b.mp4 at its native 600 px wide), never longer's
    native = run_metric(suite_file(tmp_path, videos, "none"), musiq_weights.parent, cache).result
    assert native.backbone.features_computed == 2 and native.backbone.features_cached == 0
    assert native.backbone.input == PREPROCESS_INPUTS["none"] and native.details["preprocess"] == "none"
    assert native.per_video[str(videos[1])] != result.per_video[str(videos[1])]


# --- missing, corrupt and wrong weights ---------------------------------------------------------------------------


@pytest.fixture
def no_weights_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    return tmp_path


def test_missing_weights_name_the_file_and_the_fetch_command(no_weights_anywhere: Path) -> None:
    with pytest.raises(WeightsError) as info:
        locate(ENTRY, None, no_weights_anywhere / "weights")
    message = str(info.value)
    assert message.startswith("missing weights musiq_spaq_ckpt-358bb6af.pth")
    assert str(no_weights_anywhere / "weights") in message and "torch hub cache" in message
    assert "fetch with: python -m pytest_aigve weights fetch musiq_spaq" in message


def test_corrupt_truncated_random_and_wrong_weights(musiq_weights: Path, tmp_path: Path) -> None:
    path = tmp_path / ENTRY.filename
    path.write_bytes(musiq_weights.read_bytes()[:200_000])
    with pytest.raises(WeightsError) as info:
        verify(ENTRY, path)
    assert "corrupt weights" in str(info.value) and "expected sha256 prefix 358bb6af" in str(info.value)
    assert "python -m pytest_aigve weights fetch musiq_spaq" in str(info.value)
    with pytest.raises(WeightsError) as info:
        our_backbone(path).model  # noqa: B018 - built on first use
    assert f"cannot load weights {path} for musiq_spaq" in str(info.value) and "truncated" in str(info.value)
    assert "weights fetch musiq_spaq" in str(info.value)

    with pytest.raises(WeightsError, match="random test weights"):
        verify(ENTRY, musiq_weights)

    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(10, 512)}, path)
    with pytest.raises(WeightsError) as info:
        our_backbone(path).model  # noqa: B018
    assert "are not a MUSIQ SPAQ (pyiqa) checkpoint" in str(info.value)
    assert "248 missing keys" in str(info.value) and "right file for musiq_spaq" in str(info.value)
