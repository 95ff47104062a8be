"""How far our decoded RGB frames (PyAV, FFmpeg's swscale) are from decord's, which VBench and DOVER read with.

Every frame of every video given (default: the shared AIGVE toy sets beside the checkout) is decoded by both;
printed per set: the mean absolute difference per channel value (0-255), the share of values that differ, the
largest difference, and the PSNR of ours against decord's. decord is not a dependency of the project:
`pip install decord` (wheels for Linux x86_64) to run this.

    python benchmarks/decoder_agreement.py [VIDEO_OR_FOLDER ...]
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_aigve.protocol import ClipProtocol
from pytest_aigve.videos.decode import decode_clip

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_SETS = {
    "CogVideoX 1360x768, 81 frames (H.264)": SHARED / "aigve_bench_toy" / "videos",
    "CogVideoX 3-frame cuts (mpeg4)": SHARED / "aigve_bench_toy" / "videos_3frame",
    "LaVie 512x512, 16 frames": SHARED / "aigve_toy_lavie" / "evaluate",
}


def decord_frames(path: Path) -> np.ndarray:
    import decord

    reader = decord.VideoReader(str(path), ctx=decord.cpu(0))
    return reader.get_batch(list(range(len(reader)))).asnumpy()


def compare(paths: list[Path]) -> dict[str, float]:
    total_abs = 0.0
    values = 0
    differing = 0
    largest = 0
    squared = 0.0
    frames = 0
    for path in paths:
        ours = decode_clip(path, ClipProtocol(frames=None)).frames
        theirs = decord_frames(path)
        if ours.shape != theirs.shape:
            raise SystemExit(f"{path}: PyAV gave {ours.shape}, decord {theirs.shape}")
        diff = np.abs(ours.astype(np.int16) - theirs.astype(np.int16))
        total_abs += float(diff.sum())
        squared += float((diff.astype(np.float64) ** 2).sum())
        values += diff.size
        differing += int(np.count_nonzero(diff))
        largest = max(largest, int(diff.max()))
        frames += ours.shape[0]
    mse = squared / values
    return {"videos": len(paths), "frames": frames, "mean_abs": total_abs / values,
            "share_differing": differing / values, "max_abs": largest,
            "psnr_db": math.inf if mse == 0 else 10 * math.log10(255**2 / mse)}


def videos_in(target: Path) -> list[Path]:
    return sorted(target.glob("*.mp4")) if target.is_dir() else [target]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", type=Path)
    args = parser.parse_args()
    try:
        import decord
    except ImportError:
        print("decord is not installed: pip install decord", file=sys.stderr)
        return 2
    import av

    sets = {str(p): p for p in args.paths} if args.paths else {k: v for k, v in DEFAULT_SETS.items() if v.exists()}
    if not sets:
        print(f"no videos: give paths, or place the shared data at {SHARED}", file=sys.stderr)
        return 2
    print(f"machine: {platform.machine()} {platform.system()}, PyAV {av.__version__} (FFmpeg "
          f"{'.'.join(map(str, av.library_versions['libavcodec']))} libavcodec), decord {decord.__version__}")
    for name, target in sets.items():
        result = compare(videos_in(target))
        print(f"{name}: {result['videos']} videos, {result['frames']} frames: mean |PyAV - decord| "
              f"{result['mean_abs']:.3f} per value (0-255), {100 * result['share_differing']:.1f}% of values differ, "
              f"max {result['max_abs']}, PSNR {result['psnr_db']:.1f} dB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
