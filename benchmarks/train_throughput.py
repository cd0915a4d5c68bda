"""Training throughput: iterations/s, samples/s, and data-loading time vs compute time per iteration.

Runs the real training step (``lgeseg.training.loop.train_epoch``: threaded crop assembly ->
pinned transfer -> ``augment_batch`` on the device -> forward/backward/step under bf16 autocast
on CUDA) on in-memory synthetic slices, and separately times the loader alone and the compute
alone (one fixed batch already on the device). Prints a Markdown table row per configuration.

    python benchmarks/train_throughput.py --device cpu --patch 128 128 --batch 8 --stages 5
    python benchmarks/train_throughput.py --device cuda --patch 256 192 --batch 44 --stages 6 --max-features 512

The second line mirrors nnU-Net's 2D plans for ACDC (patch 256x192 at batch 44, 6 stages,
512 features at most). Every speed-up of the step is on by default and has a flag that turns it
off, so a GPU run can ablate them one at a time: ``--no-compile`` / ``--compile-mode MODE``
(``reduce-overhead`` and ``max-autotune`` replay CUDA graphs), ``--no-bf16``, ``--no-channels-last``,
``--no-overlap-copies`` (host-to-device copy of the next batch while the step runs),
``--log-every 1`` (read the loss back, a host-device sync, every step instead of every 10) and
``--gather-rows`` (intensity augmentation on the gathered rows of each step, one sync per step).
``--cuda-graph`` replays the whole step (forward, loss, backward, optimizer) as one CUDA graph;
``--cudnn-benchmark`` lets cuDNN time its convolution algorithms for the fixed shapes (nnU-Net does;
the trainer does not).
``--profile FILE`` writes a torch.profiler summary of 10 steps (top kernels by GPU time, top ops
by CPU time, CPU and wall time per step, data wait) and ``FILE.trace.json.gz`` (chrome://tracing,
Perfetto); ``--sync-debug`` counts the host-device synchronisations per step (CUDA).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from lgeseg.augmentation import augment_batch, get_preset, required_crop_size
from lgeseg.core.device import resolve_device
from lgeseg.core.records import LABELS, NetworkTopology, NormalizationConfig, Plan
from lgeseg.training.data import BatchLoader, PatchSampler, TrainingCase
from lgeseg.training.loop import build_state, train_epoch, train_step, use_compile
from lgeseg.training.recipes import COMPILE_MODES, get_recipe


def make_plan(patch: tuple[int, int], batch: int, stages: int, max_features: int, base: int = 32) -> Plan:
    """A 2D plan with ``stages`` stages (features doubling from ``base``, capped) for ``patch`` (y, x)."""
    features = tuple(min(base * 2**i, max_features) for i in range(stages))
    strides = ((1, 1),) + ((2, 2),) * (stages - 1)
    topology = NetworkTopology(1, 3, features, ((3, 3),) * stages, strides)
    return Plan("2d", "benchmark", (8.0, 1.25, 1.25), patch, batch, NormalizationConfig(), topology, dict(LABELS))


def synthetic_cases(count: int, shape: tuple[int, int, int], seed: int = 0) -> list[TrainingCase]:
    """``count`` in-memory LV phantoms (disk in a ring) of ``shape`` (z, y, x) voxels."""
    rng = np.random.default_rng(seed)
    z, h, w = shape
    yy, xx = np.mgrid[:h, :w]
    cases = []
    for index in range(count):
        radius = np.hypot(yy - rng.uniform(0.3, 0.7) * h, xx - rng.uniform(0.3, 0.7) * w)
        label = np.zeros(shape, np.uint8)
        label[:, radius < 0.12 * min(h, w)] = 2
        label[:, radius < 0.07 * min(h, w)] = 1
        image = (np.choose(label, [0.2, 0.9, 0.5]) + rng.normal(0, 0.05, shape)).astype(np.float32)[None]
        points = [np.argwhere(label == v).astype(np.int32) for v in (1, 2)]
        cases.append(TrainingCase(f"bench/case{index}", "bench", image, label, points))
    return cases


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(args: argparse.Namespace) -> dict:
    """Time the full step, the loader alone and the compute alone; returns the numbers as a dict."""
    device = resolve_device(args.device)
    plan = make_plan(tuple(args.patch), args.batch, args.stages, args.max_features)
    config = get_recipe("default", device=device.type, batch_size=args.batch, iterations_per_epoch=args.iterations,
                        augmentation=args.augmentation, compile=args.compile, num_workers=args.num_workers,
                        compile_mode=args.compile_mode, mixed_precision=not args.no_bf16,
                        channels_last=not args.no_channels_last, cuda_graph=args.cuda_graph)
    preset = get_preset(config.augmentation)
    spacing = tuple(plan.target_spacing[1:])
    crop = tuple(max(p, min(n, math.ceil(p * config.crop_margin)))
                 for p, n in zip(plan.patch_size, required_crop_size(preset, plan.patch_size, spacing), strict=True))
    cases = synthetic_cases(args.cases, (10, int(plan.patch_size[0] * 1.2), int(plan.patch_size[1] * 1.2)))
    sampler = PatchSampler(cases, plan.patch_size, crop, args.batch)
    workers = args.num_workers if args.num_workers is not None else 2

    sync_free = False if args.gather_rows else None

    def augment(images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator):
        return augment_batch(images, labels, preset, plan.patch_size, spacing, generator, 3, sync_free)

    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    state = build_state(config, plan, device)
    options = {"log_every": args.log_every, "overlap_copies": not args.no_overlap_copies}
    start = time.perf_counter()
    state.config = config.replace(iterations_per_epoch=args.warmup)
    train_epoch(state, sampler, augment, workers, **options)  # warm-up (and torch.compile)
    warmup_s = time.perf_counter() - start
    state.config = config
    stats = train_epoch(state, sampler, augment, workers, **options)
    syncs = count_syncs(state, sampler, augment, workers, options) if args.sync_debug else (None, None)
    if args.profile:
        write_profile(args.profile, state, sampler, augment, workers, options)

    loader = BatchLoader(sampler, args.iterations, (1, 1), workers, pin_memory=device.type == "cuda")
    start = time.perf_counter()
    for _ in loader:
        pass
    loader_s = (time.perf_counter() - start) / args.iterations

    images, labels = next(iter(BatchLoader(sampler, 1, (2, 2), 0)))
    images, labels = images.to(device), labels.to(device).long()
    generator = torch.Generator(device=device).manual_seed(0)
    train_step(state, *augment(images, labels, generator))
    _sync(device)
    start = time.perf_counter()
    for _ in range(args.iterations):
        train_step(state, *augment(images, labels, generator))
    _sync(device)
    compute_s = (time.perf_counter() - start) / args.iterations
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    return {
        "device": name, "patch": list(plan.patch_size), "crop": list(crop), "batch": args.batch,
        "features": list(plan.topology.features_per_stage), "augmentation": config.augmentation,
        "compiled": use_compile(config, device), "compile_mode": config.compile_mode,
        "bf16": config.mixed_precision and device.type == "cuda",
        "channels_last": config.channels_last and device.type == "cuda", "log_every": args.log_every,
        "overlap_copies": options["overlap_copies"] and device.type == "cuda",
        "cuda_graph": state.step_graph is not None, "gather_rows": args.gather_rows,
        "cudnn_benchmark": args.cudnn_benchmark and device.type == "cuda",
        "syncs_per_step": syncs[0], "syncs_per_epoch": syncs[1],
        "torch": torch.__version__, "workers": workers, "warmup_s": warmup_s,
        "iterations_per_s": 1.0 / (stats.seconds / args.iterations), "samples_per_s": stats.samples_per_second,
        "data_wait_fraction": stats.data_wait_fraction, "loader_ms_per_batch": 1000 * loader_s,
        "compute_ms_per_iteration": 1000 * compute_s, "peak_gib": peak,
    }


def count_syncs(state, sampler: PatchSampler, augment, workers: int, options: dict,
                steps: int = 5) -> tuple[float | None, float | None]:
    """Host-device synchronisations (per step, per epoch) counted by CUDA's sync debug mode; (None, None) off CUDA.

    Epochs of ``steps`` and ``2 * steps`` steps are counted: what the longer one has more is per
    step (the step itself), the rest is per epoch (the final loss read-back and synchronisation).
    """
    if state.device.type != "cuda":
        return None, None
    short, long = (_syncs_in_epoch(state, sampler, augment, workers, options, n) for n in (steps, 2 * steps))
    per_step = (long - short) / steps
    return per_step, short - per_step * steps


def _syncs_in_epoch(state, sampler: PatchSampler, augment, workers: int, options: dict, steps: int) -> int:
    saved = state.config
    state.config = saved.replace(iterations_per_epoch=steps)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            train_epoch(state, sampler, augment, workers, **options)
        finally:
            torch.cuda.set_sync_debug_mode("default")
            state.config = saved
    return len([w for w in caught if "synchroniz" in str(w.message)])


def write_profile(path: str, state, sampler: PatchSampler, augment, workers: int, options: dict,
                  steps: int = 10) -> None:
    """A torch.profiler summary of ``steps`` training steps to ``path``, its trace to ``path.trace.json.gz``.

    The summary: wall, CPU and data-wait time per step, then the top 30 ops by their own device
    time (the kernels; CPU time off CUDA) and the top 30 by CPU time including children.
    """
    from torch.profiler import ProfilerActivity, profile

    cuda = state.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    saved = state.config
    state.config = saved.replace(iterations_per_epoch=steps)
    try:
        with profile(activities=activities) as prof:
            stats = train_epoch(state, sampler, augment, workers, **options)
    finally:
        state.config = saved
    trace = path + ".trace.json"
    prof.export_chrome_trace(trace)
    with open(trace, "rb") as source, gzip.open(trace + ".gz", "wb") as target:
        target.write(source.read())
    Path(trace).unlink()
    table = prof.key_averages()
    with open(path, "w") as handle:
        handle.write(f"{steps} training steps under the profiler (slower than unprofiled): "
                     f"{1000 * stats.seconds / steps:.1f} ms wall, {1000 * stats.cpu_seconds / steps:.1f} ms "
                     f"CPU (all threads) per step; data wait {100 * stats.data_wait_fraction:.1f}% of the time.\n\n")
        handle.write("Top 30 by own device time (kernels)\n" if cuda else "Top 30 by own CPU time\n")
        handle.write(table.table(sort_by="self_device_time_total" if cuda else "self_cpu_time_total", row_limit=30))
        handle.write("\n\nTop 30 by CPU time, children included\n")
        handle.write(table.table(sort_by="cpu_time_total", row_limit=30))


def _switches(r: dict) -> str:
    """The step's speed-ups that were on, in a few words."""
    words = [f"compile {r['compile_mode']}" if r["compiled"] else "eager"]
    options = ("bf16", "channels_last", "overlap_copies", "cuda_graph", "gather_rows", "cudnn_benchmark")
    words += [name for name in options if r.get(name)]
    return ", ".join(words + [f"sync every {r['log_every']}"])


