"""Histogram matching: map an image's intensity distribution onto a training center's reference.

Fit/apply split (as TorchIO's ``HistogramStandardization``): ``fit_reference`` learns quantile
landmarks of the body intensities of the training images; ``match_histogram`` maps a new image's
own landmarks onto them with a monotone piecewise-linear function.

Only voxels inside the *body mask* count: LGE stacks are mostly air, and an air-dominated histogram
would match background instead of tissue. The mask is an Otsu threshold of the lightly smoothed log
intensities, closed slice-wise, its largest 3D connected component, and its convex hull per slice
(so dark lungs, dark body regions and scar-free myocardium stay inside).

The reference lives in one place: ``MODEL_DIR/harmonization_reference.json`` (see
``write_reference``/``load_reference``), one ``HistogramReference`` per image channel.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu
from skimage.morphology import convex_hull_image

from lgeseg.core.records import JsonRecord, load_json, save_json
from lgeseg.model.folder import HARMONIZATION_REFERENCE_FILE

logger = logging.getLogger(__name__)

#: Percentiles (0..100) used as landmarks unless told otherwise.
DEFAULT_LANDMARKS: tuple[float, ...] = (1, 2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98, 99)
#: Percentiles of the body intensities that define the per-image min-max normalization.
NORMALIZATION_PERCENTILES: tuple[float, float] = (0.5, 99.5)
#: File name of the reference inside a model folder.
REFERENCE_FILE = HARMONIZATION_REFERENCE_FILE
_FORMAT = "lgeseg-histogram-reference"


@dataclasses.dataclass(frozen=True)
class HistogramReference(JsonRecord):
    """Reference intensity distribution of one channel of the training images.

    Attributes:
        landmarks: percentiles (0..100, strictly increasing) at which quantiles were taken.
        quantiles: mean over training images of the body-intensity quantiles at ``landmarks``,
            each image first min-max normalized to [0, 1] by its own body percentiles
            ``NORMALIZATION_PERCENTILES``; non-decreasing.
        raw_low: median over images of the raw intensity at the low normalization percentile.
        raw_high: median over images of the raw intensity at the high normalization percentile.
            Matched images are written on this raw scale: ``raw_low + q * (raw_high - raw_low)``.
        num_images: images the reference was fitted on.
    """

    landmarks: tuple[float, ...]
    quantiles: tuple[float, ...]
    raw_low: float
    raw_high: float
    num_images: int

    def __post_init__(self) -> None:
        lm, q = np.asarray(self.landmarks, float), np.asarray(self.quantiles, float)
        if lm.ndim != 1 or lm.size < 2 or np.any(np.diff(lm) <= 0) or lm[0] < 0 or lm[-1] > 100:
            raise ValueError(f"HistogramReference.landmarks: expected >= 2 increasing percentiles in 0..100, "
                             f"found {self.landmarks}")
        if q.shape != lm.shape or np.any(np.diff(q) < 0) or not np.all(np.isfinite(q)):
            raise ValueError(f"HistogramReference.quantiles: expected {lm.size} finite non-decreasing values, "
                             f"found {self.quantiles}")
        if not self.raw_high > self.raw_low:
            raise ValueError(f"HistogramReference: raw_high ({self.raw_high}) must exceed raw_low ({self.raw_low})")


def body_mask(image: np.ndarray) -> np.ndarray:
    """Estimate the body (non-air) region of an image stack.

    Args:
        image: (z, y, x) intensities, any scale.

    Returns:
        bool (z, y, x) mask: Otsu threshold on in-plane smoothed (1 px) log intensities, closing,
        largest 3D connected component, convex hull per slice.
        Falls back to all voxels when the image is constant or the mask comes out (nearly) empty.

    Example:
        >>> yy, xx = np.mgrid[:32, :32]
        >>> body = (yy - 16) ** 2 + (xx - 16) ** 2 < 100  # a disc of tissue in air
        >>> image = np.where(body, 200.0, 1.0) + np.random.default_rng(0).normal(0, 5, (2, 32, 32))
        >>> mask = body_mask(image)
        >>> mask.shape, bool(mask[0, 16, 16]), bool(mask[1, 0, 0])
        ((2, 32, 32), True, False)
    """
    image = np.asarray(image, dtype=np.float32)
    finite = image[np.isfinite(image)]
    if finite.size == 0 or finite.min() == finite.max():
        return np.ones(image.shape, dtype=bool)
    # Light in-plane smoothing keeps thin bright structures (the subcutaneous fat ring) connected
    # and pulls air noise below the threshold. Otsu runs on log intensities: on linear ones it
    # splits bright blood from dark muscle instead, and the mask misses most of the body.
    smooth = ndimage.gaussian_filter(np.nan_to_num(image, nan=float(finite.min())).reshape((-1,) + image.shape[-2:]),
                                     sigma=(0, 1, 1))
    low = float(np.percentile(smooth, 0.5))
    log_image = np.log1p(np.clip(smooth - low, 0, None))
    mask = np.stack([ndimage.binary_closing(s, iterations=2) for s in log_image > threshold_otsu(log_image)])
    components, count = ndimage.label(mask)
    if count > 1:
        sizes = np.bincount(components.ravel())[1:]
        mask = components == (int(np.argmax(sizes)) + 1)
    # The convex hull per slice closes the body even where its outline is dark (bias field, thin fat).
    mask = np.stack([convex_hull_image(s) if s.any() else s for s in mask]).reshape(image.shape)
    if mask.sum() < max(16, 0.001 * mask.size):
        logger.warning("body mask is nearly empty; using all voxels for histogram matching")
        return np.ones(image.shape, dtype=bool)
    return mask


def _body_values(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    image = np.asarray(image, dtype=np.float32)
    if mask is None:
        mask = body_mask(image)
    elif mask.shape != image.shape:
        raise ValueError(f"mask shape {mask.shape} does not match image shape {image.shape}")
    values = image[np.asarray(mask, bool) & np.isfinite(image)]
    if values.size == 0:
        raise ValueError("the body/foreground mask selects no voxels; cannot compute a histogram")
    return values.astype(np.float64)


def normalized_body_values(image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Body intensities of ``image`` min-max normalized by their own percentiles (the fitting scale).

    Args:
        image: (z, y, x). mask: bool (z, y, x) or None for ``body_mask(image)``.

    Returns:
        1D float64 array; about 99 % of the values fall in [0, 1].

    Example:
        >>> values = normalized_body_values(np.random.default_rng(0).gamma(2, 50, (2, 32, 32)))
        >>> values.ndim, round(float(np.percentile(values, 0.5)), 3), round(float(np.percentile(values, 99.5)), 3)
        (1, 0.0, 1.0)
    """
    values = _body_values(image, mask)
    low, high = np.percentile(values, NORMALIZATION_PERCENTILES)
    return (values - low) / max(high - low, 1e-12)


