"""Video frames as typed arrays, shared by the video readers (ingest) and the detectors (analytics)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]


def as_image(a: Any) -> Image:
    """An OpenCV result as a typed uint8 image (no copy when it already is one)."""
    out: Image = np.asarray(a, dtype=np.uint8)
    return out
