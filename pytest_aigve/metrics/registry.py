"""The one place metrics are registered: name -> "module:Class", imported when first used."""

from __future__ import annotations

from collections.abc import Iterable

from ..features.registry import BackboneRegistry
from ..registries import Registry
from .base import Metric

BUILTIN_METRICS: dict[str, str] = {
    "flicker": "pytest_aigve.metrics.flicker:TemporalFlicker",
    "psnr": "pytest_aigve.metrics.psnr:PSNR",
    "ssim": "pytest_aigve.metrics.ssim:SSIM",
    "fid": "pytest_aigve.metrics.fid:FID",
    "kid": "pytest_aigve.metrics.kid:KID",
    "is": "pytest_aigve.metrics.inception_score:InceptionScore",
    "fvd": "pytest_aigve.metrics.fvd:FVD",
    "fvd_r3d18": "pytest_aigve.metrics.fvd_r3d18:FVDR3D18",
    "cd_fvd": "pytest_aigve.metrics.cd_fvd:CDFVD",
    "clip_sim": "pytest_aigve.metrics.clip_sim:CLIPSim",
    "clip_temp": "pytest_aigve.metrics.clip_temp:CLIPTemp",
    "pickscore": "pytest_aigve.metrics.pickscore:PickScore",
    "blip_sim": "pytest_aigve.metrics.blip_sim:BlipSim",
    "imaging_quality": "pytest_aigve.metrics.imaging_quality:ImagingQuality",
    "dover": "pytest_aigve.metrics.dover:Dover",
    "fastvqa": "pytest_aigve.metrics.fastvqa:FasterVQA",
    "background_consistency": "pytest_aigve.metrics.background_consistency:BackgroundConsistency",
    "aesthetic_quality": "pytest_aigve.metrics.aesthetic_quality:AestheticQuality",
}


class MetricRegistry(Registry[Metric]):
    """Metrics by name, with the backbones they may ask for (suite loading checks a check against both)."""

    kind = "metric"

    def __init__(self, entries: Iterable[tuple[str, str | type[Metric]]] = BUILTIN_METRICS.items(),
                 backbones: BackboneRegistry | None = None) -> None:
        super().__init__(entries)
        self.backbones = backbones if backbones is not None else BackboneRegistry()

    def base(self) -> type:
        return Metric
