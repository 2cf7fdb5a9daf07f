"""`hog`: OpenCV's pretrained HOG + linear SVM pedestrian detector (Dalal-Triggs).

The model ships inside OpenCV 4 (`HOGDescriptor_getDefaultPeopleDetector`), so it runs offline on
the CPU on real footage with nothing to download. Its 64x128 window finds people about 96 px tall
and up; `upscale` enlarges frames for smaller people, at a cost in speed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from analytics.vision.detectors.base import Detections, PersonDetector
from beffroi.images import Image, as_image

KEY = "hog"

# the person fills the middle of the 64x128 window: trim the window to the body
_TRIM_X = 12.0 / 64.0
_TRIM_TOP = 12.0 / 128.0
_TRIM_BOTTOM = 10.0 / 128.0


class HogConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["hog"] = "hog"
    upscale: float = Field(default=1.0, gt=0.1, le=4.0)
    win_stride: int = Field(default=8, ge=1, le=64)
    padding: int = Field(default=8, ge=0, le=64)
    scale: float = Field(default=1.05, gt=1.0, le=2.0)
    hit_threshold: float = 0.0
    min_score: float = Field(default=0.3, description="minimum SVM margin kept")
    nms_iou: float = Field(default=0.4, gt=0, le=1)


class HogDetector(PersonDetector):
    def __init__(self, config: HogConfig) -> None:
        self.config = config
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector(), dtype=np.float32))

    def detect(self, images: Sequence[Image]) -> list[Detections]:
        return [self._detect_one(img) for img in images]

    def _detect_one(self, image: Image) -> Detections:
        c = self.config
        img = image
        if c.upscale != 1.0:
            img = as_image(
                cv2.resize(image, None, fx=c.upscale, fy=c.upscale, interpolation=cv2.INTER_LINEAR)
            )
        rects, weights = self._hog.detectMultiScale(
            img,
            hitThreshold=c.hit_threshold,
            winStride=(c.win_stride, c.win_stride),
            padding=(c.padding, c.padding),
            scale=c.scale,
        )
        if len(rects) == 0:
            return Detections.empty()
        r = np.asarray(rects, dtype=np.float64).reshape(-1, 4) / c.upscale
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        keep = w >= c.min_score
        r, w = r[keep], w[keep]
        if len(r) == 0:
            return Detections.empty()
        kept = np.asarray(cv2.dnn.NMSBoxes(r.tolist(), w.tolist(), c.min_score, c.nms_iou), dtype=np.int64)
        r, w = r[kept.reshape(-1)], w[kept.reshape(-1)]
        x, y, bw, bh = r[:, 0], r[:, 1], r[:, 2], r[:, 3]
        boxes = np.column_stack(
            [x + bw * _TRIM_X, y + bh * _TRIM_TOP, x + bw * (1 - _TRIM_X), y + bh * (1 - _TRIM_BOTTOM)]
        )
        h, wd = image.shape[:2]
        boxes = np.clip(boxes, 0, [wd, h, wd, h])
        # squash the SVM margin into (0, 1) so that scores compare with other backends
        return Detections(boxes=boxes, scores=1.0 / (1.0 + np.exp(-2.0 * w)))
