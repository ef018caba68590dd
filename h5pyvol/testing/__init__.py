"""Test helpers for connector authors: the shared conformance suite."""

from .conformance import ConnectorConformance, assert_same

__all__ = ["ConnectorConformance", "assert_same"]
