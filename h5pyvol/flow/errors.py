"""The flow engine's one exception type: every error names what failed (the
stage, the requirement, the config key or the chunk) and keeps its cause."""

from __future__ import annotations


class FlowError(RuntimeError):
    """A workflow could not be loaded, run or resumed; the message says why."""
