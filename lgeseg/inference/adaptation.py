"""Test-time adaptation of a trained network to one case by entropy minimization (``--adapt entropy``).

TENT (Wang et al., "Tent: fully test-time adaptation by entropy minimization", ICLR 2021) adapts a
trained network to test data that differ from its training data by minimizing the entropy of its own
predictions, updating only the channel-wise affine parameters (scale and shift) of its normalization
layers. Here every case is its own episode: starting from the trained weights, ``steps`` Adam steps
minimize the mean per-pixel softmax entropy over all the case's slices, the case is predicted with the
adapted network, and the weights are restored, so each case is predicted as if it were alone.

TENT also replaces BatchNorm's training-set statistics by the test batch's. lgeseg's networks need no
such step: their ``InstanceNorm2d`` layers normalize every slice (or tile) with its own mean and
variance, in training and at prediction alike, so "adapting the normalization statistics" is what
the network always does. Only the affine parameters are left to adapt.

The adaptation draws no random numbers (every step uses all slices of the case), so a case's adapted
prediction is a function of the case and the model: bit-identical from run to run on the CPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from lgeseg.inference.sliding_window import InstanceNormAsGroupNorm, default_batch_size

logger = logging.getLogger(__name__)

#: ``--adapt`` choices: no adaptation (default) or TENT's entropy minimization.
ADAPT_METHODS = ("none", "entropy")
#: Adam learning rate of TENT's published configuration (Adam, lr 1e-3, beta1 0.9, no weight decay).
DEFAULT_LR = 1e-3
#: Adam steps per case. TENT's online setting takes one step per batch of 200 images; one case is a
#: single small batch adapted on its own, so a few steps; chosen before any measurement, not tuned.
DEFAULT_STEPS = 10
#: Layers whose ``weight`` and ``bias`` are adapted (normalizations that use each input's own statistics).
NORM_LAYERS: tuple[type[nn.Module], ...] = (nn.InstanceNorm2d, nn.GroupNorm, InstanceNormAsGroupNorm)


@dataclasses.dataclass(frozen=True)
class AdaptationSettings:
    """How ``lgeseg_predict`` adapts the network to each case.

    Attributes:
        method: ``"none"`` (predict with the trained weights) or ``"entropy"`` (TENT).
        steps: Adam steps per case (at least 1).
        lr: Adam learning rate (> 0).
    """

    method: str = "none"
    steps: int = DEFAULT_STEPS
    lr: float = DEFAULT_LR

    def __post_init__(self) -> None:
        if self.method not in ADAPT_METHODS:
            raise ValueError(f"adapt must be one of {', '.join(ADAPT_METHODS)}, found {self.method!r}")
        if self.steps < 1:
            raise ValueError(f"adapt_steps must be at least 1, found {self.steps}")
        if not self.lr > 0:
            raise ValueError(f"adapt_lr must be positive, found {self.lr}")

    @property
    def enabled(self) -> bool:
        """True when cases are adapted (``method`` is not ``"none"``)."""
        return self.method != "none"

    def to_record(self) -> dict[str, Any] | None:
        """The settings for the provenance record: None when off (as records written before the option)."""
        if not self.enabled:
            return None
        return {"method": self.method, "steps": self.steps, "lr": self.lr, "optimizer": "adam",
                "parameters": "normalization affine (weight, bias)"}


@dataclasses.dataclass(frozen=True)
class AdaptationResult:
    """What one case's adaptation did: mean per-pixel entropy (nats) before and after, and its wall time (s)."""

    entropy_before: float
    entropy_after: float
    seconds: float


def norm_affine_parameters(network: nn.Module) -> list[nn.Parameter]:
    """The ``weight`` and ``bias`` of every normalization layer of ``network`` (``NORM_LAYERS``), in module order.

    Raises ``ValueError`` when the network has none (nothing to adapt).

    Example:
        >>> from lgeseg.network import build_unet
        >>> from lgeseg.planning.topology import plan_topology
        >>> network = build_unet(plan_topology((32, 32), in_channels=1, num_classes=3, base_features=4, max_features=8))
        >>> len(norm_affine_parameters(network))  # weight and bias of 10 InstanceNorm layers
        20
        >>> norm_affine_parameters(nn.Conv2d(1, 1, 3))
        Traceback (most recent call last):
        ValueError: Conv2d: no affine normalization layer to adapt (InstanceNorm2d or GroupNorm with affine=True)
    """
    found: list[nn.Parameter] = []
    for module in network.modules():
        if isinstance(module, NORM_LAYERS):
            found += [p for p in (getattr(module, "weight", None), getattr(module, "bias", None))
                      if isinstance(p, nn.Parameter)]
    if not found:
        raise ValueError(f"{type(network).__name__}: no affine normalization layer to adapt (InstanceNorm2d or "
                         "GroupNorm with affine=True)")
    return found


