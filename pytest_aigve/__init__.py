"""pytest-aigve: evaluation suites for AI-generated video, run as pytest items."""

__version__ = "0.1.0"
