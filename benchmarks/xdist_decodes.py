"""Decodes and wall time of one suite run serially and under pytest-xdist: checks over the same clips go to one
worker (decode groups), so `-n 2` decodes each video once, as a serial run does.

The suite: ssim, psnr and flicker (of each set) over --pairs reference/candidate pairs of synthetic videos, written
with PyAV. Each pair is one decode group. Runs: without xdist, `-n 1`, `-n 2`, and `-n 2 --dist load` (xdist's
plain load balancing: what `-n 2` did before decode groups). Every run is a fresh `pytest` process with
`--aigve-no-cache`; decodes are the sum of `details.videos_decoded` in the JSON results. Wall times are the best of
--repeats, the runs alternating (the machine may be shared), and include starting the interpreters.

    python benchmarks/xdist_decodes.py [--videos 10] [--pairs 1] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import cpu_name  # benchmarks/ is on sys.path when run as a script

from pytest_aigve.examples import degrade, moving_scene, write_video

RUNS: dict[str, list[str]] = {
    "no xdist": ["-p", "no:xdist"],
    "-n 1": ["-p", "xdist", "-n", "1"],
    "-n 2": ["-p", "xdist", "-n", "2"],
    "-n 2 --dist load": ["-p", "xdist", "-n", "2", "--dist", "load"],
}


def write_sets(root: Path, pairs: int, videos: int, frames: int, size: int) -> None:
    for pair in range(pairs):
        for index in range(videos):
            clip = moving_scene(1000 * pair + index, frames=frames, size=(size, size))
            write_video(root / f"ref{pair}" / f"clip_{index}.mp4", clip)
            write_video(root / f"gen{pair}" / f"clip_{index}.mp4", degrade(clip, seed=50 + index))


def suite_text(pairs: int, frames: int) -> str:
    lines = ["suite: xdist-decodes", f"protocol: {{frames: {frames}}}", "video_sets:"]
    lines += [f"  {role}{pair}: {{folder: {role}{pair}}}" for pair in range(pairs) for role in ("ref", "gen")]
    lines.append("checks:")
    for pair in range(pairs):
        lines += [f"  - {{metric: {metric}, reference: ref{pair}, candidate: gen{pair}}}"
                  for metric in ("ssim", "psnr")]
        lines += [f"  - {{metric: flicker, set: {role}{pair}}}" for role in ("ref", "gen")]
    return "\n".join(lines) + "\n"


def run(root: Path, args: list[str]) -> tuple[float, int, int]:
    """(wall seconds, videos decoded, checks) of one pytest process."""
    results = root / "results.json"
    results.unlink(missing_ok=True)
    command = [sys.executable, "-m", "pytest", "--aigve-suite", "suite.yaml", "--aigve-no-cache", "--aigve-json",
               str(results), "--aigve-html", "none", "--aigve-markdown", "none", "-q", "-p", "no:cacheprovider",
               *args]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=root, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    records = json.loads(results.read_text())["records"]
    return seconds, sum(record["details"]["videos_decoded"] for record in records), len(records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=10, help="videos per set")
    parser.add_argument("--pairs", type=int, default=1, help="reference/candidate pairs: one decode group each")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"machine: {platform.platform()}, {cpu_name()}, {os.cpu_count()} CPUs, python {platform.python_version()}; "
          f"load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_sets(root, args.pairs, args.videos, args.frames, args.size)
        (root / "suite.yaml").write_text(suite_text(args.pairs, args.frames))
        (root / "pytest.ini").write_text("[pytest]\n")  # this folder is the rootdir, whatever is around it
        distinct = 2 * args.pairs * args.videos
        print(f"suite: {4 * args.pairs} checks (ssim, psnr, flicker x2 per pair) over {args.pairs} pair(s) of sets of "
              f"{args.videos} videos, {args.frames} frames {args.size}x{args.size}: {distinct} distinct clips")
        best: dict[str, float] = {}
        decodes: dict[str, int] = {}
        for _ in range(args.repeats):
            for label, extra in RUNS.items():
                seconds, decodes[label], _checks = run(root, extra)
                best[label] = min(best.get(label, seconds), seconds)
    serial = best["no xdist"]
    print(f"\n  {'run':18} {'decodes':>8} {'wall s':>8} {'vs no xdist':>12}")
    for label in RUNS:
        print(f"  {label:18} {decodes[label]:8d} {best[label]:8.2f} {best[label] / serial:11.2f}x")


if __name__ == "__main__":
    main()
