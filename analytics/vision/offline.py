"""Import ultralytics without network access: no online check, no telemetry, no downloads.

ultralytics resolves DNS at import time unless YOLO_OFFLINE is set, downloads a font for plots,
and downloads a reference model for its AMP check. Import it only through `ultralytics_offline()`,
and pass `OFFLINE_TRAIN_ARGS` to training.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import Any

#: training arguments that keep ultralytics from fetching anything (AMP check model, plot fonts)
OFFLINE_TRAIN_ARGS: dict[str, Any] = {"amp": False, "plots": False}


def _local_font(font: str = "Arial.ttf") -> Path:
    """Stands in for ultralytics' `check_font`, which downloads Arial: matplotlib's bundled DejaVu Sans."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


def ultralytics_offline() -> ModuleType:
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ.setdefault("YOLO_VERBOSE", "False")
    import ultralytics
    import ultralytics.data.utils
    import ultralytics.utils.plotting
    from ultralytics.utils import SETTINGS

    if SETTINGS.get("sync"):
        SETTINGS.update({"sync": False})  # type: ignore[no-untyped-call]
    # dataset checks fetch a font for plot labels even with plots off
    for module in (ultralytics.data.utils, ultralytics.utils.plotting):
        if hasattr(module, "check_font"):
            setattr(module, "check_font", _local_font)  # noqa: B010 - the module attribute is untyped
    return ultralytics


def require_weights(path: Path | str) -> Path:
    """The weights file at `path`; refuses names that ultralytics would otherwise download."""
    p = Path(path)
    if p.suffix in {".yaml", ".yml"}:
        raise ValueError(f"weights {p}: a model definition, not trained weights (use beffroi train-detector)")
    if not p.is_file():
        raise FileNotFoundError(
            f"weights file {p} does not exist (nothing is downloaded; train one with "
            "`beffroi train-detector` or give the path of your own)"
        )
    return p