def fit_to_window(image: torch.Tensor, window: Sequence[int]) -> tuple[torch.Tensor, tuple[slice, slice]]:
    """The slices of ``image`` (C, z, y, x) as a (z, C, wy, wx) batch of ``window`` (wy, wx) voxels.

    Each axis shorter than the window is zero-padded on both sides (centred, as ``predict_slices``
    pads); a longer one is cropped to its centre. Returns the batch and the (y, x) slices of the
    window that hold image voxels (not padding).

    Example:
        >>> slices, valid = fit_to_window(torch.zeros(1, 3, 20, 40), (32, 32))  # y padded, x centre-cropped
        >>> tuple(slices.shape), valid
        ((3, 1, 32, 32), (slice(6, 26, None), slice(0, 32, None)))
    """
    slices = image.permute(1, 0, 2, 3)
    pads, valid = [], []
    for axis, size in ((2, int(slices.shape[2])), (3, int(slices.shape[3]))):
        target = int(window[axis - 2])
        if size > target:
            start = (size - target) // 2
            slices = slices.narrow(axis, start, target)
            size = target
        before = (target - size) // 2
        pads.append((before, target - size - before))
        valid.append(slice(before, before + size))
    (y0, y1), (x0, x1) = pads
    if y0 or y1 or x0 or x1:
        slices = nn.functional.pad(slices, (x0, x1, y0, y1))
    return slices.contiguous(memory_format=torch.channels_last), (valid[0], valid[1])


