"""Explicit GPU memory estimate for one training step of the 2D U-Net (pure functions, no torch).

The estimate counts what PyTorch keeps alive between forward and backward for the network that
``lgeseg.network.build_unet`` builds from a ``NetworkTopology`` (conv -> InstanceNorm -> LeakyReLU,
``conv_per_stage`` times per stage; strided conv down; transposed conv up; skip concatenation;
a 1x1 segmentation head per decoder level for deep supervision), plus weights, gradients,
optimizer state and a fixed overhead for the CUDA context, cuDNN workspace and allocator slack.

Every stored activation is counted (conv output, norm output, activation output, transposed
conv output, concatenation, head logits and the loss's softmax/one-hot), so the estimate errs on
the large side: PyTorch frees some of these (in-place LeakyReLU) and never frees more.
"""

from __future__ import annotations

import math

from lgeseg.core.records import MemoryEstimate, NetworkTopology

GIB: int = 1024**3

#: CUDA context + cuDNN handles, bytes. Counted because the budget is the free device memory
#: *before* the training process starts.
CUDA_CONTEXT_BYTES: int = 600 * 1024**2
#: cuDNN convolution workspace, bytes (PyTorch lets cuDNN pick algorithms up to this much).
CUDNN_WORKSPACE_BYTES: int = 256 * 1024**2
#: Allocator slack (fragmentation, rounding of blocks) as a fraction of activations.
ALLOCATOR_SLACK: float = 0.10

_BYTES_PER_STATE = {"adam": 8, "adamw": 8, "sgd": 4}


def stage_resolutions(topology: NetworkTopology, patch_size: tuple[int, int]) -> list[tuple[int, int]]:
    """Feature map size (y, x) in pixels at each encoder stage for a ``patch_size`` (y, x) input.

    Example:
        >>> from lgeseg.planning.topology import plan_topology
        >>> topology = plan_topology((64, 48), in_channels=1, num_classes=3, base_features=8, max_features=32)
        >>> stage_resolutions(topology, (64, 48))
        [(64, 48), (32, 24), (16, 12), (8, 6)]
    """
    size_y, size_x = int(patch_size[0]), int(patch_size[1])
    sizes: list[tuple[int, int]] = []
    for stride_y, stride_x in topology.strides:
        size_y = math.ceil(size_y / stride_y)
        size_x = math.ceil(size_x / stride_x)
        sizes.append((size_y, size_x))
    return sizes


def count_parameters(topology: NetworkTopology) -> int:
    """Number of trainable parameters of the U-Net described by ``topology``.

    Counts conv weights and biases, InstanceNorm affine parameters, transposed convs and the
    deep-supervision heads (one per decoder level).

    Example:
        >>> from lgeseg.planning.topology import plan_topology
        >>> count_parameters(plan_topology((64, 48), in_channels=1, num_classes=3, base_features=8, max_features=32))
        80401
    """
    feats = topology.features_per_stage
    total = 0
    in_ch = topology.in_channels
    for stage, out_ch in enumerate(feats):
        ky, kx = topology.kernel_sizes[stage]
        for _ in range(topology.conv_per_stage):
            total += in_ch * out_ch * ky * kx + out_ch + 2 * out_ch
            in_ch = out_ch
    for stage in range(len(feats) - 2, -1, -1):
        sy, sx = topology.strides[stage + 1]
        total += feats[stage + 1] * feats[stage] * sy * sx + feats[stage]  # transposed conv
        ky, kx = topology.kernel_sizes[stage]
        in_ch = 2 * feats[stage]
        for _ in range(topology.conv_per_stage):
            total += in_ch * feats[stage] * ky * kx + feats[stage] + 2 * feats[stage]
            in_ch = feats[stage]
        total += feats[stage] * topology.num_classes + topology.num_classes  # 1x1 head
    return total


