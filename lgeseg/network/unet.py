"""The 2D U-Net built from a ``records.NetworkTopology``, and helpers for fine-tuning.

Layout (``S = topology.num_stages``):

* ``encoder_blocks[i]``, i = 0 .. S-1: stacked convs; block 0 works at full resolution, block i
  downsamples by ``strides[i]`` with its first convolution; block S-1 is the bottleneck.
* ``decoder_blocks[j]``, j = 0 .. S-2: transposed conv + concatenation + stacked convs; j = 0 is the
  deepest (coarsest) stage, j = S-2 works at full resolution.
* ``heads[j]``: 1x1 convolution to class logits on ``decoder_blocks[j]``'s output.

All tensors are ``(batch, channels, y, x)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lgeseg.core.records import NetworkTopology
from lgeseg.network.blocks import DecoderBlock, StackedConvs, init_weights


def _check_topology(topology: NetworkTopology) -> None:
    n = topology.num_stages
    if n < 2:
        raise ValueError(f"NetworkTopology.features_per_stage: need at least 2 stages, found {n}")
    for field in ("kernel_sizes", "strides"):
        found = len(getattr(topology, field))
        if found != n:
            raise ValueError(f"NetworkTopology.{field}: expected {n} entries (one per stage), found {found}")
    for k in topology.kernel_sizes:
        if len(k) != 2 or any(v < 1 or v % 2 == 0 for v in k):
            raise ValueError(f"NetworkTopology.kernel_sizes: expected odd (ky, kx) pairs, found {k}")
    for s in topology.strides:
        if len(s) != 2 or any(v < 1 for v in s):
            raise ValueError(f"NetworkTopology.strides: expected positive (sy, sx) pairs, found {s}")
    if topology.conv_per_stage < 1:
        raise ValueError(f"NetworkTopology.conv_per_stage: expected >= 1, found {topology.conv_per_stage}")


class UNet2D(nn.Module):
    """2D U-Net with deep-supervision heads at every decoder level.

    Args:
        topology: widths, kernels and strides per stage (``records.NetworkTopology``).

    Attributes:
        deep_supervision: if True ``forward`` returns one logit map per decoder level; if False
            only the full-resolution one (the other heads are not computed). Set False for inference.
        divisor: (dy, dx) voxels; input height and width must be multiples of these.

    Example:
        >>> topo = NetworkTopology(1, 3, (8, 16, 32), ((3, 3),) * 3, ((1, 1), (2, 2), (2, 2)))
        >>> model = build_unet(topo, seed=0)
        >>> [t.shape[-1] for t in model(torch.zeros(2, 1, 32, 32))]
        [32, 16]
    """

    def __init__(self, topology: NetworkTopology):
        super().__init__()
        _check_topology(topology)
        self.topology = topology
        self.deep_supervision = True
        feats, kernels, strides = topology.features_per_stage, topology.kernel_sizes, topology.strides
        n, convs = topology.num_stages, topology.conv_per_stage
        self.encoder_blocks = nn.ModuleList(
            StackedConvs(topology.in_channels if i == 0 else feats[i - 1], feats[i], kernels[i], strides[i], convs)
            for i in range(n)
        )
        # decoder j upsamples from stage n-1-j to stage n-2-j
        self.decoder_blocks = nn.ModuleList(
            DecoderBlock(feats[n - 1 - j], feats[n - 2 - j], kernels[n - 2 - j], strides[n - 1 - j], convs)
            for j in range(n - 1)
        )
        self.heads = nn.ModuleList(nn.Conv2d(feats[n - 2 - j], topology.num_classes, 1) for j in range(n - 1))
        self.divisor = (
            math.prod(s[0] for s in strides),
            math.prod(s[1] for s in strides),
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Segment a batch of slices.

        Args:
            x: (B, in_channels, H, W); H and W multiples of ``self.divisor``.

        Returns:
            list of logits (B, num_classes, h, w), highest resolution first: ``num_stages - 1``
            maps while ``deep_supervision`` is True, else only the full-resolution map.
        """
        if x.shape[-2] % self.divisor[0] or x.shape[-1] % self.divisor[1]:
            raise ValueError(
                f"UNet2D input: height and width must be multiples of {self.divisor} (product of the "
                f"strides), found {tuple(x.shape[-2:])}; pad or choose another patch size"
            )
        skips = []
        for block in self.encoder_blocks:
            x = block(x)
            skips.append(x)
        x = skips.pop()
        outputs = []
        last = len(self.decoder_blocks) - 1
        for j, (block, head) in enumerate(zip(self.decoder_blocks, self.heads, strict=True)):
            x = block(x, skips.pop())
            if self.deep_supervision or j == last:
                outputs.append(head(x))
        return outputs[::-1]


