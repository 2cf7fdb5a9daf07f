"""Training the forecaster (`beffroi train`) on normal stretches of recorded or simulated data.

Data: a directory of
- `*.jsonl`: one `Reading` JSON per line (what the pipeline carries); a series per device field,
  its kind from the reading's model;
- `*.csv` with `timestamp,value` (one series, kind unknown) or long form with a `stream` column
  (and optional `model`, `phase`);
- optional `labels.json` / `labels.jsonl` from the simulator: rows inside an incident window (of
  its site) or a fault window (of its device) are not learned from.
Normalisation replays the detector's own robust EW per series, so training sees exactly the
inputs the detector will compute; outliers beyond `clip` scales are left out too. CPU, seeded.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from analytics.detectors.backend import make_ops
from analytics.detectors.base import KIND_ORDER, N_PHASES
from analytics.detectors.forecast_model import N_KINDS, ForecastWeights, build_module, weights_from_module
from analytics.detectors.robust import SIGMA_PER_SCALE, robust_z
from analytics.detectors.streams import StreamTable
from beffroi.devices import KIND_BY_MODEL
from beffroi.events import Reading

NDArray = np.ndarray[Any, Any]


class TrainingDataError(ValueError):
    """Unusable training data; the message names the file (and line)."""


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window: int = Field(default=16, ge=2, le=256)
    hidden: int = Field(default=32, ge=2, le=1024)
    clip: float = Field(default=8.0, gt=0)
    alpha: float = Field(default=0.02, gt=0, le=1, description="as the detector's normalisation")
    rel_floor: float = 0.002
    abs_floor: float = 1e-6
    min_extra: int = Field(default=10, ge=0)
    epochs: int = Field(default=6, ge=1)
    batch_size: int = Field(default=512, ge=16)
    min_steps: int = Field(
        default=600, ge=1, description="optimiser steps at least (small data: more epochs)"
    )
    learning_rate: float = Field(default=3e-3, gt=0)
    max_samples: int = Field(default=300_000, ge=100)
    val_fraction: float = Field(default=0.1, gt=0, lt=0.5)
    seed: int = 0
    threads: int = Field(default=1, ge=1, description="torch CPU threads (the CPU is shared)")


@dataclass
class Series:
    key: str
    kind: int  # index in KIND_ORDER, -1 unknown
    values: NDArray  # float64, in time order
    phase: NDArray | None = None  # int64 per value
    exclude: NDArray | None = None  # bool per value: not a normal stretch
    counts: bool = False  # counts are learned in square-root units, as the stack scores them


@dataclass(frozen=True)
class Window:
    start: float
    end: float
    site: str | None = None
    device: str | None = None


def _labels(directory: Path) -> list[Window]:
    windows: list[Window] = []
    for path in sorted(directory.glob("labels*.json*")):
        text = path.read_text(encoding="utf-8")
        try:
            docs = (
                [json.loads(x) for x in text.splitlines() if x.strip()]
                if path.suffix == ".jsonl"
                else json.loads(text)
            )
        except json.JSONDecodeError as exc:
            raise TrainingDataError(f"{path}:{exc.lineno}: not JSON: {exc.msg}") from exc
        if isinstance(docs, dict):
            docs = [*docs.get("incidents", []), *docs.get("faults", [])]
        for d in docs:
            start, end = (datetime_s(d["start"]), datetime_s(d["end"]))
            windows.append(
                Window(start, end, site=d.get("site") if "device" not in d else None, device=d.get("device"))
            )
    return windows


def datetime_s(text: str | float) -> float:
    from analytics.detectors.series import parse_timestamp

    return parse_timestamp(str(text))


def load_series_dir(directory: Path | str) -> list[Series]:
    directory = Path(directory)
    if not directory.is_dir():
        raise TrainingDataError(f"{directory}: not a directory")
    windows = _labels(directory)
    raw: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.jsonl")):
        if path.name.startswith("labels"):
            continue
        with path.open(encoding="utf-8") as f:
            for line_no, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    r = Reading.model_validate_json(line)
                except ValueError as exc:
                    raise TrainingDataError(f"{path}:{line_no}: not a reading: {exc}") from exc
                spec = KIND_BY_MODEL.get(r.model)
                for name, v in StreamTable.fields_of(r):
                    field = next((f for f in spec.fields if f.name == name), None) if spec else None
                    entry = raw.setdefault(
                        f"{r.device_id}/{name}",
                        {
                            "kind": KIND_ORDER.index(spec.kind) if spec else -1,
                            "counts": field is not None and field.integer and field.high > 1,
                            "site": r.site_id,
                            "device": r.device_id,
                            "rows": [],
                        },
                    )
                    entry["rows"].append((r.ts.timestamp(), v, None))
    for path in sorted(directory.glob("*.csv")):
        _read_csv(path, raw)
    if not raw:
        raise TrainingDataError(f"{directory}: no *.jsonl readings or *.csv series found")
    out = []
    for key, entry in raw.items():
        rows = sorted(entry["rows"], key=lambda r: r[0])
        t = np.array([r[0] for r in rows])
        values = np.array([r[1] for r in rows], dtype=np.float64)
        phases = [r[2] for r in rows]
        exclude = np.zeros(len(rows), bool)
        for w in windows:
            if (w.device is not None and w.device == entry.get("device")) or (
                w.device is None and (w.site is None or w.site == entry.get("site"))
            ):
                exclude |= (t >= w.start) & (t <= w.end)
        phase = None if all(p is None for p in phases) else np.array([p or 0 for p in phases], dtype=np.int64)
        if entry.get("counts"):
            values = np.sign(values) * np.sqrt(np.abs(values))
        out.append(
            Series(
                key=key,
                kind=int(entry["kind"]),
                values=values,
                phase=phase,
                exclude=exclude,
                counts=bool(entry.get("counts")),
            )
        )
    return out


def _read_csv(path: Path, raw: dict[str, dict[str, Any]]) -> None:
    from analytics.detectors.series import parse_timestamp

    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        names = [n.strip().lower() for n in (reader.fieldnames or [])]
        if "timestamp" not in names or "value" not in names:
            raise TrainingDataError(
                f"{path}:1: header must name `timestamp` and `value` (got {reader.fieldnames})"
            )
        for row in reader:
            row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k is not None}
            line = reader.line_num
            try:
                t = parse_timestamp(row["timestamp"])
                v = float(row["value"]) if row["value"] not in ("", "nan", "NaN") else math.nan
                phase = int(row["phase"]) if row.get("phase") else None
            except ValueError as exc:
                raise TrainingDataError(f"{path}:{line}: {exc}") from exc
            if math.isnan(v):
                continue
            stream = row.get("stream") or path.stem
            model = row.get("model", "")
            spec = KIND_BY_MODEL.get(model)
            entry = raw.setdefault(stream, {"kind": KIND_ORDER.index(spec.kind) if spec else -1, "rows": []})
            entry["rows"].append((t, v, phase))


def _padded(series: list[Series]) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """[T, S] matrices: values, presence, phase, exclusion (series padded at their end)."""
    length = max(len(s.values) for s in series)
    values = np.zeros((length, len(series)))
    present = np.zeros((length, len(series)))
    phase = np.zeros((length, len(series)), dtype=np.int64)
    exclude = np.zeros((length, len(series)), dtype=bool)
    for i, s in enumerate(series):
        n = len(s.values)
        values[:n, i] = s.values
        present[:n, i] = 1.0
        if s.phase is not None:
            phase[:n, i] = np.minimum(s.phase, N_PHASES - 1)
        if s.exclude is not None:
            exclude[:n, i] = s.exclude
    return values, present, phase, exclude


def build_samples(series: list[Series], cfg: TrainConfig) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """(lags [N, W], kind [N], phase [N], target [N]) in the detector's normalised units."""
    ops = make_ops("numpy", dtype="float64")
    values, present, phases, exclude = _padded(series)
    n = len(series)
    loc, scale, count = ops.zeros(n), ops.zeros(n), ops.zeros(n)
    buf = np.zeros((n, cfg.window))
    kinds = np.array([k if k >= 0 else N_KINDS - 1 for k in (s.kind for s in series)], dtype=np.int64)
    lags, kind_out, phase_out, target = [], [], [], []
    for t in range(len(values)):
        x, w = values[t], present[t]
        s_eff = scale * SIGMA_PER_SCALE + np.abs(loc) * cfg.rel_floor + cfg.abs_floor
        ready = (w > 0) & (count >= cfg.window + cfg.min_extra) & ~exclude[t]
        if ready.any():
            y = (x - loc) / s_eff
            sel = ready & (np.abs(y) <= cfg.clip)
            lags.append(np.clip((buf[sel] - loc[sel, None]) / s_eff[sel, None], -cfg.clip, cfg.clip))
            kind_out.append(kinds[sel])
            phase_out.append(phases[t, sel])
            target.append(y[sel])
        robust_z(
            x,
            w,
            loc=loc,
            scale=scale,
            count=count,
            floor=np.abs(loc) * cfg.rel_floor + cfg.abs_floor,
            alpha=cfg.alpha,
            clip=2.0,
            min_count=2,
            ops=ops,
        )
        moved = w > 0
        buf[moved] = np.concatenate([buf[moved, 1:], x[moved, None]], axis=1)
    if not target or sum(len(t) for t in target) == 0:
        raise TrainingDataError(
            f"no training samples: series need more than {cfg.window + cfg.min_extra} values"
        )
    return np.concatenate(lags), np.concatenate(kind_out), np.concatenate(phase_out), np.concatenate(target)


