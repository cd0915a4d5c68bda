"""``augment_batch``: sample parameters from a preset, then apply the deterministic ops.

Order: one spatial resampling (crop -> patch), then the intensity steps in ``STEP_ORDER``.
Everything runs on the device the batch lives on; no Python loop visits individual samples.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import torch

from lgeseg.augmentation import appearance, intensity
from lgeseg.augmentation.presets import AugmentationPreset
from lgeseg.augmentation.spatial import SpatialParams, apply_spatial, centre_crop, sample_spatial

_Args = ParamSpec("_Args")
_Result = TypeVar("_Result")

#: Intensity steps in the order they are applied.
STEP_ORDER: tuple[str, ...] = (
    "location_scale",
    "scar",
    "random_conv",
    "bias_field",
    "invert",
    "bilateral",
    "noise",
    "blur",
    "brightness_mul",
    "brightness_add",
    "contrast",
    "low_res",
    "inverse_gamma",
    "gamma",
)


@dataclasses.dataclass(frozen=True)
class IntensityStep:
    """One sampled intensity step.

    Attributes:
        op: a name from ``STEP_ORDER``.
        mask: (B, C) bool, which sample-channels it applies to.
        values: per sample-channel parameters, each (B, C) or (B, C, K) for K numbers per row.
    """

    op: str
    mask: torch.Tensor
    values: tuple[torch.Tensor, ...]


def _rand(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=generator.device)


def _uniform(bounds: tuple[float, float], shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    return bounds[0] + (bounds[1] - bounds[0]) * _rand(shape, generator)


def _factor(bounds: tuple[float, float], shape: tuple[int, ...], generator: torch.Generator, split: bool):
    """Uniform in bounds, or (split) uniform in [lo, 1) or [1, hi] with probability 1/2 each."""
    lo, hi = bounds
    if not split or not lo < 1.0 < hi:
        return _uniform(bounds, shape, generator)
    below = _rand(shape, generator) < 0.5
    return torch.where(below, _uniform((lo, 1.0), shape, generator), _uniform((1.0, hi), shape, generator))


def _mask(p: float, p_channel: float, shape: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    per_sample = _rand(shape[:1], generator)[:, None] < p
    return per_sample & (_rand(shape, generator) < p_channel)


def _appearance_samplers(
    preset: AugmentationPreset, shape: tuple[int, int], num_classes: int, generator: torch.Generator
) -> dict[str, tuple[float, float, Callable[[], tuple[torch.Tensor, ...]]]]:
    pr, g = preset, generator
    blobs, classes = (*shape, appearance.SCAR_BLOBS), (*shape, num_classes)

    def normal(size: tuple[int, ...], std: float) -> torch.Tensor:
        return std * torch.randn(size, generator=g, device=g.device)

    return {
        "location_scale": (
            pr.p_location_scale,
            1.0,
            lambda: (_uniform(pr.location_scale_scale, classes, g), _uniform(pr.location_scale_shift, classes, g)),
        ),
        "scar": (
            pr.p_scar,
            1.0,
            lambda: (_rand(blobs, g), _uniform(pr.scar_sigma, blobs, g), _uniform(pr.scar_brightness, shape, g),
                     *_scar_sectors(pr, shape, g)),
        ),
        "random_conv": (
            pr.p_random_conv,
            1.0,
            lambda: (normal((*shape, appearance.GIN_PARAMETERS), 1.0), _gin_mix(pr, shape, g)),
        ),
        "bias_field": (
            pr.p_bias_field,
            1.0,
            lambda: (normal((*shape, appearance.BIAS_FIELD_TERMS), pr.bias_field_strength),),
        ),
        "invert": (pr.p_invert, 1.0, lambda: ()),
    }


def _gin_mix(preset: AugmentationPreset, shape: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """GIN's share per sample-channel (B, C), or per control point of its spatial field (B, C, G, G)."""
    grid = preset.random_conv_grid
    return _uniform(preset.random_conv_mix, (*shape, grid, grid) if grid else shape, generator)


