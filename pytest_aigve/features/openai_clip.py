"""OpenAI CLIP image towers (ViT-B/32, ViT-L/14) read from OpenAI's own checkpoints, and the LAION aesthetic
predictor on top of ViT-L/14: the backbones of VBench's background_consistency and aesthetic_quality.

The network is our own implementation of the `clip` package's VisionTransformer (conv1 patch embedding without bias,
class and positional embeddings, ln_pre, residual attention blocks with QuickGELU MLPs, ln_post, proj), built
from the checkpoint's `visual.*` tensors with the architecture read off their shapes as clip.model.build_model
does; the text tower's keys are accepted and ignored. Its output equals `clip.model.build_model(sd).visual` (the
tests compare them).

Two file formats are read, neither by running code from the file:
  * a plain state dict (torch.save): torch.load(weights_only=True);
  * a TorchScript archive (the published ViT-B-32.pt / ViT-L-14.pt): torch.load refuses these with weights_only,
    and torch.jit.load compiles and runs the archive's TorchScript (a module's __setstate__ runs at load time), so
    the archive's data.pkl is read by a restricted unpickler of our own: it builds tensors from the archive's
    storages and keeps every module as a bare attribute dict; any global other than tensor rebuilding, storage
    types, OrderedDict and TorchScript class names is refused. The tensors are the module's attributes by name,
    i.e. the names of its state dict.

Input (VBench's clip_transform(224)): frames resized with the short side to 224 (bicubic, no antialias, on the
uint8 tensor, so rounded back to uint8 as torchvision does), centre-cropped to 224x224, /255, normalised with CLIP's
mean and std, no clamp. Output: the image embedding (before L2 normalisation), per frame.
"""

from __future__ import annotations

import math
import pickle
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import Backbone
from .weights import (
    REGISTRY,
    WeightsError,
    WeightsFile,
    _reason,
    fetch_command,
    is_ours,
    load_into,
    load_state_dict,
    mark_random,
)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
INPUT_SIZE = 224  # VBench's clip_transform(224)
HEAD_WIDTH = 64  # clip.model.build_model: heads = width // 64


# --- the network -------------------------------------------------------------------------------------------------


