"""Train the density-map model on simulator frames (a dataset directory from the camera simulator).

Targets put one person of mass at each person's feet, spread by a Gaussian whose width follows the
person's size in the image, on the model's 1/8 grid; the mass of a person whose feet are in the
frame stays entirely in the frame, so a map sums to the true count.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import torch

from analytics.vision.density.model import DENSITY_SCALE, DensityNet, DensityShape, load_density, save_density
from beffroi.images import as_image

log = logging.getLogger(__name__)

STRIDE = 8


@dataclass(frozen=True)
class DensityTraining:
    epochs: int = 40
    batch: int = 8
    lr: float = 2e-3
    crop: tuple[int, int] = (192, 320)  # (h, w) training crops, multiples of 8
    crops_per_image: int = 2
    width: int = 32
    seed: int = 0
    val_fraction: float = 0.1
    threads: int | None = None
    init: Path | None = None  # weights to fine-tune (else from scratch)


def target_map(
    persons: list[dict[str, Any]], *, height: int, width: int, stride: int = STRIDE
) -> npt.NDArray[np.float32]:
    """Density target on the (ceil(H/s), ceil(W/s)) grid, summing to the number of persons."""
    gh, gw = math.ceil(height / stride), math.ceil(width / stride)
    out = np.zeros((gh, gw), dtype=np.float64)
    for p in persons:
        u, v = p["foot"]
        _, y1, _, y2 = p["box"]
        sigma = float(np.clip(0.12 * max(y2 - y1, 1.0), 2.0, 16.0)) / stride
        cu, cv_ = u / stride - 0.5, v / stride - 0.5
        r = max(1, math.ceil(3 * sigma))
        i0, i1 = max(0, math.floor(cv_) - r), min(gh, math.floor(cv_) + r + 2)
        j0, j1 = max(0, math.floor(cu) - r), min(gw, math.floor(cu) + r + 2)
        if i0 >= i1 or j0 >= j1:
            continue
        gy = np.exp(-0.5 * ((np.arange(i0, i1) - cv_) / sigma) ** 2)
        gx = np.exp(-0.5 * ((np.arange(j0, j1) - cu) / sigma) ** 2)
        k = np.outer(gy, gx)
        total = k.sum()
        if total <= 0:
            continue
        out[i0:i1, j0:j1] += k / total
    return out.astype(np.float32)


@dataclass
class Sample:
    image: npt.NDArray[np.uint8]
    target: npt.NDArray[np.float32]
    count: int
    density: float  # persons/m² in view, from the truth


def load_samples(root: Path) -> list[Sample]:
    truth = root / "truth.jsonl"
    if not truth.is_file():
        raise FileNotFoundError(f"training frames: no {truth} (write frames with the camera simulator)")
    samples = []
    with truth.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            try:
                rec = json.loads(line)
                raw = cv2.imread(str(root / rec["image"]))
                if raw is None:
                    raise ValueError(f"cannot read {rec['image']}")
                img = as_image(raw)
                h, w = img.shape[:2]
                zones = rec.get("zones", {})
                area = sum(z["area_m2"] for z in zones.values())
                count_in_zones = sum(z["count"] for z in zones.values())
                samples.append(
                    Sample(
                        image=img,
                        target=target_map(rec["persons"], height=h, width=w),
                        count=int(rec["count"]),
                        density=count_in_zones / area if area > 0 else 0.0,
                    )
                )
            except (KeyError, ValueError, TypeError) as exc:
                raise ValueError(f"{truth}:{n}: bad record: {exc}") from exc
    if not samples:
        raise ValueError(f"{truth}: no frames")
    return samples


def _split(
    samples: list[Sample], fraction: float, rng: np.random.Generator
) -> tuple[list[Sample], list[Sample]]:
    idx = rng.permutation(len(samples))
    n_val = max(1, int(len(samples) * fraction)) if len(samples) > 4 else 0
    val = [samples[i] for i in idx[:n_val]]
    train = [samples[i] for i in idx[n_val:]]
    return train, val or train


def _crop(s: Sample, crop: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    h, w = s.image.shape[:2]
    ch, cw = min(crop[0], h - h % STRIDE), min(crop[1], w - w % STRIDE)
    gy = int(rng.integers(0, (h - ch) // STRIDE + 1))
    gx = int(rng.integers(0, (w - cw) // STRIDE + 1))
    img = s.image[gy * STRIDE : gy * STRIDE + ch, gx * STRIDE : gx * STRIDE + cw].astype(np.float32)
    tgt = s.target[gy : gy + ch // STRIDE, gx : gx + cw // STRIDE]
    if rng.random() < 0.5:
        img, tgt = img[:, ::-1], tgt[:, ::-1]
    gain = rng.uniform(0.6, 1.4, size=3).astype(np.float32) * 0.15 + float(rng.uniform(0.6, 1.3)) * 0.85
    img = np.clip(img * gain + rng.normal(0, 4), 0, 255)
    return np.ascontiguousarray(img), np.ascontiguousarray(tgt)


def evaluate(net: DensityNet, samples: list[Sample]) -> dict[str, float]:
    """Mean relative count error, over all frames and over frames above 2 persons/m²."""
    net.eval()
    errs, dense_errs = [], []
    with torch.inference_mode():
        for s in samples:
            h, w = s.image.shape[:2]
            x = torch.from_numpy(s.image[: h - h % STRIDE, : w - w % STRIDE].astype(np.float32))
            pred = float(net(x.permute(2, 0, 1)[None]).clamp(min=0.0).sum()) / DENSITY_SCALE
            true = float(s.target.sum())
            if true >= 5:
                e = abs(pred - true) / true
                errs.append(e)
                if s.density > 2.0:
                    dense_errs.append(e)
    return {
        "rel_err": float(np.mean(errs)) if errs else float("nan"),
        "rel_err_dense": float(np.mean(dense_errs)) if dense_errs else float("nan"),
    }


def train_density(
    frames: Path,
    out: Path,
    spec: DensityTraining = DensityTraining(),
    *,
    progress: Callable[[int, float, dict[str, float]], None] | None = None,
) -> dict[str, float]:
    """Train on `frames` (truth.jsonl + images/), write the weights to `out`; returns validation metrics."""
    if spec.threads:
        torch.set_num_threads(spec.threads)
    torch.manual_seed(spec.seed)
    rng = np.random.default_rng(spec.seed)
    train, val = _split(load_samples(frames), spec.val_fraction, rng)
    net = load_density(spec.init) if spec.init is not None else DensityNet(DensityShape(width=spec.width))
    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=spec.lr, weight_decay=1e-4)
    steps_per_epoch = max(1, math.ceil(len(train) * spec.crops_per_image / spec.batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=spec.lr, total_steps=spec.epochs * steps_per_epoch, pct_start=0.15
    )
    metrics: dict[str, float] = {}
    for epoch in range(spec.epochs):
        net.train()
        order = np.repeat(rng.permutation(len(train)), spec.crops_per_image)
        rng.shuffle(order)
        total = 0.0
        for b in range(steps_per_epoch):
            picks = order[b * spec.batch : (b + 1) * spec.batch]
            if len(picks) == 0:
                continue
            pairs = [_crop(train[i], spec.crop, rng) for i in picks]
            x = torch.from_numpy(np.stack([p[0] for p in pairs])).permute(0, 3, 1, 2)
            y = torch.from_numpy(np.stack([p[1] for p in pairs]))[:, None] * DENSITY_SCALE
            pred = net(x)
            true_count = y.sum(dim=(1, 2, 3))
            count_err = (pred.sum(dim=(1, 2, 3)) - true_count).abs() / (true_count + DENSITY_SCALE)
            loss = torch.nn.functional.mse_loss(pred, y) + count_err.mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
        metrics = evaluate(net, val)
        log.info("density epoch %d loss %.4f %s", epoch + 1, total / steps_per_epoch, metrics)
        if progress is not None:
            progress(epoch + 1, total / steps_per_epoch, metrics)
    save_density(net, out, meta={"epochs": spec.epochs, "frames": len(train), **metrics})
    return metrics
