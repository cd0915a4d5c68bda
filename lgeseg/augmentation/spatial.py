"""Spatial augmentation: one affine per sample (flip, rotation, scaling, translation), batched.

``sample_spatial`` draws ``SpatialParams`` from a preset; ``apply_spatial`` is deterministic and
resamples the input crops onto the output patch with ``F.affine_grid`` + ``F.grid_sample``.

Geometry (per sample, pixel units of the *input crop*, axes (x, y) as grid_sample uses them):
an output pixel at centred position ``u`` (relative to the patch centre) reads the input at
``c_in + shift + R(angle) @ (step * F @ u)``, with ``F`` = diag(+-1, +-1) the flips, ``step`` the
input pixels per output pixel (> 1 shows more of the input: structures appear smaller) and
``c_in`` the crop centre. Rotation by +90 degrees maps the output's +x axis onto the input's +y
axis (y points down the rows): the picture turns counterclockwise on screen, exactly like
``torch.rot90(x, 1, dims=(-2, -1))``.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F

from lgeseg.augmentation.presets import AugmentationPreset


@dataclasses.dataclass(frozen=True)
class SpatialParams:
    """Per-sample spatial parameters, all tensors of length B.

    Attributes:
        flip_x, flip_y: bool, mirror along x (columns) / y (rows).
        angle: radians.
        step: input pixels per output pixel (1 = no scaling).
        shift: (B, 2) float, (dy, dx) input pixels of the patch centre from the crop centre.
    """

    flip_x: torch.Tensor
    flip_y: torch.Tensor
    angle: torch.Tensor
    step: torch.Tensor
    shift: torch.Tensor

    @staticmethod
    def identity(batch_size: int, device: torch.device | str = "cpu") -> SpatialParams:
        """Parameters that reproduce the centre crop."""
        zeros = torch.zeros(batch_size, device=device)
        return SpatialParams(zeros.bool(), zeros.bool(), zeros, zeros + 1, torch.zeros(batch_size, 2, device=device))


def _uniform(lo: float, hi: float, n: int, generator: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=generator, device=generator.device)


def _coin(p: float, n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=generator.device) < p


def _centre_offset(crop: int, patch: int) -> float:
    return (crop - patch) / 2.0


def sample_spatial(
    preset: AugmentationPreset,
    batch_size: int,
    crop_size: tuple[int, int],
    patch_size: tuple[int, int],
    spacing_yx: tuple[float, float],
    generator: torch.Generator,
) -> SpatialParams:
    """Draw flips, angle, scale step and integer-aligned shift for every sample.

    Args:
        preset: probabilities and ranges.
        batch_size: B.
        crop_size: (H, W) voxels of the input crops.
        patch_size: (ph, pw) voxels of the output patch.
        spacing_yx: mm of the input pixels; used by ``scaling_mode="spacing"``.
        generator: source of randomness; parameters are created on its device.

    Returns:
        ``SpatialParams`` on ``generator.device``.

    Example:
        >>> from lgeseg.augmentation.presets import get_preset
        >>> preset = get_preset("spatial")
        >>> crop = required_crop_size(preset, (32, 32), (1.25, 1.25))
        >>> params = sample_spatial(preset, 2, crop, (32, 32), (1.25, 1.25), torch.Generator().manual_seed(0))
        >>> tuple(params.angle.shape), tuple(params.shift.shape)  # one draw per sample
        ((2,), (2, 2))
    """
    n = batch_size
    flip_x = _coin(preset.p_flip_x, n, generator)
    flip_y = _coin(preset.p_flip_y, n, generator)
    lo, hi = (math.radians(v) for v in preset.rotation_deg)
    angle = torch.where(_coin(preset.p_rotation, n, generator), _uniform(lo, hi, n, generator), 0.0)
    value = _uniform(*preset.scaling_range, n, generator)
    if preset.scaling_mode == "spacing":  # resample to an effective spacing of `value` mm
        step = value / math.sqrt(spacing_yx[0] * spacing_yx[1])
    else:  # zoom factor: > 1 enlarges
        step = 1.0 / value
    step = torch.where(_coin(preset.p_scaling, n, generator), step, 1.0)
    shifts = []
    for crop, patch in zip(crop_size, patch_size, strict=True):
        limit = min(preset.max_translation * patch, _centre_offset(crop, patch))
        raw = _uniform(-limit, limit, n, generator)
        offset = _centre_offset(crop, patch)
        # keep the top-left corner on a whole pixel so an untransformed patch is an exact crop
        shifts.append(torch.ceil(offset + raw - 0.5) - offset)
    return SpatialParams(flip_x, flip_y, angle, step, torch.stack(shifts, dim=1))


def _filled(values: tuple[float, ...], device: torch.device) -> torch.Tensor:
    """``values`` as a float32 vector made on ``device`` by fills (a copy from the host would wait for a GPU)."""
    return torch.stack([torch.full((), value, device=device) for value in values])


def affine_theta(
    params: SpatialParams, crop_size: tuple[int, int], patch_size: tuple[int, int], device: torch.device
) -> torch.Tensor:
    """The (B, 2, 3) ``F.affine_grid`` matrices (normalized coordinates, align_corners=False).

    Example:
        >>> from lgeseg.augmentation.presets import get_preset
        >>> generator = torch.Generator().manual_seed(0)
        >>> params = sample_spatial(get_preset("spatial"), 2, (82, 82), (32, 32), (1.25, 1.25), generator)
        >>> tuple(affine_theta(params, (82, 82), (32, 32), torch.device("cpu")).shape)
        (2, 2, 3)
    """
    h_in, w_in = crop_size
    h_out, w_out = patch_size
    cos, sin = torch.cos(params.angle), torch.sin(params.angle)
    fx = 1.0 - 2.0 * params.flip_x.float()
    fy = 1.0 - 2.0 * params.flip_y.float()
    s = params.step
    # A = R @ diag(s*fx, s*fy) in pixel units, (x, y) order
    a = torch.stack((torch.stack((cos * s * fx, -sin * s * fy), -1), torch.stack((sin * s * fx, cos * s * fy), -1)), -2)
    d_out = _filled((w_out / 2.0, h_out / 2.0), a.device)
    d_in = _filled((w_in / 2.0, h_in / 2.0), a.device)
    linear = a * d_out[None, None, :] / d_in[None, :, None]
    translation = params.shift.flip(-1) / d_in  # (dx, dy) normalized
    return torch.cat((linear, translation[..., None]), dim=-1).to(device)


def centre_crop(x: torch.Tensor, patch_size: tuple[int, int]) -> torch.Tensor:
    """Crop the last two axes of ``x`` to ``patch_size`` around the centre (floor of the offset).

    Example:
        >>> centre_crop(torch.arange(16).reshape(4, 4), (2, 2)).tolist()
        [[5, 6], [9, 10]]
    """
    h, w = x.shape[-2:]
    y0, x0 = (h - patch_size[0]) // 2, (w - patch_size[1]) // 2
    return x[..., y0 : y0 + patch_size[0], x0 : x0 + patch_size[1]]


def apply_spatial(
    images: torch.Tensor,
    labels: torch.Tensor,
    params: SpatialParams,
    patch_size: tuple[int, int],
    num_classes: int,
    image_interpolation: str = "bilinear",
    label_interpolation: str = "linear_onehot",
    padding: str = "zeros",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample crops onto patches with one affine per sample (deterministic).

    Args:
        images: (B, C, H, W) float.
        labels: (B, H, W) integer label maps with values in [0, num_classes).
        params: from ``sample_spatial`` or built by hand.
        patch_size: (ph, pw) voxels.
        num_classes: labels are one-hot encoded with this many channels for ``"linear_onehot"``.
        image_interpolation: ``"bilinear"`` or ``"bicubic"``.
        label_interpolation: ``"nearest"`` or ``"linear_onehot"`` (never creates new label values).
        padding: image values outside the crop: ``"zeros"`` or ``"border"``; labels get 0.

    Returns:
        (images (B, C, ph, pw), labels (B, ph, pw) long).

    Example:
        >>> from lgeseg.augmentation.presets import get_preset
        >>> preset, generator = get_preset("spatial"), torch.Generator().manual_seed(0)
        >>> crop = required_crop_size(preset, (32, 32), (1.25, 1.25))
        >>> images = torch.rand(2, 1, *crop)  # (B, C, H, W) crops, larger than the patch
        >>> labels = torch.zeros(2, *crop, dtype=torch.long); labels[:, 36:46, 36:46] = 1
        >>> params = sample_spatial(preset, 2, crop, (32, 32), (1.25, 1.25), generator)
        >>> patches, patch_labels = apply_spatial(images, labels, params, (32, 32), num_classes=3)
        >>> tuple(patches.shape), tuple(patch_labels.shape), patch_labels.dtype
        ((2, 1, 32, 32), (2, 32, 32), torch.int64)
    """
    b, c = images.shape[:2]
    dtype = images.dtype if images.dtype in (torch.float32, torch.float64) else torch.float32
    theta = affine_theta(params, tuple(images.shape[-2:]), patch_size, images.device).to(dtype)
    grid = F.affine_grid(theta, [b, 1, *patch_size], align_corners=False)
    x = images.to(dtype)
    if label_interpolation == "nearest":
        lab = F.grid_sample(labels[:, None].to(dtype), grid, mode="nearest", padding_mode="zeros", align_corners=False)
        out_labels = lab[:, 0].round().long()
        out = F.grid_sample(x, grid, mode=image_interpolation, padding_mode=padding, align_corners=False)
        return out.to(images.dtype), out_labels
    classes = torch.arange(num_classes, device=labels.device).view(1, -1, 1, 1)
    onehot = (labels[:, None] == classes).to(dtype)  # (B, K, H, W), cheaper than F.one_hot + permute
    if image_interpolation == "bilinear" and padding == "zeros":  # one pass for both
        both = F.grid_sample(torch.cat((x, onehot), 1), grid, mode="bilinear", align_corners=False)
        return both[:, :c].to(images.dtype), _argmax_channels(both[:, c:])
    out = F.grid_sample(x, grid, mode=image_interpolation, padding_mode=padding, align_corners=False)
    lab = F.grid_sample(onehot, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.to(images.dtype), _argmax_channels(lab)


def _argmax_channels(weights: torch.Tensor) -> torch.Tensor:
    """``weights.argmax(1)`` for (B, K, H, W) with small K; a loop over K is ~5x faster on CPU.

    Ties go to the lower label, so padding (all weights 0) becomes background.
    """
    best, index = weights[:, 0], torch.zeros(weights[:, 0].shape, dtype=torch.long, device=weights.device)
    for k in range(1, weights.shape[1]):
        take = weights[:, k] > best
        index = torch.where(take, k, index)
        best = torch.maximum(best, weights[:, k])
    return index


def required_crop_size(
    preset: AugmentationPreset, patch_size: tuple[int, int], spacing_yx: tuple[float, float]
) -> tuple[int, int]:
    """Input crop (H, W) voxels large enough that no sampled transform of ``preset`` pads.

    Covers the largest rotation and zoom-out of the preset plus the full translation range.
    Loaders may use a smaller crop (padding then fills the corners, as in nnU-Net).

    Example:
        >>> from lgeseg.augmentation.presets import get_preset
        >>> [required_crop_size(get_preset(name), (32, 32), (1.25, 1.25)) for name in ("spatial", "none")]
        [(82, 82), (32, 32)]
    """
    step = 1.0
    if preset.p_scaling:
        lo, hi = preset.scaling_range
        step = hi / math.sqrt(spacing_yx[0] * spacing_yx[1]) if preset.scaling_mode == "spacing" else 1.0 / lo
        step = max(step, 1.0)
    half_h, half_w = patch_size[0] / 2.0, patch_size[1] / 2.0
    extent_h, extent_w = half_h, half_w
    if preset.p_rotation:
        lo, hi = (math.radians(v) for v in preset.rotation_deg)
        for k in range(91):
            t = lo + (hi - lo) * k / 90
            extent_h = max(extent_h, abs(half_w * math.sin(t)) + abs(half_h * math.cos(t)))
            extent_w = max(extent_w, abs(half_w * math.cos(t)) + abs(half_h * math.sin(t)))
    shift_h, shift_w = preset.max_translation * patch_size[0], preset.max_translation * patch_size[1]
    return (
        int(math.ceil(2 * (extent_h * step + shift_h))),
        int(math.ceil(2 * (extent_w * step + shift_w))),
    )
