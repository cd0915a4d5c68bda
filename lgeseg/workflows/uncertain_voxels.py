"""Voxel-level uncertainty masking of pseudo-labels: where the teacher is unsure, the student is not taught.

The rule (``lgeseg_adapt --mask-uncertain``): a voxel is *unsure* when the teacher's averaged class
probability of its most likely class (the mirrored test-time passes and the ensemble members averaged,
as ``Predictor`` averages them) is below ``confidence``, and it lies within ``band_mm`` (in-plane, on its
own slice) of the teacher's predicted foreground (the written pseudo-label, postprocessing included).
Unsure voxels get the dataset's ignore value (nnU-Net's ignore label, one above the classes), so the
student's loss skips them; every other voxel keeps the teacher's label. Background far from the heart
stays background even where the teacher hesitates, and a slice with no predicted foreground is not masked.

Why 0.8: the probabilities are the softmax of the flip-averaged logits (then averaged over members),
so a top probability below 0.8 means the winning class's odds are below 4:1 against the rest, i.e. (two
competing classes) its averaged logit lead is below ln 4 = 1.4. A trained network is far more confident
than that away from borders (above 0.95); the lead shrinks where the flipped passes pull different ways
(what makes a case ``mirror_unstable``) and on the rim of the structures where every pass hesitates, so
0.8 masks those and keeps the rest. It is a choice, not a measured optimum: ``adaptation.json`` records
the masked share of every case so a run shows what it masked, and ``confidence`` changes it.

Pure NumPy and SciPy (``ndimage`` for the in-plane distance).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

#: Default ``confidence``: a voxel whose averaged top class probability is below it is unsure.
DEFAULT_CONFIDENCE = 0.8
#: Default ``band_mm``: unsure voxels are masked only this close (in-plane, mm) to the predicted foreground.
DEFAULT_BAND_MM = 10.0
#: The rule in words, as ``adaptation.json`` records it.
RULE = ("ignore where max_k p_k < confidence (p: the teacher's class probabilities averaged over mirrored passes "
        "and members) and within band_mm in-plane of the predicted foreground; elsewhere the teacher's label")


@dataclasses.dataclass(frozen=True)
class MaskedPseudoLabel:
    """One pseudo-label with its unsure voxels set to the ignore value.

    Attributes:
        labels: uint8 (z, y, x): the teacher's labels, ``ignore_label`` where unsure.
        masked_voxels: how many voxels were set to ``ignore_label``.
        masked_fraction: ``masked_voxels`` / (voxels of the predicted foreground or masked): the share of
            the heart region the student is not taught (0 when there is neither).
    """

    labels: np.ndarray
    masked_voxels: int
    masked_fraction: float


def near_foreground(foreground: np.ndarray, spacing: Sequence[float], band_mm: float) -> np.ndarray:
    """Voxels within ``band_mm`` in-plane of ``foreground`` on their own slice (foreground included).

    Args:
        foreground: bool (z, y, x).
        spacing: (z, y, x) mm; only (y, x) is used: LGE slices are thick, the band is per slice.
        band_mm: distance, mm (0: the foreground itself).

    Returns:
        bool (z, y, x); a slice without foreground has no band.

    Example:
        >>> foreground = np.zeros((2, 1, 9), bool); foreground[0, 0, 4] = True
        >>> near_foreground(foreground, (8.0, 1.0, 1.5), band_mm=3.0).astype(int)  # 3 mm = 2 voxels of 1.5 mm
        array([[[0, 0, 1, 1, 1, 1, 1, 0, 0]],
        <BLANKLINE>
               [[0, 0, 0, 0, 0, 0, 0, 0, 0]]])
    """
    foreground = np.asarray(foreground, bool)
    band = np.zeros_like(foreground)
    for z in np.flatnonzero(foreground.reshape(foreground.shape[0], -1).any(axis=1)):
        distance = ndimage.distance_transform_edt(~foreground[z], sampling=tuple(float(s) for s in spacing[1:]))
        band[z] = distance <= band_mm
    return band


def uncertain_voxels(labels: np.ndarray, probabilities: np.ndarray, spacing: Sequence[float],
                     confidence: float = DEFAULT_CONFIDENCE, band_mm: float = DEFAULT_BAND_MM) -> np.ndarray:
    """The unsure voxels of one pseudo-label (the module's rule).

    Args:
        labels: uint8 (z, y, x) the teacher's label map (0 background).
        probabilities: float (K, z, y, x) the teacher's averaged class probabilities on the same grid.
        spacing: (z, y, x) mm of the grid.
        confidence: a voxel whose top class probability is below it is unsure, in (0, 1].
        band_mm: only voxels this close (in-plane, mm) to the predicted foreground can be unsure.

    Returns:
        bool (z, y, x).

    Example:
        >>> labels = np.zeros((1, 1, 6), np.uint8); labels[0, 0, 1:3] = 1
        >>> probabilities = np.array([[[[0.1, 0.05, 0.4, 0.7, 0.6, 0.55]]], [[[0.9, 0.95, 0.6, 0.3, 0.4, 0.45]]]])
        >>> uncertain_voxels(labels, probabilities, (8.0, 1.0, 1.0), confidence=0.8, band_mm=2.0).astype(int)
        array([[[0, 0, 1, 1, 1, 0]]])
    """
    labels, probabilities = np.asarray(labels), np.asarray(probabilities)
    if probabilities.ndim != 4 or probabilities.shape[1:] != labels.shape:
        raise ValueError(f"probabilities must have shape (K, z, y, x) = (K, {', '.join(map(str, labels.shape))}), "
                         f"found {probabilities.shape}")
    if not 0.0 < confidence <= 1.0:
        raise ValueError(f"confidence must be in (0, 1], found {confidence}")
    if band_mm < 0:
        raise ValueError(f"band_mm must be >= 0, found {band_mm}")
    unsure = probabilities.max(axis=0) < confidence
    return unsure & near_foreground(labels > 0, spacing, band_mm)


def mask_uncertain(labels: np.ndarray, probabilities: np.ndarray, spacing: Sequence[float], ignore_label: int,
                   confidence: float = DEFAULT_CONFIDENCE, band_mm: float = DEFAULT_BAND_MM) -> MaskedPseudoLabel:
    """``labels`` with ``ignore_label`` on the voxels ``uncertain_voxels`` finds, and how much was masked.

    Args:
        labels, probabilities, spacing, confidence, band_mm: as for ``uncertain_voxels``.
        ignore_label: the value for unsure voxels, above every class (the dataset's ``"ignore"``).

    Example:
        >>> labels = np.zeros((1, 1, 6), np.uint8); labels[0, 0, 1:3] = 1
        >>> probabilities = np.array([[[[0.1, 0.05, 0.4, 0.7, 0.6, 0.55]]], [[[0.9, 0.95, 0.6, 0.3, 0.4, 0.45]]]])
        >>> masked = mask_uncertain(labels, probabilities, (8.0, 1.0, 1.0), ignore_label=2, band_mm=2.0)
        >>> masked.labels.tolist(), masked.masked_voxels, masked.masked_fraction  # 3 of the 4 voxels of the heart
        ([[[0, 1, 2, 2, 2, 0]]], 3, 0.75)
    """
    labels = np.asarray(labels)
    if labels.size and ignore_label <= int(labels.max()):
        raise ValueError(f"ignore label {ignore_label} must lie above every label value (found up to {labels.max()})")
    unsure = uncertain_voxels(labels, probabilities, spacing, confidence, band_mm)
    masked = np.where(unsure, ignore_label, labels).astype(np.uint8)
    count = int(np.count_nonzero(unsure))
    region = int(np.count_nonzero(unsure | (labels > 0)))
    return MaskedPseudoLabel(masked, count, count / region if region else 0.0)
