"""Sluicegate: an operations layer for large language models in production."""

__version__ = "0.1.0"
__all__ = ["__version__"]
