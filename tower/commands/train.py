"""`beffroi train --data DIR --out model.pt`: fit the forecast detector's model on recorded data."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _handle(args: argparse.Namespace) -> int:
    from analytics.detectors.forecast_model import save_weights
    from analytics.detectors.training import TrainConfig, TrainingDataError, load_series_dir, train_forecaster

    try:
        series = load_series_dir(args.data)
        config = TrainConfig(epochs=args.epochs, window=args.window, seed=args.seed)
        weights, metrics = train_forecaster(series, config)
    except TrainingDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    save_weights(args.out, weights)
    print(
        f"{args.out}: trained on {int(metrics['samples'])} samples from {len(series)} series; "
        f"validation MAE {metrics['val_mae']:.3f} (no-change forecast {metrics['naive_mae']:.3f}), "
        "in robust scales"
    )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "train",
        help="train the forecast detector on recorded readings (normal stretches)",
        description="Reads *.jsonl readings and/or *.csv series from DIR (labels*.json windows are "
        "left out) and writes a model file for the `forecast` detector (`model_path`).",
    )
    p.add_argument("--data", required=True, type=Path, metavar="DIR")
    p.add_argument("--out", required=True, type=Path, metavar="MODEL")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--window", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=_handle)
