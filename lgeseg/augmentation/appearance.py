"""Appearance (domain-generalization) ops: make cine or phantom images look like unseen LGE scans.

A model trained on one modality or center learns its intensities; these ops randomize appearance
while keeping the anatomy, so what is left to learn is shape:

* ``random_convolution``: GIN (global intensity non-linear, Ouyang et al. 2022): a shallow random
  convolutional network, mixed with the input;
* ``bias_field``: a smooth multiplicative field (coil sensitivity), a low-order polynomial in log space;
* ``location_scale``: class-wise intensity location-scale as SLAug's local augmentation (Su et al.
  2023): each label region gets its own random scale and shift, blended with smoothed label masks
  (cine's bright myocardium/blood-pool contrast becomes nulled or bright myocardium);
* ``invert``: contrast inversion within each row's range;
* ``paint_scar``: bright enhancement painted into the myocardium (labels unchanged), the pattern of
  LGE scar that cine and the healthy parts of the phantom lack: blurred blobs (patchy, non-ischemic
  enhancement) or a sector of the ring that starts at the endocardium and reaches a random share
  of the wall (ischemic scar: subendocardial to transmural within one coronary territory, the
  "wavefront" of infarction), ``scar_sector_mask``.

Like ``intensity``, every op takes rows ``x`` of shape (n, 1, H, W) and explicit per-row parameters
(sampled by ``pipeline.sample_intensity``), so the ops are deterministic; label-aware ops also take
``labels`` (n, H, W). Every op keeps each row within its input [min, max] (the min-max normalized
range the network sees at prediction time).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Hidden channels of the random network of ``random_convolution``.
GIN_CHANNELS: int = 4
#: Number of random weights per row of ``random_convolution`` (3 layers of 3x3 convolutions + biases).
GIN_PARAMETERS: int = (GIN_CHANNELS * 9 + GIN_CHANNELS) + (GIN_CHANNELS * GIN_CHANNELS * 9 + GIN_CHANNELS) + (
    GIN_CHANNELS * 9 + 1
)
#: Coefficients of the cubic polynomial of ``bias_field`` (1, x, y, x^2, xy, y^2, x^3, ...).
BIAS_FIELD_TERMS: int = 10
#: Blobs per row of ``paint_scar``.
SCAR_BLOBS: int = 3
#: Per-row parameters of a sector scar: (is a sector 0/1, centre angle as a fraction of a turn,
#: angular width in degrees, transmural extent as a fraction of the wall from the endocardium).
SCAR_SECTOR_PARAMETERS: int = 4
#: Dilation steps (voxels) over which the wall depth of ``scar_sector_mask`` is measured.
WALL_DEPTH_STEPS: int = 12
#: Label values of the blood pool and the myocardium.
BLOOD_POOL: int = 1
MYOCARDIUM: int = 2
_EPS = 1e-6


def _row_range(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x.amin(dim=(-2, -1), keepdim=True), x.amax(dim=(-2, -1), keepdim=True)


def rescale_to(y: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Min-max rescale every row of ``y`` (n, 1, H, W) onto [lo, hi] (each (n, 1, 1, 1)).

    Example:
        >>> row = torch.tensor([[[[0.0, 1.0, 2.0, 4.0]]]])
        >>> low, high = torch.full((1, 1, 1, 1), 0.0), torch.full((1, 1, 1, 1), 10.0)
        >>> [round(v, 3) for v in rescale_to(row, low, high).flatten().tolist()]
        [0.0, 2.5, 5.0, 10.0]
    """
    y_lo, y_hi = _row_range(y)
    return (y - y_lo) / (y_hi - y_lo + _EPS) * (hi - lo) + lo


def _standardize(y: torch.Tensor) -> torch.Tensor:
    mean = y.mean(dim=(-2, -1), keepdim=True)
    return (y - mean) / (y.std(dim=(-2, -1), keepdim=True) + _EPS)


def _grouped_conv(y: torch.Tensor, weights: torch.Tensor, bias: torch.Tensor, c_in: int, c_out: int) -> torch.Tensor:
    """Per-row 3x3 convolution: y (1, n*c_in, H, W), weights (n, c_out*c_in*9), bias (n, c_out)."""
    n = weights.shape[0]
    kernel = weights.reshape(n * c_out, c_in, 3, 3)
    return F.conv2d(F.pad(y, (1, 1, 1, 1), mode="reflect"), kernel, bias.reshape(-1), groups=n)


