"""End to end, from video files: our FID and FVD checks run by pytest with a cold feature cache, then warm, against
torch-fidelity's `calculate_metrics` and cd-fvd's own path on the same frames and the same weights.

  python benchmarks/end_to_end.py                              # 25 videos per set x 16 frames
  python benchmarks/end_to_end.py --videos 8 --frames 16       # a few minutes on 2 cores
  python benchmarks/end_to_end.py --synthetic --weights-dir /tmp/aigve-random-weights

Inputs: the candidate set is the LaVie toy clips (512x512, 16 frames at 8 fps) and the reference set the CogVideoX
toy clips (1360x768, 81 frames at 16 fps, stretched to --size by the protocol), from ../shared/data where present;
files are copied (not linked: our clip cache knows a linked file as its target and would decode it once) under
distinct names until each set has --videos; synthetic videos written with PyAV otherwise (or with --synthetic).
Weights: deterministic random ones in the official formats (`python -m pytest_aigve weights random`), in a
temporary folder unless --weights-dir names one (written there when missing).

Prints, in one run, with the machine (CPU, cores, torch, load average):
  * ours, cold: `python -m pytest --aigve-suite <suite with one check> ...` as a subprocess, with a fresh empty
    feature cache (also $AIGVE_CACHE_DIR, so the weights' SHA-256 is not remembered either): wall time, CPU time
    of the process and its children, and the check's own timings from aigve-results.json (setup_s, the item's
    setup, holds compute_s: decoding + backbone + statistic, of which decode_s is the decodes' own time, summed;
    and bootstrap_s, the interval);
  * ours, warm: the same command with the same cache: wall and setup ratios cold/warm, and what the warm run
    still spends its time on, beside the wall time of a bare `python -c "import pytest, torch, pytest_aigve.plugin"`;
  * the reference on the same frames: decode_clip, then the protocol's resize (pytest_aigve.videos.prepare.
    clip_to_uint8, what our backbones receive), each timed on its own; then torch_fidelity.calculate_metrics (fid,
    its default batch of 64 and DataLoader workers, cache off) on uint8 (3, H, W) frames, or cd-fvd
    (`cdfvd.fvd.cdfvd("i3d", ...)`, add_real_stats / add_fake_stats on (N, T, H, W, 3) uint8 arrays, its own
    224x224 preprocessing, compute_fvd_from_stats), both building their network from the weights file as a cold
    check of ours does;
  * both values and their relative difference (FID must agree to 1e-4, FVD to 1e-3: README "Metrics"); a larger
    difference is printed as a BUG. For FVD also the exact Fréchet distance of cd-fvd's own mean and covariance
    (pytest_aigve.stats.frechet_distance), since cd-fvd's scipy sqrtm is inexact on singular covariances;
  * ratios: ours cold (decode + compute: compute_s) over theirs (decode + resize + library call), and compute only:
    ours compute_s - decode_s (the protocol's resize, the backbone with its weights' hash and loading, the
    statistic; an under-estimate where decoding overlaps compute) over theirs resize + library call.
Ours runs in a fresh process, so its wall time also holds the interpreter, imports, collection and the reports;
the references run in this process with their packages already imported. Timings on a shared machine are noisy:
compare ratios from one run, and read the load average printed with them.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from _common import cpu_name  # benchmarks/ is on sys.path when run as a script

from pytest_aigve.protocol import ClipProtocol

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LAVIE = "aigve_toy_lavie/evaluate"  # 512x512, 16 frames at 8 fps
COGVIDEOX = "aigve_bench_toy/videos"  # 1360x768, 81 frames at 16 fps
FID_RTOL, FVD_RTOL = 1e-4, 1e-3  # the parity the README claims (tests/test_distribution.py)

T = TypeVar("T")


@dataclass
class Timed:
    wall_s: float
    cpu_s: float  # this process and its waited-for children (DataLoader workers, subprocesses)


def cpu_seconds() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def timed(run: Callable[[], T]) -> tuple[T, Timed]:
    cpu, start = cpu_seconds(), time.perf_counter()
    result = run()
    return result, Timed(time.perf_counter() - start, cpu_seconds() - cpu)


# --- inputs -------------------------------------------------------------------------------------------------------

def copies(sources: list[Path], folder: Path, prefix: str, count: int) -> list[Path]:
    """`count` files in `folder`, cycling through `sources`, each a copy under its own name."""
    folder.mkdir(parents=True)
    made = []
    for index in range(count):
        target = folder / f"{prefix}_{index:03d}.mp4"
        shutil.copyfile(sources[index % len(sources)], target)
        made.append(target)
    return made


def synthetic(folder: Path, prefix: str, count: int, frames: int, fps: float, size: tuple[int, int],
              seed: int, degraded: bool) -> list[Path]:
    from pytest_aigve.examples import degrade, moving_scene, write_video

    made = []
    for index in range(count):
        clip = moving_scene(seed + index, frames=frames, size=size)
        if degraded:
            clip = degrade(clip, seed + 1000 + index)
        made.append(write_video(folder / f"{prefix}_{index:03d}.mp4", clip, fps=fps))
    return made


def make_inputs(folder: Path, args: argparse.Namespace) -> tuple[str, str]:
    """reference/ and candidate/ under `folder`; returns what each set is, in words."""
    data = None if args.synthetic else args.data
    lavie = sorted((data / LAVIE).glob("*.mp4")) if data else []
    cogvideox = sorted((data / COGVIDEOX).glob("*.mp4")) if data else []
    if lavie and args.frames > 16 * args.fps / 8:
        raise SystemExit(f"--frames {args.frames} at --fps {args.fps:g}: the LaVie clips have 16 frames at 8 fps; "
                         "lower --frames or pass --synthetic")
    duration_frames = args.frames  # synthetic videos are written at the protocol's rate
    if cogvideox:
        copies(cogvideox, folder / "reference", "ref", args.videos)
        reference = (f"CogVideoX 1360x768 @16 fps ({len(cogvideox)} files, copied to {args.videos}) from {data}, "
                     f"stretched to {args.size}x{args.size}")
    else:
        synthetic(folder / "reference", "ref", args.videos, duration_frames, args.fps, (288, 512), 0, False)
        reference = f"synthetic 512x288 @{args.fps:g} fps ({args.videos} distinct), stretched to {args.size}²"
    if lavie:
        copies(lavie, folder / "candidate", "cand", args.videos)
        candidate = f"LaVie 512x512 @8 fps ({len(lavie)} files, copied to {args.videos}) from {data}"
    else:
        synthetic(folder / "candidate", "cand", args.videos, duration_frames, args.fps, (512, 512), 100, True)
        candidate = f"synthetic 512x512 @{args.fps:g} fps ({args.videos} distinct, blurred and noisy)"
    return reference, candidate


def random_weights(folder: Path) -> None:
    from pytest_aigve.features.weights import REGISTRY

    if all((folder / REGISTRY[key].filename).is_file() for key in ("inception", "i3d")):
        print(f"weights: random test weights already in {folder}")
        return
    _, took = timed(lambda: subprocess.run([sys.executable, "-m", "pytest_aigve", "weights", "random", "--dir",
                                            str(folder)], check=True, capture_output=True))
    print(f"weights: wrote random test weights to {folder} in {took.wall_s:.0f} s")


# --- ours: pytest as a user runs it -------------------------------------------------------------------------------

@dataclass
class SuiteRun:
    timing: Timed
    value: float
    timings: dict[str, float]  # record["timings"]: setup_s, call_s, teardown_s, compute_s, decode_s, bootstrap_s
    videos_decoded: int
    features_computed: int
    features_cached: int

    @property
    def compute_s(self) -> float:
        return self.timings.get("compute_s", float("nan"))

    @property
    def item_s(self) -> float:
        return sum(self.timings.get(name, 0.0) for name in ("setup_s", "call_s", "teardown_s"))


def write_suite(folder: Path, metric: str, protocol: ClipProtocol) -> Path:
    path = folder / f"end_to_end_{metric}.yaml"
    resize = list(protocol.resize) if isinstance(protocol.resize, tuple) else protocol.resize
    path.write_text(f"""\