def activation_elements(topology: NetworkTopology, patch_size: tuple[int, int]) -> tuple[int, int]:
    """Stored activation elements for ONE sample, and the largest single tensor (elements).

    Returns:
        (network elements kept for backward, largest single feature map), both per sample.
        Loss tensors are not included (see ``loss_elements``).

    Example:
        >>> from lgeseg.planning.topology import plan_topology
        >>> topology = plan_topology((64, 48), in_channels=1, num_classes=3, base_features=8, max_features=32)
        >>> activation_elements(topology, (64, 48))  # (kept for backward, largest feature map), per slice
        (494400, 49152)
    """
    feats = topology.features_per_stage
    sizes = stage_resolutions(topology, patch_size)
    per_conv = 2  # conv output + norm output; LeakyReLU runs in place on the latter (network/blocks.py)
    total = topology.in_channels * int(patch_size[0]) * int(patch_size[1])  # the input itself
    largest = 0
    for stage, channels in enumerate(feats):
        pixels = sizes[stage][0] * sizes[stage][1]
        total += topology.conv_per_stage * per_conv * channels * pixels
        largest = max(largest, channels * pixels)
    for stage in range(len(feats) - 2, -1, -1):
        pixels = sizes[stage][0] * sizes[stage][1]
        channels = feats[stage]
        total += channels * pixels  # transposed conv output
        total += 2 * channels * pixels  # concatenation with the skip
        total += topology.conv_per_stage * per_conv * channels * pixels
        total += topology.num_classes * pixels  # deep-supervision logits
        largest = max(largest, 2 * channels * pixels)
    return total, largest


def loss_elements(topology: NetworkTopology, patch_size: tuple[int, int]) -> int:
    """fp32 elements the Dice+CE loss keeps per sample: softmax, one-hot target, log-probs per head.

    Example:
        >>> from lgeseg.planning.topology import plan_topology
        >>> topology = plan_topology((64, 48), in_channels=1, num_classes=3, base_features=8, max_features=32)
        >>> loss_elements(topology, (64, 48))  # 3 x 3 classes x (64 x 48 + 32 x 24 + 16 x 12)
        36288
    """
    sizes = stage_resolutions(topology, patch_size)
    heads = sizes[: max(1, len(sizes) - 1)]
    return sum(3 * topology.num_classes * y * x for y, x in heads)


def estimate_memory(
    topology: NetworkTopology,
    patch_size: tuple[int, int],
    batch_size: int,
    budget_bytes: int = 0,
    mixed_precision: bool = True,
    optimizer: str = "adam",
) -> MemoryEstimate:
    """Estimate the peak device memory of one training step (forward + backward + optimizer step).

    Args:
        topology: the network's shape.
        patch_size: input slice size, pixels (y, x).
        batch_size: slices per batch.
        budget_bytes: the budget to report beside the estimate (0: none, CPU).
        mixed_precision: True for AMP (fp16/bf16 activations, 2 bytes) else fp32 (4 bytes).
        optimizer: ``"adam"``/``"adamw"`` (two moments, 8 bytes per parameter) or ``"sgd"``
            (momentum, 4 bytes).

    Returns:
        ``MemoryEstimate`` in bytes. ``workspace`` holds the CUDA context, cuDNN workspace,
        allocator slack and the transient gradient of the largest feature map during backward.

    Example:
        >>> from lgeseg.planning.topology import plan_topology
        >>> topology = plan_topology((256, 256), in_channels=1, num_classes=3)
        >>> estimate = estimate_memory(topology, (256, 256), batch_size=16, budget_bytes=8 * GIB)
        >>> round(estimate.total / GIB, 2), round(estimate.activations / GIB, 2), estimate.total <= estimate.budget
        (2.96, 1.39, True)
    """
    if optimizer not in _BYTES_PER_STATE:
        raise ValueError(f"optimizer must be one of {sorted(_BYTES_PER_STATE)}, found {optimizer!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, found {batch_size}")
    act_bytes = 2 if mixed_precision else 4
    per_sample, largest = activation_elements(topology, patch_size)
    activations = batch_size * (per_sample * act_bytes + loss_elements(topology, patch_size) * 4)
    params = count_parameters(topology)
    weights = params * 4 + (params * 2 if mixed_precision else 0)  # fp32 master + fp16 copies
    gradients = params * 4
    optimizer_state = params * _BYTES_PER_STATE[optimizer]
    transient = 2 * batch_size * largest * act_bytes  # grad of input and output of the widest layer
    workspace = CUDA_CONTEXT_BYTES + CUDNN_WORKSPACE_BYTES + int(ALLOCATOR_SLACK * activations) + transient
    total = activations + weights + gradients + optimizer_state + workspace
    return MemoryEstimate(
        activations=int(activations),
        weights=int(weights),
        gradients=int(gradients),
        optimizer_state=int(optimizer_state),
        workspace=int(workspace),
        total=int(total),
        budget=int(budget_bytes),
        mixed_precision=bool(mixed_precision),
    )


