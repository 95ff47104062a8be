"""The research-standard backbones, built from the packages that define them, fed on the compute device.

Each backbone turns one decoded clip (uint8, (T, H, W, 3), already on the device) into its model input
with exactly the reference preprocessing, then runs batches through the network:

  inception  torch-fidelity's TF-FID InceptionV3 (TF1-compatible bilinear resize to 299 inside),
             frames as images -> pool3 (2048) and unbiased logits (1008), per frame
  i3d        cd-fvd's InceptionI3d-400, cd-fvd's preprocess_i3d (bilinear 224, [-1, 1]) -> 400 logits
  videomae   cd-fvd's VideoMAE-v2 VisionTransformer, cd-fvd's preprocess_videomae (/255, bilinear 224)
             -> mean-pooled fc_norm features (1408 for ViT-g)
  r3d18      torchvision r3d_18 with its Kinetics-400 transforms, fc removed -> 512
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from functools import cached_property, partial
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MetricError
from ..metrics.contract import BackboneInfo
from ..paths import from_environment
from .weights import (
    RANDOM_STATUS,
    REGISTRY,
    WeightsCheck,
    WeightsEntry,
    WeightsError,
    WeightsFile,
    is_random_test_weights,
    load_into,
    load_state_dict,
    locate_companions,
)

PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16}
PRECISIONS["fp16"] = torch.float16  # OpenAI CLIP as VBench runs it on CUDA; only backbones that list it


class Backbone(ABC):
    """A feature extractor over decoded clips (or, for kind "text", prompts). `identity` changes whenever its
    outputs could: network, weights hash and precision; never the batch size, which is samples per forward pass.

    A backbone declares what suite loading checks before anything runs: its weights file entry, the fewest frames
    its network accepts, the precisions it supports, its default batch size, and its named outputs in column order
    (name -> width, None for the last when it depends on the weights): metrics ask for an output by name.
    """

    key: ClassVar[str]  # its name in the backbone registry and in a metric's BackboneRequest
    weights_file: ClassVar[WeightsEntry]  # a checkpoint file, or a Hugging Face style folder (PretrainedBackbone)
    name: ClassVar[str]
    kind: ClassVar[Literal["video", "text"]] = "video"
    min_frames: ClassVar[int] = 1
    per_frame: ClassVar[bool] = False  # features per frame (images) rather than per clip
    input_description: ClassVar[str]
    outputs: ClassVar[Mapping[str, int | None]] = {"features": None}
    precisions: ClassVar[tuple[str, ...]] = ("fp32", "bf16")
    default_batch_size: ClassVar[int] = 16
    # weights files the network needs besides `weights_file` (LAION's aesthetic head on CLIP): each is looked for
    # beside the main file first, then where any weights file is, and verified the same way; the backbone's digest
    # and status cover them all
    companion_files: ClassVar[tuple[WeightsFile, ...]] = ()
    # settings a request may pass (BackboneRequest.options) with their defaults; part of the identity
    option_defaults: ClassVar[Mapping[str, Any]] = {}
    # the values an option may take, where they are a fixed set (unlisted options take any value)
    option_choices: ClassVar[Mapping[str, tuple[Any, ...]]] = {}

    def __init__(self, weights_path: Path, weights_sha256: str, device: torch.device, precision: str = "fp32",
                 batch_size: int | None = None, weights_status: str = "",
                 companions: Mapping[str, tuple[Path, WeightsCheck]] | None = None,
                 options: Mapping[str, Any] | None = None) -> None:
        problem = self.precision_problem(precision, device.type) or self.options_problem(options or {})
        if problem:
            raise MetricError(problem)
        self.settings: dict[str, Any] = {**self.option_defaults, **(options or {})}
        self.weights_path = weights_path
        self.weights_sha256 = weights_sha256
        # the caller's check says UNVERIFIED only where the user allowed unverified weights
        allowed_unverified = weights_status.startswith("UNVERIFIED")
        # random test weights are named in every score's description, however the backbone was made
        # (weights.verify already says so; a backbone built without it, e.g. in a benchmark, checks here)
        if not weights_status.startswith(RANDOM_STATUS) and weights_path.is_file() \
                and is_random_test_weights(weights_path):
            weights_status = RANDOM_STATUS + (f"; {weights_status}" if weights_status else "")
        self.weights_status = weights_status
        if companions is None and self.companion_files:  # built outside a run (a test, a benchmark): as a run would
            environment = from_environment(os.environ)
            companions = locate_companions(self.companion_files, weights_path, environment.weights_dir,
                                           environment.allow_unverified_weights or allowed_unverified)
        self.companions: dict[str, tuple[Path, WeightsCheck]] = dict(companions or {})
        if self.companions:
            self._cover_companions()
        self.device = device
        self.precision = precision
        self.dtype = PRECISIONS[precision]
        self.batch_size = batch_size or self.default_batch_size

    def _cover_companions(self) -> None:
        """One digest over every file (sorted `name<TAB>sha256` lines, as a weights folder's) and one status naming
        each file's check; random or unverified first, so that the engine's warnings see it."""
        files = [(self.weights_path.name, self.weights_sha256, self.weights_status or "no check"),
                 *((path.name, check.sha256, check.status) for path, check in self.companions.values())]
        lines = sorted(f"{name}\t{digest}\n" for name, digest, _ in files)
        self.weights_sha256 = hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()
        statuses = [f"{name}: {status}" for name, _, status in files]
        first = (RANDOM_STATUS if any(RANDOM_STATUS in status for status in statuses) else
                 "UNVERIFIED" if any("UNVERIFIED" in status for status in statuses) else "")
        self.weights_status = "; ".join(([first] if first else []) + statuses)

    def companion_path(self, key: str) -> Path:
        return self.companions[key][0]

    @classmethod
    def options_problem(cls, options: Mapping[str, Any]) -> str | None:
        """Why a request's options do not fit this backbone, or None."""
        unknown = sorted(set(options) - set(cls.option_defaults))
        if unknown:
            known = ", ".join(cls.option_defaults) or "none"
            return f"backbone {cls.key} has no option {', '.join(unknown)} (known: {known})"
        for name, value in options.items():
            allowed = cls.option_choices.get(name)
            if allowed is not None and value not in allowed:
                return (f"backbone {cls.key}: option {name}={value!r} is not allowed; use one of "
                        f"{', '.join(map(str, allowed))}")
        return None

    @classmethod
    def precision_problem(cls, precision: str, device_type: str | None) -> str | None:
        """Why this backbone cannot run in `precision` on a `device_type` device (None: unknown yet), or None."""
        if precision not in cls.precisions:
            return (f"{cls.key} runs in {' or '.join(cls.precisions)} only, not {precision!r}"
                    + ("; drop 'precision'" if cls.precisions == ("fp32",) else ""))
        if precision not in PRECISIONS:
            return f"precision {precision!r} is not supported; use one of {', '.join(PRECISIONS)}"
        if precision == "bf16" and device_type is not None and device_type != "cuda":
            return f"precision bf16 runs on CUDA devices only (this run uses {device_type}); use fp32"
        if precision == "fp16" and device_type is not None and device_type != "cuda":
            return f"precision fp16 runs on CUDA devices only (this run uses {device_type}); use fp32"
        return None

    @classmethod
    def output_columns(cls, output: str | None) -> slice:
        """The columns of a named output in the concatenated features (None: all of them)."""
        if output is None:
            return slice(None)
        if output not in cls.outputs:
            raise MetricError(f"backbone {cls.key} has no output {output!r}; it has {', '.join(cls.outputs)}")
        start = 0
        for name, width in cls.outputs.items():
            if name == output:
                return slice(start, None if width is None else start + width)
            if width is None:
                raise MetricError(f"backbone {cls.key}: output {name!r} has no fixed width, so {output!r} after it "
                                  "cannot be located; declare the widths in `outputs`")
            start += width
        raise AssertionError("unreachable")

    @property
    def entry(self) -> WeightsFile:
        if not isinstance(self.weights_file, WeightsFile):
            raise TypeError(f"backbone {self.key} loads a weights folder; it must derive from PretrainedBackbone")
        return self.weights_file

    @property
    def identity(self) -> str:
        settings = f"[{','.join(f'{k}={v}' for k, v in sorted(self.settings.items()))}]" if self.settings else ""
        return f"{self.name}{settings}@{self.weights_sha256[:16]}/{self.precision}"

    def info(self, output: str | None = None) -> BackboneInfo:
        files = [self.weights_path.name, *(path.name for path, _ in self.companions.values())]
        licences = [self.weights_file.licence,
                    *(f"{entry.filename}: {entry.licence}" for entry in self.companion_files if entry.licence)]
        return BackboneInfo(self.name, " + ".join(files), self.weights_sha256, self.weights_status,
                            self.input_description, self.precision, str(self.device), "; ".join(filter(None, licences)),
                            output)

    def describe(self) -> dict[str, Any]:
        return self.info().to_dict()

    @cached_property
    def model(self) -> nn.Module:
        """Built on first use: a warm feature cache never loads the network."""
        state = load_state_dict(self.weights_path, self.entry, nested_keys=("model", "module", "state_dict"))
        return self.build(state).eval().requires_grad_(False).to(self.device)

    @abstractmethod
    def build(self, state: dict[str, Any]) -> nn.Module: ...

    @abstractmethod
    def prepare(self, clip: torch.Tensor) -> torch.Tensor:
        """(T, H, W, 3) uint8 on the device -> this video's model input."""

    @abstractmethod
    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """A batch of prepared inputs -> (N, D) features."""

    def check_clip(self, clip: torch.Tensor, label: str) -> None:
        if clip.shape[0] < self.min_frames:
            raise MetricError(f"{label}: {self.name} needs at least {self.min_frames} frames per clip, the protocol "
                              f"gave {clip.shape[0]}; raise 'frames' in the protocol")

    def extract(self, clips: list[torch.Tensor], batch_size: int | None = None) -> list[np.ndarray]:
        """Features per clip, float64 on the CPU; `batch_size` (default: the backbone's) samples per forward pass."""
        batch_size = batch_size or self.batch_size
        prepared = [self.prepare(clip) for clip in clips]
        if self.per_frame:
            sizes = [p.shape[0] for p in prepared]
            stacked = torch.cat(prepared)
        else:
            sizes = [1] * len(prepared)
            stacked = torch.stack(prepared)
        outputs = []
        with torch.inference_mode():
            for start in range(0, stacked.shape[0], batch_size):
                batch = stacked[start: start + batch_size]
                outputs.append(self.forward(batch).to("cpu", torch.float64))
        features = torch.cat(outputs).numpy()
        if not np.isfinite(features).all():
            raise MetricError(f"{self.name} produced NaN or inf features (precision {self.precision}); "
                              "check the weights file, or use precision fp32")
        return [chunk for chunk in np.split(features, np.cumsum(sizes)[:-1])]


class TextEncoder(Backbone):
    """A backbone over prompts (kind "text"): `encode` turns a batch of prompts into (N, D) features. Its features
    are cached by prompt and encoder identity (FeatureStore.text_features); metrics read them per video with
    MetricInputs.text_features."""

    kind: ClassVar[Literal["video", "text"]] = "text"
    input_description = "prompts"

    @abstractmethod
    def encode(self, prompts: list[str]) -> torch.Tensor:
        """A batch of prompts -> (N, D) features."""

    def prepare(self, clip: torch.Tensor) -> torch.Tensor:
        raise MetricError(f"{self.name} is a text encoder: it reads prompts, not clips")

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        raise MetricError(f"{self.name} is a text encoder: it reads prompts, not clips")

    def extract_text(self, prompts: list[str], batch_size: int | None = None) -> list[np.ndarray]:
        """Features per prompt, float64 on the CPU."""
        batch_size = batch_size or self.batch_size
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(prompts), batch_size):
                outputs.append(self.encode(prompts[start: start + batch_size]).to("cpu", torch.float64))
        features = torch.cat(outputs).numpy() if outputs else np.zeros((0, 0))
        if not np.isfinite(features).all():
            raise MetricError(f"{self.name} produced NaN or inf features for a prompt (precision {self.precision})")
        return list(features)


