"""The person-detector seam: a batch of BGR frames in, one `Detections` per frame out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from beffroi.images import Image

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Detections:
    """People found in one frame: boxes (N, 4) as x1, y1, x2, y2 pixels, and scores (N,)."""

    boxes: FloatArray
    scores: FloatArray

    @classmethod
    def empty(cls) -> Detections:
        return cls(boxes=np.zeros((0, 4)), scores=np.zeros(0))

    def __len__(self) -> int:
        return len(self.scores)

    def feet(self) -> FloatArray:
        """Image point under each person: the bottom centre of the box."""
        f: FloatArray = np.column_stack([(self.boxes[:, 0] + self.boxes[:, 2]) / 2.0, self.boxes[:, 3]])
        return f

    def above(self, threshold: float) -> Detections:
        keep = self.scores >= threshold
        return Detections(boxes=self.boxes[keep], scores=self.scores[keep])


class PersonDetector(ABC):
    """A person-detector backend. Implementations live in analytics/vision/detectors/plugins/."""

    #: whether `detect` gains from several frames at once (GPU batching)
    batched: bool = False

    @abstractmethod
    def detect(self, images: Sequence[Image]) -> list[Detections]:
        """Detect people in each image (BGR, uint8)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the model."""
