"""Network topology and valid patch sizes for the 2D U-Net (pure functions, no torch).

A stage pools (stride 2) along an axis while that axis is still larger than
``max_bottleneck`` pixels and stays an integer after halving, so the bottleneck feature map ends
at roughly 4-8 pixels: a 256 x 256 patch gives 6 stages with an 8 x 8 bottleneck, exactly the
paper's U-Net (Fig. 5).
"""

from __future__ import annotations

import math

from lgeseg.core.records import NetworkTopology

#: Pool an axis while it is larger than this many pixels.
MAX_BOTTLENECK: int = 8
#: Never build more stages than this (a 512 x 512 patch gives 7).
MAX_STAGES: int = 8


def poolings_for_size(size: int, max_bottleneck: int = MAX_BOTTLENECK, max_poolings: int = MAX_STAGES - 1) -> int:
    """Number of stride-2 poolings along an axis of ``size`` pixels.

    Pools while the current size is larger than ``max_bottleneck`` and even, so the size is
    always divisible by 2**poolings.

    Example:
        >>> poolings_for_size(224), poolings_for_size(200), poolings_for_size(6)  # 224 -> 7 px; 200 -> 25 px (odd)
        (5, 3, 0)
    """
    poolings = 0
    while size > max_bottleneck and size % 2 == 0 and poolings < max_poolings:
        size //= 2
        poolings += 1
    return poolings


def round_patch_axis(size: float, max_bottleneck: int = MAX_BOTTLENECK) -> int:
    """Round an axis length (pixels) up to a size whose poolings leave a ~4-8 px bottleneck.

    The divisor is 2**p where p is how often ``size`` can be halved before it is no longer
    larger than ``max_bottleneck``; e.g. 200 -> 224 (5 poolings, 7 px bottleneck), 250 -> 256.

    Example:
        >>> round_patch_axis(200), round_patch_axis(250)
        (224, 256)
    """
    if size <= max_bottleneck:
        return max(int(math.ceil(size)), 1)
    poolings = 0
    value = float(size)
    while value > max_bottleneck and poolings < MAX_STAGES - 1:
        value /= 2
        poolings += 1
    divisor = 2**poolings
    return int(math.ceil(size / divisor) * divisor)


def next_smaller_patch_axis(size: int, minimum: int, max_bottleneck: int = MAX_BOTTLENECK) -> int:
    """The largest valid axis length (see ``round_patch_axis``) below ``size`` pixels.

    Returns ``size`` itself when no valid length lies in [``minimum``, ``size``).

    Example:
        >>> next_smaller_patch_axis(224, minimum=100)
        192
    """
    for candidate in range(int(size) - 1, int(minimum) - 1, -1):
        if round_patch_axis(candidate, max_bottleneck) == candidate:
            return candidate
    return int(size)


def plan_topology(
    patch_size: tuple[int, int],
    in_channels: int,
    num_classes: int,
    base_features: int = 32,
    max_features: int = 512,
    max_bottleneck: int = MAX_BOTTLENECK,
    conv_per_stage: int = 2,
) -> NetworkTopology:
    """The U-Net for a ``patch_size`` (y, x) input.

    Args:
        patch_size: pixels (y, x).
        in_channels: image channels.
        num_classes: output classes including background.
        base_features: width of the first stage; doubles per stage.
        max_features: cap on the width (512 default, 1024 in the paper).
        max_bottleneck: pool an axis while it is larger than this (pixels).
        conv_per_stage: convolutions per block.

    Returns:
        ``NetworkTopology`` with 3x3 kernels, stride (1, 1) for the first stage and 2 (or 1 on an
        axis that stopped pooling) for the others.

    Example:
        >>> topology = plan_topology((64, 48), in_channels=1, num_classes=3, base_features=8, max_features=32)
        >>> topology.features_per_stage, topology.strides[-1]
        ((8, 16, 32, 32), (2, 2))
    """
    pools = [poolings_for_size(int(s), max_bottleneck) for s in patch_size]
    num_stages = max(pools) + 1
    strides = [(1, 1)] + [(2 if k < pools[0] else 1, 2 if k < pools[1] else 1) for k in range(num_stages - 1)]
    features = tuple(min(base_features * 2**k, max_features) for k in range(num_stages))
    return NetworkTopology(
        in_channels=int(in_channels),
        num_classes=int(num_classes),
        features_per_stage=features,
        kernel_sizes=tuple((3, 3) for _ in range(num_stages)),
        strides=tuple(strides),
        conv_per_stage=conv_per_stage,
    )


def bottleneck_size(topology: NetworkTopology, patch_size: tuple[int, int]) -> tuple[int, int]:
    """Feature map size (y, x) in pixels at the deepest stage.

    Example:
        >>> topology = plan_topology((64, 48), in_channels=1, num_classes=3, base_features=8, max_features=32)
        >>> bottleneck_size(topology, (64, 48))
        (8, 6)
    """
    size_y, size_x = int(patch_size[0]), int(patch_size[1])
    for stride_y, stride_x in topology.strides:
        size_y //= stride_y
        size_x //= stride_x
    return size_y, size_x