class InceptionBackbone(Backbone):
    key = "inception"
    weights_file = REGISTRY["inception"]
    name = "inception-v3-tf"
    per_frame = True
    input_description = "frames, TF1-bilinear to 299x299, (x-128)/128 (torch-fidelity)"
    FEATURE_DIM = 2048
    LOGITS_DIM = 1008
    outputs: ClassVar[Mapping[str, int | None]] = {"pool3": FEATURE_DIM, "logits_unbiased": LOGITS_DIM}
    precisions = ("fp32",)  # torch-fidelity's numerics
    default_batch_size = 64  # torch-fidelity's default batch size (frames per forward pass)

    def build(self, state: dict[str, Any]) -> nn.Module:
        import torchvision
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        # the same keys as torch-fidelity's network: check the file's architecture before handing it over
        template = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=self.LOGITS_DIM,
                                                   init_weights=False)
        load_into(template, state, self.weights_path, self.entry)
        # torch-fidelity reads the file itself (weights_only=False); load_state_dict above has just read it
        # with weights_only=True, so it holds tensors only
        return FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                           feature_extractor_weights_path=str(self.weights_path))

    def prepare(self, clip: torch.Tensor) -> torch.Tensor:
        return clip.permute(0, 3, 1, 2).contiguous()

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        pool, logits = self.model(batch)
        return torch.cat([pool, logits], dim=1)


