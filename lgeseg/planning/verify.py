"""Measure one training step on the GPU at the planned size (``--verify-memory``)."""

from __future__ import annotations

import dataclasses
import logging
import os

from lgeseg.core.errors import LgesegError
from lgeseg.core.records import Plan
from lgeseg.planning.memory import CUDA_CONTEXT_BYTES, GIB, estimate_memory
from lgeseg.planning.planner_presets import PRESETS, get_preset

logger = logging.getLogger(__name__)


def available_memory_bytes(device: str = "cpu") -> int | None:
    """Memory a training process may still take on ``device``: free GPU memory, or available RAM; None if unknown.

    CUDA: ``torch.cuda.mem_get_info`` (free bytes, after this process's CUDA context). CPU: the
    kernel's ``MemAvailable`` (``/proc/meminfo``), else free physical pages. MPS and other devices: None.

    Example:
        >>> available = available_memory_bytes("cpu")  # None where the OS does not say
        >>> available is None or available > 0
        True
    """
    kind = str(device).split(":")[0]
    if kind == "cuda":
        import torch  # deferred: see measure_step_peak

        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    if kind != "cpu":
        return None
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def measure_step_peak(plan: Plan, batch_size: int, device: str = "cuda") -> int:
    """Peak bytes ``torch.cuda.max_memory_allocated`` reports for one forward/backward/Adam step.

    Builds ``lgeseg.network.build_unet(plan.topology)``, runs a random (batch, C, y, x) batch
    through it under AMP (if the plan's estimate assumed AMP) with a cross-entropy loss on every
    deep-supervision output, and steps Adam. Raises ``torch.cuda.OutOfMemoryError`` if it
    does not fit.

    Usage (needs a CUDA GPU)::

        peak_gib = measure_step_peak(plan, batch_size=plan.batch_size) / 1024**3
    """
    # deferred: plan_and_preprocess imports this module and runs without torch unless --verify-memory
    import torch

    from lgeseg.network import build_unet

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    mixed = plan.memory.mixed_precision if plan.memory is not None else True
    model = build_unet(plan.topology, seed=0).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    height, width = plan.patch_size
    images = torch.randn(batch_size, plan.topology.in_channels, height, width, device=device)
    target = torch.randint(0, plan.topology.num_classes, (batch_size, height, width), device=device)
    try:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=mixed):
            outputs = model(images)
            loss = sum(
                torch.nn.functional.cross_entropy(
                    out.float(),
                    torch.nn.functional.interpolate(target[:, None].float(), size=out.shape[-2:], mode="nearest")[
                        :, 0
                    ].long(),
                )
                for out in outputs
            )
        loss.backward()
        optimizer.step()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device))
    finally:
        del model, optimizer, images, target
        torch.cuda.empty_cache()


def verify_memory(plan: Plan, device: str = "cuda") -> Plan:
    """Run one step at the plan's size, lowering the batch by one until the step fits.

    The measured peak plus the CUDA context (``memory.CUDA_CONTEXT_BYTES``) must stay within the
    plan's budget. Returns the plan with the (possibly smaller) batch, its new estimate and
    ``extras["measured_peak_bytes"]``/``extras["verified_batch"]``. Raises ``LgesegError``
    (saying what to do) without CUDA and ``ValueError`` if not even batch 1 fits.

    Usage (needs a CUDA GPU; ``lgeseg_plan_and_preprocess --verify-memory`` runs it)::

        plan = verify_memory(plan_experiment(extract_fingerprint([Path("raw/center1")]), gpu_memory_gb=8.0))
    """
    import torch  # deferred: see measure_step_peak

    if not torch.cuda.is_available():
        raise LgesegError("--verify-memory measures a training step on a CUDA GPU, and this machine has none: run "
                          "without --verify-memory (the batch then comes from the memory estimate), or on the "
                          "machine that will train")
    budget = plan.memory.budget if plan.memory is not None and plan.memory.budget else None
    batch = plan.batch_size
    while batch >= 1:
        try:
            peak = measure_step_peak(plan, batch, device)
        except torch.cuda.OutOfMemoryError:
            peak = None
        fits = peak is not None and (budget is None or peak + CUDA_CONTEXT_BYTES <= budget)
        if fits:
            break
        logger.warning("batch %d does not fit (peak %s); trying %d", batch,
                       "OOM" if peak is None else f"{peak / GIB:.2f} GB", batch - 1)
        batch -= 1
    else:
        raise ValueError(f"not even batch 1 at patch {plan.patch_size} fits the budget; lower the patch")
    mixed = plan.memory.mixed_precision if plan.memory is not None else True
    optimizer = get_preset(plan.preset).optimizer if plan.preset in PRESETS else "adam"
    memory = estimate_memory(plan.topology, plan.patch_size, batch, budget or 0, mixed, optimizer)
    extras = dict(plan.extras, measured_peak_bytes=peak, verified_batch=batch)
    logger.info("measured peak %.2f GB vs estimate %.2f GB at batch %d", peak / GIB, memory.total / GIB, batch)
    return dataclasses.replace(plan, batch_size=batch, memory=memory, extras=extras)
