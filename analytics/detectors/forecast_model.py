"""The learned forecaster: a tiny MLP shared by every stream, trained by `beffroi train`.

Input: the last `window` values of a stream, normalised by the stream's own robust location and
scale (clipped to ±`clip`), plus one-hot device kind and event phase. Output: the next value in the
same units. Saved with `torch.save` as plain tensors and numbers (loaded with weights_only=True),
so inference runs on either backend of the array seam.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analytics.detectors.base import KIND_ORDER, N_PHASES

FORMAT = "beffroi.forecast.v1"
N_KINDS = len(KIND_ORDER) + 1  # the last one is "unknown kind"

NDArray = np.ndarray[Any, Any]


class ModelFileError(ValueError):
    """A forecast model file is missing, unreadable or of the wrong format; names the path."""


@dataclass(frozen=True)
class ForecastWeights:
    window: int
    hidden: int
    n_phases: int
    clip: float
    w_lag: NDArray  # [window, hidden]
    w_kind: NDArray  # [N_KINDS, hidden]
    w_phase: NDArray  # [n_phases, hidden]
    b_hidden: NDArray  # [hidden]
    w_out: NDArray  # [hidden]
    b_out: float
    residual_scale: float
    info: dict[str, Any] = field(default_factory=dict)


def build_module(*, window: int, hidden: int, n_phases: int = N_PHASES) -> Any:
    """The torch module that training optimises (inputs: lags, kind one-hot, phase one-hot)."""
    import torch

    return torch.nn.Sequential(
        torch.nn.Linear(window + N_KINDS + n_phases, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, 1),
    )


def weights_from_module(
    module: Any, *, window: int, n_phases: int, clip: float, residual_scale: float, info: dict[str, Any]
) -> ForecastWeights:
    first, last = module[0], module[2]
    w1 = first.weight.detach().cpu().numpy().T.astype(np.float64)  # [inputs, hidden]
    return ForecastWeights(
        window=window,
        hidden=w1.shape[1],
        n_phases=n_phases,
        clip=clip,
        w_lag=w1[:window],
        w_kind=w1[window : window + N_KINDS],
        w_phase=w1[window + N_KINDS :],
        b_hidden=first.bias.detach().cpu().numpy().astype(np.float64),
        w_out=last.weight.detach().cpu().numpy()[0].astype(np.float64),
        b_out=float(last.bias.detach().cpu().numpy()[0]),
        residual_scale=residual_scale,
        info=info,
    )


def save_weights(path: Path | str, weights: ForecastWeights) -> None:
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "format": FORMAT,
        "window": weights.window,
        "hidden": weights.hidden,
        "n_phases": weights.n_phases,
        "n_kinds": N_KINDS,
        "clip": weights.clip,
        "b_out": weights.b_out,
        "residual_scale": weights.residual_scale,
        "info": {str(k): str(v) for k, v in weights.info.items()},
        "tensors": {
            name: torch.from_numpy(np.ascontiguousarray(getattr(weights, name)))
            for name in ("w_lag", "w_kind", "w_phase", "b_hidden", "w_out")
        },
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(blob, tmp)
    tmp.replace(path)


def load_weights(path: Path | str) -> ForecastWeights:
    import torch

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file (train one with `beffroi train`)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelFileError(f"{path}: not a readable model file ({exc})") from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a {FORMAT} model file")
    if blob.get("n_kinds") != N_KINDS:
        raise ModelFileError(
            f"{path}: trained for {blob.get('n_kinds')} device kinds, this build has {N_KINDS}"
        )
    t = blob["tensors"]
    weights = ForecastWeights(
        window=int(blob["window"]),
        hidden=int(blob["hidden"]),
        n_phases=int(blob["n_phases"]),
        clip=float(blob["clip"]),
        w_lag=t["w_lag"].numpy().astype(np.float64),
        w_kind=t["w_kind"].numpy().astype(np.float64),
        w_phase=t["w_phase"].numpy().astype(np.float64),
        b_hidden=t["b_hidden"].numpy().astype(np.float64),
        w_out=t["w_out"].numpy().astype(np.float64),
        b_out=float(blob["b_out"]),
        residual_scale=float(blob["residual_scale"]),
        info=dict(blob.get("info", {})),
    )
    shapes = {
        "w_lag": (weights.window, weights.hidden),
        "w_kind": (N_KINDS, weights.hidden),
        "w_phase": (weights.n_phases, weights.hidden),
        "b_hidden": (weights.hidden,),
        "w_out": (weights.hidden,),
    }
    for name, shape in shapes.items():
        if getattr(weights, name).shape != shape:
            raise ModelFileError(
                f"{path}: tensor {name} has shape {getattr(weights, name).shape}, expected {shape}"
            )
    return weights