suite: end-to-end-{metric}
protocol: {{frames: {protocol.frames}, fps: {protocol.fps}, resize: {resize}}}
video_sets:
  reference: {{folder: reference}}
  candidate: {{folder: candidate}}
checks:
  - {{metric: {metric}, reference: reference, candidate: candidate}}
""")
    return path


def run_suite(suite: Path, cache: Path, reports: Path, weights: Path) -> SuiteRun:
    command = [sys.executable, "-m", "pytest", "--aigve-suite", str(suite), "--aigve-cache-dir", str(cache),
               "--aigve-report-dir", str(reports), "--aigve-weights-dir", str(weights),
               "--aigve-allow-unverified-weights", "--aigve-device", "cpu", "-p", "no:cacheprovider", "-q"]
    # the weights' SHA-256 is remembered in $AIGVE_CACHE_DIR: a cold run must not find it either
    env = {**os.environ, "AIGVE_CACHE_DIR": str(cache)}
    done, timing = timed(lambda: subprocess.run(command, cwd=suite.parent, env=env, capture_output=True, text=True))
    results_path = reports / "aigve-results.json"
    records = json.loads(results_path.read_text())["records"] if results_path.is_file() else []
    if done.returncode != 0 or len(records) != 1 or records[0].get("outcome") not in ("passed", "warned"):
        tail = (done.stdout + done.stderr)[-4000:]
        raise SystemExit(f"{' '.join(command)}\nexited {done.returncode}; output ends:\n{tail}")
    record: dict[str, Any] = records[0]
    backbone = record.get("backbone") or {}
    return SuiteRun(timing, float(record["value"]), dict(record.get("timings", {})),
                    int(record.get("details", {}).get("videos_decoded", -1)),
                    int(backbone.get("features_computed", -1)), int(backbone.get("features_cached", -1)))


def import_floor() -> float:
    """Wall seconds of a fresh interpreter that imports pytest, torch and our plugin (the least of two tries): the
    least any run of ours pays."""
    command = [sys.executable, "-c", "import pytest, torch, pytest_aigve.plugin"]
    return min(timed(lambda: subprocess.run(command, check=True))[1].wall_s for _ in range(2))


def ours_cold_and_warm(work: Path, metric: str, protocol: ClipProtocol, weights: Path) -> tuple[SuiteRun, SuiteRun]:
    suite = write_suite(work, metric, protocol)
    cache = work / f"cache_{metric}"
    cache.mkdir()
    cold = run_suite(suite, cache, work / f"reports_{metric}_cold", weights)
    warm = run_suite(suite, cache, work / f"reports_{metric}_warm", weights)
    floor = import_floor()  # right after the warm run, under the same load
    for name, run in (("cold", cold), ("warm", warm)):
        split = ", ".join(f"{key} {value:.2f}" for key, value in sorted(run.timings.items()))
        print(f"  ours {name}: wall {run.timing.wall_s:.1f} s (CPU {run.timing.cpu_s:.1f} s, process and children); "
              f"check: {split}; outside the check (interpreter, imports, collection, reports) "
              f"{run.timing.wall_s - run.item_s:.1f} s; videos decoded {run.videos_decoded}, features computed "
              f"{run.features_computed}, cached {run.features_cached}")
    print(f"  warm vs cold: wall {cold.timing.wall_s / warm.timing.wall_s:.1f}x faster, the check's setup "
          f"{ratio(cold.timings.get('setup_s'), warm.timings.get('setup_s'))} faster (issue target >= 20x)")
    spent = {key: value for key, value in warm.timings.items() if key != "setup_s" and value >= 0.005}
    listed = ", ".join(f"{key} {value:.2f} s" for key, value in sorted(spent.items(), key=lambda kv: -kv[1]))
    print(f"  warm run still spends: {listed}; the rest of its {warm.timing.wall_s:.1f} s wall is the process "
          f"({warm.timing.wall_s - warm.item_s:.1f} s, of which a bare `import pytest, torch, pytest_aigve.plugin` "
          f"takes {floor:.1f} s)")
    return cold, warm


# --- the references on the same frames ----------------------------------------------------------------------------

def add(first: Timed, second: Timed) -> Timed:
    return Timed(first.wall_s + second.wall_s, first.cpu_s + second.cpu_s)


def decode_set(paths: list[Path], protocol: ClipProtocol) -> tuple[list[torch.Tensor], Timed, Timed]:
    """(T, H, W, 3) uint8 clips resized per the protocol, exactly what our backbones receive; the time decoding
    took and the time resizing took."""
    from pytest_aigve.videos.decode import decode_clip
    from pytest_aigve.videos.prepare import clip_to_uint8

    cpu = torch.device("cpu")
    clips, decoding, resizing = [], Timed(0.0, 0.0), Timed(0.0, 0.0)
    for path in paths:
        decoded, took = timed(partial(decode_clip, path, protocol))
        decoding = add(decoding, took)
        clip, took = timed(partial(clip_to_uint8, decoded.frames, protocol, cpu))
        resizing = add(resizing, took)
        clips.append(clip)
    return clips, decoding, resizing


class Frames(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """Every frame of every clip as a uint8 (3, H, W) tensor: torch-fidelity's input."""

    def __init__(self, clips: list[torch.Tensor]) -> None:
        self.frames = torch.cat(clips).permute(0, 3, 1, 2).contiguous()

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.frames[index]


