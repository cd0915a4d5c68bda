"""In-plane resampling by separable interpolation matrices (fast, exact spline/linear).

Resampling along y and x is separable, so each axis is a matrix ``W`` (new x old) built once by
``scipy.ndimage.zoom`` of an identity with ``grid_mode=True`` (pixel edges stay on pixel
edges: the resampled image covers exactly the original field of view). Applying it is two matrix
products per slice, much faster than spline-filtering whole volumes. z is never resampled.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage


@lru_cache(maxsize=64)
def interpolation_matrix(old: int, new: int, order: int) -> np.ndarray:
    """(new, old) float32 matrix resampling a 1D signal of ``old`` samples to ``new`` samples.

    ``order``: 0 nearest, 1 linear, 3 cubic spline; borders repeat the edge value.
    """
    if order not in (0, 1, 3):
        raise ValueError(f"interpolation order must be 0, 1 or 3, found {order}")
    eye = np.eye(old, dtype=np.float64)
    matrix = ndimage.zoom(eye, (new / old, 1.0), order=order, mode="nearest", grid_mode=True)
    if matrix.shape[0] != new:  # zoom rounds the output size; keep the size we asked for
        raise RuntimeError(f"zoom gave {matrix.shape[0]} samples instead of {new}")
    matrix = matrix.astype(np.float32)
    matrix.setflags(write=False)
    return matrix


def resample_inplane(array: np.ndarray, new_yx: tuple[int, int], order: int) -> np.ndarray:
    """Resample the last two axes (y, x) of a float array to ``new_yx`` pixels.

    Args:
        array: (..., y, x), any leading axes (channels, slices); cast to float32.
        new_yx: output size (y, x), pixels.
        order: 1 linear or 3 cubic spline (0 nearest).

    Returns:
        float32 array (..., new_y, new_x); the input itself (as float32) when the size is unchanged.
    """
    array = np.asarray(array, dtype=np.float32)
    old_y, old_x = array.shape[-2:]
    new_y, new_x = int(new_yx[0]), int(new_yx[1])
    if (old_y, old_x) == (new_y, new_x):
        return array
    lead = array.shape[:-2]
    flat = array.reshape(-1, old_y, old_x)
    rows = interpolation_matrix(old_y, new_y, order)
    cols = interpolation_matrix(old_x, new_x, order)
    out = np.matmul(np.matmul(rows, flat), cols.T)
    return out.reshape(lead + (new_y, new_x))


def resample_label_inplane(label: np.ndarray, new_yx: tuple[int, int], label_values: tuple[int, ...]) -> np.ndarray:
    """Resample a (z, y, x) label map: linear interpolation of each label's one-hot, then argmax.

    Only values in ``label_values`` can come out, so no label is ever invented. Returns uint8.
    """
    if tuple(label.shape[-2:]) == tuple(int(v) for v in new_yx):
        return label.astype(np.uint8, copy=False)
    values = np.asarray(label_values, dtype=np.uint8)
    onehot = label[None] == values.reshape((-1,) + (1,) * label.ndim)
    probabilities = resample_inplane(onehot.astype(np.float32), new_yx, order=1)
    return values[np.argmax(probabilities, axis=0)]
