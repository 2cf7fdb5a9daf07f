"""Benchmark of the sensor simulator: readings generated per second in-process, on one core.

    python -m bench.bench_simulator [--scenario scenarios/stadium.yaml] [--scales 1,10] [--ticks 600]

One reading = one device's Live Objects payload, fully encoded. The pipeline figure covers the whole
tick: crowd model, incident effects, sensor models, faults, ground truth written to disk, payload
encoding, and a call to a publisher that drops the bytes. In the same run, side by side:
- baseline: `json.dumps` of the same readings as ready-made dicts (no world, no model), the usual
  way to produce these payloads, and the ratio of the pipeline to it;
- the template encoder alone on the same readings, and its ratio to `json.dumps`;
- where the pipeline's time goes (crowd, sensors, encoding) and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from simulators.engine import KindBatch, Simulation
from simulators.scenario_file import load_scenario

REPO = Path(__file__).resolve().parents[1]


def _drop(device_id: str, payload: bytes) -> None:
    pass


def _as_dicts(sim: Simulation, batches: list[KindBatch]) -> list[dict[str, Any]]:
    """The tick's readings as the dicts a straightforward encoder would serialise."""
    stamp = sim.stamp().decode()
    sites = [inst.site.id for inst in sim.world.instances]
    out = []
    for b in batches:
        fields = [f.name for f in b.bank.spec.fields]
        for i, row in zip(b.idx.tolist(), b.values.tolist(), strict=True):
            d = b.bank.devices[i]
            out.append(
                {
                    "streamId": f"urn:lo:nsid:beffroi:{d.id}!{d.kind.value}",
                    "timestamp": stamp + ".000Z",
                    "model": b.bank.spec.model,
                    "value": dict(zip(fields, row, strict=True)),
                    "location": {"lat": d.location.lat, "lon": d.location.lon} if d.location else None,
                    "tags": [f"site:{sites[int(b.bank.site[i])]}", f"zone:{d.zone}"],
                }
            )
    return out


def bench(scenario_path: Path, scale: float, ticks: int, from_time: str) -> None:
    scenario = load_scenario(scenario_path)
    with tempfile.TemporaryDirectory() as tmp:
        sim = Simulation(scenario, scale=scale, out_dir=Path(tmp))
        from_s = scenario.at(from_time)
        while sim.model.t < from_s:
            sim.advance()
        sim.resync()
        for _ in range(20):  # warm-up
            for b in sim.step():
                sim.publish_batch(b, _drop)
        readings = 0
        crowd = sensors = encode = 0.0
        samples: list[list[KindBatch]] = []
        seen = 0
        start = time.perf_counter()
        for _k in range(ticks):
            t0 = time.perf_counter()
            sim.advance()
            t1 = time.perf_counter()
            batches = sim.step_readings()
            t2 = time.perf_counter()
            for b in batches:
                readings += sim.publish_batch(b, _drop)
            t3 = time.perf_counter()
            crowd += t1 - t0
            sensors += t2 - t1
            encode += t3 - t2
            if batches:
                seen += 1
                if seen % 5 == 1:
                    samples.append(batches)
        elapsed = time.perf_counter() - start
        rate = readings / elapsed
        # baseline and encoder alone on the same readings (a sample of ticks, repeated)
        dicts = [d for batches in samples for d in _as_dicts(sim, batches)]
        t0 = time.perf_counter()
        for d in dicts:
            json.dumps(d, separators=(",", ":")).encode()
        t_json = time.perf_counter() - t0
        n_sample = sum(len(b.idx) for batches in samples for b in batches)
        t0 = time.perf_counter()
        for batches in samples:
            for b in batches:
                sim.publish_batch(b, _drop)
        t_tmpl = time.perf_counter() - t0
        json_rate, tmpl_rate = len(dicts) / t_json, n_sample / t_tmpl
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        sites, devices = len(sim.world.instances), sim.world.device_count
        print(
            f"{scenario.name}, scale {scale:g}: {sites} sites, {devices:,} devices, "
            f"{sim.net.n_zones} zones, {ticks} ticks from {from_time}"
        )
        print(
            f"  pipeline (crowd + sensors + faults + truth + payloads): {rate:12,.0f} readings/s"
            f"   ({readings / ticks:,.0f} readings/tick, {elapsed / ticks * 1e3:.2f} ms/tick)"
        )
        print(
            f"    crowd model + truth {crowd / ticks * 1e3:.2f} ms/tick,"
            f" sensors + faults {sensors / ticks * 1e3:.2f} ms/tick,"
            f" encoding {encode / max(readings, 1) * 1e6:.2f} us/reading"
        )
        print(f"  baseline json.dumps of the same readings (dicts ready): {json_rate:12,.0f} readings/s")
        print(f"  template encoder alone on the same readings:             {tmpl_rate:12,.0f} readings/s")
        print(
            f"  ratio pipeline / json.dumps baseline: {rate / json_rate:.2f}x;"
            f" encoder / json.dumps: {tmpl_rate / json_rate:.2f}x;  peak RSS {rss_mb:,.0f} MB"
        )
        sim.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=Path, default=REPO / "scenarios" / "stadium.yaml")
    parser.add_argument("--scales", default="1,10", help="comma-separated scales (1 = JO scale)")
    parser.add_argument("--ticks", type=int, default=600, help="simulated seconds measured")
    parser.add_argument("--from", dest="from_time", default="kick_off-60m", help="where to start measuring")
    args = parser.parse_args(argv)
    for scale in (float(s) for s in args.scales.split(",")):
        bench(args.scenario, scale, args.ticks, args.from_time)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
