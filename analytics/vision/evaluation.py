"""Count accuracy on annotated footage: what `beffroi eval-count` runs and `bench/bench_count.py` reports.

For each backend, in the same run and on the same frames of one split: decode every frame, count,
and compare with the truth. Frames/s is end to end (decoding included, one frame at a time, as a
camera delivers them). `region` restricts counting to a rectangle of the frame (the crop is what
the counter sees, the heads inside it are the truth): a sparse part of a scene makes a sparse
scene to measure on.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analytics.vision.framecount import FrameCounter
from analytics.vision.realdata import Item, RealDataset, Split, iter_images

Region = tuple[int, int, int, int]  # x0, y0, x1, y1 pixels


@dataclass(frozen=True)
class CountMetrics:
    frames: int
    mae: float
    rmse: float
    rel_mae: float  # MAE / mean true count
    mean_rel_err: float  # mean of |err| / true over frames with people
    bias: float  # mean (predicted - true)
    mean_true: float

    @classmethod
    def of(cls, true: Sequence[float], pred: Sequence[float]) -> CountMetrics:
        t, p = np.asarray(true, np.float64), np.asarray(pred, np.float64)
        if len(t) == 0:
            nan = float("nan")
            return cls(0, nan, nan, nan, nan, nan, nan)
        err = p - t
        pos = t > 0
        mean_true = float(t.mean())
        return cls(
            frames=len(t),
            mae=float(np.abs(err).mean()),
            rmse=float(np.sqrt((err**2).mean())),
            rel_mae=float(np.abs(err).mean() / mean_true) if mean_true > 0 else float("nan"),
            mean_rel_err=float((np.abs(err[pos]) / t[pos]).mean()) if pos.any() else float("nan"),
            bias=float(err.mean()),
            mean_true=mean_true,
        )


@dataclass
class BackendRun:
    backend: str
    keys: list[str] = field(default_factory=list)
    true: list[float] = field(default_factory=list)
    pred: list[float] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # CPU time of this process over the run (all its threads)

    @property
    def metrics(self) -> CountMetrics:
        return CountMetrics.of(self.true, self.pred)

    @property
    def fps(self) -> float:
        return len(self.pred) / self.seconds if self.seconds > 0 else float("nan")

    @property
    def cpu_fps(self) -> float:
        """Frames per second of CPU time: the rate on a core of its own, whatever else shares the machine."""
        return len(self.pred) / self.cpu_seconds if self.cpu_seconds > 0 else float("nan")

    def summary(self) -> dict[str, Any]:
        m = self.metrics
        return {"backend": self.backend, "fps": self.fps, "cpu_fps": self.cpu_fps, **m.__dict__}


def region_truth(item: Item, region: Region | None) -> int:
    if region is None:
        return item.count
    x0, y0, x1, y1 = region
    h = item.heads
    return int(np.count_nonzero((h[:, 0] >= x0) & (h[:, 0] < x1) & (h[:, 1] >= y0) & (h[:, 1] < y1)))


def run_backend(
    ds: RealDataset,
    items: list[Item],
    counter: FrameCounter,
    *,
    region: Region | None = None,
    limit: int | None = None,
) -> BackendRun:
    """Count `items` with `counter`, end to end; the counter's state is reset between stills."""
    run = BackendRun(counter.name)
    items = items[:limit] if limit else items
    counter.reset()
    started, cpu_started = time.perf_counter(), time.process_time()
    for item, image in iter_images(ds, items):
        if region is not None:
            x0, y0, x1, y1 = region
            image = np.ascontiguousarray(image[y0:y1, x0:x1])
        if not ds.is_sequence:
            counter.reset()
        (c,) = counter.count([image])
        run.keys.append(item.key)
        run.true.append(float(region_truth(item, region)))
        run.pred.append(c)
    run.seconds = time.perf_counter() - started
    run.cpu_seconds = time.process_time() - cpu_started
    return run


