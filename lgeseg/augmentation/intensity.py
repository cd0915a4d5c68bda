"""Deterministic intensity ops on batches of single-channel images.

Every op takes ``x`` of shape (n, 1, H, W) (one row per selected sample-channel) and per-row
parameters of shape (n,), and returns a new tensor of the same shape. The pipeline selects the rows
an op applies to, so no op loops over samples in Python. Intensities are in the units of the
normalized image (see ``presets``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_EPS = 1e-7


def _col(v: torch.Tensor) -> torch.Tensor:
    return v.view(-1, 1, 1, 1)


def bilateral_filter(x: torch.Tensor, sigma_space: torch.Tensor, sigma_color: torch.Tensor) -> torch.Tensor:
    """5x5 bilateral filter (edge-preserving blur), borders replicated.

    Args:
        x: (n, 1, H, W).
        sigma_space: (n,) voxels, width of the spatial Gaussian.
        sigma_color: (n,) intensity units, width of the range Gaussian.

    Example:
        >>> edge = torch.zeros(1, 1, 5, 5); edge[..., 3:] = 10.0  # a sharp edge between columns 2 and 3
        >>> [round(v, 2) for v in bilateral_filter(edge, torch.tensor([1.0]), torch.tensor([1.0]))[0, 0, 2].tolist()]
        [0.0, 0.0, 0.0, 10.0, 10.0]
    """
    n, _, h, w = x.shape
    radius = 2
    patches = F.unfold(F.pad(x, (radius,) * 4, mode="replicate"), 2 * radius + 1)  # (n, 25, H*W)
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    dist2 = (offsets[:, None] ** 2 + offsets[None, :] ** 2).reshape(1, -1, 1)
    log_w = -dist2 / (2 * sigma_space.view(-1, 1, 1) ** 2)
    diff = patches - x.reshape(n, 1, h * w)
    log_w = log_w - diff**2 / (2 * sigma_color.view(-1, 1, 1) ** 2)
    weights = torch.softmax(log_w, dim=1)  # normalised weights, numerically safe
    return (weights * patches).sum(1).view(n, 1, h, w)


def add_noise(x: torch.Tensor, std: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Add zero-mean Gaussian noise with per-row ``std`` (n,) drawn from ``generator``.

    Example:
        >>> noisy = add_noise(torch.zeros(2, 1, 64, 64), torch.tensor([0.0, 2.0]), torch.Generator().manual_seed(0))
        >>> round(float(noisy[0].std()), 1), round(float(noisy[1].std()), 1)
        (0.0, 2.0)
    """
    noise = torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)
    return x + noise * _col(std)


def _gaussian_kernels(sigma: torch.Tensor, radius: int) -> torch.Tensor:
    t = torch.arange(-radius, radius + 1, device=sigma.device, dtype=sigma.dtype)
    k = torch.exp(-(t[None, :] ** 2) / (2 * sigma[:, None] ** 2))
    return k / k.sum(1, keepdim=True)


