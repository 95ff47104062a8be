"""MUSIQ, the multi-scale image quality transformer (Ke et al., ICCV 2021), and the per-frame backbone VBench's
imaging quality reads: the SPAQ-trained checkpoint as pyiqa 0.1.16 runs it (`pyiqa.archs.musiq_arch.MUSIQ`, the
class VBench builds with `MUSIQ(pretrained_model_path=...)`), our own implementation of the published architecture
(Apache-2.0, google-research/musiq), loading pyiqa's checkpoint under its key names.

The network (what pyiqa's port computes, in eval mode, for one score per image):
  input        an RGB image in [0, 1], mapped to [-1, 1];
  scales       the image resized (bicubic, no antialias, aspect kept, sides rounded) to a longer side of 224 and
               of 384, and the image itself at its native size; scale ids 0, 1, 2 in that order;
  patches      32x32, stride 32, after TF "SAME" zero padding (the extra row/column at the bottom/right); each
               scale's patches carry a hash-based spatial position (the patch grid mapped onto a 10x10 grid by
               nearest-neighbour interpolation of the grid indices) and their scale id. pyiqa pads the 224 and 384
               scales to 7x7 and 12x12 patches with masked (ignored) tokens; we leave those tokens out, which is the
               same computation: a masked key gets weight exp(-1000 - max) = 0 in float32;
  stem         per patch: a weight-standardised 7x7/2 conv to 64 channels (TF SAME padding), GroupNorm(32),
               ReLU, 3x3/2 max pooling (SAME, zero padded), one bottleneck block (width 64, output 256, with a
               projection), giving 8x8x256 per patch, flattened channels-last and embedded to 384;
  encoder      tokens plus position and scale embeddings, a class token in front, 14 pre-norm blocks (6 heads,
               MLP 1152, GELU), a final LayerNorm; the head maps the class token to the score (SPAQ: about 0-100).

The backbone preprocesses every frame as VBench's `imaging_quality.transform` does (vbench 0.1.5), then /255:
  longer               (VBench's default) the longer side to 512 when it is longer, bilinear without antialias,
                       on float 0-255 frames, sizes int(512 / side * h), int(512 / side * w);
  shorter              the same on the shorter side;
  shorter_centercrop   shorter, then a 512x512 centre crop of the resized frames (frames not resized are kept);
  none                 the native frames.
The mode is the backbone's `preprocess` option (BackboneRequest.options), part of its identity and so of the feature
cache key: scores of one mode are never served for another.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MetricError
from .backbones import Backbone
from .weights import REGISTRY, load_into, mark_random

PATCH = 32
HIDDEN = 384
MLP_DIM = 1152
HEADS = 6
LAYERS = 14
HASH_GRID = 10  # hash-based spatial positions: every patch grid is mapped onto 10x10
LONGER_SIDES = (224, 384)  # the resized scales, sorted (their order is their scale id); the native scale comes last
STEM_WIDTH = 64
BLOCK_WIDTH = 4 * STEM_WIDTH
PATCH_TOKENS_SIDE = PATCH // 4  # the stem halves a patch twice: 8x8 positions of BLOCK_WIDTH channels


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME" padding of one axis: (before, after), the odd pixel after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_same(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    top, bottom = same_padding(x.shape[-2], kernel, stride)
    left, right = same_padding(x.shape[-1], kernel, stride)
    return F.pad(x, (left, right, top, bottom))


class StandardizedConv2d(nn.Conv2d):
    """Conv2d with weight standardisation (per output channel: zero mean, unit unbiased std, +1e-5) and TF "SAME"
    zero padding, as the BiT-style ResNet stem of MUSIQ."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight - self.weight.mean(dim=(1, 2, 3), keepdim=True)
        weight = weight / (weight.std(dim=(1, 2, 3), keepdim=True) + 1e-5)
        return F.conv2d(pad_same(x, self.kernel_size[0], self.stride[0]), weight, None, self.stride)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 standardised convs with GroupNorm(32, eps 1e-4), and a projected shortcut."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        width = in_channels
        self.conv1 = StandardizedConv2d(in_channels, width, 1)
        self.gn1 = nn.GroupNorm(32, width, eps=1e-4)
        self.conv2 = StandardizedConv2d(width, width, 3)
        self.gn2 = nn.GroupNorm(32, width, eps=1e-4)
        self.conv3 = StandardizedConv2d(width, out_channels, 1)
        self.gn3 = nn.GroupNorm(32, out_channels, eps=1e-4)
        self.conv_proj = StandardizedConv2d(in_channels, out_channels, 1)  # MUSIQ's one block always projects
        self.gn_proj = nn.GroupNorm(32, out_channels, eps=1e-4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.gn_proj(self.conv_proj(x))
        y = F.relu(self.gn1(self.conv1(x)))
        y = F.relu(self.gn2(self.conv2(y)))
        return F.relu(self.gn3(self.conv3(y)) + shortcut)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(batch, tokens, self.heads, dim // self.heads).transpose(1, 2)

        attended = F.scaled_dot_product_attention(split(self.query(x)), split(self.key(x)), split(self.value(x)))
        return self.out(attended.transpose(1, 2).reshape(batch, tokens, dim))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class EncoderBlock(nn.Module):
    """Pre-norm transformer block (LayerNorm eps 1e-6)."""

    def __init__(self, dim: int, mlp_dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attention = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = FeedForward(dim, mlp_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class HashPositionEmbedding(nn.Module):
    def __init__(self, grid: int, dim: int) -> None:
        super().__init__()
        self.position_emb = nn.Parameter(torch.zeros(1, grid * grid, dim))


class ScaleEmbedding(nn.Module):
    def __init__(self, scales: int, dim: int) -> None:
        super().__init__()
        self.scale_emb = nn.Parameter(torch.zeros(scales, dim))


class Encoder(nn.Module):
    def __init__(self, dim: int = HIDDEN, mlp_dim: int = MLP_DIM, heads: int = HEADS, layers: int = LAYERS,
                 scales: int = len(LONGER_SIDES) + 1, grid: int = HASH_GRID) -> None:
        super().__init__()
        self.posembed_input = HashPositionEmbedding(grid, dim)
        self.scaleembed_input = ScaleEmbedding(scales, dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.encoder_norm = nn.LayerNorm(dim, eps=1e-6)
        self.transformer = nn.ModuleDict({f"encoderblock_{i}": EncoderBlock(dim, mlp_dim, heads)
                                          for i in range(layers)})

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
        """(N, S, dim) tokens, (S,) hashed positions and scale ids -> (N, dim): the class token's output."""
        x = tokens + self.posembed_input.position_emb[0, positions] + self.scaleembed_input.scale_emb[scales]
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1)
        for block in self.transformer.values():
            x = block(x)
        return self.encoder_norm(x[:, 0])


def hashed_positions(rows: int, columns: int, grid: int = HASH_GRID) -> torch.Tensor:
    """The hash grid index of each patch of a rows x columns patch grid, row-major: each axis's grid indices
    stretched to its patch count by nearest-neighbour interpolation (torch's, as pyiqa: its float rounding decides
    which patches share an index)."""

    def stretched(count: int) -> torch.Tensor:
        indices = torch.arange(grid, dtype=torch.float32).reshape(1, 1, grid)
        return F.interpolate(indices, size=count, mode="nearest").reshape(count).long()

    return (stretched(rows)[:, None] * grid + stretched(columns)[None, :]).reshape(-1)


def patches(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N, rows * columns, 3, PATCH, PATCH), row-major, after SAME zero padding."""
    padded = pad_same(images, PATCH, PATCH)
    count, channels, height, width = padded.shape
    rows, columns = height // PATCH, width // PATCH
    grid = padded.reshape(count, channels, rows, PATCH, columns, PATCH)
    return grid.permute(0, 2, 4, 1, 3, 5).reshape(count, rows * columns, channels, PATCH, PATCH)


def resized_size(height: int, width: int, longer_side: int) -> tuple[int, int]:
    """The aspect-preserving size with the given longer side (Python's round, as pyiqa)."""
    ratio = longer_side / max(height, width)
    return round(height * ratio), round(width * ratio)


def multiscale_tokens(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(N, 3, H, W) in [-1, 1] -> the patches of every scale (N, S, 3, PATCH, PATCH), their hashed positions (S,)
    and scale ids (S,); every image of the batch has the same size, so positions and scales are shared."""
    height, width = images.shape[-2:]
    scaled = [F.interpolate(images, size=resized_size(height, width, side), mode="bicubic", align_corners=False)
              for side in sorted(LONGER_SIDES)]
    all_patches, positions, scale_ids = [], [], []
    for scale_id, image in enumerate([*scaled, images]):
        rows, columns = math.ceil(image.shape[-2] / PATCH), math.ceil(image.shape[-1] / PATCH)
        all_patches.append(patches(image))
        positions.append(hashed_positions(rows, columns))
        scale_ids.append(torch.full((rows * columns,), scale_id, dtype=torch.long))
    device = images.device
    return torch.cat(all_patches, dim=1), torch.cat(positions).to(device), torch.cat(scale_ids).to(device)


class MUSIQ(nn.Module):
    """MUSIQ with pyiqa's state-dict layout (num_class 1: a single score, as the SPAQ and KonIQ checkpoints)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_root = StandardizedConv2d(3, STEM_WIDTH, 7, 2)
        self.gn_root = nn.GroupNorm(32, STEM_WIDTH, eps=1e-6)
        self.block1 = Bottleneck(STEM_WIDTH, BLOCK_WIDTH)
        self.embedding = nn.Linear(BLOCK_WIDTH * PATCH_TOKENS_SIDE ** 2, HIDDEN)
        self.transformer_encoder = Encoder()
        self.head = nn.Linear(HIDDEN, 1)

    def embed_patches(self, patch_batch: torch.Tensor) -> torch.Tensor:
        """(P, 3, PATCH, PATCH) -> (P, HIDDEN)."""
        x = F.relu(self.gn_root(self.conv_root(patch_batch)))
        x = F.max_pool2d(pad_same(x, 3, 2), 3, 2)  # zero padding after the ReLU, as pyiqa
        x = self.block1(x)
        return self.embedding(x.permute(0, 2, 3, 1).reshape(x.shape[0], -1))  # channels last (the TF order)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) RGB in [0, 1], one size -> (N,) quality scores."""
        tokens, positions, scales = multiscale_tokens((images - 0.5) * 2)
        count, sequence = tokens.shape[:2]
        embedded = self.embed_patches(tokens.reshape(count * sequence, 3, PATCH, PATCH))
        encoded = self.transformer_encoder(embedded.reshape(count, sequence, HIDDEN), positions, scales)
        return self.head(encoded)[:, 0]


# --- VBench's frame preprocessing (vbench/imaging_quality.py `transform`) ---------------------------------------

PREPROCESS_MODES = ("longer", "shorter", "shorter_centercrop", "none")
VBENCH_SIDE = 512
_SCALES = "MUSIQ scales 224, 384 and native"
PREPROCESS_INPUTS: dict[str, str] = {  # the backbone's input description per mode
    "longer": f"every frame, longer side to 512 if longer (bilinear, no antialias), /255; {_SCALES} (VBench "
              "imaging_quality, pyiqa MUSIQ)",
    "shorter": f"every frame, shorter side to 512 if longer (bilinear, no antialias), /255; {_SCALES} (VBench "
               "imaging_quality 'shorter', pyiqa MUSIQ)",
    "shorter_centercrop": "every frame, shorter side to 512 and a 512x512 centre crop if longer (bilinear, no "
                          f"antialias), /255; {_SCALES} (VBench 'shorter_centercrop')",
    "none": f"every frame at its native size, /255; {_SCALES} (VBench 'None')",
}


def vbench_frames(frames: torch.Tensor, mode: str) -> torch.Tensor:
    """(T, 3, H, W) float 0-255 -> what VBench feeds MUSIQ: resized per `mode` (see the module docstring), / 255."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    height, width = frames.shape[-2:]
    if mode not in PREPROCESS_MODES:
        raise MetricError(f"imaging quality preprocess {mode!r} is unknown; use one of {', '.join(PREPROCESS_MODES)}")
    side = max(height, width) if mode == "longer" else min(height, width)
    if mode != "none" and side > VBENCH_SIDE:
        scale = VBENCH_SIDE / side
        frames = TF.resize(frames, [int(scale * height), int(scale * width)], InterpolationMode.BILINEAR,
                           antialias=False)
        if mode == "shorter_centercrop":
            frames = TF.center_crop(frames, [VBENCH_SIDE, VBENCH_SIDE])
    return frames / 255.0


# --- the backbone ------------------------------------------------------------------------------------------------


class MusiqSpaqBackbone(Backbone):
    """Each frame's MUSIQ (SPAQ) score, one column, after VBench's preprocessing (the `preprocess` option: one of
    PREPROCESS_MODES, default longer). Frames are batched where their sizes agree (several videos' frames share a
    batch)."""

    key = "musiq_spaq"
    weights_file = REGISTRY["musiq_spaq"]
    name = "musiq-spaq"
    per_frame = True
    option_defaults: ClassVar[Mapping[str, Any]] = {"preprocess": "longer"}
    option_choices: ClassVar[Mapping[str, tuple[Any, ...]]] = {"preprocess": PREPROCESS_MODES}
    outputs: ClassVar[Mapping[str, int | None]] = {"score": 1}
    precisions = ("fp32",)  # pyiqa's numerics
    default_batch_size = 8  # frames per forward pass; a 512x288 frame is 256 patches through the stem

    @property
    def preprocess(self) -> str:
        return str(self.settings["preprocess"])

    @property  # per instance: it depends on the `preprocess` setting (a class attribute elsewhere)
    def input_description(self) -> str:  # type: ignore[override]
        return PREPROCESS_INPUTS[self.preprocess]

    def build(self, state: dict[str, Any]) -> nn.Module:
        # pyiqa's loader strips a DataParallel "module." prefix; a file saved that way loads here too
        if state and all(key.startswith("module.") for key in state):
            state = {key[len("module."):]: value for key, value in state.items()}
        model = MUSIQ()
        load_into(model, state, self.weights_path, self.entry)
        return model

    def prepare(self, clip: torch.Tensor) -> torch.Tensor:
        return vbench_frames(clip.permute(0, 3, 1, 2).to(torch.float32), self.preprocess)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model(batch).reshape(-1, 1)

    def _prepared_chunks(self, clips: list[torch.Tensor], size: int) -> Iterator[tuple[int, torch.Tensor]]:
        """(clip index, up to `size` preprocessed frames): frames are converted to float a chunk at a time."""
        for index, clip in enumerate(clips):
            for start in range(0, clip.shape[0], size):
                yield index, self.prepare(clip[start: start + size])

    def extract(self, clips: list[torch.Tensor], batch_size: int | None = None) -> list[np.ndarray]:
        """Scores per clip, (frames, 1) float64 on the CPU; batches of `batch_size` frames of one size."""
        batch_size = batch_size or self.batch_size
        scores: list[list[torch.Tensor]] = [[] for _ in clips]
        pending: list[tuple[int, torch.Tensor]] = []

        def flush() -> None:
            if not pending:
                return
            out = self.forward(torch.cat([frames for _, frames in pending])).to("cpu", torch.float64)
            offset = 0
            for index, frames in pending:
                scores[index].append(out[offset: offset + frames.shape[0]])
                offset += frames.shape[0]
            pending.clear()

        with torch.inference_mode():
            for index, frames in self._prepared_chunks(clips, batch_size):
                while frames.shape[0]:
                    if pending and pending[0][1].shape[1:] != frames.shape[1:]:
                        flush()
                    room = batch_size - sum(part.shape[0] for _, part in pending)
                    pending.append((index, frames[:room]))
                    frames = frames[room:]
                    if room <= pending[-1][1].shape[0]:
                        flush()
            flush()
        results = [torch.cat(parts).numpy() if parts else np.zeros((0, 1)) for parts in scores]
        if not all(np.isfinite(result).all() for result in results):
            raise MetricError(f"{self.name} produced NaN or inf scores; check the weights file")
        return results


# --- random test weights -----------------------------------------------------------------------------------------

PARAMETERS = 27_125_825  # pyiqa's MUSIQ (num_class 1): 248 tensors
TENSORS = 248


def write_musiq_spaq(folder: Path, seed: int = 0) -> Path:
    """Random weights in the official format: a flat state dict under pyiqa's key names, every tensor full size.
    Embeddings are drawn as pyiqa initialises them (normal, std 0.02); the head is scaled so scores spread over
    tens (as SPAQ's 0-100) and differ between frames. There is no BatchNorm (GroupNorm and LayerNorm normalise
    per sample), so nothing needs recalibrating."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = MUSIQ()  # torch's default initialisation of the convs and linears
    with torch.no_grad():
        encoder = model.transformer_encoder
        for parameter in (encoder.posembed_input.position_emb, encoder.scaleembed_input.scale_emb):
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.02)
        model.head.weight.mul_(20.0)
        model.head.bias.fill_(50.0)
    state = model.state_dict()
    assert len(state) == TENSORS and sum(t.numel() for t in state.values()) == PARAMETERS
    path = folder / REGISTRY["musiq_spaq"].filename
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(mark_random(state, seed), path)
    return path