def evaluate(
    ds: RealDataset,
    split: Split,
    counters: Sequence[Callable[[], FrameCounter]],
    *,
    region: Region | None = None,
    limit: int | None = None,
    log: Callable[[str], None] | None = None,
) -> list[BackendRun]:
    """Run each counter (made, used and closed one after the other) on the same frames."""
    items = ds.split(split)
    if not items:
        raise ValueError(f"{ds.root}: the {split} split is empty")
    runs = []
    for make in counters:
        counter = make()
        try:
            run = run_backend(ds, items, counter, region=region, limit=limit)
        finally:
            counter.close()
        runs.append(run)
        if log is not None:
            m = run.metrics
            log(f"{ds.name} {split} {run.backend}: MAE {m.mae:.2f} RMSE {m.rmse:.2f} {run.fps:.1f} frames/s")
    return runs


def _fmt(v: float, digits: int = 2) -> str:
    return "n/a" if math.isnan(v) else f"{v:.{digits}f}"


def markdown(ds: RealDataset, split: Split, runs: Sequence[BackendRun], *, region: Region | None) -> str:
    where = f", region x {region[0]}-{region[2]}, y {region[1]}-{region[3]}" if region else ""
    lines = [
        f"# Count accuracy: {ds.name}, {ds.describe_split(split)}{where}",
        "",
        "| backend | frames | mean true | MAE | RMSE | MAE / mean | mean rel. err | bias | frames/s "
        "| CPU frames/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in runs:
        m = r.metrics
        lines.append(
            f"| {r.backend} | {m.frames} | {_fmt(m.mean_true, 1)} | {_fmt(m.mae)} | {_fmt(m.rmse)} | "
            f"{_fmt(100 * m.rel_mae, 1)}% | {_fmt(100 * m.mean_rel_err, 1)}% | {_fmt(m.bias)} | "
            f"{_fmt(r.fps, 1)} | {_fmt(r.cpu_fps, 1)} |"
        )
    lines += [
        "",
        "Frames/s: end to end (decode + count), one frame at a time, wall clock on this machine;",
        "CPU frames/s: frames per second of this process's CPU time (the rate with its threads' cores",
        "to itself, when other work shares the machine).",
        "",
    ]
    return "\n".join(lines)


def plot(ds: RealDataset, split: Split, runs: Sequence[BackendRun], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4), dpi=100)
    x = np.arange(len(runs[0].true)) if runs else np.arange(0)
    if runs:
        ax.plot(x, runs[0].true, color="black", lw=2, label="true")
    for r in runs:
        ax.plot(x, r.pred, lw=1, label=f"{r.backend} (MAE {_fmt(r.metrics.mae)})")
    ax.set_xlabel("frame" if ds.is_sequence else "image (in split order)")
    ax.set_ylabel("people")
    ax.set_title(f"{ds.name}: {ds.describe_split(split)}")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(
    out: Path, ds: RealDataset, split: Split, runs: Sequence[BackendRun], *, region: Region | None = None
) -> dict[str, Path]:
    """report.md, report.json, counts.csv (per frame) and counts.png under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "markdown": out / "report.md",
        "json": out / "report.json",
        "csv": out / "counts.csv",
        "plot": out / "counts.png",
    }
    paths["markdown"].write_text(markdown(ds, split, runs, region=region), encoding="utf-8")
    blob = {
        "dataset": str(ds.root),
        "split": split,
        "split_rule": ds.describe_split(split),
        "region": list(region) if region else None,
        "backends": [r.summary() for r in runs],
    }
    paths["json"].write_text(json.dumps(blob, indent=2), encoding="utf-8")
    with paths["csv"].open("w", encoding="utf-8") as fh:
        fh.write("key,true," + ",".join(r.backend for r in runs) + "\n")
        for i, key in enumerate(runs[0].keys if runs else []):
            fh.write(f"{key},{runs[0].true[i]:g}," + ",".join(f"{r.pred[i]:.2f}" for r in runs) + "\n")
    plot(ds, split, runs, paths["plot"])
    return paths
