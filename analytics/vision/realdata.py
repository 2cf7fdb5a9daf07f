"""Annotated real footage in the shared format (`../shared/data/<set>/`): frames, head points, splits.

A dataset directory holds `counts.csv` and `heads.csv`, keyed by one of two columns:
- `frame`: a frame sequence from a fixed camera, 1-based, in `frames/` (sorted image files) or in
  the one video file of the directory; optional `perspective.csv` (a per-pixel perspective map,
  as the Mall dataset gives it) and `roi_mask.png` (the counting region: heads are annotated inside
  it only, so frames are counted with the rest blacked out);
- `image`: still photos, by file name, in `images/`.

Splits (deterministic, written here once, used by training and by `eval-count` alike):
- frame sequences are cut in time: the first `SEQUENCE_TRAIN_SHARE` of the frames train, the rest
  validate (Mall: frames 1-600 train, 601-800 validate), so neighbouring frames never straddle it;
- stills go by the number in their name: every `STILLS_VAL_EVERY`-th image (id % 5 == 0) validates,
  the others train (ShanghaiTech: about 80/20).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

Split = Literal["train", "val", "all"]
FloatArray = npt.NDArray[np.float64]

SEQUENCE_TRAIN_SHARE = 0.75
STILLS_VAL_EVERY = 5
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v")


class DatasetError(ValueError):
    """A dataset directory that does not follow the shared format."""


@dataclass(frozen=True)
class Item:
    """One annotated frame: its key in the CSVs, where its pixels are, its true count and heads."""

    key: str
    index: int  # frame number (sequences) or the number in the image name (stills)
    count: int
    heads: FloatArray  # (N, 2) x, y pixels
    path: Path | None = None  # None: a frame of the dataset's video


@dataclass(frozen=True)
class RealDataset:
    root: Path
    kind: Literal["frame", "image"]
    items: list[Item]
    video: Path | None = None
    perspective: FloatArray | None = field(default=None, repr=False)
    roi: npt.NDArray[np.bool_] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def is_sequence(self) -> bool:
        return self.kind == "frame"

    def split(self, split: Split) -> list[Item]:
        if split == "all":
            return list(self.items)
        if self.kind == "frame":
            last = max(i.index for i in self.items)
            cut = math.floor(last * SEQUENCE_TRAIN_SHARE)
            val = [i for i in self.items if i.index > cut]
            train = [i for i in self.items if i.index <= cut]
        else:
            val = [i for i in self.items if i.index % STILLS_VAL_EVERY == 0]
            train = [i for i in self.items if i.index % STILLS_VAL_EVERY != 0]
        return val if split == "val" else train

    def describe_split(self, split: Split) -> str:
        items = self.split(split)
        if not items:
            return f"{self.name} {split}: empty"
        if self.kind == "frame":
            return f"{self.name} {split}: frames {items[0].index}-{items[-1].index} ({len(items)})"
        rule = "id % 5 == 0" if split == "val" else "id % 5 != 0" if split == "train" else "all"
        return f"{self.name} {split}: {len(items)} images ({rule})"


def _number(name: str) -> int:
    digits = re.findall(r"\d+", Path(name).stem)
    if not digits:
        raise DatasetError(f"image {name!r}: no number in its name to split on")
    return int(digits[-1])


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    if not path.is_file():
        raise DatasetError(f"{path}: missing (a dataset holds counts.csv and heads.csv)")
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise DatasetError(f"{path}: empty")
    return [c.strip() for c in rows[0]], [r for r in rows[1:] if r]


def load_dataset(root: Path | str) -> RealDataset:
    """Read a dataset directory; raises `DatasetError` with the reason when it is not one."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory")
    header, rows = _read_csv(root / "counts.csv")
    if len(header) < 2 or header[0] not in ("frame", "image") or header[1] != "count":
        raise DatasetError(f"{root / 'counts.csv'}: header must be 'frame,count' or 'image,count'")
    kind: Literal["frame", "image"] = "frame" if header[0] == "frame" else "image"
    hheader, hrows = _read_csv(root / "heads.csv")
    if hheader[:3] != [kind, "x", "y"]:
        raise DatasetError(f"{root / 'heads.csv'}: header must be '{kind},x,y'")
    heads: dict[str, list[tuple[float, float]]] = {}
    for n, r in enumerate(hrows, start=2):
        try:
            heads.setdefault(r[0].strip(), []).append((float(r[1]), float(r[2])))
        except (IndexError, ValueError) as exc:
            raise DatasetError(f"{root / 'heads.csv'}:{n}: bad row {r}") from exc

    video: Path | None = None
    frame_files: list[Path] = []
    if kind == "frame":
        fdir = root / "frames"
        if fdir.is_dir():
            frame_files = sorted(p for p in fdir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            videos = sorted(p for p in root.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
            if len(videos) != 1:
                raise DatasetError(f"{root}: a frame dataset needs frames/ or exactly one video file")
            video = videos[0]
    items: list[Item] = []
    for n, r in enumerate(rows, start=2):
        try:
            key, count = r[0].strip(), int(r[1])
        except (IndexError, ValueError) as exc:
            raise DatasetError(f"{root / 'counts.csv'}:{n}: bad row {r}") from exc
        pts = np.asarray(heads.get(key, []), dtype=np.float64).reshape(-1, 2)
        if kind == "frame":
            index = int(key)
            if video is None and not 1 <= index <= len(frame_files):
                raise DatasetError(f"{root}: frame {index} has no image in frames/ ({len(frame_files)})")
            path = frame_files[index - 1] if video is None else None
        else:
            index = _number(key)
            path = root / "images" / key
            if not path.is_file():
                path = root / key
            if not path.is_file():
                raise DatasetError(f"{root}: image {key} not found in images/")
        items.append(Item(key=key, index=index, count=count, heads=pts, path=path))
    items.sort(key=lambda i: i.index)
    perspective = None
    pfile = root / "perspective.csv"
    if pfile.is_file():
        perspective = np.loadtxt(pfile, delimiter=",", dtype=np.float64, ndmin=2)
    roi = None
    rfile = root / "roi_mask.png"
    if rfile.is_file():
        roi = read_image(rfile)[..., 0] > 0
    return RealDataset(root=root, kind=kind, items=items, video=video, perspective=perspective, roi=roi)


def read_image(path: Path) -> npt.NDArray[np.uint8]:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetError(f"{path}: not a readable image")
    out: npt.NDArray[np.uint8] = np.asarray(img, dtype=np.uint8)
    return out


def iter_images(ds: RealDataset, items: list[Item]) -> Iterator[tuple[Item, npt.NDArray[np.uint8]]]:
    """Decode the frames of `items` in order (a dataset's video is read once, front to back), black
    outside the dataset's counting region when it has one."""
    for it, img in _decode(ds, items):
        if ds.roi is not None and ds.roi.shape == img.shape[:2]:
            img[~ds.roi] = 0
        yield it, img


def _decode(ds: RealDataset, items: list[Item]) -> Iterator[tuple[Item, npt.NDArray[np.uint8]]]:
    if ds.video is None:
        for it in items:
            assert it.path is not None
            yield it, read_image(it.path)
        return
    import cv2

    wanted = {it.index: it for it in items}
    cap = cv2.VideoCapture(str(ds.video))
    if not cap.isOpened():
        raise DatasetError(f"{ds.video}: cannot open the video")
    try:
        n = 0
        while wanted:
            ok, img = cap.read()
            if not ok:
                break
            n += 1
            if n in wanted:
                yield wanted.pop(n), np.asarray(img, dtype=np.uint8)
    finally:
        cap.release()
    if wanted:
        raise DatasetError(f"{ds.video}: ended before frame {min(wanted)}")


def shared_data_root(repo_root: Path | None = None) -> Path:
    """`../shared/data` beside the repository (where CI and the workstations keep the real data)."""
    repo = repo_root or Path(__file__).resolve().parents[2]
    return repo.parent / "shared" / "data"


# ---- head kernels: where each person's unit of mass goes on a density map -------------------------


def knn_sigmas(
    heads: FloatArray, *, k: int = 3, beta: float = 0.3, lo: float = 1.5, hi: float = 24.0
) -> FloatArray:
    """Geometry-adaptive kernel widths (MCNN): beta x mean distance to the k nearest heads, in pixels."""
    n = len(heads)
    if n == 0:
        return np.zeros(0)
    if n == 1:
        return np.full(1, 8.0)
    kk = min(k, n - 1)
    near = np.empty((n, kk))
    for start in range(0, n, 512):  # chunks keep the distance matrix small for thousands of heads
        part = heads[start : start + 512]
        d2 = ((part[:, None, :] - heads[None, :, :]) ** 2).sum(axis=2)
        near[start : start + 512] = np.sqrt(np.partition(d2, kk, axis=1)[:, 1 : kk + 1])
    sig: FloatArray = np.clip(beta * near.mean(axis=1), lo, hi)
    return sig


def perspective_sigmas(heads: FloatArray, perspective: FloatArray, *, scale: float = 20.0) -> FloatArray:
    """Kernel widths from the Mall dataset's per-pixel perspective map, whose values fall as people get
    nearer (the spacing of neighbouring heads there is about 90 px / value): `scale` / value pixels."""
    h, w = perspective.shape
    rows = np.clip(heads[:, 1].astype(int), 0, h - 1)
    cols = np.clip(heads[:, 0].astype(int), 0, w - 1)
    sig: FloatArray = np.clip(scale / np.maximum(perspective[rows, cols], 1e-3), 1.5, 24.0)
    return sig


def density_target(
    points: FloatArray, sigmas: FloatArray, *, height: int, width: int, stride: int = 8
) -> npt.NDArray[np.float32]:
    """A (ceil(H/s), ceil(W/s)) map holding one unit per point inside the frame, spread by its sigma (px).

    Each kernel is normalised over the cells inside the frame, so the map sums to the number of
    points inside it exactly."""
    gh, gw = math.ceil(height / stride), math.ceil(width / stride)
    out = np.zeros((gh, gw), dtype=np.float64)
    for (u, v), s in zip(points, sigmas, strict=True):
        if not (0 <= u < width and 0 <= v < height):
            continue
        sig = max(float(s) / stride, 0.35)
        cu, cv_ = u / stride - 0.5, v / stride - 0.5
        r = max(1, math.ceil(3 * sig))
        i0, i1 = max(0, math.floor(cv_) - r), min(gh, math.floor(cv_) + r + 2)
        j0, j1 = max(0, math.floor(cu) - r), min(gw, math.floor(cu) + r + 2)
        gy = np.exp(-0.5 * ((np.arange(i0, i1) - cv_) / sig) ** 2)
        gx = np.exp(-0.5 * ((np.arange(j0, j1) - cu) / sig) ** 2)
        k = np.outer(gy, gx)
        total = k.sum()
        if total <= 0:  # pragma: no cover - a point inside the frame always has its own cell
            continue
        out[i0:i1, j0:j1] += k / total
    return out.astype(np.float32)


def item_sigmas(ds: RealDataset, item: Item) -> FloatArray:
    """The kernel widths of an item's heads: the perspective map when the dataset has one, else kNN."""
    if ds.perspective is not None:
        return perspective_sigmas(item.heads, ds.perspective)
    return knn_sigmas(item.heads)
