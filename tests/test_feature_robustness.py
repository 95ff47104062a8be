"""Silent failures in the feature layer: a damaged or unwritable feature cache, CD-FVD's resizing, and the
cost and correctness of KID's bootstrap interval."""

from __future__ import annotations

import errno
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pytest_aigve.features import FeatureStore
from pytest_aigve.features.backbones import Backbone
from pytest_aigve.features.weights import REGISTRY
from pytest_aigve.metrics.kid import KID
from pytest_aigve.protocol import ClipProtocol
from pytest_aigve.stats import resample_blocks
from pytest_aigve.videos.cache import ClipCache
from pytest_aigve.videos.decode import decode_clip
from pytest_aigve.videos.prepare import clip_to_uint8
from pytest_aigve.videos.sources import Video

from .helpers import BlockInputs, inception_like_blocks

CPU = torch.device("cpu")


class ChannelProfile(Backbone):
    """A stand-in backbone: per frame and channel, the mean of each of 16 row bands (enough bytes per entry to
    damage the payload without touching the file's header). Counts its forward passes."""

    key = "i3d"
    weights_file = REGISTRY["i3d"]
    name = "channel-profile"
    input_description = "clip"

    def __init__(self) -> None:
        super().__init__(Path("none"), "1" * 64, CPU, batch_size=8)
        self.calls = 0

    def build(self, state: dict[str, Any]) -> torch.nn.Module:
        raise AssertionError("never loaded")

    def prepare(self, clip: torch.Tensor) -> torch.Tensor:
        bands = clip.to(torch.float64).reshape(clip.shape[0], 16, -1, 3).mean(dim=2)  # (T, 16, 3)
        return bands.reshape(-1)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return batch


PROTOCOL = ClipProtocol(frames=4)


@pytest.fixture
def videos(make_video: Callable[..., Path]) -> list[Video]:
    return [Video(make_video(f"v{i}.mp4", seed=i, size=(32, 32)), f"v{i}", f"v{i}.mp4") for i in range(2)]


def entry_paths(cache: Path) -> dict[str, Path]:
    """Cache entries by key (the file name's stem); lock files are not entries."""
    return {p.stem: p for p in cache.rglob("*") if p.is_file() and "locks" not in p.parts}


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[200] ^= 0x10  # inside the feature values (a 192-value float64 payload starts well before byte 200)
    path.write_bytes(bytes(data))


