"""CLIPSim: per video, the mean over the protocol's frames of the cosine between each frame's CLIP image embedding
and the embedding of the video's prompt; the set's value is the mean over videos (bootstrap interval over videos).

It equals the AIGVE toolkit's CLIPSimScore (`resize: aigve`, `scale: cosine` or `logit` for its logit_scale
option) and, with `scale: clipscore`, torchmetrics' CLIPScore over each video's frames paired with its prompt:
max(100 * mean cosine, 0) per video. The CLIP parameters here are shared with clip_temp.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np

from ..errors import MetricError
from ..features.backbones import PRECISIONS
from ..features.clip_hf import CLIP_MODELS, RESIZE_MODES, CLIPTextBackbone
from .base import Metric, _mean_result
from .contract import BackboneRequest, FeatureSet, InputsSpec, MetricInputs, MetricResult, require_rows
from .params import ParamSpec, choice, file_path, optional, positive_int

DEFAULT_MODEL = "openai/clip-vit-base-patch32"
SCALES = ("cosine", "logit", "clipscore")

# what clip_sim, clip_temp and pickscore share: the model's weights folder, its input mode, precision, batch size
FOLDER_PARAMS: dict[str, ParamSpec[Any]] = {
    "weights": ParamSpec(None, file_path, "path to the model's weights folder (Hugging Face layout), relative to "
                                          "the suite file; default: the lookup order in the README",
                         affects_score=False),  # its digest is recorded
    "resize": ParamSpec("processor", choice(*RESIZE_MODES),
                        "processor (default: the folder's CLIPProcessor, shorter side 224 bicubic, centre crop) or "
                        "aigve (each frame stretched to 224x224 first, as the AIGVE toolkit does)"),
    "precision": ParamSpec("fp32", choice(*PRECISIONS), "fp32 (default, comparable) or bf16 (CUDA only, recorded)"),
    "batch_size": ParamSpec(None, optional(positive_int), "frames (or prompts) per forward pass; default 32",
                            affects_score=False),
}
CLIP_PARAMS: dict[str, ParamSpec[Any]] = {
    "model": ParamSpec(DEFAULT_MODEL, choice(*CLIP_MODELS),
                       f"the CLIP model: {' or '.join(CLIP_MODELS)} (default {DEFAULT_MODEL})"),
    **FOLDER_PARAMS,
}


def image_request(params: Mapping[str, Any], image_key: str) -> BackboneRequest:
    """The image backbone in the check's input mode (its `resize` option: processor or aigve)."""
    return BackboneRequest(image_key, params.get("weights"), params.get("precision", "fp32"), params.get("batch_size"),
                           options=(("resize", params.get("resize", "processor")),))


def text_request(params: Mapping[str, Any], text_key: str) -> BackboneRequest:
    return BackboneRequest(text_key, params.get("weights"), params.get("precision", "fp32"), params.get("batch_size"))


def unit_rows(rows: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float64)."""
    rows = np.atleast_2d(np.asarray(rows, dtype=np.float64))
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def prompt_embeddings(texts: FeatureSet, metric: str) -> dict[str, tuple[np.ndarray, float]]:
    """Each video's (unit prompt embedding, exp(logit_scale)) by label, from a CLIP text encoder's features."""
    scale_columns = CLIPTextBackbone.output_columns("logit_scale")
    embed_columns = CLIPTextBackbone.output_columns("text_embeds")
    found: dict[str, tuple[np.ndarray, float]] = {}
    for item in texts.videos:
        row = np.asarray(item.features, dtype=np.float64).reshape(-1)
        found[item.label] = (unit_rows(row[embed_columns])[0], float(row[scale_columns][0]))
    if not found:
        raise MetricError(f"{metric}: no video of the set has a prompt")
    return found


def frame_text_cosines(images: FeatureSet, texts: FeatureSet, metric: str
                       ) -> dict[str, tuple[np.ndarray, float]]:
    """Per video label: (cosine of each frame's image embedding with its prompt's, exp(logit_scale))."""
    prompts = prompt_embeddings(texts, metric)
    blocks = require_rows(images, metric, "set")
    found: dict[str, tuple[np.ndarray, float]] = {}
    for label, block in zip(images.labels, blocks, strict=True):
        if label not in prompts:
            raise MetricError(f"{metric}: video {label} has no prompt; give it one (prompts: or prompt_gt)")
        text, logit_scale = prompts[label]
        found[label] = (unit_rows(block) @ text, logit_scale)
    return found


class CLIPSim(Metric):
    name: ClassVar[str] = "clip_sim"
    description: ClassVar[str] = "text-video alignment: mean cosine of CLIP frame and prompt embeddings"
    higher_is_better: ClassVar[bool] = True
    spec: ClassVar[InputsSpec] = InputsSpec("single", needs_prompts=True)
    precision: ClassVar[str] = "fp32"
    params: ClassVar[Mapping[str, ParamSpec[Any]]] = {
        **CLIP_PARAMS,
        "scale": ParamSpec("cosine", choice(*SCALES),
                           "cosine (default, in [-1, 1]), logit (the model's logit_scale.exp() x cosine, AIGVE's "
                           "logit_scale option) or clipscore (torchmetrics' CLIPScore: max(100 x cosine, 0) per "
                           "video)"),
    }

    @classmethod
    def backbone_requests(cls, params: Mapping[str, Any]) -> tuple[BackboneRequest, ...]:
        image_key, text_key = CLIP_MODELS[params.get("model", DEFAULT_MODEL)]
        return image_request(params, image_key), text_request(params, text_key)

    def evaluate(self, inputs: MetricInputs) -> MetricResult:
        image, text = self.backbone_requests(self.options)
        images = inputs.features("set", image)
        texts = inputs.text_features("set", text)
        scale = self.options["scale"]
        scores: dict[str, float] = {}
        frames, logit_scale = 0, float("nan")
        for label, (cosines, logit_scale) in frame_text_cosines(images, texts, self.name).items():
            mean = float(cosines.mean())
            frames += cosines.size
            scores[label] = (mean if scale == "cosine" else logit_scale * mean if scale == "logit"
                             else max(100.0 * mean, 0.0))
        result = _mean_result(scores, self.name)
        details = {**result.details, "scale": scale, "frames": frames, "text_encoder": texts.backbone.name}
        if scale == "logit":  # the model's one learned scale
            details["logit_scale"] = logit_scale
        return replace(result, details=details, backbone=images.backbone)
