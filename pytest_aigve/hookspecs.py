"""Hooks pytest-aigve offers to other plugins and conftest.py files."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .features.registry import BackboneRegistry
    from .metrics.registry import MetricRegistry


@pytest.hookspec
def pytest_aigve_register_metrics(registry: MetricRegistry) -> None:
    """Register extra metrics: ``registry.register("name", MetricClass or "module:Class")``; see
    ``pytest_aigve.metrics.api`` for what a metric is made of."""


@pytest.hookspec
def pytest_aigve_register_backbones(registry: BackboneRegistry) -> None:
    """Register extra backbones: ``registry.register("key", BackboneClass or "module:Class")``; a metric asks for
    one with ``BackboneRequest("key", output=...)``. Called before pytest_aigve_register_metrics."""


@pytest.hookspec
def pytest_aigve_results(records: list[dict[str, Any]], config: pytest.Config) -> None:
    """Called on the controller with every item record, before the reports are written."""
