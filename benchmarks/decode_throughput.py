"""Frames per second of the plugin's decode pipeline (ClipCache.stream over a PooledSource) against a minimal
PyAV loop on the same cores: same files, decode only, native protocol (every frame).

  python benchmarks/decode_throughput.py                  # the shared videos if present, else synthetic ones
  python benchmarks/decode_throughput.py --workers 4 --repeat 5 --files 'videos/*.mp4'

Minimal loop: a multiprocessing pool ("forkserver", as the pipeline) of `workers` processes; each task opens
one file, decodes every frame to an rgb24 ndarray and throws it away. Pipeline: the clips as the engine gets
them, whole (T, H, W, 3) arrays in this process, in input order; each is dropped once counted (the clip cache
holds nothing, --cache-mb 0), so the workers' shared-memory slabs are reused, as they are in a long run once
the clip cache is full. Both pools are started, and every file read once, before timing; the two loops then
alternate --repeat times. Also prints the serial source (decode_clip in this process, one core).

Besides frames/s (wall clock: other jobs on the machine move it), the CPU seconds that the parent and its
workers spent per frame (from /proc): what each frame costs, whatever else runs.
"""

from __future__ import annotations

import argparse
import glob
import multiprocessing
import os
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import av
from _common import cpu_name  # benchmarks/ is on sys.path when run as a script

from pytest_aigve.protocol import ClipProtocol
from pytest_aigve.videos.cache import ClipCache
from pytest_aigve.videos.decode import DecodedClip
from pytest_aigve.videos.pipeline import ClipSource, PooledSource, SerialSource, default_decode_workers
from pytest_aigve.videos.sources import Video

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
NATIVE = ClipProtocol(frames=None)


def minimal_decode(path: str) -> int:
    """The reference: every frame to an rgb24 array, thrown away."""
    frames = 0
    with av.open(path) as container:
        for frame in container.decode(container.streams.video[0]):
            frame.to_ndarray(format="rgb24")
            frames += 1
    return frames


def find_files(pattern: str | None, min_frames: int) -> list[Path]:
    if pattern:
        return sorted(Path(p) for p in glob.glob(os.path.expanduser(pattern), recursive=True))
    found = sorted(SHARED_DATA.rglob("*.mp4")) if SHARED_DATA.is_dir() else []
    return [path for path in found if frame_count(path) >= min_frames]


def frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return int(container.streams.video[0].frames or 0)


def synthetic_files(folder: Path) -> list[Path]:
    """CogVideoX- and LaVie-sized H.264 videos (1360x768x81, 512x512x16), written with PyAV."""
    from pytest_aigve.examples import moving_scene, write_video

    files = [write_video(folder / f"cogvideox_like_{i}.mp4", moving_scene(i, frames=81, size=(768, 1360)), fps=16)
             for i in range(4)]
    files += [write_video(folder / f"lavie_like_{i}.mp4", moving_scene(10 + i, frames=16, size=(512, 512)), fps=8)
              for i in range(8)]
    return files


def cpu_seconds(pids: list[int]) -> float:
    """user + system CPU seconds of these processes (all their threads), from /proc; 0 elsewhere."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def timed(run: Callable[[], int], pids: Callable[[], list[int]]) -> tuple[float, float]:
    """(frames per second, CPU ms per frame)."""
    before = cpu_seconds([os.getpid(), *pids()])
    started = time.perf_counter()
    frames = run()
    seconds = time.perf_counter() - started
    spent = cpu_seconds([os.getpid(), *pids()]) - before
    return frames / seconds, 1000 * spent / frames


def pipeline_run(source: ClipSource, videos: list[Video], cache_bytes: int) -> Callable[[], int]:
    def run() -> int:
        frames = 0
        cache = ClipCache(cache_bytes, source)  # a fresh cache: every clip is decoded
        for _, clip in cache.stream(videos, NATIVE):
            assert isinstance(clip, DecodedClip), clip
            frames += len(clip.frames)
        return frames
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=default_decode_workers(), help="default: all cores")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--files", help="a glob of videos (default: the shared data's, else synthetic)")
    parser.add_argument("--min-frames", type=int, default=8, help="skip shorter shared videos (test stubs)")
    parser.add_argument("--cache-mb", type=int, default=0, help="the clip cache's budget during the run")
    parser.add_argument("--threads", type=int, default=0, help="decoder threads per pipeline worker (0: FFmpeg's)")
    parser.add_argument("--no-serial", action="store_true", help="skip the (slow) serial source")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        files = find_files(args.files, args.min_frames)
        origin = f"under {os.path.commonpath(files)}" if files else "synthetic, written with PyAV"
        files = files or synthetic_files(Path(folder))
        videos = [Video(path, path.stem, path.name) for path in files]
        mix: Counter[str] = Counter()
        for path in files:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                mix[f"{stream.width}x{stream.height}x{stream.frames}"] += 1
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        print(f"{cpu_name()}, {cores} cores; {args.workers} workers; {len(files)} files "
              f"({', '.join(f'{n} x {kind}' for kind, n in sorted(mix.items()))}), {origin}")

        source = PooledSource(args.workers, threads=args.threads)
        context = multiprocessing.get_context("forkserver" if "forkserver" in multiprocessing.get_all_start_methods()
                                              else "spawn")
        with context.Pool(args.workers) as pool:
            def minimal() -> int:
                return sum(pool.map(minimal_decode, [str(path) for path in files], chunksize=1))

            def pool_pids() -> list[int]:
                return [process.pid for process in pool._pool]  # type: ignore[attr-defined]

            pipeline = pipeline_run(source, videos, args.cache_mb * 2**20)
            minimal()  # warm-up: processes started, files in the page cache, slabs made
            pipeline()
            rows: dict[str, list[tuple[float, float]]] = {"minimal": [], "pipeline": []}
            for run in range(args.repeat):
                rows["minimal"].append(timed(minimal, pool_pids))
                rows["pipeline"].append(timed(pipeline, source.worker_pids))
                (ref_fps, ref_ms), (our_fps, our_ms) = rows["minimal"][-1], rows["pipeline"][-1]
                print(f"run {run + 1}: minimal PyAV loop {ref_fps:7.1f} frames/s ({ref_ms:5.2f} CPU ms/frame) | "
                      f"pipeline {our_fps:7.1f} frames/s ({our_ms:5.2f} CPU ms/frame) | "
                      f"ratio {our_fps / ref_fps:6.1%}")
        source.close()
        best_ref, best_ours = (max(fps for fps, _ in rows[name]) for name in ("minimal", "pipeline"))
        ratios = [ours[0] / ref[0] for ref, ours in zip(rows["minimal"], rows["pipeline"], strict=True)]
        cpu_ratio = (statistics.median(ms for _, ms in rows["minimal"])
                     / statistics.median(ms for _, ms in rows["pipeline"]))
        print(f"best: minimal {best_ref:.1f} frames/s, pipeline {best_ours:.1f} frames/s, "
              f"ratio {best_ours / best_ref:.1%} (median of runs {statistics.median(ratios):.1%}; "
              f"by CPU time per frame {cpu_ratio:.1%})")
        if not args.no_serial:
            fps, ms = timed(pipeline_run(SerialSource(), videos, args.cache_mb * 2**20), lambda: [])
            print(f"serial source (in process): {fps:.1f} frames/s ({ms:.2f} CPU ms/frame)")


if __name__ == "__main__":
    main()
