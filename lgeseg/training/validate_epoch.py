"""Validation on whole slices: per-class 3D Dice per case, averaged over cases, and the validation loss.

Each validation case is predicted slice by slice on the whole slice (padded at the end of y and x
to a size the network can downsample), so the numbers reflect what inference will see, not patches.

Usage (a network and ``TrainingCase``s)::

    result = validate(network, val_cases, labels={"blood_pool": 1, "myocardium": 2}, divisor=(4, 4),
                      device=torch.device("cpu"))
    result.mean_dice
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from lgeseg.evaluation.metrics import dice, without_ignored
from lgeseg.training.data import TrainingCase
from lgeseg.training.losses import DiceCELoss


@dataclasses.dataclass
class ValidationResult:
    """Validation of one epoch.

    Attributes:
        loss: Dice + CE of the full-resolution output on whole slices, mean over slices.
        dice: label name -> 3D Dice averaged over the cases where the label is in the reference or prediction.
        mean_dice: mean of ``dice`` over labels (NaN when no case has any foreground).
        predictions: label maps uint8 (z, y, x) per case, at preprocessed resolution.
    """

    loss: float
    dice: dict[str, float]
    mean_dice: float
    predictions: list[np.ndarray]


def autocast_for(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when ``enabled``; a no-op context elsewhere.

    Example:
        >>> type(autocast_for(torch.device("cpu"), enabled=True)).__name__  # bf16 autocast on CUDA only
        'nullcontext'
    """
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _pad_to(tensor: torch.Tensor, divisor: Sequence[int]) -> torch.Tensor:
    height, width = tensor.shape[-2:]
    pad_y = (-height) % divisor[0]
    pad_x = (-width) % divisor[1]
    return F.pad(tensor, (0, pad_x, 0, pad_y)) if pad_y or pad_x else tensor


@torch.inference_mode()
def predict_case(network: torch.nn.Module, image: np.ndarray, divisor: Sequence[int], device: torch.device,
                 label: np.ndarray | None = None, batch_size: int = 16,
                 mixed_precision: bool = True, ignore_label: int | None = None) -> tuple[np.ndarray, float, int]:
    """Segment every slice of ``image`` float32 (C, z, y, x).

    ``ignore_label``: a value of ``label`` whose voxels the loss skips (``DiceCELoss(ignore_index=...)``).

    Returns:
        (label map uint8 (z, y, x), summed loss over slices (0 when ``label`` is None), slice count).

    Example:
        >>> from lgeseg.network import build_unet
        >>> from lgeseg.planning.topology import plan_topology
        >>> network = build_unet(plan_topology((32, 32), in_channels=1, num_classes=3, base_features=4, max_features=8))
        >>> labels, loss, slices = predict_case(network.eval(), np.zeros((1, 3, 30, 30), np.float32), network.divisor,
        ...                                     torch.device("cpu"))
        >>> labels.shape, labels.dtype, loss, slices  # 30 x 30 slices padded to the divisor (4, 4), cut back
        ((3, 30, 30), dtype('uint8'), 0.0, 3)
    """
    loss_fn = DiceCELoss(ignore_index=ignore_label)
    prediction = np.zeros(image.shape[1:], dtype=np.uint8)
    total_loss = 0.0
    for start in range(0, image.shape[1], batch_size):
        stop = min(start + batch_size, image.shape[1])
        batch = torch.from_numpy(np.ascontiguousarray(image[:, start:stop].transpose(1, 0, 2, 3))).to(device)
        with autocast_for(device, mixed_precision):
            logits = network(_pad_to(batch, divisor))[0]
        logits = logits[..., : image.shape[2], : image.shape[3]].float()
        prediction[start:stop] = logits.argmax(1).to(torch.uint8).cpu().numpy()
        if label is not None:
            target = torch.from_numpy(label[start:stop].astype(np.int64)).to(device)
            total_loss += float(loss_fn(logits, target)) * (stop - start)
    return prediction, total_loss, image.shape[1]


def validate(network: torch.nn.Module, cases: Sequence[TrainingCase], labels: dict[str, int],
             divisor: Sequence[int], device: torch.device, batch_size: int = 16,
             mixed_precision: bool = True, ignore_label: int | None = None) -> ValidationResult:
    """Predict ``cases`` on whole slices and score them.

    Args:
        network: U-Net returning a list of logits (full resolution first).
        cases: validation cases in memory.
        labels: label name -> value; background (0) is not scored.
        divisor: (y, x) voxels the padded slice size must be divisible by (product of the strides).
        device: where ``network`` lives.
        batch_size: slices per forward pass.
        mixed_precision: bf16 autocast on CUDA.
        ignore_label: the training data's ignore value (``TrainingData.ignore_label``), or None: its voxels
            count in neither the loss nor any Dice (``evaluation.metrics.without_ignored``).

    Example:
        >>> from lgeseg.network import build_unet
        >>> from lgeseg.planning.topology import plan_topology
        >>> network = build_unet(plan_topology((32, 32), in_channels=1, num_classes=3, base_features=4, max_features=8))
        >>> label = np.zeros((2, 32, 32), np.uint8)
        >>> label[:, 8:24, 8:24] = 1
        >>> case = TrainingCase("d/p1", "d", np.zeros((1, 2, 32, 32), np.float32), label, [])
        >>> result = validate(network, [case], {"background": 0, "blood_pool": 1, "myocardium": 2}, network.divisor,
        ...                   torch.device("cpu"))
        >>> sorted(result.dice), result.predictions[0].shape, network.training  # training mode restored
        (['blood_pool', 'myocardium'], (2, 32, 32), True)
    """
    was_training = network.training
    network.eval()
    predictions, loss_sum, slices = [], 0.0, 0
    per_label: dict[str, list[float]] = {name: [] for name, value in labels.items() if value != 0}
    try:
        for case in cases:
            pred, case_loss, count = predict_case(network, case.image, divisor, device, case.label,
                                                  batch_size, mixed_precision, ignore_label)
            predictions.append(pred)
            loss_sum, slices = loss_sum + case_loss, slices + count
            scored, reference = without_ignored(pred, case.label, ignore_label)
            for name in per_label:
                per_label[name].append(dice(scored, reference, labels[name], empty=math.nan))
    finally:
        network.train(was_training)
    means = {name: _nanmean(values) for name, values in per_label.items()}
    return ValidationResult(loss_sum / max(slices, 1), means, _nanmean(list(means.values())), predictions)


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan
