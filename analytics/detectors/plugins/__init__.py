"""Detector plugins, one per file: `KEY`, a pydantic config with `type: Literal[KEY]`, the class.

The explicit list of plugins is `analytics.detectors.registry.DETECTORS`.
"""
