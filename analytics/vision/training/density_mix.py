"""Train the density model on real annotated footage (train splits only) mixed with simulator frames.

Every sample is an image with point annotations and a kernel width per point (`realdata`:
perspective map or kNN for real heads; the figure's size for simulator frames). Each training crop
is cut at a random scale, position and flip with `cv2.warpAffine`, and its target is made from the
points that land inside it, so it sums to the number of people in the crop and scale augmentation
moves the kernels with the pixels. Photometric degradations (colour, gamma, blur, noise, JPEG,
greyscale) make the model hold on footage it never saw.

Training is resumable: a checkpoint (model, optimiser, step, RNG) is written every epoch next to
the output, and `resume=True` continues from it.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt
import torch

from analytics.vision.density.model import DENSITY_SCALE, DensityNet, DensityShape, load_density, save_density
from analytics.vision.realdata import (
    Split,
    density_target,
    item_sigmas,
    load_dataset,
    read_image,
)

log = logging.getLogger(__name__)

Anchor = Literal["head", "feet"]
FloatArray = npt.NDArray[np.float64]


@dataclass
class PointSample:
    image: npt.NDArray[np.uint8]
    points: FloatArray  # (N, 2) x, y
    sigmas: FloatArray  # (N,) pixels
    source: str


@dataclass(frozen=True)
class MixTraining:
    epochs: int = 40
    steps_per_epoch: int = 100
    batch: int = 8
    crop: int = 256
    lr: float = 1e-3
    width: int = 32
    dilated: int = 4
    scale_range: tuple[float, float] = (0.7, 1.4)
    on_people: float = 0.5  # share of crops centred on an annotated point (the rest anywhere)
    seed: int = 0
    threads: int | None = 1
    init: Path | None = None
    resume: bool = False
    weights: dict[str, float] = field(default_factory=dict)  # source -> sampling weight (default 1)
    ema: float = 0.0  # > 0: keep an exponential moving average of the weights (decay per step)
    local: float = 0.0  # weight of the local-count loss (block sums of the map, relative to the crop)
    local_block: int = 4  # cells per side of the local-count blocks
    balance: bool = False  # weigh each crop's squared error by 1/sqrt(1 + its count) (mean 1 per batch)


def real_samples(
    root: Path, split: Split = "train", *, hold_out_every: int = 0, held_out: bool = False
) -> list[PointSample]:
    """The `split` of a dataset in the shared format, heads with their perspective/kNN kernels.

    `hold_out_every` K > 0 sets aside the items whose index % K == 0 (to choose checkpoints on the
    train side): `held_out=False` gives the others, `held_out=True` those set aside."""
    ds = load_dataset(root)
    if ds.video is not None:
        raise ValueError(f"{root}: training reads frames/ or images/, not a video")
    out = []
    for it in ds.split(split):
        if hold_out_every > 0 and (it.index % hold_out_every == 0) != held_out:
            continue
        assert it.path is not None
        img = read_image(it.path)
        if ds.roi is not None and ds.roi.shape == img.shape[:2]:
            img[~ds.roi] = 0  # as `eval-count` sees it: heads are annotated inside the region only
        out.append(PointSample(img, it.heads, item_sigmas(ds, it), ds.name))
    if not out:
        raise ValueError(f"{root}: no {split} frames")
    return out


def simulator_samples(root: Path, *, anchor: Anchor = "head") -> list[PointSample]:
    """Frames written by the camera simulator (truth.jsonl + images/), at each person's head or feet."""
    truth = root / "truth.jsonl"
    if not truth.is_file():
        raise FileNotFoundError(f"training frames: no {truth} (write frames with the camera simulator)")
    out = []
    with truth.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            try:
                rec = json.loads(line)
                persons = rec["persons"]
                pts = np.array([p[anchor] for p in persons], dtype=np.float64).reshape(-1, 2)
                heights = np.array([p["box"][3] - p["box"][1] for p in persons], dtype=np.float64)
                share = 0.1 if anchor == "head" else 0.12
                sig = np.clip(share * np.maximum(heights, 1.0), 1.5, 16.0)
                out.append(PointSample(read_image(root / rec["image"]), pts, sig, "simulator"))
            except (KeyError, ValueError, TypeError) as exc:
                raise ValueError(f"{truth}:{n}: bad record: {exc}") from exc
    if not out:
        raise ValueError(f"{truth}: no frames")
    return out


def degrade(img: npt.NDArray[np.float32], rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """Photometric augmentation on a float BGR crop: colour and gamma, blur, noise, JPEG, greyscale."""
    gain = rng.uniform(0.85, 1.15, size=3).astype(np.float32) * float(rng.uniform(0.6, 1.3))
    img = img * gain
    if rng.random() < 0.3:
        gamma = float(rng.uniform(0.7, 1.4))
        img = 255.0 * np.power(np.clip(img, 0, 255) / 255.0, gamma)
    if rng.random() < 0.1:
        grey = img.mean(axis=2, keepdims=True)
        img = np.repeat(grey, 3, axis=2)
    if rng.random() < 0.25:
        k = float(rng.uniform(0.5, 1.6))
        img = np.asarray(cv2.GaussianBlur(img, (0, 0), k), dtype=np.float32)
    if rng.random() < 0.3:
        img = img + rng.normal(0, rng.uniform(2, 10), size=img.shape).astype(np.float32)
    img = np.clip(img, 0, 255)
    if rng.random() < 0.25:
        ok, buf = cv2.imencode(
            ".jpg", img.astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 80))]
        )
        back = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
        if back is not None:
            img = np.asarray(back, dtype=np.float32)
    return np.ascontiguousarray(img, dtype=np.float32)