def largest_fitting_batch(
    topology: NetworkTopology,
    patch_size: tuple[int, int],
    budget_bytes: int,
    max_batch: int,
    mixed_precision: bool = True,
    optimizer: str = "adam",
) -> int:
    """Largest batch in 1..``max_batch`` whose estimate fits ``budget_bytes``; 0 if none does.

    Example:
        >>> from lgeseg.planning.topology import plan_topology
        >>> topology = plan_topology((256, 256), in_channels=1, num_classes=3)
        >>> largest_fitting_batch(topology, (256, 256), budget_bytes=2 * GIB, max_batch=64)
        7
    """
    best = 0
    low, high = 1, max_batch
    while low <= high:  # the estimate grows monotonically with the batch: bisect
        mid = (low + high) // 2
        if estimate_memory(topology, patch_size, mid, budget_bytes, mixed_precision, optimizer).total <= budget_bytes:
            best, low = mid, mid + 1
        else:
            high = mid - 1
    return best


def batch_memory_problem(topology: NetworkTopology, patch_size: tuple[int, int], batch_size: int,
                         available_bytes: int, device_type: str = "cuda", mixed_precision: bool = True,
                         optimizer: str = "adam", ranks: int = 1) -> str | None:
    """Why a training step of ``batch_size`` slices cannot fit ``available_bytes``, or None when it may.

    Checked before any allocation, so an oversized ``--batch-size`` is refused with a message instead
    of growing until the kernel kills the process. On ``"cuda"`` the estimate is ``estimate_memory``'s
    (without the CUDA context, which is already allocated when the free memory is measured); on other
    devices the CUDA-only parts (context, cuDNN workspace) are left out and activations are fp32
    (autocast is CUDA-only in training). The estimate errs on the large side, so a refusal is certain
    to be needed only when it exceeds the memory clearly; batches up to ``largest_fitting_batch`` pass.

    Args:
        topology, patch_size: the plan's network and patch (y, x).
        batch_size: slices per step (data parallel: the global batch, split over ``ranks`` processes).
        available_bytes: free device memory (CUDA) or available RAM (CPU).
        device_type: ``"cuda"``, ``"cpu"``, ``"mps"``.
        mixed_precision, optimizer: as the training recipe has them.
        ranks: data-parallel processes, one device each; each holds ``ceil(batch_size / ranks)`` slices.

    Returns:
        A message naming the batch, the estimate, the memory and the largest batch that fits; or None.

    Example:
        >>> from lgeseg.planning.topology import plan_topology
        >>> topology = plan_topology((48, 48), in_channels=1, num_classes=3, base_features=8, max_features=32)
        >>> batch_memory_problem(topology, (48, 48), 16, available_bytes=8 * GIB, device_type="cpu") is None
        True
        >>> print(batch_memory_problem(topology, (48, 48), 100000, available_bytes=8 * GIB, device_type="cpu"))
        batch size 100000: one training step needs about 190.6 GB per cpu device (estimate for 48 x 48 slices), but only
        8.0 GB are available; use --batch-size 4197 or less, or free memory
    """
    on_cuda = device_type == "cuda"
    overhead = CUDA_CONTEXT_BYTES + CUDNN_WORKSPACE_BYTES if not on_cuda else CUDA_CONTEXT_BYTES

    def needed(batch: int) -> int:
        return estimate_memory(topology, patch_size, batch, 0, mixed_precision and on_cuda, optimizer).total - overhead

    ranks = max(int(ranks), 1)
    total = needed(math.ceil(batch_size / ranks))
    if total <= available_bytes:
        return None
    low, high = 0, math.ceil(batch_size / ranks) - 1  # the largest batch that fits (the estimate grows with it)
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if needed(mid) <= available_bytes else (low, mid - 1)
    advice = (f"use --batch-size {low * ranks} or less, or free memory" if low
              else "even one slice does not fit: use a smaller patch (plans.json) or a machine with more memory")
    return (f"batch size {batch_size}: one training step needs about {total / GIB:.1f} GB per {device_type} device "
            f"(estimate for {patch_size[0]} x {patch_size[1]} slices), but only {available_bytes / GIB:.1f} GB are "
            f"available; {advice}")
