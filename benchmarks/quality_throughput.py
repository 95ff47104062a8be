"""Throughput of our frame- and clip-level quality networks against their reference code, on the same frames and the
same weights files (deterministic random weights in the official formats, pytest_aigve.random_weights), in one run;
prints frames/s or clips/s both ways, the speed ratio, and the largest relative difference of the outputs.

  python benchmarks/quality_throughput.py                       # CPU: 16 frames of 512x512, one 64x256x256 video
  python benchmarks/quality_throughput.py --device cuda --frames 64 --videos 4 --repeat 3 \\
      --only imaging,clip_b32,clip_l14,dover,fastvqa

What is compared (both paths start from the same uint8 frames in CPU memory; ours moves them to the device first):
  imaging    imaging_quality: our MUSIQ (features/musiq.py, key musiq_spaq: VBench's 'longer' preprocessing on the
             device, frames of one size batched) against pyiqa's MUSIQ driven by vbench.imaging_quality's own
             `technical_quality` (VBench's `transform` on the CPU, then one frame per forward). VBench's load_video
             gives float (T, 3, H, W) 0-255, so the reference gets that. Output: the per-frame score.
  clip_b32   background_consistency's tower: our OpenAI CLIP image tower (features/openai_clip.py) against
  clip_l14   aesthetic_quality's tower:      `clip.model.build_model(state_dict)` as clip.load makes it (half
             precision on CUDA, float32 on the CPU; ours runs at the same precision), fed as VBench feeds it:
             load_video's float frames through vbench.utils.clip_transform(224) on the CPU, then the whole clip
             through `encode_image`. Full-size towers (ViT-B/32: width 768, 12 layers; ViT-L/14: 1024, 24), random
             weights. Output: the image embedding.
  dover      DOVER (technical and aesthetic branches, `clips: 1`, seed 0) against objective-metrics 1.2.2's DOVER
  fastvqa    and FastVQA('FasterVQA') classes' `score_video`, the global generators seeded as our seed; the frame
             reader hands them our frames. Output: the raw head means (before the score's rescaling).

Every reference runs under torch.no_grad (VBench's technical_quality and background_consistency leave autograd on,
which costs them memory and time: the ratio is against the reference's faster variant). A reference whose package
is missing is skipped with the reason; ours is still timed. Each path runs once to warm up (frame-level: on two
frames), then `--repeat` times; the best time counts.

The references are imported without their packages' heavy `__init__` (pyiqa's imports cv2 and every dataset; clip's
needs pkg_resources, ftfy and regex for its tokenizer): `pyiqa`, `pyiqa.archs`, `pyiqa.data`, `pyiqa.utils` and
`clip` become placeholder packages whose path is the real folder. Modules the compared code never calls get
placeholders where they are not installed: `decord` (VBench's and objective-metrics' video readers), `cv2`,
`skvideo`, `gdown` (objective-metrics' readers and downloads).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.util
import io
import os
import sys
import tempfile
import time
import types
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from _common import cpu_name  # benchmarks/ is on sys.path when run as a script

SECTIONS = ("imaging", "clip_b32", "clip_l14", "dover", "fastvqa")
ALIASES = {"background": "clip_b32", "aesthetic": "clip_l14", "clip": "clip_b32"}
CLIP_TOWERS = {"clip_b32": ("openai_clip_b32", 768, 12), "clip_l14": ("openai_clip_l14", 1024, 24)}
Result = TypeVar("Result")


class MissingReference(Exception):
    """The reference package (or one it imports) is not installed: the comparison is skipped, with this reason."""


# --- inputs and timing ---------------------------------------------------------------------------------------------


def moving_clip(seed: int, frames: int, size: int) -> torch.Tensor:
    """(T, H, W, 3) uint8: a smooth gradient with a drifting disc (pytest_aigve.examples.moving_scene)."""
    from pytest_aigve.examples import moving_scene

    return torch.from_numpy(moving_scene(seed, frames=frames, size=(size, size)))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The references' prints and warnings (model names, torch.utils.checkpoint's deprecation) kept out of the
    output."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def best_time(run: Callable[[], Result], repeat: int, device: torch.device,
              warm_up: Callable[[], object] | None = None) -> tuple[Result, float]:
    """`run`'s last result and its best wall time over `repeat` runs, after one warm-up (`warm_up`, else `run`):
    kernels, allocator, caches built on first use (our DOVER's first CPU forward costs about twice a later one)."""
    (warm_up or run)()
    best = float("inf")
    for _ in range(max(1, repeat)):
        synchronize(device)
        started = time.perf_counter()
        result = run()
        synchronize(device)
        best = min(best, time.perf_counter() - started)
    return result, best


def relative_difference(ours: np.ndarray, reference: np.ndarray) -> float:
    """max |ours - reference| / max |reference|, over every output value."""
    ours64, reference64 = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    if ours64.shape != reference64.shape:
        raise AssertionError(f"outputs differ in shape: ours {ours64.shape}, reference {reference64.shape}")
    return float(np.abs(ours64 - reference64).max() / max(np.abs(reference64).max(), 1e-30))


def report(name: str, unit: str, count: int, our_seconds: float, reference: str,
           reference_seconds: float | None, difference: str) -> None:
    ours = f"ours {count / our_seconds:8.2f} {unit}/s"
    if reference_seconds is None:
        print(f"{name:13} {ours} | {reference}: skipped ({difference})")
        return
    print(f"{name:13} {ours} | {reference} {count / reference_seconds:8.2f} {unit}/s | "
          f"ratio {reference_seconds / our_seconds:5.2f}x | {difference}")


# --- importing the references --------------------------------------------------------------------------------------


def package_folder(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise MissingReference(f"{name} is not installed")
    return Path(spec.origin).parent


def placeholder_package(name: str, folder: Path) -> None:
    """`name` as an empty package over the real `folder`: its submodules import, its `__init__` never runs."""
    if name not in sys.modules:
        package = types.ModuleType(name)
        package.__path__ = [str(folder)]
        sys.modules[name] = package


def placeholder_if_missing(name: str, **attributes: Any) -> None:
    """A stand-in module for one the compared code paths import but never call, where it is not installed."""
    if name in sys.modules:
        return
    top = name.partition(".")[0]
    loaded = sys.modules.get(top)  # a placeholder of ours has no spec
    installed = loaded.__spec__ is not None if loaded is not None else importlib.util.find_spec(top) is not None
    if not installed:
        module = types.ModuleType(name)
        for attribute, value in attributes.items():
            setattr(module, attribute, value)
        sys.modules[name] = module


def decord_placeholder() -> None:
    placeholder_if_missing("decord", VideoReader=None, cpu=None, gpu=None,
                           bridge=types.SimpleNamespace(set_bridge=lambda *args: None))


def import_reference(importer: Callable[[], Result]) -> Result:
    try:
        with quiet():  # timm's deprecation warning for objective-metrics' imports
            return importer()
    except ImportError as exc:  # a package the reference imports
        raise MissingReference(f"{type(exc).__name__}: {exc}") from None


def pyiqa_and_vbench() -> types.SimpleNamespace:
    root = package_folder("pyiqa")
    for name, folder in (("pyiqa", root), ("pyiqa.archs", root / "archs"), ("pyiqa.data", root / "data"),
                         ("pyiqa.utils", root / "utils")):
        placeholder_package(name, folder)
    package_folder("vbench")
    decord_placeholder()

    def load() -> types.SimpleNamespace:
        from pyiqa.archs.musiq_arch import MUSIQ
        from vbench import imaging_quality

        return types.SimpleNamespace(MUSIQ=MUSIQ, vbench=imaging_quality)

    return import_reference(load)


def clip_and_vbench() -> types.SimpleNamespace:
    placeholder_package("clip", package_folder("clip"))
    package_folder("vbench")
    decord_placeholder()

    def load() -> types.SimpleNamespace:
        import clip.model
        from vbench.utils import clip_transform

        return types.SimpleNamespace(build_model=clip.model.build_model, clip_transform=clip_transform)

    return import_reference(load)


def objective_metrics() -> types.SimpleNamespace:
    package_folder("objective_metrics")
    decord_placeholder()
    for name in ("cv2", "skvideo", "skvideo.io", "gdown"):
        placeholder_if_missing(name)

    def load() -> types.SimpleNamespace:
        from objective_metrics.modules.nr_vqa import dover, fastvqa
        from objective_metrics.modules.nr_vqa.models import _dover as dover_models
        from objective_metrics.modules.nr_vqa.models import _fastvqa as fastvqa_models
        from objective_metrics.modules.nr_vqa.utils import _dover as dover_utils

        # the weights come from our files: the references' random initialisation is skipped (it is slow), and
        # DOVER's aesthetic branch is built without its ImageNet download
        for module in (dover_models, fastvqa_models):
            module.trunc_normal_ = lambda tensor, *args, **kwargs: tensor
        dover_models.convnext_3d_tiny = lambda pretrained=False, **kwargs: dover_models.ConvNeXt3D(
            depths=[3, 3, 9, 3], dims=[96, 192, 384, 768])
        return types.SimpleNamespace(dover=dover, fastvqa=fastvqa, dover_utils=dover_utils)

    return import_reference(load)


# --- the comparisons -----------------------------------------------------------------------------------------------


def compare_imaging(weights: Path, clip: torch.Tensor, device: torch.device, repeat: int) -> None:
    from pytest_aigve.features.musiq import MusiqSpaqBackbone
    from pytest_aigve.features.weights import REGISTRY, file_sha256

    path = weights / REGISTRY["musiq_spaq"].filename
    ours = MusiqSpaqBackbone(path, file_sha256(path), device)
    ours.model  # noqa: B018 - built (and loaded) before timing

    def our_scores(frames: torch.Tensor = clip) -> np.ndarray:
        return np.concatenate(ours.extract([frames.to(device, non_blocking=True)])).reshape(-1)

    our_result, our_seconds = best_time(our_scores, repeat, device, lambda: our_scores(clip[:2]))
    count = clip.shape[0]
    try:
        references = pyiqa_and_vbench()
    except MissingReference as exc:
        report("imaging", "frames", count, our_seconds, "pyiqa+VBench", None, str(exc))
        return
    with quiet():
        model = references.MUSIQ(pretrained_model_path=str(path)).to(device)
    model.training = False  # as compute_imaging_quality sets it (pyiqa cuts patches only then)
    references.vbench.tqdm = lambda iterable, **kwargs: iterable  # no progress bar in the output
    loaded = clip.permute(0, 3, 1, 2).float()  # what VBench's load_video gives for an .mp4: float 0-255

    def reference_scores(frames: torch.Tensor = loaded) -> np.ndarray:
        scores: list[float] = []

        def scored(frame: torch.Tensor) -> torch.Tensor:
            score = model(frame)
            scores.append(float(score))
            return score

        references.vbench.load_video = lambda path: frames.clone()
        with torch.no_grad(), quiet():
            references.vbench.technical_quality(scored, ["benchmark.mp4"], device)
        return np.array(scores)

    reference_result, reference_seconds = best_time(reference_scores, repeat, device,
                                                    lambda: reference_scores(loaded[:2]))
    report("imaging", "frames", count, our_seconds, "pyiqa+VBench", reference_seconds,
           f"max rel. diff of frame scores {relative_difference(our_result, reference_result):.1e}")


def compare_clip(section: str, weights: Path, clip: torch.Tensor, device: torch.device, repeat: int) -> None:
    from pytest_aigve.features.openai_clip import OpenAIClipB32Backbone, OpenAIClipL14Backbone
    from pytest_aigve.features.weights import REGISTRY, file_sha256, load_state_dict

    key, _, _ = CLIP_TOWERS[section]
    path = weights / REGISTRY[key].filename
    precision = "fp16" if device.type == "cuda" else "fp32"  # what VBench's clip.load gives on each device
    backbone_cls = OpenAIClipB32Backbone if key == "openai_clip_b32" else OpenAIClipL14Backbone
    ours = backbone_cls(path, file_sha256(path), device, precision)
    ours.model  # noqa: B018 - built (and loaded) before timing

    def our_embeddings(frames: torch.Tensor = clip) -> np.ndarray:
        return np.concatenate(ours.extract([frames.to(device, non_blocking=True)]))

    our_result, our_seconds = best_time(our_embeddings, repeat, device, lambda: our_embeddings(clip[:2]))
    count, name = clip.shape[0], f"{section}/{precision}"
    try:
        references = clip_and_vbench()
    except MissingReference as exc:
        report(name, "frames", count, our_seconds, "clip+VBench", None, str(exc))
        return
    # clip.load(path, device) on a state-dict file: build_model, .to(device), float() on the CPU only
    model = references.build_model(dict(load_state_dict(path, REGISTRY[key]))).to(device).eval()
    if device.type == "cpu":
        model.float()
    transform = references.clip_transform(224)
    loaded = clip.permute(0, 3, 1, 2).float()  # VBench's load_video: float 0-255

    def reference_embeddings(frames: torch.Tensor = loaded) -> np.ndarray:
        with torch.no_grad():
            images = transform(frames).to(device)
            return model.encode_image(images).float().cpu().numpy()

    reference_result, reference_seconds = best_time(reference_embeddings, repeat, device,
                                                    lambda: reference_embeddings(loaded[:2]))
    report(name, "frames", count, our_seconds, "clip+VBench", reference_seconds,
           f"max rel. diff of embeddings {relative_difference(our_result, reference_result):.1e}")


class FrameReader:
    """objective-metrics' video-reader interface (len, index -> (H, W, 3) uint8) over frames in memory."""

    def __init__(self, frames: np.ndarray) -> None:
        self.frames = frames

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.frames[int(index)]


def recorded_means(module: torch.nn.Module) -> list[list[float]]:
    """After each call of `module`: the mean of each of its outputs (one tensor or a sequence of them)."""
    means: list[list[float]] = []
    forward = module.forward

    def record(*args: Any, **kwargs: Any) -> Any:
        result = forward(*args, **kwargs)
        outputs = result if isinstance(result, (list, tuple)) else [result]
        means.append([float(output.mean()) for output in outputs])
        return result

    module.forward = record
    return means


def compare_video(section: str, weights: Path, videos: list[torch.Tensor], device: torch.device,
                  repeat: int) -> None:
    from pytest_aigve.features.dover import DoverBackbone, FasterVQABackbone
    from pytest_aigve.features.weights import REGISTRY, file_sha256

    dover = section == "dover"
    path = weights / REGISTRY["dover" if dover else "fastervqa"].filename
    if dover:
        ours: DoverBackbone | FasterVQABackbone = DoverBackbone(path, file_sha256(path), device,
                                                                options={"clips": 1, "seed": 0})
    else:
        ours = FasterVQABackbone(path, file_sha256(path), device, options={"seed": 0})
    ours.model  # noqa: B018 - built (and loaded) before timing

    def our_rows() -> np.ndarray:
        return np.concatenate([ours.extract([video.to(device, non_blocking=True)])[0] for video in videos])

    our_result, our_seconds = best_time(our_rows, repeat, device)
    try:
        references = objective_metrics()
    except MissingReference as exc:
        report(section, "clips", len(videos), our_seconds, "objective-metrics", None, str(exc))
        return
    with quiet():
        if dover:
            references.dover.download_checkpoints = lambda metric, logger: str(path)
            scorer: Any = references.dover.DOVER(logger=None)
            scorer.dopt = copy.deepcopy(scorer.dopt)
            scorer.dopt["sample_types"]["technical"]["num_clips"] = 1
            scorer.temporal_samplers["technical"] = references.dover_utils.UnifiedFrameSampler(32, 1, 2)
        else:
            references.fastvqa.download_checkpoints = lambda metric, logger: str(path)
            scorer = references.fastvqa.FastVQA("FasterVQA", logger=None)
    scorer.device = device  # the reference picks CUDA whenever it is there
    scorer.evaluator.to(device)
    means = recorded_means(scorer.evaluator)
    frames = [video.numpy() for video in videos]

    def reference_rows() -> np.ndarray:
        means.clear()
        for video in frames:
            np.random.seed(0)  # our seed 0, drawn from the global generators as the reference draws
            torch.manual_seed(0)
            with quiet():
                scorer.score_video("benchmark.mp4", lambda path, video=video: FrameReader(video))
        return np.array(means)

    reference_result, reference_seconds = best_time(reference_rows, repeat, device)
    report(section, "clips", len(videos), our_seconds, "objective-metrics", reference_seconds,
           f"max rel. diff of raw outputs {relative_difference(our_result, reference_result):.1e}")


# --- main ----------------------------------------------------------------------------------------------------------


def chosen_sections(text: str | None, device: torch.device) -> list[str]:
    if text is None:  # ViT-L/14 is about 80 GFLOP a frame: only on a GPU by default
        return [s for s in SECTIONS if device.type == "cuda" or s != "clip_l14"]
    names = [ALIASES.get(name.strip(), name.strip()) for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SECTIONS]
    if unknown:
        raise SystemExit(f"--only: unknown {', '.join(unknown)}; choose from {', '.join(SECTIONS)} "
                         f"(aliases: {', '.join(f'{a}={s}' for a, s in ALIASES.items())})")
    return list(dict.fromkeys(names))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--frames", type=int, default=16, help="frames for the frame-level networks")
    parser.add_argument("--size", type=int, default=512, help="their frame side (LaVie: 512)")
    parser.add_argument("--videos", type=int, default=1, help="videos for dover and fastvqa")
    parser.add_argument("--video-frames", type=int, default=64)
    parser.add_argument("--video-size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=1, help="timed runs after the warm-up; the best counts")
    parser.add_argument("--only", help=f"comma-separated: {', '.join(SECTIONS)} (default: all; clip_l14 only on "
                                       "CUDA)")
    parser.add_argument("--seed", type=int, default=0, help="random weights")
    parser.add_argument("--threads", type=int, help="torch's CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from pytest_aigve.features.openai_clip import write_random_clip
    from pytest_aigve.random_weights import write_all

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = torch.device(args.device)
    sections = chosen_sections(args.only, device)
    gpu = f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    print(f"machine: {cpu_name()} ({os.cpu_count()} cores), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {device}{gpu}; load average "
          f"{' '.join(f'{load:.2f}' for load in os.getloadavg())}")
    print(f"frames: {args.frames} of {args.size}x{args.size}; videos: {args.videos} of {args.video_frames}x"
          f"{args.video_size}x{args.video_size}; best of {args.repeat} after a warm-up; random weights, seed "
          f"{args.seed}")
    frame_clip = moving_clip(1, args.frames, args.size)
    videos = [moving_clip(10 + index, args.video_frames, args.video_size) for index in range(args.videos)]

    with tempfile.TemporaryDirectory(prefix="aigve-quality-") as folder:
        weights = Path(folder)
        keys = {"imaging": ["musiq_spaq"], "dover": ["dover"], "fastvqa": ["fastervqa"]}
        write_all(weights, args.seed, [key for section in sections for key in keys.get(section, [])])
        for section in sections:
            if section == "imaging":
                compare_imaging(weights, frame_clip, device, args.repeat)
            elif section in CLIP_TOWERS:
                key, width, layers = CLIP_TOWERS[section]  # the published towers' size (the writer's are tiny)
                write_random_clip(weights, key, args.seed, width=width, layers=layers)
                compare_clip(section, weights, frame_clip, device, args.repeat)
            else:
                compare_video(section, weights, videos, device, args.repeat)
    print(f"load average after: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")


if __name__ == "__main__":
    main()
