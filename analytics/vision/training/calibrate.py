"""Count calibration of a head density model, fitted on the train splits of annotated datasets.

A model trained for a short CPU budget leaves low mass on empty floor and over-counts by summing
it. `fit_calibration` finds, on train frames only, the per-cell floor under which mass is dropped
and the gain applied to the rest (`framecount.CountCalibration`) that minimise the mean relative
error over the datasets (each weighs the same), and stores them in the weights' meta.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from analytics.vision.density.model import DensityEstimator
from analytics.vision.realdata import iter_images, load_dataset

FLOORS = tuple(float(f) for f in np.round(np.arange(0.0, 0.1001, 0.005), 3))


def fit_calibration(weights: Path, roots: Sequence[Path], *, per_set: int = 40) -> dict[str, Any]:
    est = DensityEstimator(weights, device="cpu")
    sets: list[tuple[np.ndarray, list[np.ndarray]]] = []
    for root in roots:
        ds = load_dataset(root)
        items = ds.split("train")
        pick = [items[int(i)] for i in np.linspace(0, len(items) - 1, min(per_set, len(items)))]
        true, maps = [], []
        for it, img in iter_images(ds, pick):
            (m,) = est.estimate([img])
            true.append(float(it.count))
            maps.append(m)
        sets.append((np.asarray(true), maps))
    best: dict[str, Any] = {}
    for floor in FLOORS:
        mass = [np.array([np.maximum(m - floor, 0.0).sum() for m in maps]) for _, maps in sets]
        ratios = np.concatenate([t / np.maximum(ms, 1e-6) for (t, _), ms in zip(sets, mass, strict=True)])
        gain = float(np.median(ratios))
        err = float(
            np.mean(
                [np.mean(np.abs(gain * ms - t)) / t.mean() for (t, _), ms in zip(sets, mass, strict=True)]
            )
        )
        if not best or err < best["train_rel_mae"]:
            best = {"floor": floor, "gain": gain, "train_rel_mae": err}
    best |= {"split": "train", "frames_per_set": per_set, "sets": [Path(r).name for r in roots]}
    blob = torch.load(weights, map_location="cpu", weights_only=True)
    blob.setdefault("meta", {})["calibration"] = best
    torch.save(blob, weights)
    return best
