"""Clips per second of our I3D and VideoMAE feature paths against cd-fvd's own path, on the same uint8
arrays and the same weights, in one run; prints the speed ratio and the score difference.

  python benchmarks/fvd_throughput.py                       # CPU, small (tiny VideoMAE of the ViT-g family)
  python benchmarks/fvd_throughput.py --device cuda --clips 256 --size 128 --videomae giant --batch 64

cd-fvd's path: its preprocess_i3d / preprocess_videomae on the CPU, then the model on the device
(get_i3d_logits / get_videomae_features). Ours: uint8 clips go to the device, are resized and normalised
there, batched (pytest_aigve.features.backbones). The score is the Fréchet distance between the two halves
of the clips (ddof 0, as cd-fvd), computed exactly from each path's features.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from _common import cpu_name  # benchmarks/ is on sys.path when run as a script


def synthetic_clips(count: int, frames: int, size: int, seed: int = 0) -> np.ndarray:
    """Smooth moving random textures, (N, T, H, W, 3) uint8."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, frames, 8, 8, generator=generator)
    clips = torch.nn.functional.interpolate(coarse, size=(frames, size, size), mode="trilinear")
    return (clips * 255).round().to(torch.uint8).permute(0, 2, 3, 4, 1).contiguous().numpy()


def timed(run: Callable[[], np.ndarray], device: str) -> tuple[np.ndarray, float]:
    run()  # warm-up: kernels, allocator
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    started = time.perf_counter()
    features = run()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return features, time.perf_counter() - started


def frechet(features: np.ndarray) -> float:
    from pytest_aigve.stats import frechet_distance_from_features

    half = features.shape[0] // 2
    return frechet_distance_from_features(features[:half], features[half:], ddof=0).value


def compare(name: str, ours: Callable[[], np.ndarray], theirs: Callable[[], np.ndarray], clips: int,
            device: str) -> None:
    their_features, their_seconds = timed(theirs, device)
    our_features, our_seconds = timed(ours, device)
    ours_fd, theirs_fd = frechet(our_features), frechet(their_features)
    print(f"{name:9} cd-fvd {clips / their_seconds:8.1f} clips/s | ours {clips / our_seconds:8.1f} clips/s | "
          f"speed-up {their_seconds / our_seconds:5.2f}x | FD cd-fvd {theirs_fd:.6g} ours {ours_fd:.6g} "
          f"(rel. diff {abs(ours_fd - theirs_fd) / abs(theirs_fd):.2e})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--videomae", choices=("tiny", "giant"), default="tiny",
                        help="giant: the real ViT-g/14 architecture (about 1 B parameters) with random weights")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="our path's precision")
    args = parser.parse_args()

    from cdfvd.fvd import get_i3d_logits, get_videomae_features
    from cdfvd.utils.metric_utils import FeatureStats

    from pytest_aigve.features.backbones import I3DBackbone, VideoMAEBackbone
    from pytest_aigve.features.weights import REGISTRY, file_sha256, load_state_dict
    from pytest_aigve.random_weights import write_i3d, write_videomae

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = torch.device(args.device)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    print(f"device {device} ({gpu}), torch {torch.__version__}, {torch.get_num_threads()} CPU threads; "
          f"{args.clips} clips of {args.frames}x{args.size}x{args.size}, batch {args.batch}, "
          f"our precision {args.precision}")
    clips = synthetic_clips(args.clips, args.frames, args.size)

    def cd_fvd_features(feature_fn: Callable[..., FeatureStats], model: torch.nn.Module) -> Callable[[], np.ndarray]:
        def run() -> np.ndarray:
            stats = FeatureStats(capture_all=True, capture_mean_cov=True)
            feature_fn(stats, model, clips, batchsize=args.batch, device=device)
            return np.asarray(stats.get_all(), dtype=np.float64)
        return run

    def our_features(backbone: I3DBackbone | VideoMAEBackbone) -> Callable[[], np.ndarray]:
        def run() -> np.ndarray:
            outputs = []
            for start in range(0, len(clips), backbone.batch_size):
                chunk = torch.from_numpy(clips[start: start + backbone.batch_size]).to(device, non_blocking=True)
                outputs.extend(backbone.extract(list(chunk)))
            return np.concatenate(outputs)
        return run

    with tempfile.TemporaryDirectory() as folder:
        weights = Path(folder)
        write_i3d(weights)
        if args.videomae == "giant":
            write_videomae(weights, embed_dim=1408, depth=40)
        else:
            write_videomae(weights)
        for key, cls, fn in (("i3d", I3DBackbone, get_i3d_logits),
                             ("videomae", VideoMAEBackbone, get_videomae_features)):
            path = weights / REGISTRY[key].filename
            ours = cls(path, file_sha256(path), device, args.precision, args.batch)
            reference = cls(path, "x", device, "fp32").build(
                load_state_dict(path, REGISTRY[key], ("module", "model"))).eval().to(device)
            compare(key, our_features(ours), cd_fvd_features(fn, reference), args.clips, args.device)


if __name__ == "__main__":
    main()
