"""Deterministic random weights in the official checkpoint formats, for tests and benchmarks on machines
that cannot download the real ones (`python -m pytest_aigve weights random --dir DIR`).

Every file carries a marker (`RANDOM_MARKER` in its state dict's `_metadata`, which strict loaders ignore):
`features.weights.verify` finds it, and every score made with such a file says "UNVERIFIED: RANDOM TEST
WEIGHTS ...": no random score can pass as a real one.

Random conv nets with BatchNorm give almost input-independent features (every activation is normalised
by statistics that do not match it), so BatchNorm running statistics are recalibrated on random clips
before saving. The Inception classifier is scaled down so its softmax is not one-hot (IS would be 1).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import nn

from .errors import AigveError
from .features.weights import RANDOM_STATUS, REGISTRY, is_random_test_weights, mark_random


def _recalibrate_batchnorm(model: nn.Module, run: Callable[[], object]) -> None:
    """Reset BatchNorm statistics and re-estimate them (cumulative average) from one forward in train mode."""
    model.eval()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None
            module.train()
    with torch.no_grad():
        run()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = 0.1
    model.eval()


def _calibration_clips(generator: torch.Generator, count: int, frames: int, size: int) -> torch.Tensor:
    """Smooth random clips in [0, 255]: low-resolution noise upsampled, drifting over time."""
    coarse = torch.rand(count, 3, frames, 6, 6, generator=generator) * 255
    return nn.functional.interpolate(coarse, size=(frames, size, size), mode="trilinear", align_corners=False)


def write_inception(folder: Path, seed: int = 0) -> Path:
    import torchvision
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    path = folder / REGISTRY["inception"].filename
    folder.mkdir(parents=True, exist_ok=True)
    template = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=True)
    torch.save(template.state_dict(), path)
    model = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path))
    images = _calibration_clips(generator, 24, 1, 128)[:, :, 0].round().to(torch.uint8)
    _recalibrate_batchnorm(model, lambda: model(images))
    with torch.no_grad():
        model.fc.weight.mul_(0.1)  # a soft, input-dependent class distribution
    torch.save(mark_random(model.state_dict(), seed), path)
    return path


def write_i3d(folder: Path, seed: int = 0) -> Path:
    from cdfvd.third_party.i3d.pytorch_i3d import InceptionI3d

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = InceptionI3d(400, in_channels=3)
    clips = _calibration_clips(generator, 2, 10, 224) * (2 / 255) - 1  # the final pooling needs 224²
    _recalibrate_batchnorm(model, lambda: model(clips))
    path = folder / REGISTRY["i3d"].filename
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(mark_random(model.state_dict(), seed), path)
    return path


def write_videomae(folder: Path, seed: int = 0, embed_dim: int = 176, depth: int = 2) -> Path:
    """A small ViT of the VideoMAE-v2 ViT-g/14 family (patch 14, 224², 16 frames, head dim 88), nested under
    'module' as some official checkpoints are."""
    from functools import partial

    from cdfvd.third_party.VideoMAEv2.videomaev2_finetune import VisionTransformer

    torch.manual_seed(seed)
    model = VisionTransformer(img_size=224, patch_size=14, embed_dim=embed_dim, depth=depth,
                              num_heads=embed_dim // 88, mlp_ratio=48 / 11, qkv_bias=True,
                              norm_layer=partial(nn.LayerNorm, eps=1e-6), num_classes=174, all_frames=16,
                              tubelet_size=2, use_mean_pooling=True)
    path = folder / REGISTRY["videomae"].filename
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"module": mark_random(model.state_dict(), seed)}, path)
    return path


def write_r3d18(folder: Path, seed: int = 0) -> Path:
    from torchvision.models.video import r3d_18

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = r3d_18(weights=None)
    clips = (_calibration_clips(generator, 3, 8, 112) / 255 - 0.4) / 0.22
    _recalibrate_batchnorm(model, lambda: model(clips))
    path = folder / REGISTRY["r3d18"].filename
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(mark_random(model.state_dict(), seed), path)
    return path


WRITERS: dict[str, Callable[[Path, int], Path]] = {
    "inception": write_inception, "i3d": write_i3d, "videomae": write_videomae, "r3d18": write_r3d18,
}


def _write_blip_itm(folder: Path, seed: int = 0) -> Path:
    from .features.blip import write_random_blip_itm  # imported when used (blip_sim; needs transformers)

    return write_random_blip_itm(folder, seed)


WRITERS["blip_itm_base_coco"] = _write_blip_itm


def _write_musiq_spaq(folder: Path, seed: int = 0) -> Path:
    from .features.musiq import write_musiq_spaq  # imported when used (imaging_quality's MUSIQ)

    return write_musiq_spaq(folder, seed)


WRITERS["musiq_spaq"] = _write_musiq_spaq


def _write_dover(folder: Path, seed: int = 0) -> Path:
    from .features.dover import write_dover  # imported when used (dover)

    return write_dover(folder, seed)


def _write_fastervqa(folder: Path, seed: int = 0) -> Path:
    from .features.dover import write_fastervqa  # imported when used (fastvqa)

    return write_fastervqa(folder, seed)


WRITERS["dover"] = _write_dover
WRITERS["fastervqa"] = _write_fastervqa


def _clip_folder_writer(key: str) -> Callable[[Path, int], Path]:
    def write(folder: Path, seed: int = 0) -> Path:
        from .features.clip_hf import write_random_folder  # imported when used (clip_sim, clip_temp, pickscore)

        return write_random_folder(key, folder, seed)

    return write


for _key in ("clip_vit_b32", "clip_vit_l14", "pickscore_v1", "pickscore_processor"):  # weights folders
    WRITERS[_key] = _clip_folder_writer(_key)


def _openai_clip_writer(key: str) -> Callable[[Path, int], Path]:
    def write(folder: Path, seed: int = 0) -> Path:
        # imported when used (background_consistency, aesthetic_quality)
        from .features.openai_clip import RANDOM_WRITERS

        return RANDOM_WRITERS[key](folder, seed)

    return write


for _key in ("openai_clip_b32", "openai_clip_l14", "laion_aes_v1"):
    WRITERS[_key] = _openai_clip_writer(_key)


# the distribution metrics' backbones: small to write, and what most suites and tests need
DISTRIBUTION_KEYS: tuple[str, ...] = ("inception", "i3d", "videomae", "r3d18")


def write_all(folder: Path, seed: int = 0, keys: Iterable[str] | None = None) -> dict[str, Path]:
    """Random test weights for `keys` (weights keys; default: every entry with a writer) in `folder`."""
    chosen = list(WRITERS) if keys is None else list(dict.fromkeys(keys))
    unknown = [key for key in chosen if key not in WRITERS]
    if unknown:
        raise KeyError(f"no random writer for {', '.join(unknown)}; known: {', '.join(WRITERS)}")
    return {key: WRITERS[key](folder, seed) for key in chosen}


def cli_random(folder: Path, seed: int = 0, names: Iterable[str] = ()) -> int:
    """`python -m pytest_aigve weights random --dir DIR [NAME ...]`: write random test weights into DIR for the named
    weights or metrics (default: every entry with a writer), never over a file or folder that is not random test
    weights (a real checkpoint in that folder is kept)."""
    from .features.weights import FOLDER_REGISTRY, WeightsError, resolve_keys

    try:
        keys = resolve_keys(names) if names else list(WRITERS)
    except WeightsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    without = [key for key in keys if key not in WRITERS]
    if without:
        print(f"error: no random writer for {', '.join(without)}", file=sys.stderr)
        return 1
    for key in keys:
        target = folder / (REGISTRY[key].filename if key in REGISTRY else FOLDER_REGISTRY[key].folder)
        if target.exists() and not is_random_test_weights(target):
            print(f"error: {target} exists and is not random test weights; it is left alone: choose another --dir",
                  file=sys.stderr)
            return 1
    for key in keys:
        try:
            path = WRITERS[key](folder, seed)
        except AigveError as exc:  # a writer that needs an optional package (transformers, a CLIP BPE file)
            print(f"error: {key}: {exc}", file=sys.stderr)
            return 1
        print(path)
    print(f"random test weights in {folder}: scores made with them are meaningless; every score is marked "
          f'"{RANDOM_STATUS.split(" (")[0]}". Use them to try a suite (--aigve-weights-dir {folder} '
          "--aigve-allow-unverified-weights), never to evaluate a model", file=sys.stderr)
    return 0
