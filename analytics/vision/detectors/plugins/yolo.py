"""`yolo`: an ultralytics YOLO model from any weights file (ours from `beffroi train-detector`, or yours).

Frames of one size are letterboxed together on the model's device and run as one batch; on CUDA
the model runs in half precision. Pre- and post-processing stay on the device (NMS included), so
a batch costs one upload of uint8 pixels and one download of boxes.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from analytics.vision.detectors.base import Detections, PersonDetector
from analytics.vision.offline import require_weights, ultralytics_offline
from beffroi.images import Image, as_image

KEY = "yolo"


class YoloConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["yolo"] = "yolo"
    weights: Path
    imgsz: int = Field(default=640, ge=32, le=4096, description="long side of the network input")
    conf: float = Field(default=0.25, gt=0, lt=1)
    iou: float = Field(default=0.5, gt=0, le=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    half: bool | None = Field(default=None, description="default: on CUDA only")
    batch: int = Field(default=32, ge=1, le=1024)
    max_det: int = Field(default=1000, ge=1)
    person_class: int | None = Field(default=None, description="default: the class named 'person', else 0")


def _person_class(names: Any) -> int:
    items = names.items() if isinstance(names, dict) else enumerate(names)
    for k, v in items:
        if str(v).lower() == "person":
            return int(k)
    return 0


class YoloDetector(PersonDetector):
    batched = True

    def __init__(self, config: YoloConfig) -> None:
        import torch

        ultralytics_offline()
        from ultralytics import YOLO  # type: ignore[attr-defined]

        # ultralytics' NMS uses torchvision's compiled kernel once it is imported (30x its fallback on CPU)
        with contextlib.suppress(ImportError):  # ultralytics depends on torchvision
            import torchvision  # type: ignore[import-untyped]  # noqa: F401

        self.config = config
        want_cuda = config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())
        if want_cuda and not torch.cuda.is_available():
            raise RuntimeError("yolo detector: device 'cuda' asked for, but CUDA is not available")
        self.device = torch.device("cuda" if want_cuda else "cpu")
        self.half = bool(config.half if config.half is not None else want_cuda)
        if self.half and not want_cuda:
            raise ValueError("yolo detector: half precision needs CUDA")
        yolo = YOLO(str(require_weights(config.weights)), task="detect")
        net: Any = yolo.model
        net = net.fuse() if hasattr(net, "fuse") else net
        net = net.to(self.device).eval()
        if self.half:
            net = net.half()
        for p in net.parameters():
            p.requires_grad_(False)
        self.net = net
        self.names = yolo.names
        self.nc = len(self.names)
        self.stride = int(max(getattr(net, "stride", torch.tensor([32])).tolist()))
        self.person_class = (
            config.person_class if config.person_class is not None else _person_class(self.names)
        )
        self.weights_path = Path(config.weights)

    def input_shape(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(new_h, new_w, pad_top, pad_left) of the letterboxed network input for a frame size."""
        r = self.config.imgsz / max(height, width)
        new_h, new_w = round(height * r), round(width * r)
        in_h = math.ceil(new_h / self.stride) * self.stride
        in_w = math.ceil(new_w / self.stride) * self.stride
        return new_h, new_w, (in_h - new_h) // 2, (in_w - new_w) // 2

    def detect(self, images: Sequence[Image]) -> list[Detections]:
        out: list[Detections | None] = [None] * len(images)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, img in enumerate(images):
            by_shape.setdefault(tuple(img.shape), []).append(i)
        for idxs in by_shape.values():
            for start in range(0, len(idxs), self.config.batch):
                chunk = idxs[start : start + self.config.batch]
                for i, det in zip(chunk, self._detect_same_size([images[i] for i in chunk]), strict=True):
                    out[i] = det
        return [d if d is not None else Detections.empty() for d in out]

    def preprocess(self, images: Sequence[Image]) -> Any:
        """uint8 BGR frames of one size -> the letterboxed float batch on the device (NCHW, RGB, 0..1)."""
        import torch
        import torch.nn.functional as F

        h, w = images[0].shape[:2]
        new_h, new_w, top, left = self.input_shape(h, w)
        in_h = math.ceil(new_h / self.stride) * self.stride
        in_w = math.ceil(new_w / self.stride) * self.stride
        resize = (new_h, new_w) != (h, w)
        if resize and self.device.type == "cpu":  # shrink the uint8 frames first: 4x less to convert
            import cv2

            images = [
                as_image(cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_LINEAR)) for img in images
            ]
            resize = False
        raw = torch.from_numpy(np.stack(images)).to(self.device, non_blocking=True)
        x = raw.permute(0, 3, 1, 2).flip(1)
        x = x.half() if self.half else x.float()
        if resize:
            x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False)
        x = F.pad(x, (left, in_w - new_w - left, top, in_h - new_h - top), value=114.0)
        return x / 255.0

    def forward(self, batch: Any) -> Any:
        """The network alone on a preprocessed batch: raw predictions (B, 4 + classes, anchors)."""
        import torch

        with torch.inference_mode():
            pred = self.net(batch)
        return pred[0] if isinstance(pred, list | tuple) else pred

    def _detect_same_size(self, images: Sequence[Image]) -> list[Detections]:
        import torch
        from ultralytics.utils.nms import non_max_suppression

        h, w = images[0].shape[:2]
        new_h, new_w, top, left = self.input_shape(h, w)
        with torch.inference_mode():
            pred = self.forward(self.preprocess(images))
            kept = non_max_suppression(
                pred,
                conf_thres=self.config.conf,
                iou_thres=self.config.iou,
                classes=[self.person_class],
                max_det=self.config.max_det,
                nc=self.nc,
            )
            gain = torch.tensor([new_w / w, new_h / h, new_w / w, new_h / h], device=pred.device)
            offset = torch.tensor([left, top, left, top], device=pred.device)
            results = []
            for k in kept:
                boxes = ((k[:, :4].float() - offset) / gain).clamp_(min=0)
                boxes[:, [0, 2]] = boxes[:, [0, 2]].clamp(max=w)
                boxes[:, [1, 3]] = boxes[:, [1, 3]].clamp(max=h)
                results.append(
                    Detections(
                        boxes=boxes.cpu().numpy().astype(np.float64),
                        scores=k[:, 4].float().cpu().numpy().astype(np.float64),
                    )
                )
        return results
