"""BLIP image-text contrastive (ITC) embeddings of frames and prompts, from a `Salesforce/blip-itm-base-coco` style
folder loaded offline with transformers' BlipForImageTextRetrieval and the folder's own processor.

`BlipForImageTextRetrieval(input_ids, pixel_values, attention_mask, use_itm_head=False)` returns the cosine
similarity matrix `normalize(vision_proj(v[:, 0])) @ normalize(text_proj(t[:, 0])).T`, where v is the vision
model's last hidden state and t the text encoder's (run without the image: the unimodal encoder). The two factors
depend on the image alone and on the text alone, so they are computed here as two backbones whose outputs the
feature store caches apart (per frame, and per prompt); their dot product is exactly that matrix's entry.

  blip_itm_image  per frame: the folder's BlipImageProcessor (PIL bicubic to its size, 384x384 for the published
                  folder; /255; CLIP mean and std) -> normalize(vision_proj(CLS)), 256-d
  blip_itm_text   per prompt: the folder's BERT tokenizer ([CLS] ... [SEP], truncated at 77 tokens as AIGVE-Tool's
                  BLIPSimDataset does) -> normalize(text_proj(CLS)), 256-d

Both read one model per folder, device and precision (pretrained.shared_model). `write_random_blip_itm` writes a
tiny random folder in the published format (config, pytorch_model.bin, processor and tokenizer files) for tests.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import TextEncoder
from .pretrained import PretrainedBackbone, from_pretrained, require_transformers, shared_model
from .weights import FOLDER_REGISTRY, RANDOM_FOLDER_MARKER, WeightsError, WeightsFolder, fetch_command

BLIP_ITM_BASE_COCO = FOLDER_REGISTRY["blip_itm_base_coco"]
# AIGVE-Tool's BLIPSimDataset tokenises prompts with truncation at 77 tokens (the published model accepts 512);
# part of the text backbone's name, so a change here never reuses cached text features
TEXT_MAX_TOKENS = 77
# the parts of BlipForImageTextRetrieval the ITC embeddings use: a folder whose weights leave any of them
# uninitialised is the wrong folder, not a model to score with (from_pretrained only warns)
_ITC_MODULES = ("vision_model.", "vision_proj.", "text_encoder.", "text_proj.")


def load_blip_itm(folder: Path, entry: WeightsFolder) -> nn.Module:
    """BlipForImageTextRetrieval from the folder (offline); a folder missing any ITC weight is a WeightsError."""
    transformers = require_transformers("blip_sim")
    model, info = from_pretrained(transformers.BlipForImageTextRetrieval, folder, entry, output_loading_info=True)
    # mismatched keys are names (transformers 4.57) or (name, shapes...) tuples (older releases)
    mismatched = [key if isinstance(key, str) else key[0] for key in info.get("mismatched_keys", ())]
    missing = [key for key in [*info.get("missing_keys", ()), *mismatched] if key.startswith(_ITC_MODULES)]
    if missing:
        raise WeightsError(
            f"weights folder {folder} is not a complete BLIP image-text retrieval model: {len(missing)} of its "
            f"weights are missing or of another shape (e.g. {', '.join(missing[:3])}); is it a {entry.folder} "
            f"folder? Fetch the published one with: {fetch_command([entry.key])}")
    return model


@functools.lru_cache(maxsize=8)
def load_processor(folder: Path, entry: WeightsFolder) -> Any:
    """The folder's BlipProcessor: its slow (PIL) BlipImageProcessor, as the published folder was saved with, and
    its BERT tokenizer; one per folder and process."""
    transformers = require_transformers("blip_sim")
    image_processor = from_pretrained(transformers.BlipImageProcessor, folder, entry)
    tokenizer = from_pretrained(transformers.AutoTokenizer, folder, entry)
    return transformers.BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)


class BlipItcBackbone(PretrainedBackbone):
    """What the image and text halves share: the folder entry, one model load, the processor."""

    weights_file: ClassVar[WeightsFolder] = BLIP_ITM_BASE_COCO
    outputs: ClassVar[Mapping[str, int | None]] = {"itc": None}  # image_text_hidden_size: 256 when published

    @cached_property
    def model(self) -> nn.Module:
        # one kind for both halves: the image and text backbones of a folder share one loaded model
        return shared_model(self.weights_path, self.weights_sha256, self.device, self.dtype, "blip-itm",
                            lambda: self.build_pretrained(self.weights_path))

    def build_pretrained(self, folder: Path) -> nn.Module:
        return load_blip_itm(folder, self.weights_file)

    @property
    def processor(self) -> Any:
        return load_processor(self.weights_path.resolve(), self.weights_file)

    @staticmethod
    def embedding(projected: torch.Tensor) -> torch.Tensor:
        """L2-normalised in float32 (bf16 runs project in bf16), as transformers' `normalize(..., dim=-1)`."""
        return F.normalize(projected.float(), dim=-1)


