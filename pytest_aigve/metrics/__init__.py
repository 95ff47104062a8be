"""Metrics: one module per metric, registered by name in registry.py."""