def gaussian_blur(x: torch.Tensor, sigma_y: torch.Tensor, sigma_x: torch.Tensor, radius: int) -> torch.Tensor:
    """Separable Gaussian blur with per-row sigmas (voxels), reflect borders.

    Args:
        x: (n, 1, H, W).
        sigma_y, sigma_x: (n,) voxels.
        radius: kernel half-width in voxels (use about 3 * the largest sigma).

    Example:
        >>> edge = torch.zeros(1, 1, 5, 5); edge[..., 3:] = 10.0
        >>> blurred = gaussian_blur(edge, torch.tensor([1.0]), torch.tensor([1.0]), radius=3)
        >>> [round(v) for v in blurred[0, 0, 2].tolist()]  # the edge spreads over neighbouring columns
        [0, 1, 3, 7, 9]
    """
    n, _, h, w = x.shape
    radius = max(1, min(radius, h - 1, w - 1))
    ky = _gaussian_kernels(sigma_y.to(x.dtype), radius).view(n, 1, -1, 1)
    kx = _gaussian_kernels(sigma_x.to(x.dtype), radius).view(n, 1, 1, -1)
    y = F.pad(x.view(1, n, h, w), (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, ky, groups=n)
    y = F.conv2d(y, kx, groups=n)
    return y.view(n, 1, h, w)


def multiply(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Multiplicative brightness: ``x * factor`` with per-row factor (n,).

    Example:
        >>> multiply(torch.ones(2, 1, 1, 2), torch.tensor([2.0, 0.5])).flatten().tolist()
        [2.0, 2.0, 0.5, 0.5]
    """
    return x * _col(factor)


def add(x: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """Additive brightness: ``x + offset`` with per-row offset (n,) in intensity units.

    Example:
        >>> add(torch.ones(2, 1, 1, 2), torch.tensor([1.0, -1.0])).flatten().tolist()
        [2.0, 2.0, 0.0, 0.0]
    """
    return x + _col(offset)


def contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Scale deviations from each row's mean by ``factor`` (n,), then clip to the row's old min/max.

    Example:
        >>> row = torch.tensor([[[[0.0, 1.0, 2.0, 3.0]]]])  # mean 1.5
        >>> contrast(row, torch.tensor([2.0])).flatten().tolist(), contrast(row, torch.tensor([0.5])).flatten().tolist()
        ([0.0, 0.5, 2.5, 3.0], [0.75, 1.25, 1.75, 2.25])
    """
    mean = x.mean(dim=(-2, -1), keepdim=True)
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    return torch.minimum(torch.maximum((x - mean) * _col(factor) + mean, lo), hi)


def gamma(x: torch.Tensor, value: torch.Tensor, invert: bool, retain_stats: bool) -> torch.Tensor:
    """Gamma curve on each row min-max rescaled to [0, 1], mapped back to the row's range.

    Args:
        x: (n, 1, H, W).
        value: (n,) gamma (< 1 brightens, > 1 darkens).
        invert: apply the curve to the inverted image, ``1 - (1 - y)**gamma`` (the "inverse gamma").
        retain_stats: restore each row's mean and standard deviation afterwards (nnU-Net).

    Example:
        >>> row = torch.tensor([[[[0.0, 1.0, 2.0, 3.0]]]])
        >>> [round(v, 3) for v in gamma(row, torch.tensor([2.0]), invert=False, retain_stats=False).flatten().tolist()]
        [0.0, 0.333, 1.333, 3.0]
    """
    lo = x.amin(dim=(-2, -1), keepdim=True)
    span = x.amax(dim=(-2, -1), keepdim=True) - lo
    y = (x - lo) / (span + _EPS)
    y = 1 - (1 - y).clamp_min(0) ** _col(value) if invert else y.clamp_min(0) ** _col(value)
    out = y * span + lo
    if retain_stats:
        mean, std = x.mean(dim=(-2, -1), keepdim=True), x.std(dim=(-2, -1), keepdim=True)
        new_mean, new_std = out.mean(dim=(-2, -1), keepdim=True), out.std(dim=(-2, -1), keepdim=True)
        out = (out - new_mean) / (new_std + _EPS) * std + mean
    return out


def simulate_low_resolution(x: torch.Tensor, zoom: torch.Tensor) -> torch.Tensor:
    """Downsample each row by ``zoom`` (n,) in (0, 1] with nearest neighbour, upsample back bicubically.

    Batched without per-row shapes: the low-resolution image occupies the top-left ``zoom`` fraction
    of a full-size buffer (edges replicated beyond it), and a second resampling stretches it back.

    Example:
        >>> image = torch.arange(16.0).reshape(1, 1, 4, 4)
        >>> tuple(simulate_low_resolution(image, torch.tensor([0.5])).shape)  # same size, half the detail
        (1, 1, 4, 4)
    """
    n = x.shape[0]
    z = zoom.to(x.dtype)
    ones, zeros = torch.ones_like(z), torch.zeros_like(z)

    def theta(scale: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        row_x = torch.stack((scale, zeros, offset), -1)
        row_y = torch.stack((zeros, scale, offset), -1)
        return torch.stack((row_x, row_y), 1)

    down_grid = F.affine_grid(theta(ones / z, ones / z - 1), list(x.shape), align_corners=False)
    small = F.grid_sample(x, down_grid, mode="nearest", padding_mode="border", align_corners=False)
    up_grid = F.affine_grid(theta(z, z - 1), [n, 1, *x.shape[-2:]], align_corners=False)
    return F.grid_sample(small, up_grid, mode="bicubic", padding_mode="border", align_corners=False)


def blur_radius(sigma_max: float) -> int:
    """Kernel half-width (voxels) for Gaussian blur with sigmas up to ``sigma_max``.

    Example:
        >>> blur_radius(1.0), blur_radius(0.2)
        (3, 1)
    """
    return max(1, int(math.ceil(3 * sigma_max)))