def torch_fidelity_fid(reference: list[torch.Tensor], candidate: list[torch.Tensor], weights: Path) -> float:
    import torch_fidelity

    with warnings.catch_warnings():  # its default 4 DataLoader workers on a 2-core machine: torch's warning
        warnings.filterwarnings("ignore", message="This DataLoader will create")
        metrics = torch_fidelity.calculate_metrics(input1=Frames(candidate), input2=Frames(reference), fid=True,
                                                   cuda=False, feature_extractor_weights_path=str(weights),
                                                   verbose=False, cache=False)
    return float(metrics["frechet_inception_distance"])


@dataclass
class CdFvd:
    value: float | str  # compute_fvd_from_stats, or why it failed
    exact: float  # the exact Fréchet distance of cd-fvd's own mean and covariance


def cd_fvd(reference: list[torch.Tensor], candidate: list[torch.Tensor], weights: Path) -> CdFvd:
    from cdfvd.fvd import cdfvd

    from pytest_aigve.stats import frechet_distance

    with contextlib.redirect_stdout(io.StringIO()):  # "Loading i3d model ..."
        evaluator = cdfvd("i3d", ckpt_path=str(weights), device="cpu", n_real="full", n_fake="full")
    evaluator.add_real_stats(torch.stack(reference).numpy())
    evaluator.add_fake_stats(torch.stack(candidate).numpy())
    try:
        value: float | str = float(evaluator.compute_fvd_from_stats())
    except Exception as exc:  # scipy's sqrtm changed under cd-fvd before (README "Metrics")
        value = f"failed: {type(exc).__name__}: {exc}"
    mu_real, cov_real = evaluator.real_stats.get_mean_cov()
    mu_fake, cov_fake = evaluator.fake_stats.get_mean_cov()
    return CdFvd(value, frechet_distance(mu_real, cov_real, mu_fake, cov_fake).value)


