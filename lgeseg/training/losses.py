"""Soft Dice + cross-entropy with deep supervision.

* ``soft_dice_loss``: batch Dice (sums over the whole batch and all pixels per class), background
  excluded, smoothed; 1 - mean foreground Dice, so 0 is perfect.
* ``DiceCELoss``: soft Dice + cross-entropy on one output.
* ``DeepSupervisionLoss``: weighted sum over the decoder outputs; weights halve per level, the
  lowest resolution gets weight 0 and the rest are normalized to sum to 1 (nnU-Net's scheme).
  Targets are downsampled to each output's size by nearest neighbour.
* ``ignore_index`` (all three; None by default, which leaves the loss exactly as without it): target
  voxels holding this value (the dataset's ``"ignore"`` label, one above the classes, nnU-Net's ignore
  label) count in neither term: cross-entropy is the mean over the other voxels, and soft Dice sums
  probabilities and one-hot targets over the other voxels only. Whatever the logits are there, the
  loss and its gradient do not change.

Example:
    >>> loss = DeepSupervisionLoss(deep_supervision_weights(3))
    >>> value = loss([torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 2, 2)],
    ...              torch.zeros(2, 8, 8, dtype=torch.long))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def deep_supervision_weights(num_outputs: int) -> list[float]:
    """Loss weights for ``num_outputs`` outputs, highest resolution first.

    Weights halve per level; the lowest-resolution output gets 0 (when there are several);
    the rest sum to 1. Example: 4 outputs -> [4/7, 2/7, 1/7, 0].

    Example:
        >>> [round(w, 4) for w in deep_supervision_weights(4)], deep_supervision_weights(1)
        ([0.5714, 0.2857, 0.1429, 0.0], [1.0])
    """
    if num_outputs < 1:
        raise ValueError(f"need at least one network output, found {num_outputs}")
    weights = [0.5**level for level in range(num_outputs)]
    if num_outputs > 1:
        weights[-1] = 0.0
    total = sum(weights)
    return [w / total for w in weights]


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1e-5,
                   ignore_index: int | None = None) -> torch.Tensor:
    """Batch soft Dice loss over the foreground classes.

    Args:
        logits: (B, K, H, W) raw scores, K classes including background 0.
        target: (B, H, W) long class indices (0..K-1, and ``ignore_index`` where set).
        smooth: added to numerator and denominator (keeps empty classes defined).
        ignore_index: a target value whose voxels count nowhere (None: every voxel counts).

    Returns:
        Scalar ``1 - mean_k Dice_k`` over classes 1..K-1 (0 when perfect).

    Example:
        >>> target = torch.zeros(1, 4, 4, dtype=torch.long)
        >>> target[:, 1:3, 1:3] = 1
        >>> logits = 20 * F.one_hot(target, 2).permute(0, 3, 1, 2).float()  # confident and right
        >>> round(float(soft_dice_loss(logits, target)), 4), round(float(soft_dice_loss(-logits, target)), 4)
        (0.0, 1.0)
        >>> target[:, 0] = 2  # the first row is ignored: wrong logits there change nothing
        >>> round(float(soft_dice_loss(logits, target, ignore_index=2)), 4)
        0.0
    """
    probs = torch.softmax(logits.float(), dim=1)
    if ignore_index is None:
        onehot = F.one_hot(target, num_classes=logits.shape[1]).permute(0, 3, 1, 2).to(probs.dtype)
    else:
        valid = (target != ignore_index)[:, None]
        onehot = F.one_hot(torch.where(valid[:, 0], target, 0), num_classes=logits.shape[1])
        onehot = onehot.permute(0, 3, 1, 2).to(probs.dtype) * valid
        probs = torch.where(valid, probs, 0.0)  # where, not a product: NaN logits there stay out too
    dims = (0, 2, 3)
    intersection = (probs * onehot).sum(dims)
    denominator = probs.sum(dims) + onehot.sum(dims)
    dice = (2.0 * intersection + smooth) / (denominator + smooth)
    return 1.0 - dice[1:].mean()


def masked_cross_entropy(logits: torch.Tensor, target: torch.Tensor, ignore_index: int | None = None) -> torch.Tensor:
    """Mean cross-entropy of ``logits`` (B, K, H, W) against ``target`` (B, H, W) long over the counted voxels.

    With ``ignore_index`` the mean is over the voxels not holding it, and 0 (not NaN) when every voxel
    does; the count stays a tensor, so the step needs no host-device sync (CUDA graphs).

    Example:
        >>> target = torch.tensor([[[0, 1], [2, 2]]])
        >>> logits = torch.zeros(1, 2, 2, 2)
        >>> round(float(masked_cross_entropy(logits, target, ignore_index=2)), 4)  # log 2 over the two counted
        0.6931
        >>> float(masked_cross_entropy(logits, torch.full_like(target, 2), ignore_index=2))
        0.0
    """
    if ignore_index is None:
        return F.cross_entropy(logits.float(), target)
    total = F.cross_entropy(logits.float(), target, ignore_index=ignore_index, reduction="sum")
    return total / (target != ignore_index).sum().clamp_min(1)


class DiceCELoss(nn.Module):
    """Soft Dice (batch, foreground) + cross-entropy on one output; both weighted 1.

    ``ignore_index`` (None: none) is a target value whose voxels count in neither term.
    """

    def __init__(self, smooth: float = 1e-5, ignore_index: int | None = None) -> None:
        super().__init__()
        self.smooth = smooth
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss of ``logits`` (B, K, H, W) against ``target`` (B, H, W) long; a scalar tensor."""
        ce = masked_cross_entropy(logits, target, self.ignore_index)
        return ce + soft_dice_loss(logits, target, self.smooth, self.ignore_index)


def downsample_target(target: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of a (B, H, W) long label map to ``size`` (h, w) voxels.

    Example:
        >>> downsample_target(torch.arange(16).reshape(1, 4, 4), (2, 2)).tolist()  # every other row and column
        [[[0, 2], [8, 10]]]
    """
    if tuple(target.shape[-2:]) == tuple(size):
        return target
    resized = F.interpolate(target[:, None].float(), size=size, mode="nearest")
    return resized[:, 0].long()


class DeepSupervisionLoss(nn.Module):
    """Weighted ``DiceCELoss`` over the network's outputs (highest resolution first).

    ``ignore_index`` (None: none) is a target value whose voxels count nowhere; the nearest-neighbour
    downsampling of the target keeps it.
    """

    def __init__(self, weights: list[float], smooth: float = 1e-5, ignore_index: int | None = None) -> None:
        super().__init__()
        self.weights = list(weights)
        self.loss = DiceCELoss(smooth, ignore_index)

    def forward(self, outputs: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        """Weighted loss of ``outputs`` (each (B, K, h, w)) against ``target`` (B, H, W) long."""
        if len(outputs) != len(self.weights):
            raise ValueError(f"expected {len(self.weights)} network outputs, found {len(outputs)}")
        total = outputs[0].new_zeros((), dtype=torch.float32)
        for weight, output in zip(self.weights, outputs, strict=True):
            if weight > 0:
                total = total + weight * self.loss(output, downsample_target(target, tuple(output.shape[-2:])))
        return total
