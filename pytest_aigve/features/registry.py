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
}


class BackboneRegistry(Registry[Backbone]):
    kind = "backbone"

    def __init__(self, entries: Iterable[tuple[str, str | type[Backbone]]] = BUILTIN_BACKBONES.items()) -> None:
        super().__init__(entries)

    def base(self) -> type:
        return Backbone