class I3DBackbone(Backbone):
    key = "i3d"
    weights_file = REGISTRY["i3d"]
    outputs: ClassVar[Mapping[str, int | None]] = {"logits": 400}
    name = "i3d-400"
    min_frames = 9  # the final AvgPool3d fails on 8 frames or fewer
    input_description = "clip, bilinear to 224x224, [-1, 1] (cd-fvd preprocess_i3d)"
    SIZE = (224, 224)

    def build(self, state: dict[str, Any]) -> nn.Module:
        from cdfvd.third_party.i3d.pytorch_i3d import InceptionI3d

        model = InceptionI3d(400, in_channels=3)
        load_into(model, state, self.weights_path, self.entry)
        return model.to(self.dtype)

    def prepare(self, clip: torch.Tensor) -> torch.Tensor:
        frames = clip.permute(0, 3, 1, 2).to(torch.float32)  # (T, 3, H, W)
        frames = F.interpolate(frames, size=self.SIZE, mode="bilinear", align_corners=False)
        return (2.0 * frames / 255.0 - 1.0).transpose(0, 1)  # (3, T, 224, 224)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model(batch.to(self.dtype))


class VideoMAEBackbone(Backbone):
    key = "videomae"
    weights_file = REGISTRY["videomae"]
    outputs: ClassVar[Mapping[str, int | None]] = {"fc_norm": None}  # 1408 for ViT-g; the width the weights file has
    name = "videomae-v2"
    min_frames = 2
    input_description = "clip, /255, bilinear to 224x224 (cd-fvd preprocess_videomae)"
    SIZE = (224, 224)
    HEAD_DIM = 88  # ViT-g/14: 1408 = 16 heads x 88

    def build(self, state: dict[str, Any]) -> nn.Module:
        from cdfvd.third_party.VideoMAEv2.videomaev2_finetune import VisionTransformer

        try:
            embed_dim = state["patch_embed.proj.weight"].shape[0]
            depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
            hidden = state["blocks.0.mlp.fc1.weight"].shape[0]
            classes = state["head.weight"].shape[0]
        except (KeyError, ValueError, IndexError, AttributeError):
            raise WeightsError(f"weights {self.weights_path} are not a VideoMAE-v2 ViT checkpoint (no patch_embed / "
                               "blocks / head keys); is it the right file for videomae?") from None
        # the ViT-g/14 family (vit_giant_patch14_224 in cd-fvd) with the width and depth the file holds
        model = VisionTransformer(img_size=224, patch_size=14, embed_dim=embed_dim, depth=depth,
                                  num_heads=max(1, embed_dim // self.HEAD_DIM), mlp_ratio=hidden / embed_dim,
                                  qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6), num_classes=classes,
                                  all_frames=16, tubelet_size=2, use_mean_pooling=True)
        load_into(model, state, self.weights_path, self.entry)
        return model.to(self.dtype)

    def prepare(self, clip: torch.Tensor) -> torch.Tensor:
        video = clip.permute(3, 0, 1, 2).to(torch.float32) / 255.0  # (3, T, H, W): T acts as channels
        return F.interpolate(video, size=self.SIZE, mode="bilinear", align_corners=False)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(batch.to(self.dtype))  # type: ignore[operator]


