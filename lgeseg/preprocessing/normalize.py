"""Per-image intensity normalization (``minmax`` as in the paper, ``zscore`` as in nnU-Net)."""

from __future__ import annotations

import numpy as np

from lgeseg.core.records import NormalizationConfig


def normalize(image: np.ndarray, config: NormalizationConfig) -> np.ndarray:
    """Normalize each channel of a (C, z, y, x) image on its own; returns float32, same shape.

    ``minmax``: clip to the channel's ``clip_percentiles`` then scale to [0, 1].
    ``zscore``: subtract the channel's mean and divide by its standard deviation.
    A constant channel becomes all zeros.

    Example:
        >>> image = np.array([[[[0.0, 50.0, 100.0, 1000.0]]]])  # (C, z, y, x)
        >>> [round(float(v), 3) for v in normalize(image, NormalizationConfig("minmax", (0.0, 100.0))).ravel()]
        [0.0, 0.05, 0.1, 1.0]
        >>> z = normalize(image, NormalizationConfig("zscore"))
        >>> abs(round(float(z.mean()), 6)), round(float(z.std()), 3)
        (0.0, 1.0)
    """
    out = np.empty(image.shape, dtype=np.float32)
    for index, channel in enumerate(image):
        channel = channel.astype(np.float32, copy=False)
        if config.scheme == "minmax":
            low, high = np.percentile(channel, config.clip_percentiles)
            scale = float(high - low)
            if scale <= 0:
                out[index] = 0.0
                continue
            np.clip(channel, low, high, out=out[index])
            out[index] -= low
            out[index] *= 1.0 / scale
        elif config.scheme == "zscore":
            mean = float(channel.mean(dtype=np.float64))
            std = float(channel.std(dtype=np.float64))
            np.subtract(channel, mean, out=out[index])
            out[index] *= 0.0 if std <= 0 else 1.0 / std
        else:
            raise ValueError(f"normalization scheme must be 'minmax' or 'zscore', found {config.scheme!r}")
    return out