def random_convolution(x: torch.Tensor, weights: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
    """GIN: a random 3-layer convolutional network (3x3, leaky ReLU) mixed with the input.

    Args:
        x: (n, 1, H, W).
        weights: (n, ``GIN_PARAMETERS``) the network's weights and biases, e.g. standard normal.
        mix: (n,) in [0, 1], share of the network's output (0 returns ``x``); or (n, G, G): per row a
            G x G grid of shares, bicubically interpolated (corners on the image corners) into a smooth
            field over the slice, clamped to [0, 1], so the share varies across the image: some regions
            keep the original appearance while others take the network's (in the spirit of the
            interventional pseudo-correlation augmentation of Ouyang et al., 2022, which blends GIN views
            with smooth random masks).

    Returns:
        (n, 1, H, W): ``mix * net(x) + (1 - mix) * x`` on standardized intensities, min-max rescaled
        onto each row's input [min, max].

    Example:
        >>> generator = torch.Generator().manual_seed(0)
        >>> images = torch.rand(2, 1, 16, 16, generator=generator)
        >>> weights = torch.randn(2, GIN_PARAMETERS, generator=generator)
        >>> out = random_convolution(images, weights, mix=torch.tensor([0.0, 1.0]))
        >>> torch.allclose(out[0], images[0], atol=1e-5), bool(out[1].min() >= images[1].min() - 1e-5)  # mix 0: x
        (True, True)
        >>> left_only = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]]).expand(2, 2, 2)  # 2 x 2 grid: GIN left, image right
        >>> spatial = random_convolution(images, weights, mix=left_only)
        >>> spatial.shape == images.shape
        True
    """
    n, _, h, w = x.shape
    k = GIN_CHANNELS
    sizes = [k * 9, k, k * k * 9, k, k * 9, 1]
    w1, b1, w2, b2, w3, b3 = torch.split(weights.to(x.dtype), sizes, dim=1)
    lo, hi = _row_range(x)
    y = x.reshape(1, n, h, w)
    y = F.leaky_relu(_grouped_conv(y, w1 / 3.0, b1, 1, k), 0.2)
    y = F.leaky_relu(_grouped_conv(y, w2 / (3.0 * k**0.5), b2, k, k), 0.2)
    y = _grouped_conv(y, w3 / (3.0 * k**0.5), b3, k, 1).reshape(n, 1, h, w)
    if mix.dim() == 3:  # a grid of shares per row -> a smooth field over the slice
        m = F.interpolate(mix.to(x.dtype).unsqueeze(1), size=(h, w), mode="bicubic", align_corners=True).clamp(0, 1)
    else:
        m = mix.to(x.dtype).view(-1, 1, 1, 1)
    return rescale_to(m * _standardize(y) + (1 - m) * _standardize(x), lo, hi)


def _polynomial_basis(h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(``BIAS_FIELD_TERMS``, H, W) monomials of degree <= 3 in coordinates scaled to [-1, 1]."""
    yy, xx = torch.meshgrid(
        torch.linspace(-1, 1, h, device=device, dtype=dtype), torch.linspace(-1, 1, w, device=device, dtype=dtype),
        indexing="ij",
    )
    terms = [yy**i * xx**j for degree in range(4) for i in range(degree + 1) for j in [degree - i]]
    return torch.stack(terms)


def bias_field(x: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
    """Multiply by a smooth field ``exp(sum_k c_k * monomial_k(y, x))`` and keep the row's range.

    Args:
        x: (n, 1, H, W), intensities >= 0 (e.g. min-max normalized).
        coefficients: (n, ``BIAS_FIELD_TERMS``) log-field coefficients of the monomials of degree
            <= 3 in (y, x) scaled to [-1, 1]; the constant term only scales and is undone.

    Returns:
        (n, 1, H, W), min-max rescaled onto each row's input [min, max].

    Example:
        >>> image = torch.full((1, 1, 8, 8), 0.5); image[..., 0, 0] = 0.0; image[..., -1, -1] = 1.0
        >>> coefficients = torch.zeros(1, BIAS_FIELD_TERMS); coefficients[0, 1] = 1.0  # brighter along one axis
        >>> out = bias_field(image, coefficients)
        >>> round(float(out.min()), 4), round(float(out.max()), 4)  # the row's range is kept
        (0.0, 1.0)
    """
    lo, hi = _row_range(x)
    basis = _polynomial_basis(x.shape[-2], x.shape[-1], x.device, x.dtype)
    log_field = torch.einsum("nk,khw->nhw", coefficients.to(x.dtype), basis)[:, None]
    return rescale_to((x - lo) * torch.exp(log_field), lo, hi)


def _class_onehot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(n, K, H, W) float one-hot of ``labels`` (n, H, W); a value outside 0..K-1 (an ignore label) is in no class."""
    labels = labels.long()
    onehot = F.one_hot(labels.clamp(0, num_classes - 1), num_classes)
    onehot.masked_fill_(((labels < 0) | (labels >= num_classes))[..., None], 0)
    return onehot.permute(0, 3, 1, 2).float()  # this layout keeps the class sums bit for bit as they were


def _soft_masks(labels: torch.Tensor, num_classes: int, sigma: float) -> torch.Tensor:
    """(n, K, H, W) one-hot masks blurred with a Gaussian of ``sigma`` voxels, summing to 1.

    A voxel of no class (an ignore label) takes the blend of the classes around it; one with no class
    within the blur's reach counts as background.
    """
    onehot = _class_onehot(labels, num_classes)
    radius = max(1, int(3 * sigma))
    t = torch.arange(-radius, radius + 1, device=labels.device, dtype=torch.float32)
    kernel = torch.exp(-(t**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    n, k, h, w = onehot.shape
    y = onehot.reshape(n * k, 1, h, w)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
    y = y.reshape(n, k, h, w)
    total = y.sum(1, keepdim=True)
    background = (torch.arange(k, device=labels.device) == 0).to(y.dtype).view(1, -1, 1, 1)
    return torch.where(total > _EPS, y / total.clamp_min(_EPS), background)


def location_scale(
    x: torch.Tensor, labels: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, sigma: float = 1.5
) -> torch.Tensor:
    """Class-wise location-scale (SLAug's local augmentation) with smooth class borders.

    Each class region k gets ``(x - mean_k) * scale_k + mean_k + shift_k`` (``mean_k``: the row's mean
    intensity inside class k), blended with the one-hot labels blurred by ``sigma`` voxels.

    Args:
        x: (n, 1, H, W).
        labels: (n, H, W) integer labels 0 .. K-1; any other value (an ignore label) is in no class: it
            counts in no class mean and takes the blend of the transforms of the classes around it.
        scale, shift: (n, K) per class; shift in units of the row's intensity range.
        sigma: blur of the class masks, voxels.

    Returns:
        (n, 1, H, W), min-max rescaled onto each row's input [min, max].

    Example:
        >>> labels = torch.zeros(1, 16, 16, dtype=torch.long); labels[0, 4:12, 4:12] = 2; labels[0, 6:10, 6:10] = 1
        >>> image = torch.full((1, 1, 16, 16), 0.2)  # background 0.2, blood pool 0.8, myocardium 0.3
        >>> image[0, 0][labels[0] == 1] = 0.8; image[0, 0][labels[0] == 2] = 0.3
        >>> out = location_scale(image, labels, scale=torch.ones(1, 3), shift=torch.tensor([[0.0, 0.0, 0.4]]))
        >>> round(float(out[0, 0, 0, 0]), 3), round(float(out[0, 0][labels[0] == 2].mean()), 2)  # myocardium brighter
        (0.2, 0.39)
    """
    lo, hi = _row_range(x)
    k = scale.shape[1]
    masks = _soft_masks(labels, k, sigma).to(x.dtype)
    hard = _class_onehot(labels, k).to(x.dtype)
    count = hard.sum(dim=(-2, -1), keepdim=True)
    mean = (hard * x).sum(dim=(-2, -1), keepdim=True) / count.clamp_min(1)
    mean = torch.where(count > 0, mean, x.mean(dim=(-2, -1), keepdim=True))
    span = hi - lo
    per_class = (x - mean) * scale.to(x.dtype)[..., None, None] + mean + shift.to(x.dtype)[..., None, None] * span
    return rescale_to((masks * per_class).sum(1, keepdim=True), lo, hi)


def invert(x: torch.Tensor) -> torch.Tensor:
    """Contrast inversion within each row's range: ``min + max - x`` (bright becomes dark).

    Example:
        >>> invert(torch.tensor([[[[0.0, 1.0, 2.0, 4.0]]]])).flatten().tolist()
        [4.0, 3.0, 2.0, 0.0]
    """
    lo, hi = _row_range(x)
    return lo + hi - x


def _steps_to_reach(mask: torch.Tensor, steps: int) -> torch.Tensor:
    """Chessboard distance (voxels, capped at ``steps``) of every pixel to ``mask`` (n, 1, H, W) by dilation."""
    reached, distance = mask, torch.zeros_like(mask)
    for _ in range(steps):
        reached = F.max_pool2d(reached, 3, stride=1, padding=1)
        distance = distance + (1 - reached)
    return distance


def scar_sector_mask(labels: torch.Tensor, sector: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Soft mask (n, 1, H, W) of an ischemic-like scar: a sector of the myocardial ring from the endocardium out.

    Args:
        labels: (n, H, W) integer labels (1 blood pool, 2 myocardium).
        sector: (n, ``SCAR_SECTOR_PARAMETERS``): flag (unused here), centre angle in turns [0, 1) around the
            blood pool's centroid (the myocardium's where a slice has no blood pool), angular width in
            degrees, transmural extent in (0, 1] (0.3: the inner 30% of the wall; 1: transmural).
        dtype: of the returned mask.

    Returns:
        (n, 1, H, W) in [0, 1], zero outside the myocardium and in rows without it; the wall depth of a
        myocardium pixel is its distance to the blood pool over the sum of its distances to the blood
        pool and to the outside of the ventricle (``WALL_DEPTH_STEPS`` dilations).

    Example:
        >>> labels = torch.zeros(1, 32, 32, dtype=torch.long); labels[0, 4:28, 4:28] = 2; labels[0, 10:22, 10:22] = 1
        >>> half = scar_sector_mask(labels, torch.tensor([[1.0, 0.0, 180.0, 1.0]]))  # right half, transmural
        >>> bool(half[0, 0, 16, 25] > 0.5), bool(half[0, 0, 16, 6] > 0), bool(half[0, 0, 16, 16] > 0)
        (True, False, False)
        >>> inner = scar_sector_mask(labels, torch.tensor([[1.0, 0.0, 180.0, 0.3]]))  # subendocardial only
        >>> bool(inner[0, 0, 16, 23] > 0.5), bool(inner[0, 0, 16, 27] > 0.5)
        (True, False)
    """
    n, h, w = labels.shape
    myo = (labels == MYOCARDIUM).to(dtype).unsqueeze(1)
    blood = (labels == BLOOD_POOL).to(dtype).unsqueeze(1)
    centre_of = torch.where(blood.flatten(1).sum(1, keepdim=True) > 0, blood.flatten(1), myo.flatten(1))
    weight = centre_of.sum(1).clamp_min(1)
    yy = torch.arange(h, device=labels.device, dtype=dtype).view(1, h, 1).expand(1, h, w).reshape(1, -1)
    xx = torch.arange(w, device=labels.device, dtype=dtype).view(1, 1, w).expand(1, h, w).reshape(1, -1)
    cy, cx = (centre_of * yy).sum(1) / weight, (centre_of * xx).sum(1) / weight
    angle = torch.atan2(yy.view(1, h, w) - cy.view(n, 1, 1), xx.view(1, h, w) - cx.view(n, 1, 1))
    centre = 2 * torch.pi * sector[:, 1].to(dtype).view(n, 1, 1)
    offset = torch.remainder(angle - centre + torch.pi, 2 * torch.pi) - torch.pi
    inside = offset.abs() <= torch.deg2rad(sector[:, 2].to(dtype)).view(n, 1, 1) / 2
    d_in = _steps_to_reach(blood, WALL_DEPTH_STEPS)
    d_out = _steps_to_reach(1 - ((labels == BLOOD_POOL) | (labels == MYOCARDIUM)).to(dtype).unsqueeze(1),
                            WALL_DEPTH_STEPS)
    depth = d_in / (d_in + d_out).clamp_min(_EPS)
    hard = inside.unsqueeze(1).to(dtype) * (depth <= sector[:, 3].to(dtype).view(n, 1, 1, 1)).to(dtype) * myo
    return F.avg_pool2d(hard, 3, stride=1, padding=1, count_include_pad=False) * myo


def paint_scar(
    x: torch.Tensor, labels: torch.Tensor, position: torch.Tensor, sigma: torch.Tensor, brightness: torch.Tensor,
    sector: torch.Tensor | None = None,
) -> torch.Tensor:
    """Paint scar into the myocardium (label 2) of every row: ``SCAR_BLOBS`` bright Gaussian blobs, or a sector.

    Args:
        x: (n, 1, H, W).
        labels: (n, H, W) integer labels; rows without myocardium are returned unchanged.
        position: (n, ``SCAR_BLOBS``) in [0, 1): which myocardium pixel (by quantile of the
            row-major order) each blob is centred on.
        sigma: (n, ``SCAR_BLOBS``) blob widths in voxels.
        brightness: (n,) in [0, 1]: target intensity as a fraction of the row's [min, max].
        sector: (n, ``SCAR_SECTOR_PARAMETERS``) or None: rows whose first value is 1 get the sector of
            ``scar_sector_mask`` instead of the blobs; None: blobs everywhere.

    Returns:
        (n, 1, H, W): inside the myocardium ``x + a * max(target - x, 0)`` with ``a`` in [0, 1] the
        blobs' or the sector's envelope (only brightens); outside the myocardium unchanged. Labels are
        not changed.

    Example:
        >>> labels = torch.zeros(1, 16, 16, dtype=torch.long); labels[0, 4:12, 4:12] = 2; labels[0, 6:10, 6:10] = 1
        >>> image = torch.full((1, 1, 16, 16), 0.2)  # background 0.2, blood pool 0.8, myocardium 0.3
        >>> image[0, 0][labels[0] == 1] = 0.8; image[0, 0][labels[0] == 2] = 0.3
        >>> position, sigma = torch.tensor([[0.1, 0.5, 0.9]]), torch.full((1, 3), 1.5)  # 3 blobs
        >>> painted = paint_scar(image, labels, position, sigma, brightness=torch.tensor([1.0]))
        >>> float((painted - image)[0, 0][labels[0] != 2].abs().max()), round(float((painted - image).max()), 3)
        (0.0, 0.5)
    """
    n, _, h, w = x.shape
    lo, hi = _row_range(x)
    myo = (labels == MYOCARDIUM).reshape(n, h * w)
    count = myo.sum(1, keepdim=True)
    rank = (position.clamp(0, 1 - 1e-6) * count).floor() + 1  # 1 .. count
    index = torch.searchsorted(myo.long().cumsum(1), rank.long()).clamp_max(h * w - 1)  # (n, blobs)
    cy, cx = (index // w).to(x.dtype), (index % w).to(x.dtype)
    yy = torch.arange(h, device=x.device, dtype=x.dtype).view(1, 1, h, 1)
    xx = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, 1, w)
    d2 = (yy - cy[..., None, None]) ** 2 + (xx - cx[..., None, None]) ** 2
    blobs = torch.exp(-d2 / (2 * sigma.to(x.dtype)[..., None, None] ** 2)).amax(1, keepdim=True)
    envelope = blobs * myo.reshape(n, 1, h, w).to(x.dtype) * (count > 0).to(x.dtype).view(n, 1, 1, 1)
    if sector is not None:
        is_sector = (sector[:, 0] > 0.5).view(n, 1, 1, 1)
        envelope = torch.where(is_sector, scar_sector_mask(labels, sector, x.dtype), envelope)
    target = lo + brightness.to(x.dtype).view(-1, 1, 1, 1) * (hi - lo)
    return x + envelope * (target - x).clamp_min(0)