class R3D18Backbone(Backbone):
    key = "r3d18"
    weights_file = REGISTRY["r3d18"]
    outputs: ClassVar[Mapping[str, int | None]] = {"pool": 512}
    name = "r3d-18-k400"
    input_description = "clip, torchvision KINETICS400_V1 transforms (resize 128x171, crop 112, normalise)"

    def build(self, state: dict[str, Any]) -> nn.Module:
        from torchvision.models.video import r3d_18

        model = r3d_18(weights=None)
        load_into(model, state, self.weights_path, self.entry)
        model.fc = nn.Identity()
        return model.to(self.dtype)

    @cached_property
    def transforms(self) -> nn.Module:
        from torchvision.models.video import R3D_18_Weights

        return R3D_18_Weights.KINETICS400_V1.transforms()

    def prepare(self, clip: torch.Tensor) -> torch.Tensor:
        return self.transforms(clip.permute(0, 3, 1, 2))  # (T, 3, H, W) uint8 -> (3, T, 112, 112)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model(batch.to(self.dtype))


# the built-in backbones by key; plugins add theirs through the registry (features.registry)
BACKBONES: dict[str, type[Backbone]] = {
    cls.key: cls for cls in (InceptionBackbone, I3DBackbone, VideoMAEBackbone, R3D18Backbone)
}
