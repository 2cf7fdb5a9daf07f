"""Benchmark of the default detector stack: stream updates per second at 10,000 streams.

    python -m bench.bench_detectors [--streams 10000] [--ticks 400]

One update = one stream scored for one tick (every stream has a new value each tick). In the same
run, side by side on the same arrays:
- baseline: a bare NumPy EW-mean update (`m += a * (x - m)`, in place), the memory-bandwidth floor
  of touching one float per stream per tick, and the ratio of the stack to it;
- the default stack on the CPU (NumPy, float32);
- on CUDA when torch sees a device: a bare torch EW-mean baseline, the stack on torch eagerly, and
  the stack replayed from a captured CUDA graph (no per-step launches from Python).
Also printed: bytes of detector state per stream.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from analytics.detectors.backend import cuda_available, make_ops
from analytics.detectors.base import KIND_ORDER, Batch, StreamMeta
from analytics.detectors.stack import DetectorStack, StackConfig
from beffroi.devices import DeviceKind


def timed(
    fn: Callable[[int], Any], ticks: int, sync: Callable[[], None] = lambda: None, *, cpu: bool = False
) -> float:
    """Seconds per tick over `ticks` calls of fn(tick) (after a short warm-up): wall-clock time,
    or with `cpu` this process's CPU time (what a shared, busy machine does not distort)."""
    clock = time.process_time if cpu else time.perf_counter
    for i in range(min(20, ticks)):
        fn(i)
    sync()
    start = clock()
    for i in range(ticks):
        fn(i)
    sync()
    return (clock() - start) / ticks