class LayerNormFP32(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the input dtype (as CLIP's own LayerNorm), returned in the input's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = None if self.weight is None else self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        return F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps).to(x.dtype)


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class SelfAttention(nn.Module):
    """Multi-head self-attention with nn.MultiheadAttention's parameter names (in_proj_weight, in_proj_bias,
    out_proj), on batch-first (N, L, D) inputs."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        qkv = qkv.view(batch, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # (N, heads, L, head dim)
        return self.out_proj(attended.transpose(1, 2).reshape(batch, length, width))


class MLP(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.c_fc = nn.Linear(width, 4 * width)
        self.gelu = QuickGELU()
        self.c_proj = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.gelu(self.c_fc(x)))


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = SelfAttention(width, heads)
        self.ln_1 = LayerNormFP32(width)
        self.mlp = MLP(width)
        self.ln_2 = LayerNormFP32(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.resblocks = nn.Sequential(*(ResidualAttentionBlock(width, heads) for _ in range(layers)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resblocks(x)


@dataclass(frozen=True)
class VisionConfig:
    width: int
    layers: int
    patch_size: int
    grid: int
    embed_dim: int

    @property
    def heads(self) -> int:
        return self.width // HEAD_WIDTH

    @property
    def resolution(self) -> int:
        return self.patch_size * self.grid


class VisionTower(nn.Module):
    """CLIP's image encoder; its state dict is the checkpoint's `visual.*` tensors without the prefix."""

    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        self.config = config
        width, scale = config.width, config.width ** -0.5
        self.conv1 = nn.Conv2d(3, width, kernel_size=config.patch_size, stride=config.patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(config.grid ** 2 + 1, width))
        self.ln_pre = LayerNormFP32(width)
        self.transformer = Transformer(width, config.layers, config.heads)
        self.ln_post = LayerNormFP32(width)
        self.proj = nn.Parameter(scale * torch.randn(width, config.embed_dim))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, R, R) normalised images -> (N, embed_dim) image embeddings."""
        patches = self.conv1(images.to(self.conv1.weight.dtype)).flatten(2).transpose(1, 2)  # (N, grid², width)
        cls = self.class_embedding.to(patches.dtype).expand(patches.shape[0], 1, -1)
        tokens = torch.cat([cls, patches], dim=1) + self.positional_embedding.to(patches.dtype)
        tokens = self.transformer(self.ln_pre(tokens))
        return self.ln_post(tokens[:, 0, :]) @ self.proj


VISUAL_PREFIX = "visual."


def vision_config(state: Mapping[str, Any], path: Path, entry: WeightsFile) -> VisionConfig:
    """The image tower's architecture, read off the checkpoint's tensor shapes (as clip.model.build_model does)."""
    try:
        conv = state["visual.conv1.weight"]
        layers = len([k for k in state if k.startswith("visual.") and k.endswith(".attn.in_proj_weight")])
        positions = state["visual.positional_embedding"].shape[0]
        config = VisionConfig(width=int(conv.shape[0]), layers=layers, patch_size=int(conv.shape[-1]),
                              grid=round((positions - 1) ** 0.5), embed_dim=int(state["visual.proj"].shape[1]))
    except (KeyError, IndexError, AttributeError, TypeError):
        resnet = any(k.startswith("visual.layer1.") for k in state)
        what = ("a CLIP ResNet checkpoint (visual.layer1...), not a ViT" if resnet else
                "not an OpenAI CLIP ViT checkpoint (no visual.conv1 / visual.positional_embedding / visual.proj)")
        raise WeightsError(f"weights {path} are {what}; is it the right file for {entry.key}? Fetch the published "
                           f"{entry.filename} with: {fetch_command([entry.key])}") from None
    if config.layers == 0 or config.width % HEAD_WIDTH or config.grid ** 2 + 1 != positions:
        raise WeightsError(f"weights {path} are not an OpenAI CLIP ViT checkpoint (width {config.width}, "
                           f"{config.layers} blocks, {positions} positions); is it the right file for {entry.key}? "
                           f"Fetch the published {entry.filename} with: {fetch_command([entry.key])}")
    return config


def build_vision_tower(state: Mapping[str, Any], path: Path, entry: WeightsFile) -> VisionTower:
    """The image tower with the checkpoint's `visual.*` tensors (strict: missing, extra or misshapen visual keys
    are a WeightsError); other keys (the text tower, logit_scale) are ignored."""
    config = vision_config(state, path, entry)
    tower = VisionTower(config)
    visual = {k[len(VISUAL_PREFIX):]: v.float() for k, v in state.items()
              if k.startswith(VISUAL_PREFIX) and isinstance(v, torch.Tensor)}
    load_into(tower, visual, path, entry)
    if config.resolution != INPUT_SIZE:
        raise WeightsError(f"weights {path} are a CLIP ViT for {config.resolution}x{config.resolution} inputs; "
                           f"{entry.key} takes the {INPUT_SIZE}px models (VBench's clip_transform({INPUT_SIZE})): "
                           f"fetch {entry.filename} with: {fetch_command([entry.key])}")
    return tower


# --- reading OpenAI's TorchScript archives without running them ---------------------------------------------------

_STORAGE_DTYPES: dict[str, torch.dtype] = {
    "HalfStorage": torch.float16, "FloatStorage": torch.float32, "DoubleStorage": torch.float64,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}


@dataclass(frozen=True)
class _StorageType:
    dtype: torch.dtype


class _ScriptObject:
    """A TorchScript module or object from an archive: its attributes only, never its code."""

    qualified_name: ClassVar[str] = ""

    def __setstate__(self, state: Any) -> None:
        self.attributes = state if isinstance(state, dict) else {}


def _rebuild_tensor(storage: torch.Tensor, offset: int, size: tuple[int, ...], stride: tuple[int, ...],
                    *unused: Any) -> torch.Tensor:
    return storage.as_strided(size, stride, offset)


def _first(value: Any, *unused: Any) -> Any:
    return value


class _ArchiveUnpickler(pickle.Unpickler):
    """Unpickles a TorchScript archive's data.pkl into _ScriptObjects and tensors; refuses every other global."""

    def __init__(self, archive: zipfile.ZipFile, prefix: str, data: bytes) -> None:
        import io

        super().__init__(io.BytesIO(data))
        self.archive, self.prefix = archive, prefix
        self.storages: dict[str, torch.Tensor] = {}
        self.classes: dict[str, type[_ScriptObject]] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module == "torch.jit._pickle" and name == "restore_type_tag":
            return _first
        if module == "torch.jit._pickle" and name.startswith("build_") and name.endswith("list"):
            return list
        if module == "__torch__" or module.startswith("__torch__."):
            qualified = f"{module}.{name}"
            if qualified not in self.classes:
                self.classes[qualified] = type(name, (_ScriptObject,), {"qualified_name": qualified})
            return self.classes[qualified]
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a weights archive")

    def persistent_load(self, pid: Any) -> torch.Tensor:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unexpected persistent id {str(pid)[:80]}")
        _, storage_type, key, _, numel = pid
        if key not in self.storages:
            raw = self.archive.read(f"{self.prefix}/data/{key}")
            itemsize = torch.empty((), dtype=storage_type.dtype).element_size()
            if len(raw) != numel * itemsize:
                raise pickle.UnpicklingError(f"storage {key} has {len(raw)} bytes, expected {numel * itemsize}")
            self.storages[key] = (torch.frombuffer(bytearray(raw), dtype=storage_type.dtype) if raw
                                  else torch.empty(0, dtype=storage_type.dtype))
        return self.storages[key]


def _collect(value: Any, name: str, found: dict[str, torch.Tensor], depth: int = 0) -> None:
    """Every tensor attribute under `value`, by dotted name (a module's state dict names)."""
    if isinstance(value, torch.Tensor):
        found[name] = value
    elif isinstance(value, _ScriptObject) and depth < 64:
        for key, item in getattr(value, "attributes", {}).items():
            if isinstance(key, str):
                _collect(item, f"{name}.{key}" if name else key, found, depth + 1)


def is_torchscript_archive(path: Path) -> bool:
    """A zip whose records include TorchScript's constants.pkl (torch.jit.save), not a torch.save state dict."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name == "constants.pkl" or name.endswith("/constants.pkl") for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def read_torchscript_tensors(path: Path, entry: WeightsFile) -> dict[str, torch.Tensor]:
    """The tensors of a TorchScript archive's module tree by attribute name, read without running its code."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [name for name in archive.namelist() if name.endswith("/data.pkl") and name.count("/") == 1]
            if len(names) != 1:
                raise pickle.UnpicklingError("no single <archive>/data.pkl record")
            prefix = names[0].split("/")[0]
            order = archive.read(f"{prefix}/byteorder").decode() if f"{prefix}/byteorder" in archive.namelist() \
                else "little"
            if order.strip() != "little":
                raise pickle.UnpicklingError(f"byte order {order.strip()!r} (only little-endian archives are read)")
            root = _ArchiveUnpickler(archive, prefix, archive.read(names[0])).load()
    except pickle.UnpicklingError as exc:
        if "is not allowed" in str(exc):
            raise WeightsError(f"cannot load weights {path} for {entry.key}: the archive holds Python objects beyond "
                               f"tensors and TorchScript modules ({exc}), and is refused for safety. Use the official "
                               f"file: {fetch_command([entry.key])}") from None
        raise _corrupt(path, entry, exc) from None
    except (OSError, zipfile.BadZipFile, KeyError, RuntimeError, EOFError, ValueError, TypeError,
            AttributeError, IndexError) as exc:
        raise _corrupt(path, entry, exc) from None
    found: dict[str, torch.Tensor] = {}
    _collect(root, "", found)
    return found


def _corrupt(path: Path, entry: WeightsFile, exc: BaseException) -> WeightsError:
    reason = _reason(exc)
    if is_ours(entry, path):
        return WeightsError(f"cannot load weights {path} for {entry.key} ({reason}); the file is truncated or "
                            f"corrupt: delete it and run: {fetch_command([entry.key])}")
    return WeightsError(f"cannot load weights {path} for {entry.key} ({reason}); the archive is truncated or corrupt: "
                        "check the `weights:` path in the suite, or copy the file again")


def read_openai_clip(path: Path, entry: WeightsFile) -> dict[str, Any]:
    """An OpenAI CLIP checkpoint's tensors by state-dict name: a TorchScript archive (the published files) or a
    plain state dict (torch.load weights_only=True)."""
    if is_torchscript_archive(path):
        return read_torchscript_tensors(path, entry)
    return load_state_dict(path, entry, nested_keys=("state_dict", "model"))


# --- preprocessing -----------------------------------------------------------------------------------------------


def clip_transform(frames: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """uint8 (T, 3, H, W) -> float32 (T, 3, size, size): VBench's clip_transform(size) on the frames its
    load_video returns for an .mp4, float32 0-255 (`torch.Tensor(uint8 array)`): the bicubic resize runs in float,
    neither rounded nor clamped (resizing uint8 would round and clamp: 3e-4 apart in the embeddings)."""
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode

    resized = TF.resize(frames.float(), size, interpolation=InterpolationMode.BICUBIC, antialias=False)
    cropped = TF.center_crop(resized, [size, size]) / 255.0
    mean = torch.tensor(CLIP_MEAN, device=frames.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=frames.device).view(1, 3, 1, 1)
    return (cropped - mean) / std


# --- backbones ---------------------------------------------------------------------------------------------------


class OpenAIClipBackbone(Backbone):
    """An OpenAI CLIP image tower over frames: the image embedding of each frame (before normalisation)."""

    per_frame = True
    precisions = ("fp32", "fp16")  # VBench runs CLIP in fp16 on CUDA (fp32 on the CPU)
    default_batch_size = 32  # VBench's aesthetic_quality batch
    input_description = (f"frames, short side bicubic (no antialias) to {INPUT_SIZE}, centre crop {INPUT_SIZE}, /255, "
                         "CLIP mean/std (VBench clip_transform)")

    @cached_property
    def model(self) -> nn.Module:
        state = read_openai_clip(self.weights_path, self.entry)
        return self.build(state).eval().requires_grad_(False).to(self.device)

    def build(self, state: dict[str, Any]) -> nn.Module:
        return build_vision_tower(state, self.weights_path, self.entry).to(self.dtype)

    def prepare(self, clip: torch.Tensor) -> torch.Tensor:
        return clip_transform(clip.permute(0, 3, 1, 2))

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model(batch.to(self.dtype))


class OpenAIClipB32Backbone(OpenAIClipBackbone):
    key = "openai_clip_b32"
    weights_file = REGISTRY["openai_clip_b32"]
    name = "openai-clip-vit-b-32"
    outputs: ClassVar[Mapping[str, int | None]] = {"embedding": None}  # 512 for ViT-B/32


class OpenAIClipL14Backbone(OpenAIClipBackbone):
    key = "openai_clip_l14"
    weights_file = REGISTRY["openai_clip_l14"]
    name = "openai-clip-vit-l-14"
    outputs: ClassVar[Mapping[str, int | None]] = {"embedding": None}  # 768 for ViT-L/14


class LaionAestheticBackbone(OpenAIClipL14Backbone):
    """VBench's aesthetic predictor per frame: LAION's linear head (aesthetic-predictor v1) on the L2-normalised
    OpenAI CLIP ViT-L/14 image embedding. Two files: the CLIP model (the metric's `weights`) and the head, a
    companion file found beside it first, else where any weights file is, verified the same way; the identity and
    the recorded digest cover both (Backbone.companion_files)."""

    key = "laion_aesthetic"
    head_file: ClassVar[WeightsFile] = REGISTRY["laion_aes_v1"]
    companion_files: ClassVar[tuple[WeightsFile, ...]] = (REGISTRY["laion_aes_v1"],)
    name = "laion-aesthetic-v1-on-openai-clip-vit-l-14"
    outputs: ClassVar[Mapping[str, int | None]] = {"score": 1}  # the head's raw output (about 1..10)
    HEAD_INPUT = 768

    @property
    def head_path(self) -> Path:
        return self.companion_path(self.head_file.key)

    @cached_property
    def head(self) -> nn.Linear:
        state = load_state_dict(self.head_path, self.head_file)
        head = nn.Linear(self.HEAD_INPUT, 1)
        load_into(head, state, self.head_path, self.head_file)
        return head.eval().requires_grad_(False).to(self.device)

    def build(self, state: dict[str, Any]) -> nn.Module:
        tower = super().build(state)
        embed_dim = tower.config.embed_dim  # type: ignore[union-attr]
        if embed_dim != self.HEAD_INPUT:
            raise WeightsError(f"weights {self.weights_path} give {embed_dim}-d image embeddings; the LAION "
                               f"aesthetic head takes ViT-L/14's {self.HEAD_INPUT}: fetch "
                               f"{self.entry.filename} with: {fetch_command([self.entry.key])}")
        return tower

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        # VBench: the embedding (fp16 on CUDA) cast to float32, L2-normalised, then the float32 head
        embedding = F.normalize(super().forward(batch).float(), dim=-1, p=2)
        return self.head(embedding)


# --- random test weights in OpenAI's format ---------------------------------------------------------------------


def _random_state(generator: torch.Generator, config: VisionConfig, text_width: int, text_layers: int,
                  vocab: int, context: int) -> OrderedDict[str, torch.Tensor]:
    """An OpenAI CLIP state dict (every key build_model reads) with small random tensors. The patch embedding is
    strong relative to the class and position embeddings, so that embeddings differ between frames."""
    tower = VisionTower(config)  # initialised from the global generator, seeded by the writer
    with torch.no_grad():
        tower.conv1.weight.normal_(0.0, 0.5 / math.sqrt(3 * config.patch_size ** 2), generator=generator)
        tower.class_embedding.mul_(0.1)
        tower.positional_embedding.mul_(0.1)
    state: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in tower.state_dict().items():
        state[VISUAL_PREFIX + key] = value.clone()
    scale = text_width ** -0.5
    text = Transformer(text_width, text_layers, max(1, text_width // HEAD_WIDTH))
    state["positional_embedding"] = 0.01 * torch.randn(context, text_width, generator=generator)
    state["text_projection"] = scale * torch.randn(text_width, config.embed_dim, generator=generator)
    state["logit_scale"] = torch.tensor(math.log(1 / 0.07))
    state["token_embedding.weight"] = 0.02 * torch.randn(vocab, text_width, generator=generator)
    for key, value in text.state_dict().items():
        state[f"transformer.{key}"] = value.clone()
    state["ln_final.weight"] = torch.ones(text_width)
    state["ln_final.bias"] = torch.zeros(text_width)
    # OpenAI's files hold half-precision tensors (clip.model.build_model also rounds every weight to fp16)
    return OrderedDict((key, value.half()) for key, value in state.items())


def write_random_clip(folder: Path, key: str, seed: int = 0, width: int = 64, layers: int = 2) -> Path:
    """Random test weights for an OpenAI CLIP entry: a plain state dict (the format clip.load also reads) with
    the official key names, of a small ViT with the published patch size and embedding width."""
    patch, embed_dim = {"openai_clip_b32": (32, 512), "openai_clip_l14": (14, 768)}[key]
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    config = VisionConfig(width=width, layers=layers, patch_size=patch, grid=INPUT_SIZE // patch,
                          embed_dim=embed_dim)
    state = _random_state(generator, config, text_width=64, text_layers=1, vocab=128, context=77)
    path = folder / REGISTRY[key].filename
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(mark_random(state, seed), path)
    return path


def write_random_laion_head(folder: Path, seed: int = 0) -> Path:
    """Random test weights for the LAION aesthetic head: a Linear(768, 1) state dict (weight, bias) giving scores
    around 5, spread by the embedding."""
    generator = torch.Generator().manual_seed(seed)
    state = OrderedDict(weight=torch.randn(1, LaionAestheticBackbone.HEAD_INPUT, generator=generator) * 2.0,
                        bias=torch.tensor([5.0]))
    path = folder / REGISTRY["laion_aes_v1"].filename
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(mark_random(state, seed), path)
    return path


RANDOM_WRITERS: dict[str, Callable[[Path, int], Path]] = {
    "openai_clip_b32": lambda folder, seed: write_random_clip(folder, "openai_clip_b32", seed),
    "openai_clip_l14": lambda folder, seed: write_random_clip(folder, "openai_clip_l14", seed),
    "laion_aes_v1": write_random_laion_head,
}
