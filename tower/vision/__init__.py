"""The vision pipeline run as processes: `python -m tower.vision` (serve), `.scoring`, `.live_run`."""
