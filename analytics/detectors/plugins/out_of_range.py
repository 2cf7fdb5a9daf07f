"""Value outside the sensor's physical range (from `beffroi.devices.KIND_SPECS`): a broken sensor.

The fault holds from an out-of-range value until the stream's next in-range value.
"""

from __future__ import annotations

from typing import ClassVar, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from analytics.detectors.backend import Array
from analytics.detectors.base import Batch, Category, Detector, StateSpec, StreamMeta

KEY: Final = "out_of_range"


class OutOfRangeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["out_of_range"] = KEY
    margin: float = Field(default=0.0, ge=0, description="tolerance, as a fraction of the range width")


class OutOfRange(Detector):
    KEY: ClassVar[str] = KEY
    CATEGORY: ClassVar[Category] = "fault"
    config: OutOfRangeConfig

    def state_spec(self) -> dict[str, StateSpec]:
        return {"flag": StateSpec()}

    def bind(self, meta: StreamMeta) -> None:
        import numpy as np

        width = np.where(np.isfinite(meta.high - meta.low), meta.high - meta.low, 0.0)
        big = np.finfo(np.float32).max
        self._low = self.ops.asarray(np.maximum(meta.low - self.config.margin * width, -big))
        self._high = self.ops.asarray(np.minimum(meta.high + self.config.margin * width, big))

    def update(self, batch: Batch) -> Array:
        ops, st = self.ops, self.state
        x, w = batch.values, batch.present
        out = ops.as_float(x < self._low) + ops.as_float(x > self._high)
        st["flag"] += w * (out - st["flag"])
        return st["flag"] * 2.0