def build_unet(topology: NetworkTopology, seed: int | None = None) -> UNet2D:
    """Build a ``UNet2D`` with deterministic weights for a given seed.

    Args:
        topology: network shape from the plan.
        seed: weight-initialisation seed (None: torch's global generator).

    Returns:
        the network on the CPU, in float32, with ``deep_supervision=True``. Raises ``ValueError``
        naming the topology field for inconsistent kernels/strides.

    Example:
        >>> from lgeseg.planning.topology import plan_topology
        >>> topology = plan_topology((32, 32), in_channels=1, num_classes=3, base_features=4, max_features=8)
        >>> network = build_unet(topology, seed=0)
        >>> [tuple(logits.shape) for logits in network(torch.zeros(2, 1, 32, 32))]  # deep supervision: 2 resolutions
        [(2, 3, 32, 32), (2, 3, 16, 16)]
    """
    model = UNet2D(topology)
    generator = None if seed is None else torch.Generator().manual_seed(int(seed))
    init_weights(model, generator)
    return model


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters of ``model`` (only those with ``requires_grad`` if asked).

    Example:
        >>> from lgeseg.planning.topology import plan_topology
        >>> network = build_unet(plan_topology((32, 32), in_channels=1, num_classes=3, base_features=4, max_features=8))
        >>> count_parameters(network)
        4986
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _parse_spec(spec: str, model: UNet2D) -> tuple[str, int]:
    n_enc, n_dec = len(model.encoder_blocks), len(model.decoder_blocks)
    if spec == "all":
        return "all", 0
    part, _, count = spec.partition(":")
    limits = {"encoder": n_enc, "decoder": n_dec}
    if part not in limits or not count.strip().lstrip("-").isdigit():
        raise ValueError(
            f"trainable spec {spec!r} not understood; expected 'all', 'encoder:K' (1 <= K <= {n_enc}) "
            f"or 'decoder:K' (1 <= K <= {n_dec})"
        )
    k = int(count)
    if not 1 <= k <= limits[part]:
        raise ValueError(f"trainable spec {spec!r}: K must be between 1 and {limits[part]} for this network, found {k}")
    return part, k


def select_trainable(model: UNet2D, spec: str) -> list[str]:
    """Freeze every parameter except those named by ``spec``.

    Args:
        model: a ``UNet2D`` (modified in place: ``requires_grad`` set on every parameter).
        spec: ``"all"``; ``"encoder:K"`` trains the first K encoder blocks (0 .. K-1, from full
            resolution down); ``"decoder:K"`` trains the last K decoder blocks (the K closest to full
            resolution) with their transposed convs and segmentation heads.

    Returns:
        names (as in ``model.named_parameters()``) of the parameters left trainable. Raises
        ``ValueError`` for an unknown spec or K out of range, stating the valid range.

    Example:
        >>> from lgeseg.planning.topology import plan_topology
        >>> network = build_unet(plan_topology((32, 32), in_channels=1, num_classes=3, base_features=4, max_features=8))
        >>> trainable = select_trainable(network, "decoder:1")
        >>> trainable[0], count_parameters(network, trainable_only=True), count_parameters(network)
        ('decoder_blocks.1.upsample.weight', 603, 4986)
    """
    part, k = _parse_spec(spec.strip(), model)
    if part == "all":
        prefixes: tuple[str, ...] = ("",)
    elif part == "encoder":
        prefixes = tuple(f"encoder_blocks.{i}." for i in range(k))
    else:
        n_dec = len(model.decoder_blocks)
        prefixes = tuple(f"{name}.{j}." for j in range(n_dec - k, n_dec) for name in ("decoder_blocks", "heads"))
    trainable = []
    for name, param in model.named_parameters():
        param.requires_grad_(name.startswith(prefixes))
        if param.requires_grad:
            trainable.append(name)
    return trainable
