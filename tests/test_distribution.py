"""Set-level metrics: parity with their reference implementations on identical inputs and weights.

The weights are deterministic random ones in the official formats (pytest_aigve.random_weights), loaded
through the same lookup and loading path a user's run takes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pytest_aigve.engine import EvalContext, evaluate_check
from pytest_aigve.errors import MetricError
from pytest_aigve.features.backbones import BACKBONES, Backbone
from pytest_aigve.features.weights import REGISTRY, file_sha256
from pytest_aigve.metrics.registry import MetricRegistry
from pytest_aigve.protocol import ClipProtocol
from pytest_aigve.stats import frechet_distance
from pytest_aigve.suite import load_suite
from pytest_aigve.videos.cache import ClipCache
from pytest_aigve.videos.decode import decode_clip
from pytest_aigve.videos.prepare import clip_to_uint8

CPU = torch.device("cpu")
LAVIE = "aigve_toy_lavie/evaluate"


def backbone(key: str, folder: Path, **kwargs: Any) -> Backbone:
    path = folder / REGISTRY[key].filename
    return BACKBONES[key](path, file_sha256(path), CPU, **kwargs)


def real_clips(shared: Path, protocol: ClipProtocol, count: int, offset: int = 0) -> list[torch.Tensor]:
    paths = sorted((shared / LAVIE).glob("*.mp4"))[offset: offset + count]
    return [clip_to_uint8(decode_clip(p, protocol).frames, protocol, CPU) for p in paths]


def run_checks(folder: Path, suite_text: str, weights: Path, names: list[str]) -> dict[str, Any]:
    """Evaluate checks through the engine, exactly as the items do."""
    path = folder / "suite.yaml"
    path.write_text(suite_text)
    registry = MetricRegistry()
    suite = load_suite(path, registry)
    ctx = EvalContext(device=CPU, clips=ClipCache(10**9), registry=registry, weights_dir=weights,
                      allow_unverified_weights=True)
    checks = {c.id: c for c in suite.checks}
    return {name: evaluate_check(suite, checks[name], ctx).result for name in names}


@pytest.mark.parametrize("key", sorted(BACKBONES))
def test_random_weights_give_input_dependent_features(random_weights: Path, key: str) -> None:
    from pytest_aigve.examples import moving_scene

    model = backbone(key, random_weights)
    clips = [torch.from_numpy(moving_scene(seed, frames=16, size=(64, 64))) for seed in range(3)]
    features = np.stack([f.reshape(-1) for f in model.extract(clips)])
    assert np.isfinite(features).all()
    spread = features.std(axis=0).mean() / np.abs(features).mean()
    assert spread > 0.05, f"{key}: features barely depend on the input (relative spread {spread:.2e})"
    assert np.abs(features[0] - features[1]).max() > 1e-3 * np.abs(features).max()


@pytest.mark.shared_data
def test_fid_kid_is_match_torch_fidelity_on_real_frames(shared_data: Path, random_weights: Path,
                                                        tmp_path: Path) -> None:
    import torch_fidelity

    protocol = ClipProtocol(frames=3, fps=2, resize=(96, 96))
    suite = f"""\
protocol: {{frames: 3, fps: 2, resize: [96, 96]}}
video_sets:
  ref: {{files: {[str(p) for p in sorted((shared_data / LAVIE).glob("*.mp4"))[:5]]}}}
  gen: {{files: {[str(p) for p in sorted((shared_data / LAVIE).glob("*.mp4"))[5:10]]}}}
checks:
  - {{metric: fid, reference: ref, candidate: gen}}
  - {{metric: kid, reference: ref, candidate: gen}}
  - {{metric: is, set: gen, params: {{splits: 3}}}}
