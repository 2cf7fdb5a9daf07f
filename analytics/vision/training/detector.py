"""Train or fine-tune the YOLO person detector on simulator frames, offline, with ultralytics."""

from __future__ import annotations

import shutil
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from analytics.vision.offline import OFFLINE_TRAIN_ARGS, require_weights, ultralytics_offline

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "detectors" / "models" / "beffroi-person.yaml"


@dataclass(frozen=True)
class DetectorTraining:
    model: Path = DEFAULT_MODEL  # a .yaml definition (from scratch) or .pt weights (fine-tune)
    epochs: int = 30
    imgsz: int = 640
    batch: int = 16
    device: str = "cpu"
    workers: int = 0
    seed: int = 0
    val_fraction: float = 0.1
    patience: int = 100
    cache: bool = True  # decoded images in memory
    max_labels: int | None = None  # leave out frames with more people than this (the density model's job)


def _labels(root: Path, image: Path) -> int:
    path = root / "labels" / f"{image.stem}.txt"
    return sum(1 for line in path.read_text().splitlines() if line.strip()) if path.is_file() else 0


def write_split(root: Path, *, val_fraction: float, max_labels: int | None = None) -> Path:
    """data.yaml with a stable train/validation split of images/ (by clip, so views don't leak),
    without the frames that have more than `max_labels` people."""
    images = sorted((root / "images").glob("*.jpg"))
    if not images:
        raise FileNotFoundError(f"training frames: no images under {root / 'images'}")
    if not (root / "labels").is_dir():
        raise FileNotFoundError(f"training frames: no YOLO labels directory {root / 'labels'}")
    if max_labels is not None:
        images = [p for p in images if _labels(root, p) <= max_labels]
        if not images:
            raise ValueError(f"training frames: every image under {root} has more than {max_labels} people")

    def clip(p: Path) -> str:
        return p.stem.rsplit("_", 1)[0]

    val = [p for p in images if (zlib.crc32(clip(p).encode()) % 1000) < val_fraction * 1000]
    train = [p for p in images if p not in set(val)]
    if not val or not train:
        val = train = images
    (root / "train.txt").write_text("".join(f"{p.resolve()}\n" for p in train))
    (root / "val.txt").write_text("".join(f"{p.resolve()}\n" for p in val))
    data = root / "data.yaml"
    data.write_text(f"path: {root.resolve()}\ntrain: train.txt\nval: val.txt\nnames:\n  0: person\n")
    return data


def train_detector(frames: Path, out: Path, spec: DetectorTraining = DetectorTraining()) -> Path:
    """Train on the dataset directory `frames` (images/, labels/) and write the best weights to `out`."""
    ultralytics_offline()
    from ultralytics import YOLO  # type: ignore[attr-defined]

    data = write_split(frames, val_fraction=spec.val_fraction, max_labels=spec.max_labels)
    model = spec.model if spec.model.suffix in {".yaml", ".yml"} else require_weights(spec.model)
    if not model.is_file():
        raise FileNotFoundError(f"model definition {model} does not exist")
    yolo = YOLO(str(model), task="detect")
    with tempfile.TemporaryDirectory(prefix="beffroi-train-") as tmp:
        yolo.train(
            data=str(data),
            epochs=spec.epochs,
            imgsz=spec.imgsz,
            batch=spec.batch,
            device=spec.device,
            workers=spec.workers,
            seed=spec.seed,
            deterministic=True,
            project=tmp,
            name="run",
            exist_ok=True,
            verbose=False,
            patience=spec.patience,
            max_det=1000,
            nbs=spec.batch,  # an optimizer step every batch: small simulated sets need the updates
            cache="ram" if spec.cache else False,
            **OFFLINE_TRAIN_ARGS,
        )
        weights = Path(tmp) / "run" / "weights"
        best = weights / "best.pt" if (weights / "best.pt").is_file() else weights / "last.pt"
        if not best.is_file():
            raise RuntimeError(f"training wrote no weights under {weights}")
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(best, out)
    return out
