"""`beffroi whatif SCENARIO --set PATH=VALUE ... [--out DIR]`: run the scenario's crowd model with and
without the changes and compare peak density, minutes at level E/F and egress per site and zone."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _handle(args: argparse.Namespace) -> int:
    from simulators.scenario_file import load_scenario
    from simulators.whatif import ChangeError, apply_changes, run_crowd
    from tower.whatif import write_report

    if not args.set:
        print("whatif: give at least one --set PATH=VALUE", file=sys.stderr)
        return 2
    base_sc = load_scenario(args.scenario)
    try:
        new_sc = apply_changes(base_sc, args.set)
    except ChangeError as exc:
        print(exc, file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    base = run_crowd(base_sc, sample_s=args.sample)
    new = run_crowd(new_sc, sample_s=args.sample)
    wall = time.perf_counter() - t0
    rows = write_report(base, new, args.set, args.out, wall_s=wall)
    print(f"{args.out / 'report.md'} ({wall:.1f} s)")
    for r in rows:
        if not r.zone:
            print(
                f"  {r.site}: peak {r.peak_base:.2f} -> {r.peak_new:.2f} p/m2, E/F zone-minutes "
                f"{r.ef_min_base:.0f} -> {r.ef_min_new:.0f}, egress {r.egress_base / 60:.1f} -> "
                f"{r.egress_new / 60:.1f} min"
            )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "whatif",
        help="compare a scenario's crowd with and without changes (close a gate, more arrivals, ...)",
        description="Runs the scenario's crowd model (no sensors) twice, as written and with the --set "
        "changes, and writes DIR/report.md, DIR/comparison.csv and PNG plots: per site and zone the peak "
        "density, the minutes at Fruin level E or F and the egress time. PATH walks the scenario file "
        "(dots; list elements by index, id, site or event, or *); `venue.` walks into its venue file. "
        "Examples: timeline.kick_off.at=21:30, timeline.kick_off.at+=30m, "
        "crowd.*.arrivals.*.count*=1.2, venue.sites.sdf.exits.gate-d=closed, "
        "venue.sites.sdf.exits.gate-d.width_m*=1.5, incidents.crush-gate-d=removed.",
    )
    p.add_argument("scenario", type=Path, metavar="SCENARIO")
    p.add_argument(
        "--set", action="append", default=[], metavar="PATH=VALUE", help="a change (repeat for several)"
    )
    p.add_argument("--out", type=Path, default=Path("runs/whatif"), metavar="DIR")
    p.add_argument("--sample", type=float, default=10.0, help="seconds between samples (default 10)")
    p.set_defaults(handler=_handle)