def _scar_sectors(preset: AugmentationPreset, shape: tuple[int, int],
                  generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """The sector parameters of ``appearance.paint_scar`` ((*shape, 4)), or none when the preset paints blobs only
    (so presets without sectors draw the same random numbers as before sectors existed)."""
    if preset.scar_sector_fraction <= 0:
        return ()
    flag = (_rand(shape, generator) < preset.scar_sector_fraction).to(torch.float32)
    return (torch.stack([flag, _rand(shape, generator), _uniform(preset.scar_sector_width, shape, generator),
                         _uniform(preset.scar_transmurality, shape, generator)], dim=-1),)


def sample_intensity(
    preset: AugmentationPreset, batch_size: int, channels: int, generator: torch.Generator, num_classes: int = 3
) -> list[IntensityStep]:
    """Draw which intensity steps apply to which sample-channels, and their parameters.

    Args:
        preset: probabilities and ranges. batch_size, channels: B and C of the batch.
        generator: source of randomness. num_classes: K, label values 0 .. K-1 (for class-wise steps).

    Returns:
        steps in ``STEP_ORDER`` whose probability is above 0, tensors on ``generator.device``.

    Example:
        >>> from lgeseg.augmentation import get_preset
        >>> steps = sample_intensity(get_preset("spatial_intensity"), 4, 1, torch.Generator().manual_seed(0))
        >>> [step.op for step in steps], tuple(steps[0].mask.shape)  # (B, C): which sample-channels it changes
        (['bilateral', 'noise', 'brightness_add', 'contrast', 'inverse_gamma', 'gamma'], (4, 1))
    """
    shape, pr, sp = (batch_size, channels), preset, preset.split_factor_sampling
    g = generator
    samplers: dict[str, tuple[float, float, Callable[[], tuple[torch.Tensor, ...]]]] = {
        **_appearance_samplers(preset, shape, num_classes, generator),
        "bilateral": (
            pr.p_bilateral,
            1.0,
            lambda: (_uniform(pr.bilateral_sigma_space, shape, g), _uniform(pr.bilateral_sigma_color, shape, g)),
        ),
        "noise": (pr.p_noise, 1.0, lambda: (_noise_std(pr, shape, g),)),
        "blur": (
            pr.p_blur,
            pr.blur_p_per_channel,
            lambda: (_uniform(pr.blur_sigma, shape, g), _uniform(pr.blur_sigma, shape, g)),
        ),
        "brightness_mul": (pr.p_brightness_mul, 1.0, lambda: (_factor(pr.brightness_mul_range, shape, g, sp),)),
        "brightness_add": (pr.p_brightness_add, 1.0, lambda: (_uniform(pr.brightness_add_range, shape, g),)),
        "contrast": (pr.p_contrast, 1.0, lambda: (_factor(pr.contrast_range, shape, g, sp),)),
        "low_res": (pr.p_low_res, pr.low_res_p_per_channel, lambda: (_uniform(pr.low_res_zoom, shape, g),)),
        "inverse_gamma": (pr.p_inverse_gamma, 1.0, lambda: (_factor(pr.gamma_range, shape, g, sp),)),
        "gamma": (pr.p_gamma, 1.0, lambda: (_factor(pr.gamma_range, shape, g, sp),)),
    }
    steps = []
    for op in STEP_ORDER:
        p, p_channel, draw = samplers[op]
        if p > 0:
            steps.append(IntensityStep(op, _mask(p, p_channel, shape, g), draw()))
    return steps


def _noise_std(preset: AugmentationPreset, shape: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    value = _uniform(preset.noise_std, shape[:1], generator)[:, None].expand(shape)  # same std for all channels
    return value.sqrt() if preset.noise_range_is_variance else value


def _op(step: str, preset: AugmentationPreset, generator: torch.Generator) -> Callable[..., torch.Tensor]:
    radius = intensity.blur_radius(preset.blur_sigma[1])
    ops: dict[str, Callable[..., torch.Tensor]] = {
        "random_conv": appearance.random_convolution,
        "bias_field": appearance.bias_field,
        "invert": appearance.invert,
        "bilateral": intensity.bilateral_filter,
        "noise": lambda x, std: intensity.add_noise(x, std, generator),
        "blur": lambda x, sy, sx: intensity.gaussian_blur(x, sy, sx, radius),
        "brightness_mul": intensity.multiply,
        "brightness_add": intensity.add,
        "contrast": intensity.contrast,
        "low_res": intensity.simulate_low_resolution,
        "inverse_gamma": lambda x, v: intensity.gamma(x, v, invert=True, retain_stats=preset.gamma_retain_stats),
        "gamma": lambda x, v: intensity.gamma(x, v, invert=False, retain_stats=preset.gamma_retain_stats),
    }
    return ops[step]


#: Steps that read the label map (class-wise intensities, scar inside the myocardium).
LABEL_STEPS: dict[str, Callable[..., torch.Tensor]] = {
    "location_scale": appearance.location_scale,
    "scar": appearance.paint_scar,
}


def apply_intensity(
    images: torch.Tensor,
    steps: list[IntensityStep],
    preset: AugmentationPreset,
    generator: torch.Generator,
    labels: torch.Tensor | None = None,
    sync_free: bool | None = None,
) -> torch.Tensor:
    """Apply sampled intensity steps to (B, C, H, W) images; returns a new tensor.

    Each step changes only the sample-channels its mask selects. ``generator`` supplies the noise
    fields (give one on the images' device for speed). ``labels`` (B, H, W) are needed by the steps
    in ``LABEL_STEPS`` (``ValueError`` without them); no step changes them.

    ``sync_free`` picks how the selected rows are found (None: True off the CPU):

    * False: each step gathers its selected rows and runs on them alone. Finding them
      (``nonzero``) is a data-dependent shape, so on a GPU every step waits for the device.
    * True: each step runs on every row and ``torch.where`` keeps its result on the selected rows
      only; nothing waits, at the price of computing the unselected rows too. The selected rows
      get the values of False (up to float rounding where the blocking of a matrix product depends
      on the row count: ``bias_field``), except that noise is drawn for every row (same
      distribution, other numbers).

    Example:
        >>> import dataclasses
        >>> from lgeseg.augmentation import get_preset
        >>> preset = dataclasses.replace(get_preset("none"), p_noise=0.5, noise_std=(0.1, 0.1))  # noise alone
        >>> g = torch.Generator().manual_seed(0)
        >>> steps = sample_intensity(preset, 4, 1, g)
        >>> steps[0].op, steps[0].mask[:, 0].tolist()
        ('noise', [True, False, True, True])
        >>> noisy = apply_intensity(torch.zeros(4, 1, 32, 32), steps, preset, g)
        >>> [bool(sample.any()) for sample in noisy]  # the unselected sample stays as it was
        [True, False, True, True]
    """
    b, c, h, w = images.shape
    x = images.reshape(b * c, 1, h, w).clone()  # a copy: the gathering path writes its rows in place
    label_rows = labels.to(images.device).repeat_interleave(c, 0) if labels is not None else None
    if sync_free is None:
        sync_free = images.device.type != "cpu"
    for step in steps:
        if step.op in LABEL_STEPS and label_rows is None:
            raise ValueError(f"apply_intensity: step {step.op!r} needs the labels, none were given")
        selected = step.mask.to(images.device).reshape(-1)
        values = [v.to(images.device, images.dtype).reshape(b * c, *v.shape[2:]) for v in step.values]
        if sync_free:
            x = torch.where(selected.view(-1, 1, 1, 1), _run_step(step.op, preset, generator, x, label_rows, values), x)
            continue
        rows = selected.nonzero().squeeze(1)
        if rows.numel():
            chosen = label_rows[rows] if step.op in LABEL_STEPS else None
            x[rows] = _run_step(step.op, preset, generator, x[rows], chosen, [v[rows] for v in values])
    return x.reshape(b, c, h, w)


def _run_step(op: str, preset: AugmentationPreset, generator: torch.Generator, x: torch.Tensor,
              label_rows: torch.Tensor | None, values: list[torch.Tensor]) -> torch.Tensor:
    """One intensity step on rows ``x`` (n, 1, H, W) with their labels (n, H, W) and values (n, ...)."""
    if op in LABEL_STEPS:
        return LABEL_STEPS[op](x, label_rows, *values)
    return _op(op, preset, generator)(x, *values)


def _check_inputs(images: torch.Tensor, labels: torch.Tensor, patch_size: tuple[int, int]) -> None:
    if images.dim() != 4 or not images.is_floating_point():
        raise ValueError(
            f"augment_batch: images must be float (B, C, H, W), found {images.dtype} {tuple(images.shape)}"
        )
    b, _, h, w = images.shape
    if tuple(labels.shape) != (b, h, w):
        raise ValueError(f"augment_batch: labels must be (B, H, W) = {(b, h, w)}, found {tuple(labels.shape)}")
    if labels.is_floating_point():
        raise ValueError(f"augment_batch: labels must be an integer tensor, found {labels.dtype}")
    if len(patch_size) != 2 or patch_size[0] > h or patch_size[1] > w:
        raise ValueError(f"augment_batch: patch_size {tuple(patch_size)} must fit in the input crop {(h, w)}")


def _arguments_of(full: Callable[_Args, object]) -> Callable[[Callable[..., _Result]], Callable[_Args, _Result]]:
    """Give the decorated function the parameters of ``full``: one parameter list serves both.

    The decorated function takes ``*args, **kwargs`` and passes them on to ``full``; its signature
    (``help``, ``inspect.signature``) and its type are ``full``'s parameters with its own return.
    """

    def decorate(short: Callable[..., _Result]) -> Callable[_Args, _Result]:
        returns = inspect.signature(short).return_annotation
        short.__signature__ = inspect.signature(full).replace(return_annotation=returns)  # type: ignore[attr-defined]
        return short

    return decorate


def augment_batch_with_params(
    images: torch.Tensor,
    labels: torch.Tensor,
    preset: AugmentationPreset,
    patch_size: tuple[int, int],
    spacing_yx: tuple[float, float],
    generator: torch.Generator,
    num_classes: int | None = None,
    sync_free: bool | None = None,
    ignore_label: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, SpatialParams, list[IntensityStep]]:
    """``augment_batch`` that also returns what was sampled (for previews and debugging).

    Returns:
        (images, labels, spatial parameters on the batch's device, intensity steps); arguments and
        the first two results as in ``augment_batch``.

    Example:
        >>> from lgeseg.augmentation import get_preset
        >>> g = torch.Generator().manual_seed(0)
        >>> images, labels = torch.rand(2, 1, 48, 48), torch.zeros(2, 48, 48, dtype=torch.long)
        >>> x, y, spatial, steps = augment_batch_with_params(images, labels, get_preset("spatial_intensity"), (32, 32),
        ...                                                  (1.25, 1.25), g)
        >>> tuple(x.shape), tuple(y.shape), type(spatial).__name__, len(steps)
        ((2, 1, 32, 32), (2, 32, 32), 'SpatialParams', 6)
    """
    patch_size = (int(patch_size[0]), int(patch_size[1]))
    _check_inputs(images, labels, patch_size)
    b, c = images.shape[:2]
    k = int(labels.max()) + 1 if num_classes is None else int(num_classes)
    if ignore_label is not None:  # the classes lie below it; the spatial one-hot carries it as one more channel
        k = min(k, int(ignore_label))
    carried = k if ignore_label is None else int(ignore_label) + 1
    if preset.is_spatial_identity:
        params = SpatialParams.identity(b, images.device)
        out_images, out_labels = centre_crop(images, patch_size).clone(), centre_crop(labels, patch_size).long()
    else:
        crop = (int(images.shape[-2]), int(images.shape[-1]))
        params = sample_spatial(preset, b, crop, patch_size, spacing_yx, generator)
        params = SpatialParams(*(getattr(params, f.name).to(images.device) for f in dataclasses.fields(params)))
        out_images, out_labels = apply_spatial(
            images,
            labels,
            params,
            patch_size,
            carried,
            preset.image_interpolation,
            preset.label_interpolation,
            preset.padding,
        )
    steps = sample_intensity(preset, b, c, generator, k)
    out_images = apply_intensity(out_images, steps, preset, generator, out_labels, sync_free)
    return out_images, out_labels, params, steps


@_arguments_of(augment_batch_with_params)
def augment_batch(*args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment a batch of crops and cut the training patches out of them.

    Args:
        images: (B, C, H, W) float, crops centred where the patch should be, H >= ph, W >= pw.
        labels: (B, H, W) integer label maps aligned with ``images``.
        preset: e.g. ``get_preset("spatial_intensity")``.
        patch_size: (ph, pw) voxels of the output.
        spacing_yx: (sy, sx) mm of the input pixels (drives the paper's spacing-based rescaling).
        generator: all randomness comes from it; a generator on the batch's device avoids copies.
        num_classes: number of label values (default: ``labels.max() + 1``, which syncs a GPU).
        sync_free: how intensity steps find their rows (``apply_intensity``); None: without a
            host-device synchronisation off the CPU, by gathering the rows on the CPU.
        ignore_label: the training data's ignore value (voxels of unknown class, above every class), or
            None. The spatial transform carries it like a class (one more one-hot channel), so it moves
            with the image and is never invented; the label-reading intensity steps count it in no class
            (``location_scale`` blends the neighbouring classes' transforms there, ``scar`` paints only
            myocardium). The classes are the values below it, whatever ``num_classes`` says.

    Returns:
        (images (B, C, ph, pw) of the input dtype, labels (B, ph, pw) long) on the input device;
        labels only take values present in the input. Raises ``ValueError`` for bad shapes.

    Example:
        >>> from lgeseg.augmentation import get_preset
        >>> g = torch.Generator().manual_seed(0)
        >>> x, y = augment_batch(torch.rand(2, 1, 80, 80), torch.zeros(2, 80, 80, dtype=torch.long),
        ...                      get_preset("spatial_intensity"), (64, 64), (1.25, 1.25), g)
        >>> tuple(x.shape), tuple(y.shape)
        ((2, 1, 64, 64), (2, 64, 64))
    """
    out_images, out_labels, _, _ = augment_batch_with_params(*args, **kwargs)
    return out_images, out_labels
