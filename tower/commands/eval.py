"""`beffroi eval SCENARIO [--out DIR]`: simulate a scenario in-process, detect, score against its labels."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _handle(args: argparse.Namespace) -> int:
    from analytics.detectors.engine import EngineConfig
    from analytics.scoring.metrics import evaluate
    from analytics.scoring.report import write_report
    from tower.evaluate import simulate

    def progress(fraction: float) -> None:
        print(f"  simulated {100 * fraction:3.0f} %", file=sys.stderr, flush=True)

    engine = EngineConfig(tick_s=args.tick) if args.tick else None
    run = simulate(
        args.scenario, engine=engine, scale=args.scale, duration_s=args.duration, progress=progress
    )
    ev = evaluate(run)
    detectors = ", ".join(c.type for c in (engine or EngineConfig()).stack.detectors)
    report = write_report(ev, args.out, config_summary=f"Detector stack: {detectors} + likelihood.")
    print(f"{report}")
    for name, res in ev.nab.items():
        print(
            f"  NAB {name}: {res.score:.1f} ({res.detected}/{res.windows} windows, {res.false_positives} FP)"
        )
    found = sum(o.detected for o in ev.incidents)
    print(
        f"  incidents detected {found}/{len(ev.incidents)}; faults detected as faults "
        f"{sum(o.detected for o in ev.faults)}/{len(ev.faults)}; "
        f"faults reported as incidents {sum(o.as_incident > 0 for o in ev.faults)}"
    )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "eval",
        help="score the detectors on a scenario's labelled incidents and faults",
        description="Runs the scenario's simulator in-process through the detector engine and writes a "
        "markdown report with PNG plots: NAB-style windowed scores (standard, reward_low_FP_rate, "
        "reward_low_FN_rate), precision and recall per incident type, time to detect, sensor faults.",
    )
    p.add_argument("scenario", type=Path, metavar="SCENARIO")
    p.add_argument("--out", type=Path, default=Path("runs/eval"), metavar="DIR")
    p.add_argument("--scale", type=float, default=0.01, help="world scale (default: the core sites only)")
    p.add_argument(
        "--duration", type=float, default=None, help="simulated seconds (default: the whole scenario)"
    )
    p.add_argument(
        "--tick", type=float, default=None, help="detector tick in seconds (default: the scenario's)"
    )
    p.set_defaults(handler=_handle)
