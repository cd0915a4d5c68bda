"""The one preprocessing path shared by training-data preparation and inference, and its inverse."""

from __future__ import annotations

import logging

import numpy as np

from lgeseg.core.records import CaseGeometry, Plan, PreprocessedCase
from lgeseg.planning.spacing import resampled_inplane_shape
from lgeseg.preprocessing.crop import CropBox, body_bbox, crop, include_foreground, uncrop
from lgeseg.preprocessing.normalize import normalize
from lgeseg.preprocessing.resample import resample_inplane, resample_label_inplane

logger = logging.getLogger(__name__)


def preprocess_arrays(
    image: np.ndarray, geometry: CaseGeometry, plan: Plan, label: np.ndarray | None = None,
    ignore_label: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None, CropBox, tuple[int, int, int]]:
    """Crop to the body, normalize per channel, resample in-plane to the plan's spacing.

    Args:
        image: (C, Z, Y, X) raw intensities (any float/int dtype).
        geometry: the raw image's geometry (spacing in mm, z y x).
        plan: the plan (target spacing, normalization, interpolation order, labels).
        label: optional (Z, Y, X) label map with values from ``plan.labels`` (and ``ignore_label``).
        ignore_label: the dataset's ``"ignore"`` value (voxels of unknown class), or None. It is resampled
            like one more label (its own one-hot channel), so it survives and is never invented.

    Returns:
        (image float32 (C, z, y', x'), label uint8 (z, y', x') or None, crop box in raw voxels
        ((z0, z1), (y0, y1), (x0, x1)) ends exclusive, shape after cropping (z, y, x)).
        The crop box comes from the image alone, grown to keep every labelled voxel when a label
        is given. Raises ``ValueError`` for mismatched shapes or unknown label values.

    Example:
        >>> from lgeseg.planning.planner import plan_experiment
        >>> from lgeseg.core.records import CaseFingerprint, Fingerprint
        >>> case = CaseFingerprint("a", "d", spacing=(8.0, 1.25, 1.25), shape=(2, 64, 64), shape_after_crop=(2, 40, 40))
        >>> plan = plan_experiment(Fingerprint(cases=(case,)), gpu_memory_gb=None, preset="cpu")  # 1.25 mm in-plane
        >>> geometry = CaseGeometry((2, 16, 16), (8.0, 2.5, 2.5), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        >>> image = np.zeros((1, 2, 16, 16), np.float32); image[0, :, 2:14, 3:13] = 100  # (C, z, y, x), body inside
        >>> label = np.zeros((2, 16, 16), np.uint8); label[:, 6:10, 6:10] = 1
        >>> image_pp, label_pp, box, shape_after_crop = preprocess_arrays(image, geometry, plan, label)
        >>> image_pp.shape, label_pp.shape, box, shape_after_crop  # cropped to 12 x 10 px, then 2.5 -> 1.25 mm
        ((1, 2, 24, 20), (2, 24, 20), ((0, 2), (2, 14), (3, 13)), (2, 12, 10))
    """
    image = np.asarray(image)
    if image.ndim != 4:
        raise ValueError(f"image must have shape (C, Z, Y, X), found shape {image.shape}")
    if tuple(image.shape[1:]) != tuple(geometry.shape):
        raise ValueError(f"image shape {image.shape[1:]} does not match geometry shape {tuple(geometry.shape)}")
    if image.shape[0] != plan.topology.in_channels:
        raise ValueError(f"plan expects {plan.topology.in_channels} channel(s), image has {image.shape[0]}")
    box = body_bbox(image)
    if label is not None:
        label = _check_label(label, image.shape[1:], plan, ignore_label)
        grown = include_foreground(box, label)
        if grown != box:
            logger.debug("crop box %s grown to %s to keep the labelled voxels", box, grown)
        box = grown
    cropped = crop(image, box)
    shape_after_crop = tuple(int(v) for v in cropped.shape[1:])
    new_yx = resampled_inplane_shape(shape_after_crop[1:], geometry.spacing[1:], plan.target_spacing[1:])
    image_pp = resample_inplane(normalize(cropped, plan.normalization), new_yx, plan.image_interpolation_order)
    label_pp = None
    if label is not None:
        label_crop = crop(label, box)
        if plan.label_interpolation == "nearest":
            label_pp = np.rint(resample_inplane(label_crop, new_yx, order=0)).astype(np.uint8)
        else:
            values = set(plan.labels.values()) | ({ignore_label} if ignore_label is not None else set())
            label_pp = resample_label_inplane(label_crop, new_yx, tuple(sorted(values)))
    return np.ascontiguousarray(image_pp, dtype=np.float32), label_pp, box, shape_after_crop  # type: ignore[return-value]


