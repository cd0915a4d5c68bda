"""The planner: fingerprint + memory budget -> ``records.Plan`` (``plans.json``)."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from lgeseg.core import records
from lgeseg.planning.memory import GIB, estimate_memory, largest_fitting_batch
from lgeseg.planning.planner_presets import PlannerPreset, get_preset
from lgeseg.planning.spacing import median_shape_at_spacing, target_spacing
from lgeseg.planning.topology import next_smaller_patch_axis, plan_topology, round_patch_axis

logger = logging.getLogger(__name__)

#: Bump when preprocessing changes in a way that makes stored cases stale.
PREPROCESSING_VERSION: int = 1
NORMALIZATION_SCHEMES: tuple[str, ...] = ("minmax", "zscore")


def detect_gpu_memory_gb() -> float | None:
    """Free memory of the current CUDA device in GB (GiB), or None without a CUDA GPU.

    Example:
        >>> memory = detect_gpu_memory_gb()  # None on a machine without a CUDA GPU
        >>> memory is None or memory > 0
        True
    """
    import torch  # deferred: planning with a given memory budget never loads torch
    if not torch.cuda.is_available():
        return None
    free, _total = torch.cuda.mem_get_info()
    return free / GIB


def _initial_patch(fingerprint: records.Fingerprint, spacing: tuple[float, float, float], preset: PlannerPreset):
    if preset.fixed_patch is not None:
        return tuple(int(v) for v in preset.fixed_patch)
    median_yx = median_shape_at_spacing(fingerprint, spacing)
    cap = round_patch_axis(preset.max_patch)
    return tuple(min(round_patch_axis(v), cap) for v in median_yx)


def _fit_patch_and_batch(
    patch: tuple[int, int], preset: PlannerPreset, budget: int, in_channels: int, num_classes: int
) -> tuple[tuple[int, int], int, records.NetworkTopology]:
    """Shrink the patch until ``min_batch`` fits the budget, then take the largest batch that fits."""
    while True:
        topology = plan_topology(patch, in_channels, num_classes, preset.base_features, preset.max_features)
        batch = largest_fitting_batch(
            topology, patch, budget, preset.max_batch, preset.mixed_precision, preset.optimizer
        )
        if batch >= preset.min_batch:
            return patch, batch, topology
        axis = 0 if patch[0] >= patch[1] else 1
        smaller = next_smaller_patch_axis(patch[axis], preset.min_patch)
        if smaller >= patch[axis]:
            other = 1 - axis
            smaller_other = next_smaller_patch_axis(patch[other], preset.min_patch)
            if smaller_other >= patch[other]:
                if batch >= 1:
                    return patch, batch, topology
                need = estimate_memory(topology, patch, 1, budget, preset.mixed_precision, preset.optimizer)
                raise ValueError(
                    f"GPU memory budget {budget / GIB:.2f} GB is too small: even patch {patch} with batch 1 "
                    f"needs {need.total / GIB:.2f} GB; give a larger --gpu-memory or use --preset cpu"
                )
            axis, smaller = other, smaller_other
        patch = (smaller, patch[1]) if axis == 0 else (patch[0], smaller)


def plan_experiment(
    fingerprint: records.Fingerprint,
    gpu_memory_gb: float | None,
    preset: str = "default",
    num_channels: int = 1,
    labels: dict[str, int] = records.LABELS,
    normalization: str | None = None,
) -> records.Plan:
    """Plan the 2D configuration for a dataset.

    Args:
        fingerprint: as returned by ``lgeseg.preprocessing.fingerprint.extract_fingerprint``.
        gpu_memory_gb: memory budget in GB (GiB). None: the free memory of the present CUDA GPU,
            or, without one, the ``cpu`` preset (``preset="default"``) / no budget.
        preset: ``"default"``, ``"paper"`` or ``"cpu"``.
        num_channels: image channels.
        labels: label name -> value (background 0 included).
        normalization: override the preset's scheme (``"minmax"`` or ``"zscore"``).

    Returns:
        The ``Plan``: target spacing (mm, z y x; z informational), patch (y, x) pixels, batch,
        topology and the memory estimate behind them. Raises ``ValueError`` when no patch of at
        least the preset's ``min_patch`` fits the budget.

    Example:
        >>> cases = (records.CaseFingerprint("a", "d", (8.0, 1.25, 1.25), (10, 256, 256), (10, 160, 144)),
        ...          records.CaseFingerprint("b", "d", (10.0, 1.5, 1.5), (12, 224, 224), (12, 150, 130)))
        >>> plan = plan_experiment(records.Fingerprint(cases=cases), gpu_memory_gb=8.0)
        >>> plan.preset, plan.target_spacing, plan.patch_size, plan.batch_size
        ('default', (9.0, 1.375, 1.375), (160, 160), 64)
    """
    if gpu_memory_gb is None:
        gpu_memory_gb = detect_gpu_memory_gb()
        if gpu_memory_gb is None and preset == "default":
            logger.info("no CUDA GPU and no --gpu-memory: using the 'cpu' preset")
            preset = "cpu"
    if gpu_memory_gb is not None and gpu_memory_gb <= 0:
        raise ValueError(f"gpu_memory_gb must be positive, found {gpu_memory_gb}")
    chosen = get_preset(preset)
    scheme = normalization or chosen.normalization
    if scheme not in NORMALIZATION_SCHEMES:
        raise ValueError(f"normalization must be one of {NORMALIZATION_SCHEMES}, found {scheme!r}")
    if 0 not in labels.values():
        raise ValueError(f"labels must include background 0, found {labels}")
    spacing = target_spacing(fingerprint)
    patch = _initial_patch(fingerprint, spacing, chosen)
    budget = int(gpu_memory_gb * GIB) if gpu_memory_gb is not None else 0
    num_classes = len(labels)
    if budget and chosen.fixed_batch is None:
        patch, batch, topology = _fit_patch_and_batch(patch, chosen, budget, num_channels, num_classes)
    else:
        topology = plan_topology(patch, num_channels, num_classes, chosen.base_features, chosen.max_features)
        batch = chosen.fixed_batch or chosen.min_batch
    mixed = chosen.mixed_precision and budget > 0
    memory = estimate_memory(topology, patch, batch, budget, mixed, chosen.optimizer)
    extras: dict[str, Any] = {
        "median_shape_at_target_yx": tuple(round(v, 1) for v in median_shape_at_spacing(fingerprint, spacing)),
        "num_cases": len(fingerprint.cases),
        "preprocessing_version": PREPROCESSING_VERSION,
    }
    if budget and memory.total > budget:
        message = (f"preset {preset!r}: estimated {memory.total / GIB:.2f} GB exceeds the budget "
                   f"{budget / GIB:.2f} GB; use --verify-memory to shrink the batch")
        logger.warning(message)
        extras["warning"] = message
    return records.Plan(
        name="2d",
        preset=chosen.name,
        target_spacing=spacing,
        patch_size=(int(patch[0]), int(patch[1])),
        batch_size=int(batch),
        normalization=records.NormalizationConfig(scheme=scheme),
        topology=topology,
        labels=dict(labels),
        image_interpolation_order=chosen.image_interpolation_order,
        label_interpolation="linear_onehot",
        memory=memory,
        device_memory_gb=None if gpu_memory_gb is None else round(float(gpu_memory_gb), 3),
        extras=extras,
    )


def small_plan(
    target_spacing: tuple[float, float, float] = (6.0, 1.6, 1.6),
    in_channels: int = 1,
    labels: dict[str, int] = records.LABELS,
    patch_size: tuple[int, int] = (32, 32),
    features: tuple[int, ...] = (4, 8),
    batch_size: int = 2,
) -> records.Plan:
    """A hand-written plan for a small 2D U-Net, without a fingerprint or a memory budget.

    For examples, tests and benchmarks that need a plan (or, with ``model.folder.write_untrained_model``,
    a whole model folder) in milliseconds; a dataset is planned with ``plan_experiment``.

    Args:
        target_spacing: mm, (z, y, x); z is informational (2D: slices are not resampled).
        in_channels: image channels.
        labels: label name -> value (background 0 included); one output class per label.
        patch_size: training patch, pixels (y, x); each axis a multiple of ``2 ** (len(features) - 1)``.
        features: width of each stage; one stage per entry, 3x3 kernels, stride 2 after the first.
        batch_size: slices per training batch.

    Returns:
        The ``Plan`` (preset ``"manual"``, min-max normalization, no memory estimate). Raises
        ``ValueError`` when the patch does not halve evenly down to the last stage.

    Example:
        >>> plan = small_plan()  # 2 stages of 4 and 8 features, 32 x 32 patches, 1.6 mm in-plane
        >>> plan.topology.num_stages, plan.patch_size, plan.target_spacing, plan.topology.num_classes
        (2, (32, 32), (6.0, 1.6, 1.6), 3)
        >>> small_plan(patch_size=(36, 36), features=(4, 8, 16, 32))
        Traceback (most recent call last):
        ValueError: patch_size (36, 36): each axis must be a multiple of 8 for 4 stages (features (4, 8, 16, 32))
    """
    if not features:
        raise ValueError("features: expected one width per stage, found none")
    divisor = 2 ** (len(features) - 1)
    if any(int(p) % divisor for p in patch_size):
        raise ValueError(f"patch_size {tuple(patch_size)}: each axis must be a multiple of {divisor} for "
                         f"{len(features)} stages (features {tuple(features)})")
    topology = records.NetworkTopology(
        in_channels=int(in_channels), num_classes=len(labels), features_per_stage=tuple(int(f) for f in features),
        kernel_sizes=((3, 3),) * len(features), strides=((1, 1),) + ((2, 2),) * (len(features) - 1))
    return records.Plan(name="2d", preset="manual", target_spacing=tuple(float(s) for s in target_spacing),
                        patch_size=(int(patch_size[0]), int(patch_size[1])), batch_size=int(batch_size),
                        normalization=records.NormalizationConfig(), topology=topology, labels=dict(labels))


def plan_fingerprint(plan: records.Plan) -> str:
    """Short hash of the plan fields that change preprocessed data (spacing, normalization, ...).

    Example:
        >>> cases = (records.CaseFingerprint("a", "d", (8.0, 1.25, 1.25), (10, 256, 256), (10, 160, 144)),)
        >>> plan = plan_experiment(records.Fingerprint(cases=cases), gpu_memory_gb=8.0)
        >>> import dataclasses
        >>> half_batch = dataclasses.replace(plan, batch_size=plan.batch_size // 2)
        >>> len(plan_fingerprint(plan)), plan_fingerprint(plan) == plan_fingerprint(half_batch)  # same data
        (16, True)
        >>> plan_fingerprint(plan) == plan_fingerprint(dataclasses.replace(plan, target_spacing=(9.0, 1.0, 1.0)))
        False
    """
    relevant = {
        "version": PREPROCESSING_VERSION,
        "target_spacing": [round(float(v), 6) for v in plan.target_spacing],
        "normalization": plan.normalization.to_dict(),
        "image_interpolation_order": plan.image_interpolation_order,
        "label_interpolation": plan.label_interpolation,
        "labels": dict(sorted(plan.labels.items())),
        "in_channels": plan.topology.in_channels,
    }
    return hashlib.sha1(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]
