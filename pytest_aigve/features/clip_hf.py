"""CLIP image and text embeddings from Hugging Face folders (`transformers.CLIPModel` + `CLIPProcessor`, offline).

Image backbones embed every frame of the protocol's clip (`get_image_features`, the projected embedding, raw:
metrics normalise); text encoders embed prompts (`get_text_features`) and carry the model's learned
`logit_scale.exp()` as an output of its own, so a warm run needs no model to scale cosines. An image backbone
and the text encoder over one folder share one model load (pretrained.shared_model).

Two image input modes, the image backbone's `resize` option (BackboneRequest.options) and so part of its
feature-cache identity: frames of one mode are never served for the other.

  processor  the folder's CLIPProcessor on the decoded frame: resize the shorter side to 224 (PIL bicubic),
             centre crop 224, rescale and normalise (what torchmetrics' CLIPScore and the PickScore README do)
  aigve      the AIGVE toolkit's CLIPSim/CLIPTemp input: each frame first stretched to 224x224 (cv2.resize
             INTER_LINEAR: half-pixel bilinear without antialiasing, rounded to uint8), then the processor

PickScore_v1 is a CLIPModel read with the processor of laion/CLIP-ViT-H-14-laion2B-s32B-b79K (the official
README's pairing): that folder is looked for beside the model folder (the same weights folder), then in the torch
hub cache, and its digest is part of the backbone identity.
"""

from __future__ import annotations

import gzip
import json
import threading
import zlib
from collections.abc import Mapping
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MetricError
from ..metrics.contract import BackboneInfo
from .backbones import TextEncoder
from .pretrained import PretrainedBackbone, from_pretrained, require_transformers, shared_model
from .weights import (
    FOLDER_REGISTRY,
    RANDOM_FOLDER_MARKER,
    WeightsError,
    WeightsFolder,
    is_random_test_weights,
    locate,
    verify,
)

AIGVE_SIZE = 224  # the AIGVE toolkit's cv2.resize(frame, (224, 224))
RESIZE_MODES = ("processor", "aigve")  # the image backbones' `resize` option
_MODEL_KIND = "CLIPModel"  # one model per folder for its image backbones and its text encoder
_PROCESSORS: dict[str, Any] = {}
_PROCESSORS_LOCK = threading.Lock()


def load_processor(folder: Path, entry: WeightsFolder) -> Any:
    """The folder's CLIPProcessor as `CLIPProcessor.from_pretrained` makes it by default (torchmetrics, the
    PickScore README, AIGVE): the fast tokenizer and the slow image processor (PIL bicubic), named explicitly so
    that a transformers release changing the default cannot change the inputs; one per folder and process."""
    key = str(folder.resolve())
    with _PROCESSORS_LOCK:
        if key not in _PROCESSORS:
            transformers = require_transformers(entry.key)
            image_processor = from_pretrained(transformers.CLIPImageProcessor, folder, entry)
            tokenizer = from_pretrained(transformers.CLIPTokenizerFast, folder, entry)
            _PROCESSORS[key] = transformers.CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)
        return _PROCESSORS[key]