def pixel_entropy(network: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Per-pixel entropy (nats) of the softmax of ``network``'s logits for ``batch`` (B, C, y, x): (B, y, x).

    Example:
        >>> from lgeseg.network import build_unet
        >>> from lgeseg.planning.topology import plan_topology
        >>> network = build_unet(plan_topology((32, 32), in_channels=1, num_classes=3, base_features=4, max_features=8))
        >>> entropy = pixel_entropy(network.eval(), torch.zeros(2, 1, 32, 32))
        >>> tuple(entropy.shape), bool((entropy <= torch.log(torch.tensor(3.0)) + 1e-6).all())  # at most ln(3)
        ((2, 32, 32), True)
    """
    out = network(batch)
    logits = (out[0] if isinstance(out, (list, tuple)) else out).float()
    return -(torch.softmax(logits, dim=1) * torch.log_softmax(logits, dim=1)).sum(dim=1)


def mean_entropy(network: nn.Module, slices: torch.Tensor, valid: tuple[slice, slice],
                 batch_size: int | None = None) -> float:
    """Mean per-pixel prediction entropy (nats) over the ``valid`` (y, x) region of every slice (z, C, y, x).

    Example:
        >>> from lgeseg.network import build_unet
        >>> from lgeseg.planning.topology import plan_topology
        >>> network = build_unet(plan_topology((32, 32), in_channels=1, num_classes=3, base_features=4, max_features=8))
        >>> slices, valid = fit_to_window(torch.zeros(1, 3, 20, 32), (32, 32))
        >>> 0.0 <= mean_entropy(network.eval(), slices, valid) <= 1.0987  # between 0 and ln(3) nats
        True
    """
    batch_size = batch_size or default_batch_size(slices.device)
    total = 0.0
    with torch.no_grad():
        for start in range(0, slices.shape[0], batch_size):
            total += float(pixel_entropy(network, slices[start:start + batch_size])[:, valid[0], valid[1]].sum())
    return total / _num_pixels(slices, valid)


def _num_pixels(slices: torch.Tensor, valid: tuple[slice, slice]) -> int:
    return int(slices.shape[0]) * (valid[0].stop - valid[0].start) * (valid[1].stop - valid[1].start)


def _entropy_step(network: nn.Module, slices: torch.Tensor, valid: tuple[slice, slice], batch_size: int,
                  optimizer: torch.optim.Optimizer) -> float:
    """One Adam step on the case's mean entropy (gradients summed over slice batches); returns the entropy before it."""
    optimizer.zero_grad(set_to_none=True)
    count, total = _num_pixels(slices, valid), 0.0
    for start in range(0, slices.shape[0], batch_size):
        # The input takes part in autograd so that every normalization layer's input requires grad: PyTorch's CPU
        # group_norm backward (2.13) crashed on channels-last inputs that do not (only the norm's weight did).
        # clone(): a normal tensor even when the caller made the image under torch.inference_mode.
        batch = slices[start:start + batch_size].clone().requires_grad_(True)
        loss = pixel_entropy(network, batch)[:, valid[0], valid[1]].sum() / count
        loss.backward()
        total += float(loss.detach())
    optimizer.step()
    return total


def adapt_to_case(network: nn.Module, image: torch.Tensor, window: Sequence[int], settings: AdaptationSettings,
                  batch_size: int | None = None) -> AdaptationResult:
    """Adapt ``network`` in place to one case by TENT's entropy minimization (the weights are NOT restored).

    Args:
        network: 2D network in eval mode on its device (its InstanceNorm layers use each slice's own
            statistics, so eval and train mode normalize alike).
        image: (C, z, y, x) float32, preprocessed (normalized, at the model's spacing).
        window: (wy, wx) voxels each slice is padded (or centre-cropped) to: the whole-slice window of
            ``predictor.inference_window``, a valid network input.
        settings: method, steps and learning rate (``settings.enabled`` must be True).
        batch_size: slices per forward pass; gradients of all batches are summed before each step,
            so the step follows the whole case's mean entropy (None: ``default_batch_size``).

    Returns:
        ``AdaptationResult``; only the ``norm_affine_parameters`` change. Use ``adapted`` to restore them.

    Example:
        >>> from lgeseg.network import build_unet
        >>> from lgeseg.planning.topology import plan_topology
        >>> topology = plan_topology((32, 32), in_channels=1, num_classes=3, base_features=4, max_features=8)
        >>> network = build_unet(topology, seed=0).eval()
        >>> image = torch.randn(1, 2, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> result = adapt_to_case(network, image, (32, 32), AdaptationSettings("entropy", steps=2))
        >>> result.entropy_after < result.entropy_before  # the steps lowered the case's mean entropy
        True
    """
    start_time = time.perf_counter()
    device = next(network.parameters()).device
    slices, valid = fit_to_window(image.to(device=device, dtype=torch.float32), window)
    batch_size = batch_size or default_batch_size(device)
    trainable = norm_affine_parameters(network)
    chosen = {id(p) for p in trainable}
    flags = [(p, p.requires_grad) for p in network.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(id(p) in chosen)
        optimizer = torch.optim.Adam(trainable, lr=settings.lr, betas=(0.9, 0.999), weight_decay=0.0)
        with torch.inference_mode(False), torch.enable_grad():
            losses = [_entropy_step(network, slices, valid, batch_size, optimizer) for _ in range(settings.steps)]
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
    after = mean_entropy(network, slices, valid, batch_size)
    return AdaptationResult(losses[0], after, time.perf_counter() - start_time)


@contextlib.contextmanager
def adapted(network: nn.Module, image: torch.Tensor, window: Sequence[int], settings: AdaptationSettings,
            batch_size: int | None = None, case_id: str = "case") -> Iterator[AdaptationResult | None]:
    """Context in which ``network`` is adapted to one case (``adapt_to_case``); trained weights restored on exit.

    With ``settings.method == "none"`` nothing is computed or changed and the context yields None.
    Otherwise it yields the ``AdaptationResult`` and logs the entropy change; on exit (also after an
    error) the normalization parameters get their trained values back, bit for bit.

    Usage::

        with adapted(network, image, (128, 128), AdaptationSettings("entropy")):
            probabilities = predict_slices(network, image, (128, 128))
    """
    if not settings.enabled:
        yield None
        return
    parameters = norm_affine_parameters(network)
    saved = [p.detach().clone() for p in parameters]
    try:
        result = adapt_to_case(network, image, window, settings, batch_size)
        logger.info("%s: test-time adaptation (%s, %d steps, lr %g): mean entropy %.4f -> %.4f nats in %.1f s",
                    case_id, settings.method, settings.steps, settings.lr, result.entropy_before,
                    result.entropy_after, result.seconds)
        yield result
    finally:
        with torch.no_grad():
            for p, value in zip(parameters, saved, strict=True):
                p.copy_(value)