def train_forecaster(
    series: list[Series], cfg: TrainConfig | None = None
) -> tuple[ForecastWeights, dict[str, float]]:
    """Fit the MLP; returns its weights and validation metrics (MAE of the model and of 'no change')."""
    import torch

    cfg = cfg or TrainConfig()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    lags, kind, phase, target = build_samples(series, cfg)
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(target))[: cfg.max_samples]
    n_val = max(1, int(len(order) * cfg.val_fraction))
    val, train = order[:n_val], order[n_val:]

    def features(idx: NDArray) -> Any:
        x = np.concatenate([lags[idx], np.eye(N_KINDS)[kind[idx]], np.eye(N_PHASES)[phase[idx]]], axis=1)
        return torch.as_tensor(x, dtype=torch.float32)

    module = build_module(window=cfg.window, hidden=cfg.hidden, n_phases=N_PHASES)
    opt = torch.optim.Adam(module.parameters(), lr=cfg.learning_rate)
    loss_fn = torch.nn.SmoothL1Loss()
    y_all = torch.as_tensor(target, dtype=torch.float32)
    x_train = features(train)
    y_train = y_all[train]
    steps_per_epoch = max(1, math.ceil(len(train) / cfg.batch_size))
    for _ in range(max(cfg.epochs, math.ceil(cfg.min_steps / steps_per_epoch))):
        perm = torch.as_tensor(rng.permutation(len(train)))
        for start in range(0, len(train), cfg.batch_size):
            b = perm[start : start + cfg.batch_size]
            opt.zero_grad()
            loss = loss_fn(module(x_train[b])[:, 0], y_train[b])
            loss.backward()
            opt.step()
    with torch.no_grad():
        err = (module(features(val))[:, 0] - y_all[val]).abs().numpy()
    naive = np.abs(lags[val, -1] - target[val])
    metrics = {"samples": float(len(target)), "val_mae": float(err.mean()), "naive_mae": float(naive.mean())}
    weights = weights_from_module(
        module,
        window=cfg.window,
        n_phases=N_PHASES,
        clip=cfg.clip,
        residual_scale=float(np.median(err)),
        info={"series": len(series), **{k: f"{v:.4g}" for k, v in metrics.items()}},
    )
    return weights, metrics