def stretch_frames(clip: torch.Tensor, size: int = AIGVE_SIZE) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, size, size, 3) uint8, stretched (aspect ratio not kept) as cv2.resize does with
    INTER_LINEAR: half-pixel centres, no antialiasing, rounded to the nearest integer."""
    frames = clip.permute(0, 3, 1, 2).to(torch.float32)
    resized = F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    return resized.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def weights_root(folder: Path, entry: WeightsFolder) -> Path:
    """The weights directory a folder found by lookup lives in (`<root>/<entry folder name>`); for a folder given
    by path, its parent."""
    for name in entry.names:
        parts = tuple(name.split("/"))
        if folder.parts[-len(parts):] == parts:
            return folder.parents[len(parts) - 1]
    return folder.parent


class _CLIPFolderBackbone(PretrainedBackbone):
    """The model of a CLIP folder; the processor is the same folder's unless `processor_entry` names another."""

    processor_entry: ClassVar[WeightsFolder | None] = None
    precisions = ("fp32", "bf16")
    default_batch_size = 32

    @cached_property
    def model(self) -> nn.Module:
        return shared_model(self.weights_path, self.weights_sha256, self.device, self.dtype, _MODEL_KIND,
                            lambda: self.build_pretrained(self.weights_path))

    def build_pretrained(self, folder: Path) -> nn.Module:
        transformers = require_transformers(self.name)
        model = from_pretrained(transformers.CLIPModel, folder, self.weights_file)
        if not isinstance(model, nn.Module):
            raise WeightsError(f"weights folder {folder} did not load as a CLIPModel")
        return model

    @cached_property
    def processor_folder(self) -> tuple[Path, str, str]:
        """(folder, sha256, check status) of the processor: this folder, or the processor entry's folder looked for
        beside it and in the torch hub cache."""
        entry = self.processor_entry
        if entry is None:
            return self.weights_path, self.weights_sha256, self.weights_status
        root = weights_root(self.weights_path, self.weights_file)
        try:
            folder = locate(entry, None, root, f"the weights folder of {self.weights_file.folder}")
        except WeightsError as exc:
            raise WeightsError(f"{self.name} reads its prompts and frames with the processor of {entry.folder}, "
                               f"which was not found: {exc}") from None
        check = verify(entry, folder)
        return folder, check.sha256, check.status

    @property
    def identity(self) -> str:
        own = super().identity  # name, settings, weights digest / precision
        if self.processor_entry is None:
            return own
        # another folder's processor: its files can change the inputs
        head, precision = own.rsplit("/", 1)
        return f"{head}+{self.processor_folder[1][:16]}/{precision}"

    def info(self, output: str | None = None) -> BackboneInfo:
        found = super().info(output)
        if self.processor_entry is None:
            return found
        folder, _, status = self.processor_folder
        if status == found.weights_check:
            return found
        return replace(found, weights_check=f"{found.weights_check}; processor {folder.name}: {status}")

    @property
    def processor(self) -> Any:
        folder, _, _ = self.processor_folder
        return load_processor(folder, self.processor_entry or self.weights_file)


class CLIPImageBackbone(_CLIPFolderBackbone):
    """Per-frame CLIP image embeddings (`get_image_features`), raw; the `resize` option selects the input mode
    (processor, or aigve: frames stretched to 224x224 first)."""

    per_frame = True
    outputs: ClassVar[Mapping[str, int | None]] = {"image_embeds": None}
    option_defaults: ClassVar[Mapping[str, Any]] = {"resize": "processor"}
    option_choices: ClassVar[Mapping[str, tuple[Any, ...]]] = {"resize": RESIZE_MODES}
    processor_description: ClassVar[str] = "the folder's CLIPProcessor"  # the processor the frames go through

    @property
    def stretch(self) -> bool:
        """Whether frames are stretched to 224x224 before the processor (resize: aigve)."""
        return bool(self.settings["resize"] == "aigve")

    @property  # per instance: it depends on the `resize` setting (a class attribute elsewhere)
    def input_description(self) -> str:  # type: ignore[override]
        processor = f"{self.processor_description} (shorter side 224 bicubic, centre crop 224, normalise)"
        if not self.stretch:
            return f"frames, {processor}"
        return f"frames stretched to 224x224 (bilinear, AIGVE toolkit's cv2.resize), then {processor}"

    def prepare(self, clip: torch.Tensor) -> torch.Tensor:
        if self.stretch:
            clip = stretch_frames(clip)
        frames = list(clip.cpu().numpy())  # (H, W, 3) uint8 each: what the processor reads as an image
        pixels = self.processor(images=frames, return_tensors="pt")["pixel_values"]
        return pixels.to(self.device)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        model: Any = self.model
        return model.get_image_features(pixel_values=batch.to(self.dtype))