def _zero(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[160:160 + 512] = bytes(512)  # zeroed values: finite features that are not the video's
    path.write_bytes(bytes(data))


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE: dict[str, Callable[[Path], None]] = {"flipped byte": _flip, "zeroed values": _zero, "zero bytes": _empty,
                                             "truncated": _truncate}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_cache_entry_is_reported_deleted_and_recomputed(tmp_path: Path, videos: list[Video],
                                                                damage: str) -> None:
    cache = tmp_path / "cache"
    first = FeatureStore(ClipCache(10**8), cache).features(videos, PROTOCOL, ChannelProfile())
    entries = entry_paths(cache)
    assert len(entries) == 2
    key = FeatureStore(ClipCache(10**8), cache).key(videos[0], PROTOCOL, ChannelProfile())
    DAMAGE[damage](entries[key])

    store, backbone = FeatureStore(ClipCache(10**8), cache), ChannelProfile()
    again = store.features(videos, PROTOCOL, backbone)
    # the damaged entry was never used: recomputed, equal to the first run's features
    assert backbone.calls == 1 and store.stats.computed == 1 and store.stats.disk_hits == 1
    for (_, expected), (_, found) in zip(first, again, strict=True):
        np.testing.assert_array_equal(found, expected)
    assert len(store.stats.warnings) == 1
    warning = store.stats.warnings[0]
    assert str(entries[key]) in warning and "recomputed" in warning
    # rewritten: a later run reads it from disk without a warning
    later = FeatureStore(ClipCache(10**8), cache)
    later.features(videos, PROTOCOL, ChannelProfile())
    assert later.stats.disk_hits == 2 and later.stats.computed == 0 and later.stats.warnings == []


def test_entry_of_another_key_is_not_used(tmp_path: Path, videos: list[Video]) -> None:
    cache = tmp_path / "cache"
    first = FeatureStore(ClipCache(10**8), cache).features(videos, PROTOCOL, ChannelProfile())
    keys = [FeatureStore(ClipCache(10**8), cache).key(v, PROTOCOL, ChannelProfile()) for v in videos]
    entries = entry_paths(cache)
    shutil.copyfile(entries[keys[1]], entries[keys[0]])  # v1's features under v0's key
    store = FeatureStore(ClipCache(10**8), cache)
    again = store.features(videos, PROTOCOL, ChannelProfile())
    np.testing.assert_array_equal(again[0][1], first[0][1])
    assert store.stats.computed == 1 and len(store.stats.warnings) == 1
    assert "another entry" in store.stats.warnings[0]


def test_cached_nan_features_are_never_used(tmp_path: Path, videos: list[Video]) -> None:
    cache = tmp_path / "cache"
    first = FeatureStore(ClipCache(10**8), cache).features(videos, PROTOCOL, ChannelProfile())
    writer = FeatureStore(ClipCache(10**8), cache)
    key = writer.key(videos[0], PROTOCOL, ChannelProfile())
    poisoned = first[0][1].copy()
    poisoned.flat[3] = np.nan
    writer._save(key, poisoned)  # a well-formed entry holding NaN (e.g. written by an older version)
    store = FeatureStore(ClipCache(10**8), cache)
    again = store.features(videos, PROTOCOL, ChannelProfile())
    assert np.isfinite(again[0][1]).all() and store.stats.computed == 1
    assert len(store.stats.warnings) == 1 and "NaN" in store.stats.warnings[0]


def _raise_enospc(*args: Any, **kwargs: Any) -> Any:
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("failing", ["tempfile.mkstemp", "os.replace"])
def test_full_disk_computes_without_the_cache_and_warns_once(tmp_path: Path, videos: list[Video],
                                                             monkeypatch: pytest.MonkeyPatch, failing: str) -> None:
    module, name = failing.split(".")
    monkeypatch.setattr({"tempfile": tempfile, "os": os}[module], name, _raise_enospc)
    cache = tmp_path / "cache"
    store, backbone = FeatureStore(ClipCache(10**8), cache), ChannelProfile()
    found = store.features(videos, PROTOCOL, backbone)
    assert len(found) == 2 and all(np.isfinite(f).all() for _, f in found)
    more = store.features([*videos, videos[0]], ClipProtocol(frames=2), backbone)  # another protocol: more writes
    assert len(more) == 3
    assert len(store.stats.warnings) == 1
    warning = store.stats.warnings[0]
    assert f"feature cache {cache} is not writable" in warning and "No space left on device" in warning
    assert "--aigve-no-cache" in warning and store.disk_problem == warning
    assert not list(cache.rglob("*.tmp"))


def test_cache_folder_that_cannot_be_created(tmp_path: Path, videos: list[Video]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    store = FeatureStore(ClipCache(10**8), blocker / "cache")  # mkdir fails even for root
    found = store.features(videos, PROTOCOL, ChannelProfile())
    assert len(found) == 2
    assert len(store.stats.warnings) == 1 and "is not writable" in store.stats.warnings[0]


def test_read_only_cache_folder(tmp_path: Path, videos: list[Video]) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o500)
    try:
        if os.access(cache, os.W_OK):
            pytest.skip("running as root: chmod does not stop writes (the ENOSPC tests simulate it)")
        store = FeatureStore(ClipCache(10**8), cache)
        assert len(store.features(videos, PROTOCOL, ChannelProfile())) == 2
        assert len(store.stats.warnings) == 1 and "is not writable" in store.stats.warnings[0]
    finally:
        cache.chmod(0o700)


# --- CD-FVD resizes as cd-fvd does ------------------------------------------------------------------------------


def cdfvd_uint8(frames: np.ndarray, resolution: int) -> np.ndarray:
    """cd-fvd's own path from decoded frames to the uint8 array its models see: `preprocess` in its video
    loader, then `(video * 255).byte()` in compute_real_stats / compute_fake_stats."""
    from cdfvd.utils.data_utils import preprocess

    video = preprocess(torch.from_numpy(np.ascontiguousarray(frames)), resolution)["video"]  # (C, T, H, W)
    return (video * 255).byte().permute(1, 2, 3, 0).numpy()


def cdfvd_protocol(resolution: int, frames: int) -> ClipProtocol:
    from pytest_aigve.metrics.cd_fvd import CDFVD
    from pytest_aigve.protocol import protocol_from_mapping

    return protocol_from_mapping(CDFVD.protocol_overrides({"resolution": resolution, "sequence_length": frames}))


@pytest.mark.parametrize("size", [(72, 128), (128, 72), (90, 90)])
def test_cd_fvd_resizes_frames_exactly_as_cd_fvd(size: tuple[int, int]) -> None:
    from pytest_aigve.examples import moving_scene

    frames = moving_scene(3, frames=4, size=size)
    for resolution in (32, 56, 112):
        protocol = cdfvd_protocol(resolution, 4)
        ours = clip_to_uint8(frames, protocol, CPU).numpy()
        expected = cdfvd_uint8(frames, resolution)
        assert ours.shape == expected.shape == (4, resolution, resolution, 3)
        np.testing.assert_array_equal(ours, expected)


def test_cd_fvd_resizes_a_cogvideox_frame_exactly_as_cd_fvd(shared_data: Path) -> None:
    path = shared_data / "aigve_bench_toy" / "videos" / "cogvideox_0.mp4"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    frames = decode_clip(path, ClipProtocol(frames=2)).frames
    assert frames.shape[1:3] == (768, 1360)
    for resolution in (112, 224):
        ours = clip_to_uint8(frames, cdfvd_protocol(resolution, 2), CPU).numpy()
        np.testing.assert_array_equal(ours, cdfvd_uint8(frames, resolution))


def test_cd_fvd_protocol_records_cd_fvds_resize() -> None:
    protocol = cdfvd_protocol(112, 16)
    assert protocol.resize_mode == "cdfvd" and protocol.resize == (112, 112)
    plain = ClipProtocol(frames=16, resize=(112, 112), resize_mode="center_crop")
    assert protocol.fingerprint() != plain.fingerprint()


def test_cd_fvd_on_non_square_videos_equals_cd_fvd_from_decoded_frames(random_weights: Path, tmp_path: Path,
                                                                        make_video: Callable[..., Path]) -> None:
    from cdfvd.fvd import cdfvd

    from pytest_aigve.engine import EvalContext, evaluate_check
    from pytest_aigve.features.weights import REGISTRY
    from pytest_aigve.metrics.registry import MetricRegistry
    from pytest_aigve.stats import frechet_distance
    from pytest_aigve.suite import load_suite

    ref = [make_video(f"ref/r{i}.mp4", seed=i, frames=12, size=(72, 128)) for i in range(3)]
    gen = [make_video(f"gen/g{i}.mp4", seed=i, frames=12, size=(72, 128), degraded=True) for i in range(3)]
    suite_path = tmp_path / "suite.yaml"
    suite_path.write_text(f"""\
video_sets:
  ref: {{files: {[str(p) for p in ref]}}}
  gen: {{files: {[str(p) for p in gen]}}}
checks:
  - {{metric: cd_fvd, reference: ref, candidate: gen, params: {{model: i3d, resolution: 48, sequence_length: 10}}}}
""")
    registry = MetricRegistry()
    suite = load_suite(suite_path, registry)
    ctx = EvalContext(device=CPU, clips=ClipCache(10**9), registry=registry, weights_dir=random_weights,
                      allow_unverified_weights=True)
    ours = evaluate_check(suite, suite.checks[0], ctx).result.value

    native = ClipProtocol(frames=10)
    reference = cdfvd(model="i3d", ckpt_path=str(random_weights / REGISTRY["i3d"].filename), device="cpu",
                      n_real="full", n_fake="full")
    reference.add_real_stats(np.stack([cdfvd_uint8(decode_clip(p, native).frames, 48) for p in ref]))
    reference.add_fake_stats(np.stack([cdfvd_uint8(decode_clip(p, native).frames, 48) for p in gen]))
    mu_r, cov_r = reference.real_stats.get_mean_cov()
    mu_f, cov_f = reference.fake_stats.get_mean_cov()
    expected = frechet_distance(mu_r, cov_r, mu_f, cov_f).value
    assert expected > 1.0 and math.isclose(ours, expected, rel_tol=1e-3)


# --- KID: subset estimates equal torch-fidelity's; the interval is cheap ------------------------------------------


def torch_fidelity_kid(first: np.ndarray, second: np.ndarray, subsets: int, subset_size: int,
                       seed: int) -> dict[str, float]:
    from torch_fidelity.metric_kid import kid_features_to_metric

    return kid_features_to_metric(torch.from_numpy(first), torch.from_numpy(second), kid_subsets=subsets,
                                  kid_subset_size=subset_size, rng_seed=seed, verbose=False, kid_kernel="poly",
                                  kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1)


@pytest.mark.parametrize("budget", [None, 1000])  # None: kernel matrices in memory; 1000: the chunked path
def test_kid_equals_torch_fidelity(budget: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_aigve.metrics import kid as kid_module

    if budget is not None:
        monkeypatch.setattr(kid_module, "KERNEL_MEMORY_ELEMENTS", budget)
    ref = inception_like_blocks(0, videos=7, frames=6)
    cand = inception_like_blocks(1, videos=5, frames=6, shift=0.02)
    params = {"subsets": 13, "subset_size": 20, "seed": 7}
    result = KID(KID.validate_params(params), CPU).evaluate(BlockInputs({"reference": ref, "candidate": cand}))
    expected = torch_fidelity_kid(np.concatenate(ref), np.concatenate(cand), 13, 20, 7)
    assert result.value == pytest.approx(expected["kernel_inception_distance_mean"], rel=1e-9, abs=1e-15)
    assert result.details["std_over_subsets"] == pytest.approx(expected["kernel_inception_distance_std"], rel=1e-9)
    assert abs(result.value) > 1e-6  # not degenerate


@pytest.mark.parametrize("budget", [None, 1000])
def test_kid_resample_is_torch_fidelitys_kid_on_the_resampled_videos(budget: int | None,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A resample's value is what torch-fidelity's subset KID gives on the videos drawn with replacement, in
    expectation over its subset draws: its unbiased estimate on the whole resampled multiset."""
    from pytest_aigve.metrics import kid as kid_module

    if budget is not None:
        monkeypatch.setattr(kid_module, "KERNEL_MEMORY_ELEMENTS", budget)
    ref = inception_like_blocks(2, videos=6, frames=5)
    cand = inception_like_blocks(3, videos=6, frames=5, shift=0.02)
    params = {"subsets": 10, "subset_size": 8, "seed": 1}
    result = KID(KID.validate_params(params), CPU).evaluate(BlockInputs({"reference": ref, "candidate": cand}))
    assert result.resample is not None
    for seed in range(3):
        ours = result.resample(np.random.default_rng(seed))
        rng = np.random.default_rng(seed)
        first, second = resample_blocks(ref, rng), resample_blocks(cand, rng)  # the same draws, in order
        assert first.shape[0] == second.shape[0] == 30
        whole = torch_fidelity_kid(first, second, subsets=1, subset_size=30, seed=0)
        assert ours == pytest.approx(whole["kernel_inception_distance_mean"], rel=1e-9)


def test_kid_interval_does_no_kernel_work_per_resample(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resamples reuse sums computed once: no torch-fidelity call and no kernel evaluation per resample, and the
    kernel work runs with one torch thread (restored afterwards)."""
    import torch_fidelity.metric_kid

    from pytest_aigve.metrics import kid as kid_module

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("torch-fidelity's KID routine recomputes every kernel")

    monkeypatch.setattr(torch_fidelity.metric_kid, "kid_features_to_metric", refuse)
    threads: list[int] = []
    kernel = kid_module.poly_kernel

    def counting(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        threads.append(torch.get_num_threads())
        return kernel(first, second)

    monkeypatch.setattr(kid_module, "poly_kernel", counting)
    before = torch.get_num_threads()
    ref, cand = inception_like_blocks(4, videos=8, frames=4), inception_like_blocks(5, videos=8, frames=4)
    result = KID(KID.validate_params({}), CPU).evaluate(BlockInputs({"reference": ref, "candidate": cand}))
    assert threads and set(threads) == {1} and torch.get_num_threads() == before
    calls = len(threads)
    assert result.resample is not None
    rng = np.random.default_rng(0)
    values = [result.resample(rng) for _ in range(50)]
    assert len(threads) == calls and len(set(values)) > 1 and all(math.isfinite(v) for v in values)