"""
    ours = run_checks(tmp_path, suite, random_weights, ["fid[ref-vs-gen]", "kid[ref-vs-gen]", "is[gen]"])

    class Frames(torch.utils.data.Dataset):
        def __init__(self, clips: list[torch.Tensor]) -> None:
            self.frames = torch.cat(clips).permute(0, 3, 1, 2).contiguous()  # uint8 (N, 3, H, W)

        def __len__(self) -> int:
            return self.frames.shape[0]

        def __getitem__(self, index: int) -> torch.Tensor:
            return self.frames[index]

    ref, gen = real_clips(shared_data, protocol, 5), real_clips(shared_data, protocol, 5, offset=5)
    reference = torch_fidelity.calculate_metrics(
        input1=Frames(gen), input2=Frames(ref), fid=True, kid=True, isc=True, isc_splits=3, kid_subset_size=15,
        feature_extractor_weights_path=str(random_weights / REGISTRY["inception"].filename), cuda=False,
        cache=False, verbose=False, save_cpu_ram=True)
    assert ours["fid[ref-vs-gen]"].value == pytest.approx(reference["frechet_inception_distance"], rel=1e-4)
    assert ours["kid[ref-vs-gen]"].value == pytest.approx(reference["kernel_inception_distance_mean"], rel=1e-4)
    assert ours["is[gen]"].value == pytest.approx(reference["inception_score_mean"], rel=1e-4)
    assert ours["is[gen]"].value > 1.01 and ours["fid[ref-vs-gen]"].value > 1.0  # not degenerate



def cdfvd_distance(stats_real: Any, stats_fake: Any) -> float:
    mu_r, cov_r = stats_real.get_mean_cov()
    mu_f, cov_f = stats_fake.get_mean_cov()
    return frechet_distance(mu_r, cov_r, mu_f, cov_f).value


@pytest.mark.shared_data
def test_fvd_and_cdfvd_i3d_match_cdfvd(shared_data: Path, random_weights: Path, tmp_path: Path) -> None:
    from cdfvd.fvd import cdfvd

    files = sorted(str(p) for p in (shared_data / LAVIE).glob("*.mp4"))
    suite = f"""\
protocol: {{frames: 10, resize: [64, 64]}}
video_sets:
  ref: {{files: {files[:4]}}}
  gen: {{files: {files[4:8]}}}
checks:
  - {{metric: fvd, reference: ref, candidate: gen}}
  - {{metric: cd_fvd, reference: ref, candidate: gen, params: {{model: i3d, resolution: 64, sequence_length: 10}}}}
"""
    ours = run_checks(tmp_path, suite, random_weights, ["fvd[ref-vs-gen]", "cd_fvd[ref-vs-gen]"])
    protocol = ClipProtocol(frames=10, resize=(64, 64))
    real = torch.stack(real_clips(shared_data, protocol, 4)).numpy()
    fake = torch.stack(real_clips(shared_data, protocol, 4, offset=4)).numpy()
    reference = cdfvd(model="i3d", ckpt_path=str(random_weights / REGISTRY["i3d"].filename), device="cpu",
                      n_real="full", n_fake="full")
    reference.add_real_stats(real)
    reference.add_fake_stats(fake)
    expected = cdfvd_distance(reference.real_stats, reference.fake_stats)
    assert expected > 1.0
    assert ours["fvd[ref-vs-gen]"].value == pytest.approx(expected, rel=1e-3)
    # cd_fvd's `resolution` is cd-fvd's own resize (float32, truncated to uint8): compare with cd-fvd's
    # preprocess of the decoded frames, not with our stretched arrays
    from cdfvd.utils.data_utils import preprocess

    def cdfvd_arrays(paths: list[str]) -> np.ndarray:
        videos = [preprocess(torch.from_numpy(decode_clip(Path(p), ClipProtocol(frames=10)).frames), 64)["video"]
                  for p in paths]
        return np.stack([(v * 255).byte().permute(1, 2, 3, 0).numpy() for v in videos])

    reference.empty_real_stats()
    reference.empty_fake_stats()
    reference.add_real_stats(cdfvd_arrays(files[:4]))
    reference.add_fake_stats(cdfvd_arrays(files[4:8]))
    expected_cd = cdfvd_distance(reference.real_stats, reference.fake_stats)
    assert ours["cd_fvd[ref-vs-gen]"].value == pytest.approx(expected_cd, rel=1e-3)


def test_cdfvd_videomae_matches_cdfvd_features(random_weights: Path, tmp_path: Path, make_video) -> None:
    from cdfvd.fvd import get_videomae_features
    from cdfvd.utils.metric_utils import FeatureStats

    from pytest_aigve.features.weights import load_state_dict

    for index in range(3):
        make_video(f"ref/v{index}.mp4", seed=index, frames=16, size=(48, 64))
        make_video(f"gen/v{index}.mp4", seed=10 + index, frames=16, size=(48, 64), degraded=True)
    suite = """\
protocol: {frames: 16}
video_sets: {ref: {folder: ref}, gen: {folder: gen}}
checks:
  - {metric: cd_fvd, reference: ref, candidate: gen, params: {model: videomae}}