class CLIPTextBackbone(_CLIPFolderBackbone, TextEncoder):
    """Prompt embeddings (`get_text_features`, raw) after the model's logit scale (exp of the learned
    `logit_scale`): outputs `logit_scale` (1 column) and `text_embeds`."""

    outputs: ClassVar[Mapping[str, int | None]] = {"logit_scale": 1, "text_embeds": None}
    input_description = "prompts, the folder's CLIP tokenizer (padding, truncation to 77 tokens)"
    MAX_TOKENS = 77

    def encode(self, prompts: list[str]) -> torch.Tensor:
        model: Any = self.model
        tokens = self.processor.tokenizer(prompts, padding=True, truncation=True, max_length=self.MAX_TOKENS,
                                          return_tensors="pt")
        embeds = model.get_text_features(input_ids=tokens["input_ids"].to(self.device),
                                         attention_mask=tokens["attention_mask"].to(self.device)).float()
        scale = model.logit_scale.float().exp().reshape(1, 1).expand(embeds.shape[0], 1)
        return torch.cat([scale, embeds], dim=1)


class CLIPViTB32(CLIPImageBackbone):
    key = "clip_vit_b32"
    weights_file = FOLDER_REGISTRY["clip_vit_b32"]
    name = "clip-vit-b32"


class CLIPViTB32Text(CLIPTextBackbone):
    key = "clip_vit_b32_text"
    weights_file = FOLDER_REGISTRY["clip_vit_b32"]
    name = "clip-vit-b32-text"


class CLIPViTL14(CLIPImageBackbone):
    key = "clip_vit_l14"
    weights_file = FOLDER_REGISTRY["clip_vit_l14"]
    name = "clip-vit-l14"


class CLIPViTL14Text(CLIPTextBackbone):
    key = "clip_vit_l14_text"
    weights_file = FOLDER_REGISTRY["clip_vit_l14"]
    name = "clip-vit-l14-text"


class PickScoreImage(CLIPImageBackbone):
    key = "pickscore"
    weights_file = FOLDER_REGISTRY["pickscore_v1"]
    processor_entry = FOLDER_REGISTRY["pickscore_processor"]
    name = "pickscore-v1"
    processor_description = "the CLIP-ViT-H-14 (laion) CLIPProcessor"


class PickScoreText(CLIPTextBackbone):
    key = "pickscore_text"
    weights_file = FOLDER_REGISTRY["pickscore_v1"]
    processor_entry = FOLDER_REGISTRY["pickscore_processor"]
    name = "pickscore-v1-text"
    input_description = "prompts, the CLIP-ViT-H-14 (laion) tokenizer (padding, truncation to 77 tokens)"


# the registered CLIP folders a metric's `model` parameter may name -> (image key, text key)
CLIP_MODELS: dict[str, tuple[str, str]] = {
    FOLDER_REGISTRY["clip_vit_b32"].folder: ("clip_vit_b32", "clip_vit_b32_text"),
    FOLDER_REGISTRY["clip_vit_l14"].folder: ("clip_vit_l14", "clip_vit_l14_text"),
}
PICKSCORE_KEYS = ("pickscore", "pickscore_text")


# --- random test weights in the official format ------------------------------------------------------------------

BPE_MERGES = 49152 - 256 - 2  # CLIP's vocabulary: 256 bytes, 256 bytes + '</w>', these merges, 2 special tokens


def _bpe_source() -> Path:
    """CLIP's BPE merges file, as the `clip` or `open_clip` package ships it."""
    import importlib.util

    for package in ("open_clip", "clip"):
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.origin:
            candidate = Path(spec.origin).parent / "bpe_simple_vocab_16e6.txt.gz"
            if candidate.is_file():
                return candidate
    raise MetricError("random CLIP test weights need CLIP's BPE merges (bpe_simple_vocab_16e6.txt.gz), shipped "
                      "with open_clip_torch or openai-clip; install one of them: pip install open_clip_torch")


