"""`beffroi simulate SCENARIO [--speed X] [--scale N] [--seed S] [--duration D] [--from T]
[--processes K] [--out DIR] [--mode stack|embedded|dry] [--export-venue FILE]`: run a scenario's
sensors and write its ground truth under DIR (zones.csv, exits.csv, labels.json, faults.json)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _duration(text: str) -> float:
    from simulators.timeexpr import parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    if seconds <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return seconds


def _handle(args: argparse.Namespace) -> int:
    from simulators.scenario_file import load_scenario
    from tower.runner import RunOptions, export_venue, run
    from tower.settings import load_settings

    scenario_path = Path(args.scenario)
    if args.export_venue is not None:
        n = export_venue(scenario_path, Path(args.export_venue), scale=args.scale, seed=args.seed)
        print(f"{args.export_venue}: venue with {n} devices")
        return 0
    mode = args.mode or load_settings(args.settings).mode
    scenario = load_scenario(scenario_path)
    if args.from_time is not None:
        try:
            scenario.at(args.from_time)
        except (KeyError, ValueError) as exc:
            print(f"--from {args.from_time!r}: not a time of this scenario ({exc})", file=sys.stderr)
            return 2
    seed = args.seed if args.seed is not None else scenario.spec.seed
    out = Path(args.out) if args.out else Path("runs") / f"{scenario.name}-seed{seed}"
    opts = RunOptions(
        scenario=scenario_path,
        mode=mode,
        speed=args.speed,
        scale=args.scale,
        seed=args.seed,
        duration_s=args.duration,
        from_time=args.from_time,
        processes=args.processes,
        out_dir=out,
        start=args.start,
        settings=Path(args.settings) if args.settings else None,
        payloads=args.payloads,
        digest=args.digest,
        provision=args.provision,
    )
    summary = run(opts)
    print(
        f"{scenario.name}: {summary.sites} sites, {summary.devices} devices, start {summary.start}\n"
        f"  {summary.ticks} ticks ({summary.sim_s:.0f} s simulated) in {summary.wall_s:.1f} s wall, "
        f"{summary.readings} readings ({summary.readings_per_s:,.0f}/s), {summary.published} payloads "
        f"published ({mode})"
        + (f", at most {summary.behind_s:.1f} s behind the clock" if summary.behind_s else "")
    )
    if args.digest:
        for p, d in enumerate(summary.digests):
            print(f"  sha256 partition {p}: {d}")
    print(f"  ground truth: {out}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("simulate", help="run a scenario's simulated sensors, with ground truth")
    p.add_argument("scenario", metavar="SCENARIO", help="scenario YAML (see scenarios/)")
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second (0: flat out)")
    p.add_argument("--scale", type=float, help="sites x 50 at scale 1 (JO scale); default: the scenario's")
    p.add_argument("--seed", type=int, help="default: the scenario's")
    p.add_argument("--duration", type=_duration, help="simulate this long (e.g. 1h, 20m); default: all")
    p.add_argument(
        "--from", dest="from_time", metavar="TIME", help="start here, e.g. kick_off-30m or '20:15'"
    )
    p.add_argument("--processes", type=int, default=1, help="publishing processes (devices split by hash)")
    p.add_argument("--out", metavar="DIR", help="ground truth directory (default runs/<scenario>-seed<S>)")
    p.add_argument("--mode", choices=("stack", "embedded", "dry"), help="default: the settings' mode")
    p.add_argument("--settings", metavar="FILE", help="settings YAML (MQTT host, secrets from env)")
    p.add_argument(
        "--start",
        default="auto",
        help="simulated start: auto (run ends now; dry: scenario), scenario, or ISO",
    )
    p.add_argument("--payloads", action="store_true", help="dry mode: also write payloads.jsonl under --out")
    p.add_argument("--digest", action="store_true", help="dry mode: print the SHA-256 of all payloads")
    p.add_argument("--provision", action="store_true", help="stack mode: give the devices MQTT logins first")
    p.add_argument("--export-venue", metavar="FILE", help="write the venue at this scale and exit")
    p.set_defaults(handler=_handle)
