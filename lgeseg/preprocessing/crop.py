"""Crop to the body's bounding box and put arrays back (un-crop)."""

from __future__ import annotations

import numpy as np

#: A voxel is "body" when it exceeds min + this fraction of (p99.5 - min) of its image.
BODY_THRESHOLD_FRACTION: float = 0.05
#: ... in at least this fraction of the slices (and channels), which ignores isolated noise.
BODY_SLICE_FRACTION: float = 0.5
#: A row/column belongs to the body box when it holds at least this many body pixels.
BODY_MIN_PIXELS: int = 3

CropBox = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]


def body_bbox(image: np.ndarray) -> CropBox:
    """Bounding box of the body in a (C, z, y, x) image, ends exclusive, voxels.

    All slices are kept (z is never cropped: short-axis stacks have no empty slices, and a
    2D network gains nothing from it). In-plane, a pixel is body where the image exceeds
    ``min + 5%`` of its robust range in at least half of the slices and channels; rows and
    columns with at least 3 such pixels span the box. An image without body gives the full box.

    Example:
        >>> image = np.zeros((1, 2, 8, 8), np.float32); image[0, :, 2:6, 1:7] = 100  # (C, z, y, x)
        >>> body_bbox(image)
        ((0, 2), (2, 6), (1, 7))
    """
    if image.ndim != 4:
        raise ValueError(f"expected an image of shape (C, z, y, x), found shape {image.shape}")
    _, depth, height, width = image.shape
    votes = np.zeros((height, width), dtype=np.float32)
    for channel in image:
        low = float(channel.min())
        high = float(np.percentile(channel[:: max(1, depth // 4)], 99.5))
        if high <= low:
            continue
        threshold = low + BODY_THRESHOLD_FRACTION * (high - low)
        votes += (channel > threshold).mean(axis=0, dtype=np.float32)
    body = votes >= BODY_SLICE_FRACTION * image.shape[0]
    rows = np.flatnonzero(body.sum(axis=1) >= BODY_MIN_PIXELS)
    cols = np.flatnonzero(body.sum(axis=0) >= BODY_MIN_PIXELS)
    if rows.size == 0 or cols.size == 0:
        return ((0, depth), (0, height), (0, width))
    return ((0, depth), (int(rows[0]), int(rows[-1]) + 1), (int(cols[0]), int(cols[-1]) + 1))


def include_foreground(box: CropBox, label: np.ndarray) -> CropBox:
    """Grow ``box`` so it holds every voxel of ``label`` (z, y, x) that is > 0.

    Example:
        >>> label = np.zeros((2, 8, 8), np.uint8); label[0, 1, 1] = 1  # a labelled voxel above the box
        >>> include_foreground(((0, 2), (2, 6), (1, 7)), label)
        ((0, 2), (1, 6), (1, 7))
    """
    if not np.any(label):
        return box
    grown = []
    for axis, (start, end) in enumerate(box):
        other = tuple(a for a in range(label.ndim) if a != axis)
        present = np.flatnonzero(np.any(label, axis=other))
        grown.append((min(start, int(present[0])), max(end, int(present[-1]) + 1)))
    return tuple(grown)  # type: ignore[return-value]


def crop(array: np.ndarray, box: CropBox) -> np.ndarray:
    """Crop the last three axes (z, y, x) of ``array`` to ``box`` (a view, no copy).

    Example:
        >>> crop(np.arange(32).reshape(2, 4, 4), ((0, 1), (1, 3), (1, 3))).tolist()
        [[[5, 6], [9, 10]]]
    """
    (z0, z1), (y0, y1), (x0, x1) = box
    return array[..., z0:z1, y0:y1, x0:x1]


def uncrop(array: np.ndarray, box: CropBox, shape: tuple[int, int, int], fill: np.ndarray | float = 0) -> np.ndarray:
    """Place ``array`` (..., z, y, x) at ``box`` inside a new array of spatial ``shape``.

    Args:
        array: cropped data, leading axes (e.g. classes) kept.
        box: where it came from, ends exclusive, voxels.
        shape: the full spatial shape (z, y, x).
        fill: value outside the box; an array broadcasts per leading index (e.g. one per class).

    Example:
        >>> uncrop(np.ones((1, 2, 2), np.uint8), ((0, 1), (1, 3), (1, 3)), shape=(1, 3, 4)).tolist()
        [[[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0]]]
        >>> probabilities = np.zeros((2, 1, 1, 1), np.float32)  # (classes, z, y, x): background is 1 outside
        >>> uncrop(probabilities, ((0, 1), (0, 1), (0, 1)), shape=(1, 1, 2), fill=np.array([1.0, 0.0])).tolist()
        [[[[0.0, 1.0]]], [[[0.0, 0.0]]]]
    """
    lead = array.shape[:-3]
    out = np.empty(lead + tuple(shape), dtype=array.dtype)
    out[...] = np.reshape(fill, np.shape(fill) + (1, 1, 1)) if np.ndim(fill) else fill
    (z0, z1), (y0, y1), (x0, x1) = box
    out[..., z0:z1, y0:y1, x0:x1] = array
    return out