def write_clip_tokenizer_files(folder: Path) -> tuple[Path, Path]:
    """CLIP's vocab.json and merges.txt (Hugging Face CLIPTokenizer format), built from the BPE merges file."""
    from transformers.models.clip.tokenization_clip import bytes_to_unicode

    with gzip.open(_bpe_source(), "rt", encoding="utf-8") as stream:
        lines = stream.read().split("\n")
    merges = [tuple(line.split()) for line in lines[1: BPE_MERGES + 1]]
    symbols = list(bytes_to_unicode().values())
    tokens = [*symbols, *(symbol + "</w>" for symbol in symbols), *("".join(merge) for merge in merges),
              "<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges_file = folder / "vocab.json", folder / "merges.txt"
    vocab.write_text(json.dumps({token: index for index, token in enumerate(tokens)}, ensure_ascii=False),
                     encoding="utf-8")
    merges_file.write_text("#version: 0.2\n" + "\n".join(" ".join(merge) for merge in merges) + "\n",
                           encoding="utf-8")
    return vocab, merges_file


def _write_processor(folder: Path) -> None:
    transformers = require_transformers("random CLIP test weights")
    vocab, merges = write_clip_tokenizer_files(folder)
    tokenizer = transformers.CLIPTokenizerFast(vocab_file=str(vocab), merges_file=str(merges))
    image_processor = transformers.CLIPImageProcessor(size={"shortest_edge": 224},
                                                      crop_size={"height": 224, "width": 224})
    transformers.CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(str(folder))


def _write_model(folder: Path, seed: int, safetensors: bool) -> None:
    """A tiny CLIPModel (width 32, 2 layers per tower, patch 32 on 224x224 images, CLIP's 49408-token vocabulary)
    with random weights, saved as the official folders are."""
    transformers = require_transformers("random CLIP test weights")
    torch.manual_seed(seed)
    config = transformers.CLIPConfig(
        text_config={"vocab_size": 49408, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "max_position_embeddings": 77, "bos_token_id": 49406,
                     "eos_token_id": 49407, "pad_token_id": 49407},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": 224, "patch_size": 32},
        projection_dim=16)
    model = transformers.CLIPModel(config).eval()
    model.save_pretrained(str(folder), safe_serialization=safetensors)


def _mark(folder: Path, seed: int) -> Path:
    (folder / RANDOM_FOLDER_MARKER).write_text(
        json.dumps({"written_by": "pytest-aigve weights random", "seed": seed}) + "\n", encoding="utf-8")
    return folder


def write_random_folder(key: str, root: Path, seed: int = 0) -> Path:
    """Random test weights for the weights folder `key` under `root` (`<root>/<its folder name>`), in the
    official format (save_pretrained of a tiny CLIPModel and a CLIPProcessor with CLIP's real tokenizer), marked
    random. Never over a folder that is not random test weights."""
    entry = FOLDER_REGISTRY[key]
    folder = root / entry.folder
    if folder.exists() and not is_random_test_weights(folder):
        raise WeightsError(f"{folder} exists and is not random test weights; it is left alone: choose another --dir")
    folder.mkdir(parents=True, exist_ok=True)
    names = {file.name for file in entry.files}
    if "config.json" in names:  # each folder its own weights (a test mixing up two folders would see it)
        _write_model(folder, seed * 1000 + zlib.crc32(key.encode()) % 1000, "pytorch_model.bin" not in names)
    if "preprocessor_config.json" in names:
        _write_processor(folder)
    missing = sorted(name for name in names if not (folder / name).is_file())
    if missing:
        raise AssertionError(f"random {key} folder lacks {', '.join(missing)}: the writer and the registry disagree")
    return _mark(folder, seed)