def markdown_row(r: dict) -> str:
    """One row of the PERFORMANCE.md table."""
    return (f"| {r['device']} | {r['patch'][0]}x{r['patch'][1]} (crop {r['crop'][0]}x{r['crop'][1]}) | {r['batch']} | "
            f"{len(r['features'])} / {max(r['features'])} | {r['augmentation']} | {_switches(r)} | "
            f"{r['workers']} | {r['iterations_per_s']:.2f} | {r['samples_per_s']:.0f} | "
            f"{100 * r['data_wait_fraction']:.1f}% | {r['loader_ms_per_batch']:.1f} | "
            f"{r['compute_ms_per_iteration']:.1f} | {r['peak_gib']:.1f} |")


HEADER = ("| device | patch | batch | stages / max features | augmentation | step | loader threads | it/s | "
          "samples/s | data wait | loader ms/batch | compute ms/it | peak GiB |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def main(argv: list[str] | None = None) -> int:
    """Parse options, measure, print the Markdown row (and JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cuda, cpu or mps (default: best available)")
    parser.add_argument("--patch", type=int, nargs=2, default=(256, 256), metavar=("Y", "X"))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--stages", type=int, default=6)
    parser.add_argument("--max-features", type=int, default=512)
    parser.add_argument("--augmentation", default="spatial_intensity")
    parser.add_argument("--iterations", type=int, default=30, help="timed iterations")
    parser.add_argument("--warmup", type=int, default=5, help="untimed iterations first (and compilation)")
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--num-workers", type=int, default=None)
    parser.add_argument("--compile", dest="compile", action="store_true", default=None)
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--compile-mode", choices=COMPILE_MODES, default="default")
    parser.add_argument("--no-bf16", action="store_true", help="float32 instead of bf16 autocast (CUDA)")
    parser.add_argument("--no-channels-last", action="store_true", help="NCHW instead of channels-last (CUDA)")
    parser.add_argument("--no-overlap-copies", action="store_true",
                        help="copy each batch to the GPU when it is needed, not one step ahead")
    parser.add_argument("--log-every", type=int, default=10, help="steps between loss read-backs (host syncs)")
    parser.add_argument("--cuda-graph", action="store_true", help="replay the whole step as one CUDA graph")
    parser.add_argument("--cudnn-benchmark", action="store_true",
                        help="torch.backends.cudnn.benchmark: cuDNN times its algorithms for the fixed shapes")
    parser.add_argument("--gather-rows", action="store_true",
                        help="intensity augmentation on each step's gathered rows (a host sync per step)")
    parser.add_argument("--sync-debug", action="store_true", help="count host-device syncs per step (CUDA)")
    parser.add_argument("--profile", default=None, metavar="FILE",
                        help="write a torch.profiler summary of 10 steps to FILE and the trace to FILE.trace.json.gz")
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    parser.add_argument("--no-header", action="store_true")
    args = parser.parse_args(argv)
    result = measure(args)
    if not args.no_header:
        print(HEADER)
    print(markdown_row(result))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
