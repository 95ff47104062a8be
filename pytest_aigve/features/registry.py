"""The one place backbones are registered: key -> "module:Class", imported when first used. Plugins add theirs
with the `pytest_aigve_register_backbones` hook."""

from __future__ import annotations

from collections.abc import Iterable

from ..registries import Registry
from .backbones import Backbone

BUILTIN_BACKBONES: dict[str, str] = {
    "inception": "pytest_aigve.features.backbones:InceptionBackbone",
    "i3d": "pytest_aigve.features.backbones:I3DBackbone",
    "videomae": "pytest_aigve.features.backbones:VideoMAEBackbone",
    "r3d18": "pytest_aigve.features.backbones:R3D18Backbone",
    "clip_vit_b32": "pytest_aigve.features.clip_hf:CLIPViTB32",
    "clip_vit_b32_text": "pytest_aigve.features.clip_hf:CLIPViTB32Text",
    "clip_vit_l14": "pytest_aigve.features.clip_hf:CLIPViTL14",
    "clip_vit_l14_text": "pytest_aigve.features.clip_hf:CLIPViTL14Text",
    "pickscore": "pytest_aigve.features.clip_hf:PickScoreImage",
    "pickscore_text": "pytest_aigve.features.clip_hf:PickScoreText",
    "blip_itm_image": "pytest_aigve.features.blip:BlipImageBackbone",
    "blip_itm_text": "pytest_aigve.features.blip:BlipTextBackbone",
    "musiq_spaq": "pytest_aigve.features.musiq:MusiqSpaqBackbone",
    "dover": "pytest_aigve.features.dover:DoverBackbone",
    "fastervqa": "pytest_aigve.features.dover:FasterVQABackbone",
    "openai_clip_b32": "pytest_aigve.features.openai_clip:OpenAIClipB32Backbone",
    "openai_clip_l14": "pytest_aigve.features.openai_clip:OpenAIClipL14Backbone",
    "laion_aesthetic": "pytest_aigve.features.openai_clip:LaionAestheticBackbone",
}


class BackboneRegistry(Registry[Backbone]):
    kind = "backbone"

    def __init__(self, entries: Iterable[tuple[str, str | type[Backbone]]] = BUILTIN_BACKBONES.items()) -> None:
        super().__init__(entries)

    def base(self) -> type:
        return Backbone