def fleet_meta(streams: int) -> StreamMeta:
    """Streams as a venue has them: kinds in turn (so a third are people counts, a quarter
    environmental sensors judged for drift), peer groups of 8 streams, physical ranges."""
    kinds = [
        DeviceKind.ACOUSTIC,
        DeviceKind.GATE_COUNTER,
        DeviceKind.AIR_QUALITY,
        DeviceKind.CAMERA,
        DeviceKind.TEMPERATURE,
        DeviceKind.PRESENCE,
        DeviceKind.PERIMETER,
    ]
    kind = np.array([KIND_ORDER.index(kinds[i % len(kinds)]) for i in range(streams)], dtype=np.int64)
    counts = np.isin(
        kind, [KIND_ORDER.index(k) for k in (DeviceKind.GATE_COUNTER, DeviceKind.PRESENCE, DeviceKind.CAMERA)]
    )
    return StreamMeta(
        low=np.where(counts, 0.0, -30.0),
        high=np.full(streams, 1e6),
        resolution=np.where(counts, 1.0, 0.01),
        kind=kind,
        group=(np.arange(streams) // (8 * len(kinds))) * len(kinds) + np.arange(streams) % len(kinds),
        counts=counts,
    )


def inputs(streams: int, ticks: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    values = (20.0 + rng.standard_normal((ticks, streams))).astype(np.float32)
    phase = rng.integers(0, 5, streams)
    return values, phase


def bench_cpu(streams: int, ticks: int) -> dict[str, float]:
    values, phase = inputs(streams, ticks)
    present = np.ones(streams, np.float32)
    m = np.zeros(streams, np.float32)

    def baseline(i: int) -> None:
        x = values[i % ticks]
        m.__iadd__(0.02 * (x - m))

    stack = DetectorStack(StackConfig(backend="numpy"), meta=fleet_meta(streams))
    for i in range(60):  # warm the streams up so every detector runs its full path
        stack.step(1.7e9 + i, values[i], present, phase)

    def step(i: int) -> None:
        stack.step(1.7e9 + 60 + i, values[i % ticks], present, phase)

    t_base = timed(baseline, ticks)
    t_stack = timed(step, ticks)
    c_base = timed(baseline, ticks, cpu=True)
    c_stack = timed(step, ticks, cpu=True)
    return {
        "baseline": streams / t_base,
        "stack": streams / t_stack,
        "baseline_cpu": streams / c_base,
        "stack_cpu": streams / c_stack,
        "bytes": stack.bytes_per_stream(),
    }


def bench_cuda(streams: int, ticks: int) -> dict[str, float]:
    import torch

    ops = make_ops("torch", device="cuda")
    values_np, phase_np = inputs(streams, ticks)
    values = ops.asarray(values_np)
    phase = ops.asindex(phase_np)
    present = ops.asarray(np.ones(streams, np.float32))
    m = ops.zeros(streams)

    def baseline(i: int) -> None:
        m.add_(0.02 * (values[i % ticks] - m))

    results: dict[str, float] = {}
    sync = torch.cuda.synchronize
    results["baseline"] = streams / timed(baseline, ticks, sync)

    stack = DetectorStack(StackConfig(backend="torch", device="cuda"), meta=fleet_meta(streams), ops=ops)
    now = torch.zeros((), dtype=torch.float32, device="cuda")

    def eager(i: int) -> None:
        now.fill_(float(i))
        stack.update(Batch(now=now, values=values[i % ticks], present=present, phase=phase))

    for i in range(60):
        eager(i)
    results["stack"] = streams / timed(lambda i: eager(60 + i), ticks, sync)

    # capture one tick into a CUDA graph; replay it with the inputs copied into static buffers
    x_static = values[0].clone()
    try:
        side = torch.cuda.Stream()  # type: ignore[no-untyped-call]
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                stack.update(Batch(now=now, values=x_static, present=present, phase=phase))
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            stack.update(Batch(now=now, values=x_static, present=present, phase=phase))

        def replay(i: int) -> None:
            x_static.copy_(values[i % ticks])
            now.add_(1.0)
            graph.replay()

        results["stack_graph"] = streams / timed(replay, ticks, sync)
    except Exception as exc:
        print(f"  (CUDA graph capture failed: {exc!r}; eager figure only)")
    results["bytes"] = stack.bytes_per_stream()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_detectors", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--ticks", type=int, default=400)
    args = parser.parse_args(argv)
    detectors = ", ".join(c.type for c in StackConfig().detectors) + " + likelihood"
    print(f"default stack: {detectors}; {args.streams} streams, {args.ticks} ticks, all streams present")
    cpu = bench_cpu(args.streams, args.ticks)
    print(
        f"state: {cpu['bytes']:.0f} bytes per stream (float32), "
        f"{cpu['bytes'] * args.streams / 1e6:.1f} MB for {args.streams} streams"
    )
    for label, key in (("wall clock", ""), ("CPU time", "_cpu")):
        base, stack = cpu["baseline" + key], cpu["stack" + key]
        print(f"cpu  baseline EW-mean (numpy), {label:10s} {base / 1e6:10.1f} M updates/s")
        print(
            f"cpu  default stack (numpy),    {label:10s} {stack / 1e6:10.2f} M updates/s   "
            f"ratio to baseline {stack / base:.4f}   target >= 5 M/s"
        )
    load = os.getloadavg()[0]
    print(
        f"(load average {load:.1f} on {os.cpu_count()} cores: wall-clock figures drop when others share them)"
    )
    if cuda_available():
        import torch

        gpu = bench_cuda(args.streams, args.ticks)
        print(f"cuda device: {torch.cuda.get_device_name(0)}")
        print(f"cuda baseline EW-mean (torch)     {gpu['baseline'] / 1e6:10.1f} M updates/s")
        print(
            f"cuda default stack (torch eager)  {gpu['stack'] / 1e6:10.2f} M updates/s   "
            f"ratio to baseline {gpu['stack'] / gpu['baseline']:.3f}"
        )
        if "stack_graph" in gpu:
            print(
                f"cuda default stack (CUDA graph)   {gpu['stack_graph'] / 1e6:10.2f} M updates/s   "
                f"ratio to baseline {gpu['stack_graph'] / gpu['baseline']:.3f}   target >= 100 M/s"
            )
    else:
        print("cuda: no device visible to torch; CUDA figures skipped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