def _check_label(label: np.ndarray, shape: tuple[int, ...], plan: Plan, ignore_label: int | None) -> np.ndarray:
    label = np.asarray(label)
    if tuple(label.shape) != tuple(shape):
        raise ValueError(f"label shape {label.shape} does not match image shape {tuple(shape)}")
    if label.dtype != np.uint8 and (label.min() < 0 or label.max() > 255):
        raise ValueError(f"label values must lie in 0..255, found {label.min()}..{label.max()}")
    present = np.flatnonzero(np.bincount(label.astype(np.uint8, copy=False).ravel(), minlength=256))
    allowed = set(plan.labels.values())
    if ignore_label is not None:
        if ignore_label <= max(allowed):
            raise ValueError(f"ignore label {ignore_label} must lie above every class of the plan's labels "
                             f"{plan.labels}")
        allowed.add(ignore_label)
    unknown = sorted(set(present.tolist()) - allowed)
    if unknown:
        ignore = "" if ignore_label is None else f" (ignore label {ignore_label})"
        raise ValueError(f"label holds value(s) {unknown} not in the plan's labels {plan.labels}{ignore}")
    return label.astype(np.uint8, copy=False)


def effective_spacing(geometry: CaseGeometry, shape_after_crop: tuple[int, int, int],
                      shape_after_resampling: tuple[int, int, int]) -> tuple[float, float, float]:
    """Spacing (z, y, x) mm of the resampled grid: same field of view over the new pixel count.

    Example:
        >>> geometry = CaseGeometry((2, 16, 16), (8.0, 2.5, 2.5), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        >>> effective_spacing(geometry, shape_after_crop=(2, 12, 10), shape_after_resampling=(2, 24, 21))
        (8.0, 1.25, 1.1904761904761905)
    """
    return (
        float(geometry.spacing[0]),
        float(geometry.spacing[1]) * shape_after_crop[1] / shape_after_resampling[1],
        float(geometry.spacing[2]) * shape_after_crop[2] / shape_after_resampling[2],
    )


def revert_to_original(probabilities: np.ndarray, record: PreprocessedCase) -> np.ndarray:
    """Put class probabilities from the preprocessed grid back on the raw image's grid.

    Args:
        probabilities: (K, z, y, x) float32 on the preprocessed grid (``record.shape_after_resampling``).
        record: the case's ``PreprocessedCase`` (crop box, shapes, original geometry).

    Returns:
        (K, Z, Y, X) float32 on the raw grid (``record.original.shape``): resampled in-plane
        (linear) to the cropped shape, then placed in the crop box; outside it class 0
        (background) is 1 and every other class 0.

    Example:
        >>> from lgeseg.planning.planner import plan_experiment
        >>> from lgeseg.core.records import CaseFingerprint, Fingerprint
        >>> case = CaseFingerprint("a", "d", spacing=(8.0, 1.25, 1.25), shape=(2, 64, 64), shape_after_crop=(2, 40, 40))
        >>> plan = plan_experiment(Fingerprint(cases=(case,)), gpu_memory_gb=None, preset="cpu")
        >>> geometry = CaseGeometry((2, 16, 16), (8.0, 2.5, 2.5), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
        >>> image = np.zeros((1, 2, 16, 16), np.float32); image[0, :, 2:14, 3:13] = 100
        >>> image_pp, _, box, shape_after_crop = preprocess_arrays(image, geometry, plan)
        >>> record = PreprocessedCase("c", "d", None, geometry, box, shape_after_crop, plan.target_spacing,
        ...                           image_pp.shape[1:])
        >>> probabilities = np.zeros((3,) + image_pp.shape[1:], np.float32); probabilities[1] = 1.0  # all blood pool
        >>> back = revert_to_original(probabilities, record)
        >>> back.shape, float(back[1, 0, 5, 5]), float(back[0, 0, 0, 0])  # inside the crop box / outside: background
        ((3, 2, 16, 16), 1.0, 1.0)
    """
    probabilities = np.asarray(probabilities, dtype=np.float32)
    if probabilities.ndim != 4:
        raise ValueError(f"probabilities must have shape (K, z, y, x), found {probabilities.shape}")
    if tuple(probabilities.shape[1:]) != tuple(record.shape_after_resampling):
        raise ValueError(
            f"case {record.case_id}: probabilities have spatial shape {probabilities.shape[1:]}, "
            f"expected shape_after_resampling {tuple(record.shape_after_resampling)}"
        )
    back = resample_inplane(probabilities, tuple(record.shape_after_crop[1:]), order=1)
    fill = np.zeros(probabilities.shape[0], dtype=np.float32)
    fill[0] = 1.0
    return uncrop(back, record.crop_box, tuple(record.original.shape), fill)  # type: ignore[arg-type]
