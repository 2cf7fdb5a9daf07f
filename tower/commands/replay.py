"""`beffroi replay --from ISO --to ISO [--sites A,B] [--settings CANDIDATE.yaml] [--speed N|max]
[--truth DIR] --out DIR`: re-run a recorded window through the detectors and rules, in isolation, and
compare with the recorded alerts (DIR/alerts.csv, DIR/report.md with plots); with a simulator's
ground truth, both sides' NAB-style scores, precision and recall."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--speed: a number or 'max', not {text!r}") from exc
    if value <= 0:
        raise argparse.ArgumentTypeError("--speed must be positive")
    return value


def _handle(args: argparse.Namespace) -> int:
    from analytics.replay import Progress, ReplayWindow, compare, replay
    from analytics.replay_report import write_report
    from analytics.replay_truth import TruthError, load_truth, precision, recall, score
    from beffroi.clock import parse_iso
    from beffroi.settings import load_venue_for
    from beffroi.store_factory import make_store
    from beffroi.yamlconf import ConfigError
    from tower.settings import load_settings

    try:
        window = ReplayWindow(
            since=parse_iso(args.from_time, what="--from"),
            until=parse_iso(args.to_time, what="--to"),
            site_ids=tuple(s for s in args.sites.split(",") if s) if args.sites else None,
        )
    except ValueError as exc:
        print(f"beffroi replay: {exc}", file=sys.stderr)
        return 2
    try:
        truth = load_truth(Path(args.truth)) if args.truth else None
    except TruthError as exc:
        print(f"beffroi replay: --truth: {exc}", file=sys.stderr)
        return 2
    live = load_settings(args.live_settings)
    candidate = load_settings(args.settings) if args.settings else live
    if args.settings:
        # the candidate changes what detects, not where the data is
        candidate = candidate.model_copy(
            update={"mode": live.mode, "sqlite": live.sqlite, "postgres": live.postgres, "venue": live.venue}
        )
    try:
        venue = load_venue_for(live) if live.venue is not None else None
    except ConfigError as exc:
        print(f"beffroi replay: {exc}", file=sys.stderr)
        return 2

    def show(p: Progress) -> None:
        print(
            f"\rreplay {100 * p.fraction:5.1f}% {p.reached:%H:%M:%S} {p.readings} readings "
            f"{p.zone_states} zone states {p.alerts} alerts {p.wall_s:.1f}s",
            end="",
            file=sys.stderr,
            flush=True,
        )

    with make_store(live, migrate=False) as store:
        result = replay(store, candidate, window, venue=venue, speed=args.speed, progress=show)
    print(file=sys.stderr)
    cmp = compare(result.recorded, result.alerts)
    scores = score(result, truth) if truth is not None else None
    label = args.settings or "as recorded"
    report = write_report(result, cmp, Path(args.out), settings_label=label, truth=scores)
    print(
        f"replayed {window.span_s / 3600:.2f} h in {result.wall_s:.1f} s ({result.speedup:,.0f}x): "
        f"{len(result.recorded)} recorded, {len(result.alerts)} replayed alerts; "
        + ", ".join(f"{c} {cmp.count(c)}" for c in ("same", "earlier", "later", "added", "removed"))
    )
    if scores is not None:
        for side, ev in scores.sides.items():
            p, r = precision(ev), recall(ev)
            print(
                f"  {side}: NAB standard {ev.nab['standard'].score:.1f}, precision "
                f"{'n/a' if p is None else f'{p:.2f}'}, recall {'n/a' if r is None else f'{r:.2f}'}"
            )
    print(f"  {report}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("replay", help="re-run a recorded window through the detectors and rules")
    p.add_argument("--from", dest="from_time", required=True, metavar="ISO", help="window start")
    p.add_argument("--to", dest="to_time", required=True, metavar="ISO", help="window end (excluded)")
    p.add_argument("--sites", metavar="A,B", help="only these sites (default: every site with inputs)")
    p.add_argument("--settings", metavar="CANDIDATE", help="candidate settings YAML (default: as recorded)")
    p.add_argument(
        "--live-settings", metavar="FILE", help="settings of the live system (where the recording is)"
    )
    p.add_argument("--speed", type=_speed, default=None, metavar="N|max", help="x real time (default max)")
    p.add_argument(
        "--truth", metavar="DIR", help="a simulator's ground truth (labels.json): score both sides"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="report directory")
    p.set_defaults(handler=_handle)