class BlipImageBackbone(BlipItcBackbone):
    key = "blip_itm_image"
    name = "blip-itm-itc-image"
    per_frame = True
    input_description = "frames, the folder's BlipImageProcessor (PIL bicubic to 384x384, /255, CLIP mean/std)"
    default_batch_size = 32  # frames per forward pass

    def prepare(self, clip: torch.Tensor) -> torch.Tensor:
        # the processor's own preprocessing (PIL resampling) runs on the CPU, frame by frame
        frames = list(clip.to("cpu").numpy())
        pixels = self.processor.image_processor(images=frames, return_tensors="pt",
                                                input_data_format="channels_last")["pixel_values"]
        return pixels.to(self.device)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        model: Any = self.model
        hidden = model.vision_model(pixel_values=batch.to(self.dtype)).last_hidden_state
        return self.embedding(model.vision_proj(hidden[:, 0, :]))


class BlipTextBackbone(BlipItcBackbone, TextEncoder):
    key = "blip_itm_text"
    name = f"blip-itm-itc-text-{TEXT_MAX_TOKENS}tok"
    input_description = f"prompts, the folder's BERT tokenizer ([CLS] ... [SEP], at most {TEXT_MAX_TOKENS} tokens)"
    default_batch_size = 64  # prompts per forward pass

    def encode(self, prompts: list[str]) -> torch.Tensor:
        tokens = self.processor.tokenizer(prompts, padding=True, truncation=True, max_length=TEXT_MAX_TOKENS,
                                          return_tensors="pt", return_token_type_ids=False)
        model: Any = self.model
        hidden = model.text_encoder(input_ids=tokens["input_ids"].to(self.device),
                                    attention_mask=tokens["attention_mask"].to(self.device)).last_hidden_state
        return self.embedding(model.text_proj(hidden[:, 0, :]))


# --- random test weights -------------------------------------------------------------------------------------------

# a tiny lower-case WordPiece vocabulary: BERT's special tokens first, as in bert-base-uncased, then enough words
# for the tests' prompts; BLIP's tokenizer adds [DEC] (its bos token) and [ENC] after the vocabulary
_RANDOM_VOCAB = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyz",
                 *(f"##{letter}" for letter in "abcdefghijklmnopqrstuvwxyz"),
                 "an", "the", "of", "in", "on", "at", "and", "with", "red", "blue", "green", "white", "fox", "dog",
                 "cat", "snow", "sea", "sky", "car", "road", "man", "woman", "runs", "walks", "flies", "zebra",
                 "crossing", "dusk", "city", "night", "bird", "river", "##ing", "##ed", ".", ",")


def write_random_blip_itm(folder: Path, seed: int = 0) -> Path:
    """A tiny random BlipForImageTextRetrieval in the published folder format under folder/<entry folder>: 384x384
    input (the published processor size) through 64x64 patches, two layers of width 32 per tower, a 16-d ITC space;
    weights initialised at std 0.2 so that embeddings differ between inputs (BLIP's vision default, 1e-10, makes
    every image alike). Marked with RANDOM_FOLDER_MARKER. A folder there that is not random test weights is left
    alone (an error)."""
    transformers = require_transformers("the random BLIP test weights")
    target = folder / BLIP_ITM_BASE_COCO.folder
    if target.is_dir() and any(target.iterdir()) and not (target / RANDOM_FOLDER_MARKER).is_file():
        raise WeightsError(f"{target} exists and is not random test weights; it is left alone: choose another folder")
    target.mkdir(parents=True, exist_ok=True)
    (target / "vocab.txt").write_text("\n".join(_RANDOM_VOCAB) + "\n", encoding="utf-8")
    tokenizer = transformers.BertTokenizerFast(str(target / "vocab.txt"), do_lower_case=True, bos_token="[DEC]",
                                               additional_special_tokens=["[ENC]"], model_max_length=512)
    processor = transformers.BlipProcessor(transformers.BlipImageProcessor(), tokenizer)
    processor.save_pretrained(str(target))
    (target / "added_tokens.json").unlink(missing_ok=True)  # the published folder keeps them in tokenizer.json only
    init = 0.2
    config = transformers.BlipConfig(
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": 384, "patch_size": 64, "initializer_range": init},
        text_config={"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 2, "num_attention_heads": 2, "encoder_hidden_size": 32,
                     "max_position_embeddings": 128, "pad_token_id": tokenizer.pad_token_id,
                     "bos_token_id": tokenizer.bos_token_id, "sep_token_id": tokenizer.sep_token_id,
                     "initializer_range": init},
        image_text_hidden_size=16, initializer_range=init)
    torch.manual_seed(seed)
    model = transformers.BlipForImageTextRetrieval(config).eval()
    model.save_pretrained(str(target), safe_serialization=False)  # pytorch_model.bin, as published
    (target / RANDOM_FOLDER_MARKER).write_text(f"written by pytest-aigve weights random, seed {seed}\n",
                                               encoding="utf-8")
    return target
