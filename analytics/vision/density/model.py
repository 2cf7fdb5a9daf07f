"""Crowd density-map regression (a small CSRNet): where boxes fail, count by integrating density.

The network maps a BGR frame to a map at 1/8 resolution whose cells hold persons (at their feet,
so that cells land on the ground through the camera's homography). Counting a zone is summing
its cells. Weights are files written by `beffroi train-density`: a state dict plus the shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

Image = npt.NDArray[np.uint8]
DensityMap = npt.NDArray[np.float32]

FORMAT = "beffroi-density/1"
#: the network predicts persons x DENSITY_SCALE per cell (keeps targets in a trainable range)
DENSITY_SCALE = 100.0


@dataclass(frozen=True)
class DensityShape:
    width: int = 32  # channels of the first stage; later stages use 2x and 2x
    dilated: int = 3  # dilated layers in the back end

    @property
    def stride(self) -> int:
        return 8


def _conv(cin: int, cout: int, *, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class DensityNet(nn.Module):
    def __init__(self, shape: DensityShape = DensityShape()) -> None:
        super().__init__()
        c = shape.width
        self.shape = shape
        self.front = nn.Sequential(
            _conv(3, c // 2, stride=2),
            _conv(c // 2, c, stride=2),
            _conv(c, c),
            _conv(c, 2 * c, stride=2),
            _conv(2 * c, 2 * c),
        )
        self.back = nn.Sequential(*[_conv(2 * c, 2 * c, dilation=2) for _ in range(shape.dilated)])
        self.head = nn.Conv2d(2 * c, 1, 1)
        self.register_buffer("mean", torch.tensor([0.406, 0.456, 0.485]).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor([0.225, 0.224, 0.229]).view(1, 3, 1, 1) * 255.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, H, W) BGR 0..255 floats -> (B, 1, H/8, W/8) persons x DENSITY_SCALE per cell.

        The output is linear (a final ReLU can die in training); `DensityEstimator` clips it at 0."""
        x = (x - self.get_buffer("mean")) / self.get_buffer("std")
        out: torch.Tensor = self.head(self.back(self.front(x)))
        return out


def save_density(net: DensityNet, path: Path, *, meta: dict[str, Any] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    torch.save({"format": FORMAT, "shape": asdict(net.shape), "state_dict": state, "meta": meta or {}}, path)
    return path


def load_density(path: Path | str, *, device: str | torch.device = "cpu") -> DensityNet:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"density weights {p} do not exist (train them with `beffroi train-density`)")
    blob = torch.load(p, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"density weights {p}: not a {FORMAT} file")
    net = DensityNet(DensityShape(**blob["shape"]))
    net.load_state_dict(blob["state_dict"])
    return net.to(device).eval()


def density_meta(path: Path | str) -> dict[str, Any]:
    """The `meta` a weights file was saved with (training data, epochs, count calibration)."""
    blob = torch.load(Path(path), map_location="cpu", weights_only=True)
    meta = blob.get("meta", {}) if isinstance(blob, dict) else {}
    return dict(meta)


def fuse_batchnorm(net: DensityNet) -> DensityNet:
    """For inference: fold each batch norm into the convolution before it (a third less time on CPU)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for m in net.modules():
        if isinstance(m, nn.Sequential) and len(m) == 3 and isinstance(m[1], nn.BatchNorm2d):
            conv, bn = m[0], m[1]
            assert isinstance(conv, nn.Conv2d)
            m[0] = fuse_conv_bn_eval(conv.eval(), bn.eval())
            m[1] = nn.Identity()
    return net


class DensityEstimator:
    """Batched density maps for frames of any size (padded to a multiple of 8)."""

    def __init__(
        self,
        weights: Path | str,
        *,
        device: Literal["auto", "cpu", "cuda"] = "auto",
        half: bool | None = None,
        batch: int = 16,
    ) -> None:
        cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
        self.device = torch.device("cuda" if cuda else "cpu")
        self.half = bool(half if half is not None else cuda)
        self.net = fuse_batchnorm(load_density(weights, device=self.device))
        if self.half:
            self.net = self.net.half()
        self.batch = batch

    def estimate(
        self, images: Sequence[Image], *, from_rows: Sequence[int] | None = None
    ) -> list[DensityMap]:
        """One map per frame, (ceil(H/8), ceil(W/8)), in persons per cell.

        `from_rows` (multiples of 8, one per frame) runs the network on the frame below that row only
        (the part a camera counts in, with room above for the bodies of people standing at its top):
        the cells above are left at zero."""
        tops = [int(r) for r in from_rows] if from_rows is not None else [0] * len(images)
        if any(r % 8 or r < 0 for r in tops):
            raise ValueError(f"density: from_rows must be multiples of 8, got {tops}")
        out: list[DensityMap | None] = [None] * len(images)
        groups: dict[tuple[tuple[int, ...], int], list[int]] = {}
        for i, (img, top) in enumerate(zip(images, tops, strict=True)):
            top = min(top, (img.shape[0] - 1) // 8 * 8)
            groups.setdefault((img.shape, top), []).append(i)
        for (shape, top), idxs in groups.items():
            for start in range(0, len(idxs), self.batch):
                chunk_idx = idxs[start : start + self.batch]
                chunk = np.stack([images[i][top:] for i in chunk_idx])
                for i, m in zip(chunk_idx, self._run(chunk), strict=True):
                    if top:
                        full = np.zeros(((shape[0] + 7) // 8, m.shape[1]), np.float32)
                        full[top // 8 :] = m
                        m = full
                    out[i] = m
        return [m for m in out if m is not None]

    def _run(self, chunk: npt.NDArray[np.uint8]) -> list[DensityMap]:
        h, w = chunk.shape[1:3]
        ph, pw = (-h) % 8, (-w) % 8
        with torch.inference_mode():
            x = torch.from_numpy(chunk).to(self.device).permute(0, 3, 1, 2)
            x = x.half() if self.half else x.float()
            if ph or pw:
                x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate")
            d = self.net(x)[:, 0].float().clamp_(min=0.0) / DENSITY_SCALE
            maps = d.cpu().numpy().astype(np.float32)
        return list(maps)