def fit_reference(images: Iterable[np.ndarray], masks: Iterable[np.ndarray | None] | None = None,
                  landmarks: Sequence[float] = DEFAULT_LANDMARKS) -> HistogramReference:
    """Learn the reference histogram of one channel from training images.

    Args:
        images: (z, y, x) arrays (raw intensities), e.g. every training image of the center.
        masks: matching bool (z, y, x) body/foreground masks, or None (``body_mask`` each image).
        landmarks: percentiles (0..100) to use as landmarks, strictly increasing.

    Returns:
        ``HistogramReference`` (mean normalized quantiles, median raw scale).

    Example:
        >>> ref = fit_reference([np.random.default_rng(0).gamma(2, 50, (2, 32, 32))])
        >>> ref.num_images
        1
    """
    landmarks = tuple(float(v) for v in landmarks)
    quantiles, lows, highs = [], [], []
    pairs = zip(images, masks, strict=True) if masks is not None else ((image, None) for image in images)
    for image, mask in pairs:  # one image at a time: a generator of images keeps memory low
        values = _body_values(image, mask)
        low, high = np.percentile(values, NORMALIZATION_PERCENTILES)
        quantiles.append((np.percentile(values, landmarks) - low) / max(high - low, 1e-12))
        lows.append(low)
        highs.append(high)
    if not quantiles:
        raise ValueError("fit_reference: no images given")
    mean_q = np.maximum.accumulate(np.mean(quantiles, axis=0))
    return HistogramReference(landmarks=landmarks, quantiles=tuple(float(v) for v in mean_q),
                              raw_low=float(np.median(lows)), raw_high=float(np.median(highs)),
                              num_images=len(quantiles))


