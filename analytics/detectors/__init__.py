"""Streaming anomaly detectors: per-stream state, batched updates, NumPy or PyTorch backends.

Entry points: `stack.DetectorStack` / `stack.StackConfig` (a configured stack over many
streams), `registry.DETECTORS` (the plugins), `backend.make_ops` (the array seam),
`base.StreamMeta` / `base.Batch` (what detectors see).
"""
