"""Target spacing and the median slice size it implies (pure functions over a ``records.Fingerprint``)."""

from __future__ import annotations

import numpy as np

from lgeseg.core.records import CaseFingerprint, Fingerprint


def _training_cases(fingerprint: Fingerprint) -> tuple[CaseFingerprint, ...]:
    cases = fingerprint.cases
    if not cases:
        raise ValueError("fingerprint: field 'cases' is empty; expected at least one case to plan from")
    return cases


def target_spacing(fingerprint: Fingerprint) -> tuple[float, float, float]:
    """Median spacing (z, y, x) in mm over the fingerprint's cases.

    In-plane (y, x) is the target that preprocessing resamples to; z is informational, because
    the 2D configuration never resamples across slices.

    Example:
        >>> cases = (CaseFingerprint("a", "d", (8.0, 1.25, 1.25), (10, 256, 256), (10, 160, 144)),
        ...          CaseFingerprint("b", "d", (10.0, 1.5, 1.5), (12, 224, 224), (12, 150, 130)))
        >>> target_spacing(Fingerprint(cases=cases))
        (9.0, 1.375, 1.375)
    """
    spacings = np.array([case.spacing for case in _training_cases(fingerprint)], dtype=float)
    return tuple(float(v) for v in np.median(spacings, axis=0))  # type: ignore[return-value]


def median_shape_at_spacing(fingerprint: Fingerprint, spacing: tuple[float, float, float]) -> tuple[float, float]:
    """Median in-plane size (y, x), pixels, of the cropped cases once resampled to ``spacing`` (mm).

    Example:
        >>> cases = (CaseFingerprint("a", "d", (8.0, 1.25, 1.25), (10, 256, 256), (10, 160, 144)),
        ...          CaseFingerprint("b", "d", (10.0, 1.5, 1.5), (12, 224, 224), (12, 150, 130)))
        >>> median_shape_at_spacing(Fingerprint(cases=cases), (9.0, 1.25, 1.25))  # 160 and 180 px, 144 and 156 px
        (170.0, 150.0)
    """
    sizes = []
    for case in _training_cases(fingerprint):
        shape = np.asarray(case.shape_after_crop, dtype=float)
        case_spacing = np.asarray(case.spacing, dtype=float)
        sizes.append(shape[1:] * case_spacing[1:] / np.asarray(spacing[1:], dtype=float))
    median = np.median(np.array(sizes), axis=0)
    return float(median[0]), float(median[1])


def resampled_inplane_shape(
    shape_yx: tuple[int, int], spacing_yx: tuple[float, float], target_yx: tuple[float, float]
) -> tuple[int, int]:
    """In-plane shape (y, x), pixels, after resampling from ``spacing_yx`` to ``target_yx`` (mm).

    Example:
        >>> resampled_inplane_shape((200, 180), spacing_yx=(1.5, 1.5), target_yx=(1.25, 1.25))
        (240, 216)
    """
    return tuple(  # type: ignore[return-value]
        max(1, int(round(n * s / t))) for n, s, t in zip(shape_yx, spacing_yx, target_yx, strict=True)
    )