def random_crop(
    s: PointSample,
    size: int,
    rng: np.random.Generator,
    scale_range: tuple[float, float],
    on_people: float = 0.5,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """A size x size crop at a random scale and place (padded with black off the image), and its target."""
    h, w = s.image.shape[:2]
    lo, hi = scale_range
    scale = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    win = size / scale
    # bias windows toward people: `on_people` of the time centre on a random annotated point
    if len(s.points) and rng.random() < on_people:
        cx, cy = s.points[int(rng.integers(len(s.points)))] + rng.normal(0, win / 4, size=2)
        x0, y0 = cx - win / 2, cy - win / 2
    else:
        x0 = float(rng.uniform(min(0.0, w - win), max(0.0, w - win)))
        y0 = float(rng.uniform(min(0.0, h - win), max(0.0, h - win)))
    x0 = float(np.clip(x0, min(0.0, w - win), max(0.0, w - win)))
    y0 = float(np.clip(y0, min(0.0, h - win), max(0.0, h - win)))
    flip = rng.random() < 0.5
    sx = -scale if flip else scale
    tx = (x0 + win) * scale if flip else -x0 * scale
    m = np.array([[sx, 0.0, tx], [0.0, scale, -y0 * scale]], dtype=np.float64)
    img = cv2.warpAffine(s.image, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    pts = s.points @ m[:, :2].T + m[:, 2] if len(s.points) else s.points
    target = density_target(pts, s.sigmas * scale, height=size, width=size)
    return degrade(img.astype(np.float32), rng), target


def _checkpoint_path(out: Path) -> Path:
    return out.with_suffix(out.suffix + ".ckpt")


def holdout_error(net: DensityNet, holdout: Sequence[PointSample]) -> dict[str, float]:
    """Whole-frame count error on train-side hold-out frames, as the counter will use the map: one
    gain (the median true/raw ratio over all frames) times the raw sum; the score is the mean over
    sources of each source's MAE / mean count (each source weighs the same)."""
    net.eval()
    raw: dict[str, list[float]] = {}
    true: dict[str, list[float]] = {}
    with torch.inference_mode():
        for s in holdout:
            h, w = s.image.shape[:2]
            x = torch.from_numpy(s.image[: h - h % 8, : w - w % 8].astype(np.float32))
            pred = float(net(x.permute(2, 0, 1)[None]).clamp(min=0.0).sum()) / DENSITY_SCALE
            raw.setdefault(s.source, []).append(pred)
            true.setdefault(s.source, []).append(float(len(s.points)))
    ratios = np.concatenate([np.array(true[k]) / np.maximum(np.array(raw[k]), 1e-6) for k in raw])
    gain = float(np.median(ratios))
    out: dict[str, float] = {"gain": gain}
    rels = []
    for k in sorted(raw):
        t, r = np.array(true[k]), np.array(raw[k])
        rel = float(np.mean(np.abs(gain * r - t)) / max(float(t.mean()), 1e-6))
        out[f"rel_{k}"] = rel
        out[f"raw_ratio_{k}"] = float(r.sum() / max(float(t.sum()), 1e-6))
        rels.append(rel)
    out["score"] = float(np.mean(rels))
    return out


def _local_count_error(pred: torch.Tensor, y: torch.Tensor, block: int) -> torch.Tensor:
    """Per crop: the summed |error| of the map's counts over `block` x `block` cells, relative to the
    crop's count (plus one person), so that mass on empty floor costs as much as a missed person."""
    k = max(1, block)
    diff = torch.nn.functional.avg_pool2d(pred - y, k, stride=k, ceil_mode=True) * (k * k)
    return diff.abs().sum(dim=(1, 2, 3)) / (y.sum(dim=(1, 2, 3)) + DENSITY_SCALE)


def train_mix(
    samples: Sequence[PointSample],
    out: Path,
    spec: MixTraining = MixTraining(),
    *,
    anchor: Anchor = "head",
    describe: dict[str, Any] | None = None,
    progress: Callable[[int, float, dict[str, float]], None] | None = None,
    holdout: Sequence[PointSample] = (),
) -> dict[str, float]:
    """Train on `samples` (sources drawn by `spec.weights`), write the weights to `out`.

    With `spec.ema`, the moving average of the weights is what is evaluated and written. With
    `holdout` (train-side frames left out of `samples`), each epoch is scored on them
    (`holdout_error`) and `out` keeps the best epoch; without, the last."""
    if not samples:
        raise ValueError("no training samples")
    if spec.threads:
        torch.set_num_threads(spec.threads)
    torch.manual_seed(spec.seed)
    rng = np.random.default_rng(spec.seed)
    by_source: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        by_source.setdefault(s.source, []).append(i)
    names = sorted(by_source)
    p = np.array([spec.weights.get(n, 1.0) for n in names], dtype=np.float64)
    p /= p.sum()
    if spec.init is not None:
        net = load_density(spec.init)
    else:
        net = DensityNet(DensityShape(width=spec.width, dilated=spec.dilated))
    net.train()
    ema = DensityNet(net.shape)
    ema.load_state_dict(net.state_dict())
    opt = torch.optim.AdamW(net.parameters(), lr=spec.lr, weight_decay=1e-4)
    total_steps = spec.epochs * spec.steps_per_epoch
    warm = max(1, total_steps // 20)

    def lr_at(step: int) -> float:  # linear warm-up, then cosine down to 2%
        if step < warm:
            return (step + 1) / warm
        t = (step - warm) / max(1, total_steps - warm)
        return 0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    start_epoch = 0
    best = math.inf
    ckpt = _checkpoint_path(out)
    if spec.resume and ckpt.is_file():
        blob = torch.load(ckpt, map_location="cpu", weights_only=False)
        net.load_state_dict(blob["model"])
        ema.load_state_dict(blob.get("ema", blob["model"]))
        opt.load_state_dict(blob["opt"])
        sched.load_state_dict(blob["sched"])
        rng.bit_generator.state = blob["rng"]
        start_epoch = int(blob["epoch"])
        best = float(blob.get("best", math.inf))
        log.info("resumed from %s at epoch %d", ckpt, start_epoch)
    started = time.monotonic()
    metrics: dict[str, float] = {}
    meta: dict[str, Any] = {"anchor": anchor, "spec": {k: str(v) for k, v in asdict(spec).items()}}
    meta |= describe or {}
    for epoch in range(start_epoch, spec.epochs):
        net.train()
        total, abs_err, people = 0.0, 0.0, 0.0
        for _ in range(spec.steps_per_epoch):
            srcs = rng.choice(len(names), size=spec.batch, p=p)
            pairs = []
            for k in srcs:
                pool = by_source[names[int(k)]]
                pairs.append(
                    random_crop(
                        samples[pool[int(rng.integers(len(pool)))]],
                        spec.crop,
                        rng,
                        spec.scale_range,
                        spec.on_people,
                    )
                )
            x = torch.from_numpy(np.stack([a for a, _ in pairs])).permute(0, 3, 1, 2)
            y = torch.from_numpy(np.stack([b for _, b in pairs]))[:, None] * DENSITY_SCALE
            pred = net(x)
            true_count = y.sum(dim=(1, 2, 3))
            pred_count = pred.sum(dim=(1, 2, 3))
            count_err = (pred_count - true_count).abs() / (true_count + DENSITY_SCALE)
            sq = ((pred - y) ** 2).mean(dim=(1, 2, 3))
            if spec.balance:  # dense crops would otherwise drive the squared error alone
                w = 1.0 / torch.sqrt(1.0 + true_count / DENSITY_SCALE)
                sq = sq * (w / w.mean())
            loss = sq.mean() + count_err.mean()
            if spec.local > 0:
                loss = loss + spec.local * _local_count_error(pred, y, spec.local_block).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            _ema_update(ema, net, spec.ema)
            total += float(loss.detach())
            abs_err += float((pred_count - true_count).abs().sum().detach()) / DENSITY_SCALE
            people += float(true_count.sum()) / DENSITY_SCALE
        n = spec.steps_per_epoch
        metrics = {
            "loss": total / n,
            "train_crop_mae": abs_err / (n * spec.batch),
            "train_crop_people": people / (n * spec.batch),
            "minutes": (time.monotonic() - started) / 60.0,
        }
        kept = ema if spec.ema > 0 else net
        improved = True
        if holdout:
            scored = holdout_error(kept, holdout)
            metrics |= {f"holdout_{k}": v for k, v in scored.items()}
            improved = scored["score"] < best
            best = min(best, scored["score"])
        torch.save(
            {
                "model": net.state_dict(),
                "ema": ema.state_dict(),
                "opt": opt.state_dict(),
                "sched": sched.state_dict(),
                "rng": rng.bit_generator.state,
                "epoch": epoch + 1,
                "best": best,
            },
            ckpt,
        )
        if improved:
            save_density(kept, out, meta=meta | {"epochs_done": epoch + 1, **metrics})
        if progress is not None:
            progress(epoch + 1, total / n, metrics | {"kept": float(improved)})
    return metrics


def _ema_update(ema: DensityNet, net: DensityNet, decay: float) -> None:
    """ema <- decay x ema + (1 - decay) x net on float tensors (BN statistics too); counters copied."""
    with torch.no_grad():
        src = net.state_dict()
        for k, v in ema.state_dict().items():
            if decay > 0 and v.is_floating_point():
                v.mul_(decay).add_(src[k].detach(), alpha=1.0 - decay)
            else:
                v.copy_(src[k])


def sample_counts(samples: Sequence[PointSample]) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in samples:
        out[s.source] = out.get(s.source, 0) + 1
    return out