"""
    ours = run_checks(tmp_path, suite, random_weights, ["cd_fvd[ref-vs-gen]"])["cd_fvd[ref-vs-gen]"]
    # cd-fvd's own preprocessing and feature loop, on its own VisionTransformer holding the same weights
    entry = REGISTRY["videomae"]
    model = BACKBONES["videomae"](random_weights / entry.filename, "x", CPU).build(
        load_state_dict(random_weights / entry.filename, entry, ("module",))).eval()
    protocol = ClipProtocol(frames=16)
    arrays = {role: np.stack([decode_clip(p, protocol).frames for p in sorted((tmp_path / role).glob("*.mp4"))])
              for role in ("ref", "gen")}
    stats = {role: get_videomae_features(FeatureStats(capture_mean_cov=True), model, array, device="cpu")
             for role, array in arrays.items()}
    expected = cdfvd_distance(stats["ref"], stats["gen"])
    assert expected > 0
    assert ours.value == pytest.approx(expected, rel=1e-3)
    assert ours.backbone.name == "videomae-v2" and ours.details["feature_dim"] == 176


def test_r3d18_features_match_torchvision(random_weights: Path) -> None:
    from torchvision.models.video import R3D_18_Weights, r3d_18

    from pytest_aigve.examples import moving_scene

    clip = torch.from_numpy(moving_scene(3, frames=12, size=(90, 120)))
    ours = backbone("r3d18", random_weights).extract([clip])[0]
    model = r3d_18(weights=None)
    model.load_state_dict(torch.load(random_weights / REGISTRY["r3d18"].filename, weights_only=True))
    model.fc = torch.nn.Identity()
    model.eval()
    with torch.no_grad():
        expected = model(R3D_18_Weights.KINETICS400_V1.transforms()(clip.permute(0, 3, 1, 2))[None])[0]
    assert ours.shape == (1, 512)  # one sample per clip (Inception gives one per frame)
    np.testing.assert_allclose(ours[0], expected.double().numpy(), rtol=1e-5, atol=1e-6)


def test_i3d_needs_nine_frames(random_weights: Path) -> None:
    from pytest_aigve.examples import moving_scene

    model = backbone("i3d", random_weights)
    clip = torch.from_numpy(moving_scene(0, frames=8, size=(64, 64)))
    with pytest.raises(MetricError, match="i3d-400 needs at least 9 frames per clip, the protocol gave 8"):
        model.check_clip(clip, "clip.mp4")
    nine = torch.from_numpy(moving_scene(0, frames=9, size=(64, 64)))
    assert model.extract([nine])[0].shape == (1, 400)


def test_bf16_is_cuda_only(random_weights: Path) -> None:
    with pytest.raises(MetricError, match="bf16 runs on CUDA devices only"):
        backbone("i3d", random_weights, precision="bf16")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16 runs on CUDA only")
def test_bf16_is_opt_in_recorded_and_close(random_weights: Path) -> None:
    from pytest_aigve.examples import moving_scene

    clips = [torch.from_numpy(moving_scene(seed, frames=10, size=(64, 64))).cuda() for seed in range(2)]
    cuda = torch.device("cuda")
    path = random_weights / REGISTRY["i3d"].filename
    fp32 = BACKBONES["i3d"](path, file_sha256(path), cuda)
    bf16 = BACKBONES["i3d"](path, file_sha256(path), cuda, precision="bf16")
    assert fp32.identity != bf16.identity and bf16.describe()["precision"] == "bf16"
    full = np.stack(fp32.extract(clips))
    half = np.stack(bf16.extract(clips))
    assert np.abs(full - half).max() < 0.1 * np.abs(full).max()
    with pytest.raises(MetricError, match="fp32 only"):
        BACKBONES["inception"](random_weights / REGISTRY["inception"].filename, "x", cuda, precision="bf16")


def test_fid_warns_on_small_sets(random_weights: Path, tmp_path: Path, make_video) -> None:
    for index in range(2):
        make_video(f"ref/v{index}.mp4", seed=index)
        make_video(f"gen/v{index}.mp4", seed=5 + index)
    suite = """\
protocol: {frames: 2, fps: 1}
video_sets: {ref: {folder: ref}, gen: {folder: gen}}
checks: [{metric: fid, reference: ref, candidate: gen}]
"""
    result = run_checks(tmp_path, suite, random_weights, ["fid[ref-vs-gen]"])["fid[ref-vs-gen]"]
    assert np.isfinite(result.value) and result.value > 0
    assert any("fid on few samples (reference 4, candidate 4) with 2048-d features" in w and "KID" in w
               for w in result.warnings)
    assert any("UNVERIFIED" in w for w in result.warnings)  # random weights are not the published file
    assert result.backbone.weights_check.startswith("UNVERIFIED: RANDOM TEST WEIGHTS")
