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
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .features.weights import RANDOM_MARKER, RANDOM_STATUS, REGISTRY, is_random_test_weights


def _marked(state: Mapping[str, Any], seed: int) -> OrderedDict[str, Any]:
    """The state dict with the random-test-weights marker in its `_metadata` (kept by torch.save / torch.load,
    ignored by load_state_dict's key check)."""
    marked: OrderedDict[str, Any] = OrderedDict(state)
    metadata: OrderedDict[str, Any] = OrderedDict(getattr(state, "_metadata", {}))
    metadata[RANDOM_MARKER] = {"written_by": "pytest-aigve weights random", "seed": seed}
    marked._metadata = metadata  # type: ignore[attr-defined]
    return marked


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
    torch.save(_marked(model.state_dict(), seed), path)
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
    torch.save(_marked(model.state_dict(), seed), path)
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
    torch.save({"module": _marked(model.state_dict(), seed)}, path)
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
    torch.save(_marked(model.state_dict(), seed), path)
    return path


WRITERS: dict[str, Callable[[Path, int], Path]] = {
    "inception": write_inception, "i3d": write_i3d, "videomae": write_videomae, "r3d18": write_r3d18,
}


def write_all(folder: Path, seed: int = 0) -> dict[str, Path]:
    return {key: writer(folder, seed) for key, writer in WRITERS.items()}


def cli_random(folder: Path, seed: int = 0) -> int:
    """`python -m pytest_aigve weights random --dir DIR`: write every backbone's random test weights into DIR,
    never over a file that is not random test weights (a real checkpoint in that folder is kept)."""
    for entry in REGISTRY.values():
        target = folder / entry.filename
        if target.exists() and not is_random_test_weights(target):
            print(f"error: {target} exists and is not random test weights; it is left alone: choose another --dir",
                  file=sys.stderr)
            return 1
    for path in write_all(folder, seed).values():
        print(path)
    print(f"random test weights in {folder}: scores made with them are meaningless; every score is marked "
          f'"{RANDOM_STATUS.split(" (")[0]}". Use them to try a suite (--aigve-weights-dir {folder} '
          "--aigve-allow-unverified-weights), never to evaluate a model", file=sys.stderr)
    return 0