def _strictly_increasing(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop landmarks whose source value repeats (flat histograms), keeping the mapping monotone."""
    keep = np.concatenate([[True], np.diff(source) > 1e-9 * max(1.0, float(np.abs(source).max()))])
    return source[keep], target[keep]


def match_histogram(image: np.ndarray, reference: HistogramReference, mask: np.ndarray | None = None) -> np.ndarray:
    """Map ``image`` intensities so its body histogram matches ``reference``.

    The image's body quantiles at ``reference.landmarks`` are mapped to the reference quantiles
    (on the reference's raw scale) by a monotone piecewise-linear function, extended linearly
    beyond the first and last landmarks with the slopes of the end segments.

    Args:
        image: (z, y, x) raw intensities.
        reference: from ``fit_reference`` or ``load_reference``.
        mask: bool (z, y, x) region whose histogram is matched; None for ``body_mask(image)``.
            The mapping is applied to every voxel.

    Returns:
        float32 (z, y, x) array, same shape as ``image``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> reference = fit_reference([rng.gamma(2, 50, (2, 32, 32))])
        >>> other_scanner = 3.0 * rng.gamma(2, 50, (2, 32, 32)) + 400.0
        >>> matched = match_histogram(other_scanner, reference)
        >>> bool(abs(np.median(matched) / np.median(other_scanner) - 1) > 0.5), matched.dtype
        (True, dtype('float32'))
    """
    image = np.asarray(image, dtype=np.float32)
    values = _body_values(image, mask)
    source = np.percentile(values, reference.landmarks)
    target = reference.raw_low + np.asarray(reference.quantiles) * (reference.raw_high - reference.raw_low)
    source, target = _strictly_increasing(source, target)
    if source.size < 2:
        logger.warning("image body intensities are constant; histogram matching only shifts them")
        return (image - source[0] + target[0]).astype(np.float32)
    out = np.interp(image, source, target)
    slope_low = (target[1] - target[0]) / (source[1] - source[0])
    slope_high = (target[-1] - target[-2]) / (source[-1] - source[-2])
    below, above = image < source[0], image > source[-1]
    out[below] = target[0] + (image[below] - source[0]) * slope_low
    out[above] = target[-1] + (image[above] - source[-1]) * slope_high
    return out.astype(np.float32)


def write_reference(model_dir: str | Path, references: HistogramReference | Sequence[HistogramReference]) -> Path:
    """Write the per-channel references to ``model_dir/harmonization_reference.json``.

    Args:
        model_dir: model folder (created if missing).
        references: one reference, or one per image channel in channel order.

    Returns:
        path of the written file.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> reference = fit_reference([np.random.default_rng(0).gamma(2, 50, (2, 32, 32))])
        >>> write_reference(Path(tmp.name) / "model", reference).name
        'harmonization_reference.json'
        >>> load_reference(Path(tmp.name) / "model") == [reference]
        True
        >>> tmp.cleanup()
    """
    refs = [references] if isinstance(references, HistogramReference) else list(references)
    if not refs:
        raise ValueError("write_reference: no references given")
    path = Path(model_dir) / REFERENCE_FILE
    save_json({"format": _FORMAT, "version": 1, "channels": [r.to_dict() for r in refs]}, path)
    return path


def load_reference(model_dir: str | Path) -> list[HistogramReference]:
    """Read the per-channel references of a model folder.

    Returns:
        list of ``HistogramReference``, one per channel. Raises ``FileNotFoundError`` that says how
        to create the file (``lgeseg_harmonize fit-reference``) when it is missing.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> _ = write_reference(tmp.name, [fit_reference([np.random.default_rng(0).gamma(2, 50, (2, 32, 32))])])
        >>> [reference.num_images for reference in load_reference(tmp.name)]  # one reference per channel
        [1]
        >>> tmp.cleanup()
    """
    path = Path(model_dir) / REFERENCE_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no histogram reference in this model folder. Create it from the training images with "
            f"`lgeseg_harmonize fit-reference -i RAW_DATASET/imagesTr -m {model_dir}`")
    data = load_json(path)
    if not isinstance(data, dict) or data.get("format") != _FORMAT or not data.get("channels"):
        raise ValueError(f"{path}: expected format '{_FORMAT}' with a non-empty 'channels' list")
    try:
        return [HistogramReference.from_dict(c) for c in data["channels"]]
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


def match_channels(images: np.ndarray, references: Sequence[HistogramReference]) -> np.ndarray:
    """Histogram-match every channel of a (C, z, y, x) image with its own reference.

    Raises ``ValueError`` when the number of channels and references differ.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> reference = fit_reference([rng.gamma(2, 50, (2, 32, 32))])
        >>> image = rng.gamma(2, 50, (2, 2, 32, 32))  # (C, z, y, x)
        >>> image[1] = 3.0 * image[1] + 400.0  # the second channel on another scale
        >>> matched = match_channels(image, [reference, reference])
        >>> matched.shape, bool(abs(np.median(matched[1]) / np.median(matched[0]) - 1) < 0.1)
        ((2, 2, 32, 32), True)
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[0] != len(references):
        raise ValueError(f"expected (C, z, y, x) with C = {len(references)} reference channel(s), "
                         f"found shape {images.shape}")
    return np.stack([match_histogram(images[c], references[c]) for c in range(images.shape[0])])