# --- report -------------------------------------------------------------------------------------------------------

def ratio(numerator: float | None, denominator: float | None) -> str:
    if numerator is None or denominator is None or denominator <= 0:
        return "n/a"
    return f"{numerator / denominator:.2f}x"


def relative(ours: float, theirs: float) -> float:
    return abs(ours - theirs) / max(abs(theirs), 1e-300)


def agreement(name: str, ours: float, theirs: float, rtol: float, against: str) -> bool:
    rel = relative(ours, theirs)
    if rel <= rtol:
        print(f"  {name}: ours {ours:.10g}, {against} {theirs:.10g}, relative difference {rel:.2e} (<= {rtol:g}: ok)")
        return True
    print(f"  !!! BUG: {name}: ours {ours:.10g} vs {against} {theirs:.10g}, relative difference {rel:.2e} > {rtol:g} "
          "on the same frames and weights !!!")
    return False


@dataclass
class Row:
    metric: str
    cold: SuiteRun
    warm: SuiteRun
    decode: Timed
    resize: Timed
    library: Timed
    ours_value: float
    reference_value: float
    agrees: bool


def summary(rows: list[Row]) -> None:
    print("\nsummary (seconds; ours = pytest subprocess, cold cache then warm; ref = decode + resize + library call, "
          "same frames and weights)")
    header = (f"{'metric':6} {'cold wall':>9} {'cold compute':>12} {'warm wall':>9} {'cold/warm wall':>14} "
              f"{'cold/warm setup':>15} {'ref total':>15} {'ours/ref d+c':>12} {'ours/ref call':>13} "
              f"{'ours/ref CPU':>12} {'value ours':>12} {'value ref':>12} {'rel diff':>9}")
    print(header)
    print("-" * len(header))
    for row in rows:
        reference_s = row.decode.wall_s + row.resize.wall_s + row.library.wall_s
        compute_only = row.cold.compute_s - row.cold.timings.get("decode_s", 0.0)
        reference_compute = row.resize.wall_s + row.library.wall_s
        reference_cpu = row.decode.cpu_s + row.resize.cpu_s + row.library.cpu_s
        print(f"{row.metric:6} {row.cold.timing.wall_s:9.1f} {row.cold.compute_s:12.1f} {row.warm.timing.wall_s:9.1f} "
              f"{ratio(row.cold.timing.wall_s, row.warm.timing.wall_s):>14} "
              f"{ratio(row.cold.timings.get('setup_s'), row.warm.timings.get('setup_s')):>15} {reference_s:15.1f} "
              f"{ratio(row.cold.compute_s, reference_s):>12} {ratio(compute_only, reference_compute):>13} "
              f"{ratio(row.cold.timing.cpu_s, reference_cpu):>12} "
              f"{row.ours_value:12.6g} {row.reference_value:12.6g} "
              f"{relative(row.ours_value, row.reference_value):9.1e}{'' if row.agrees else '  BUG'}")
    print("ours/ref d+c: our cold compute_s (decode + resize + backbone + statistic, no interval) over the reference's "
          "decode + resize + library call, wall (target for FID: <= 1.0x); ours/ref call: compute_s - decode_s over "
          "resize + library call; ours/ref CPU: our whole cold pytest process (with start-up, interval and reports) "
          "over the reference's decode + resize + call, CPU seconds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=25, help="videos per set")
    parser.add_argument("--frames", type=int, default=16, help="frames per clip (FVD needs >= 9)")
    parser.add_argument("--fps", type=float, default=8.0, help="the protocol's frame rate")
    parser.add_argument("--size", type=int, default=512, help="the protocol's resize, [size, size] (stretch)")
    parser.add_argument("--metrics", nargs="+", choices=("fid", "fvd"), default=["fid", "fvd"])
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="the AIGVE toy videos (default: %(default)s)")
    parser.add_argument("--synthetic", action="store_true", help="synthetic videos even where the toy videos exist")
    parser.add_argument("--weights-dir", type=Path, help="random test weights (written there when missing); "
                                                         "default: a temporary folder")
    args = parser.parse_args()
    if "fvd" in args.metrics and args.frames < 9:
        raise SystemExit(f"--frames {args.frames}: FVD's I3D needs at least 9 frames per clip (or --metrics fid)")

    from pytest_aigve.features.weights import REGISTRY

    load = os.getloadavg()
    print(f"machine: {platform.platform()}, {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), numpy {np.__version__}, load average {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f}")
    protocol = ClipProtocol(frames=args.frames, fps=args.fps, resize=(args.size, args.size))
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="aigve-e2e-") as folder:
        work = Path(folder)
        weights = args.weights_dir or work / "weights"
        weights.mkdir(parents=True, exist_ok=True)
        random_weights(weights)
        reference_set, candidate_set = make_inputs(work, args)
        print(f"inputs: {args.videos} videos per set, protocol {protocol.describe()}\n  reference: {reference_set}\n"
              f"  candidate: {candidate_set}")
        reference_paths = sorted((work / "reference").glob("*.mp4"))
        candidate_paths = sorted((work / "candidate").glob("*.mp4"))

        import torch_fidelity  # noqa: F401  (imported before timing: ours pays its imports outside compute_s too)
        from cdfvd import fvd  # noqa: F401

        # one decode for both references (the same protocol), timed on its own; the files were just copied or
        # written, so both sides read them from the page cache
        reference, reference_decode, reference_resize = decode_set(reference_paths, protocol)
        candidate, candidate_decode, candidate_resize = decode_set(candidate_paths, protocol)
        decode, resize = add(reference_decode, candidate_decode), add(reference_resize, candidate_resize)
        frames = sum(len(clip) for clip in reference + candidate)
        print(f"reference side, serial in this process: decode_clip {decode.wall_s:.1f} s wall ({decode.cpu_s:.1f} s "
              f"CPU, {frames} frames, {frames / decode.wall_s:.0f} frames/s), protocol resize (clip_to_uint8) "
              f"{resize.wall_s:.1f} s wall ({resize.cpu_s:.1f} s CPU)")

        if "fid" in args.metrics:
            print(f"\nFID ({2 * args.videos * args.frames} Inception frames)")
            cold, warm = ours_cold_and_warm(work, "fid", protocol, weights)
            value, library = timed(lambda: torch_fidelity_fid(reference, candidate,
                                                              weights / REGISTRY["inception"].filename))
            print(f"  torch_fidelity.calculate_metrics: {library.wall_s:.1f} s wall, {library.cpu_s:.1f} s CPU; "
                  f"with decode and resize {decode.wall_s + resize.wall_s + library.wall_s:.1f} s")
            agrees = agreement("FID", cold.value, value, FID_RTOL, "torch-fidelity")
            agrees = agreement("FID warm vs cold", warm.value, cold.value, 1e-9, "cold") and agrees
            rows.append(Row("fid", cold, warm, decode, resize, library, cold.value, value, agrees))

        if "fvd" in args.metrics:
            print(f"\nFVD ({2 * args.videos} I3D clips of {args.frames} frames)")
            cold, warm = ours_cold_and_warm(work, "fvd", protocol, weights)
            theirs, library = timed(lambda: cd_fvd(reference, candidate, weights / REGISTRY["i3d"].filename))
            print(f"  cd-fvd (cdfvd('i3d') + add_real_stats/add_fake_stats + compute_fvd_from_stats): "
                  f"{library.wall_s:.1f} s wall, {library.cpu_s:.1f} s CPU; with decode and resize "
                  f"{decode.wall_s + resize.wall_s + library.wall_s:.1f} s")
            agrees = agreement("FVD", cold.value, theirs.exact, FVD_RTOL, "exact Fréchet of cd-fvd's mean/cov")
            if isinstance(theirs.value, float):
                print(f"  cd-fvd's own compute_fvd_from_stats (scipy sqrtm): {theirs.value:.10g}, relative difference "
                      f"to ours {relative(cold.value, theirs.value):.2e}")
            else:
                print(f"  cd-fvd's own compute_fvd_from_stats {theirs.value}")
            agrees = agreement("FVD warm vs cold", warm.value, cold.value, 1e-9, "cold") and agrees
            rows.append(Row("fvd", cold, warm, decode, resize, library, cold.value, theirs.exact, agrees))

    summary(rows)
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}: other work on the machine slows "
          "whichever side runs beside it; ratios from one run are the claim, not absolute times")
    if not all(row.agrees for row in rows):
        raise SystemExit("values differ from the references beyond tolerance: a bug (see the BUG lines above)")


if __name__ == "__main__":
    main()
