"""Where rendered frames go: video files, ground-truth JSONL, detector datasets, MJPEG streams."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from simulators.camera.render import FrameTruth
from simulators.camera.stream import Channel

Image = npt.NDArray[np.uint8]

FOURCC = {".avi": "MJPG", ".mp4": "mp4v", ".mkv": "MJPG"}


class FrameSink(Protocol):
    def write(self, frame: Image, truth: FrameTruth) -> None: ...

    def close(self) -> None: ...


class VideoFileSink:
    """A video file: MJPG in .avi/.mkv, mp4v in .mp4."""

    def __init__(self, path: Path | str, *, fps: float, size: tuple[int, int]) -> None:
        self.path = Path(path)
        codec = FOURCC.get(self.path.suffix.lower())
        if codec is None:
            raise ValueError(f"video file {self.path}: use one of {sorted(FOURCC)}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter.fourcc(*codec), fps, size)
        if not self._writer.isOpened():
            raise OSError(f"video file {self.path}: OpenCV cannot write {codec} here")
        self.size = size

    def write(self, frame: Image, truth: FrameTruth) -> None:
        if (frame.shape[1], frame.shape[0]) != self.size:
            raise ValueError(
                f"video file {self.path}: frame {frame.shape[1]}x{frame.shape[0]} != {self.size}"
            )
        self._writer.write(frame)

    def close(self) -> None:
        self._writer.release()


class TruthSink:
    """One JSON object per frame: boxes, counts per zone, gate crossings."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] = self.path.open("w", encoding="utf-8")

    def write(self, frame: Image, truth: FrameTruth) -> None:
        self._fh.write(json.dumps(truth.as_json(), separators=(",", ":")) + "\n")

    def close(self) -> None:
        self._fh.close()


class DatasetSink:
    """A detector/density training set: images/, YOLO labels/, and truth.jsonl naming each image.

    Keeps one frame in `every`. `data.yaml` (for ultralytics) is written on close.
    """

    def __init__(self, root: Path | str, *, every: int = 1, quality: int = 90) -> None:
        self.root = Path(root)
        self.every = max(1, every)
        self.quality = quality
        (self.root / "images").mkdir(parents=True, exist_ok=True)
        (self.root / "labels").mkdir(parents=True, exist_ok=True)
        self._truth: IO[str] = (self.root / "truth.jsonl").open("a", encoding="utf-8")
        self.images = 0

    def write(self, frame: Image, truth: FrameTruth) -> None:
        if truth.frame % self.every:
            return
        stem = f"{truth.camera_id}_{truth.frame:06d}"
        cv2.imwrite(
            str(self.root / "images" / f"{stem}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, self.quality]
        )
        h, w = frame.shape[:2]
        (self.root / "labels" / f"{stem}.txt").write_text("\n".join(truth.yolo_labels(w, h)) + "\n")
        record = truth.as_json() | {"image": f"images/{stem}.jpg", "width": w, "height": h}
        self._truth.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.images += 1

    def close(self) -> None:
        self._truth.close()
        write_data_yaml(self.root)


def write_data_yaml(root: Path) -> Path:
    """The ultralytics dataset file for a dataset directory (every image used to train and validate)."""
    path = root / "data.yaml"
    path.write_text(f"path: {root.resolve()}\ntrain: images\nval: images\nnames:\n  0: person\n")
    return path


class StreamSink:
    """Publishes each frame as JPEG on an MJPEG channel."""

    def __init__(self, channel: Channel, *, quality: int = 80) -> None:
        self.channel = channel
        self.quality = quality

    def write(self, frame: Image, truth: FrameTruth) -> None:
        self.channel.publish(frame, quality=self.quality)

    def close(self) -> None:
        pass
