"""CD-FVD (content-debiased FVD, Ge et al. 2024) through the cd-fvd package's models and preprocessing:
`model: videomae` (VideoMAE-v2 ViT-g features, the paper's choice) or `model: i3d`. Every video is used
once (no resampling to 2048); `resolution` and `sequence_length` fix the protocol's resize and frames.

`resolution` sets the protocol's `resize: [r, r]` with `resize_mode: cdfvd`: cd-fvd's own resize, bit for bit
(shorter side to r, longer side ceil'ed, antialiased bilinear in float32, centred square crop, truncated back to
uint8; see videos.prepare.cdfvd_resize). The protocol fingerprint records the mode, so features cached under the
generic `center_crop` (rounded sizes and values) are never reused for it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar

from .contract import BackboneRequest
from .distribution import BACKBONE_PARAMS, FrechetMetric
from .params import ParamSpec, choice, optional, positive_int

MODELS = ("videomae", "i3d")


class CDFVD(FrechetMetric):
    name: ClassVar[str] = "cd_fvd"
    description: ClassVar[str] = "content-debiased FVD (cd-fvd): VideoMAE-v2 or I3D features"
    backbone: ClassVar[str] = "videomae"
    ddof: ClassVar[int] = 0
    params: ClassVar[dict[str, ParamSpec[Any]]] = {
        **BACKBONE_PARAMS,
        "model": ParamSpec("videomae", choice(*MODELS), "videomae or i3d"),
        "resolution": ParamSpec(None, optional(positive_int), "resize and centre-crop clips to this square size "
                                "first, exactly as cd-fvd's video loader does (protocol resize_mode: cdfvd)"),
        "sequence_length": ParamSpec(16, positive_int, "frames per clip (sets the protocol's 'frames')"),
    }

    @classmethod
    def protocol_overrides(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        overrides: dict[str, Any] = {"frames": params["sequence_length"]}
        if params.get("resolution"):
            overrides.update(resize=[params["resolution"], params["resolution"]], resize_mode="cdfvd")
        return overrides

    @classmethod
    def backbone_requests(cls, params: Mapping[str, Any]) -> tuple[BackboneRequest, ...]:
        (base,) = super().backbone_requests(params)
        return (replace(base, key=params.get("model", "videomae")),)
