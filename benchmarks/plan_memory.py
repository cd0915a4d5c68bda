"""Planner memory estimate vs the measured peak of one training step on a CUDA GPU.

For plans made for several budgets (and the paper and cpu presets), runs one forward/backward/
Adam step of ``lgeseg.network.build_unet`` at the planned patch and batch and prints a Markdown
table: the estimate, the measured ``torch.cuda.max_memory_allocated`` (+ the CUDA context the
estimate counts), and whether the plan fits its budget. Then runs ``verify_memory`` on the
tightest plan and plans with the detected free memory.

    python benchmarks/plan_memory.py            # needs a CUDA GPU
"""

from __future__ import annotations

import dataclasses
import logging
import sys

import torch

from lgeseg.core.records import CaseFingerprint, Fingerprint
from lgeseg.planning import plan_experiment
from lgeseg.planning.memory import CUDA_CONTEXT_BYTES, GIB, estimate_memory
from lgeseg.planning.planner import detect_gpu_memory_gb
from lgeseg.planning.topology import plan_topology
from lgeseg.planning.verify import measure_step_peak, verify_memory

FINGERPRINT = Fingerprint(cases=tuple(  # five cases like the synthetic LGE data: 12 x ~235 x ~235 at 1.4 mm
    CaseFingerprint(f"c{i}", "synthetic", (8.0, 1.4, 1.4), (12, 256, 256), (12, 230 + i, 240 - i)) for i in range(5)
))


def _row(label: str, plan) -> str:
    estimate = plan.memory
    peak = measure_step_peak(plan, plan.batch_size)
    total_measured = peak + CUDA_CONTEXT_BYTES
    budget = f"{estimate.budget / GIB:.1f}" if estimate.budget else "-"
    fits = "-" if not estimate.budget else ("yes" if total_measured <= estimate.budget else "NO")
    return (f"| {label} | {plan.patch_size[0]}x{plan.patch_size[1]} | {plan.batch_size} | "
            f"{max(plan.topology.features_per_stage)} | {'AMP' if estimate.mixed_precision else 'fp32'} | "
            f"{estimate.total / GIB:.2f} | {total_measured / GIB:.2f} | {total_measured / estimate.total:.2f} | "
            f"{budget} | {fits} |")


def main() -> int:
    """Print the comparison table; returns 1 without a CUDA GPU."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if not torch.cuda.is_available():
        print("needs a CUDA GPU", file=sys.stderr)
        return 1
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}\n")
    print("| plan | patch | batch | max features | precision | estimate GB | measured+context GB | "
          "measured/estimate | budget GB | fits |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    plans = [(f"default {gb} GB", plan_experiment(FINGERPRINT, gb, "default")) for gb in (1.2, 4, 8, 24)]
    plans.append(("paper 8 GB", plan_experiment(FINGERPRINT, 8, "paper")))
    cpu = plan_experiment(FINGERPRINT, 8, "cpu")
    plans.append(("cpu preset topology", dataclasses.replace(
        cpu, memory=estimate_memory(cpu.topology, cpu.patch_size, cpu.batch_size, 0, False))))
    wide = plan_topology((320, 320), 1, 3, max_features=512)
    base = plans[2][1]
    plans.append(("320x320 batch 32 AMP", dataclasses.replace(
        base, patch_size=(320, 320), batch_size=32, topology=wide,
        memory=estimate_memory(wide, (320, 320), 32, 0, True))))
    for label, plan in plans:
        print(_row(label, plan), flush=True)
    tight = plans[0][1]
    verified = verify_memory(tight)
    print(f"\nverify_memory on 'default 1.2 GB': batch {tight.batch_size} -> {verified.batch_size}, "
          f"measured peak {verified.extras['measured_peak_bytes'] / GIB:.2f} GB + context "
          f"{CUDA_CONTEXT_BYTES / GIB:.2f} GB")
    free = detect_gpu_memory_gb()
    detected = plan_experiment(FINGERPRINT, None, "default")
    print(f"detected free memory {free:.1f} GB -> patch {detected.patch_size}, batch {detected.batch_size}, "
          f"estimate {detected.memory.total / GIB:.2f} GB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
