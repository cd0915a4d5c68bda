"""Augmentation presets: named, frozen, JSON round-trippable parameter sets.

A preset only holds numbers (probabilities and ranges); ``lgeseg.augmentation.pipeline`` samples
per-sample parameters from it and the deterministic ops in ``spatial``/``intensity`` apply them.
Intensity ranges are in the units of the normalized image: the paper's values assume min-max
normalization to [0, 1] (``NormalizationConfig(scheme="minmax")``); nnU-Net's assume z-scores.
See ``docs/augmentation.md`` for how each preset maps to the paper and to nnU-Net v2.
"""

from __future__ import annotations

import dataclasses

from lgeseg.core.records import JsonRecord

IMAGE_INTERPOLATIONS = ("bilinear", "bicubic")
LABEL_INTERPOLATIONS = ("nearest", "linear_onehot")
PADDINGS = ("zeros", "border")
SCALING_MODES = ("spacing", "zoom")


@dataclasses.dataclass(frozen=True)
class AugmentationPreset(JsonRecord):
    """Probabilities and ranges of every augmentation; a probability of 0 switches a step off.

    Attributes:
        name: preset name.
        p_flip_x, p_flip_y: probability of mirroring along x (left-right) and y (up-down).
        p_rotation: probability of an in-plane rotation; ``rotation_deg``: (min, max) degrees.
        p_scaling: probability of rescaling. ``scaling_mode="spacing"``: ``scaling_range`` is the
            effective in-plane spacing in mm the patch is resampled to (the paper's [0.75, 1.88]);
            ``"zoom"``: a zoom factor (> 1 enlarges structures; nnU-Net's [0.7, 1.4]).
        max_translation: largest shift of the patch centre, as a fraction of the patch size per
            axis; also limited by the margin between input crop and patch. Always applied.
        image_interpolation: ``"bilinear"`` or ``"bicubic"``.
        label_interpolation: ``"nearest"`` or ``"linear_onehot"`` (one-hot, bilinear, argmax).
        padding: image values outside the input crop, ``"zeros"`` or ``"border"`` (labels: 0).
        p_bilateral: probability of a 5x5 bilateral filter; ``bilateral_sigma_space`` (voxels) and
            ``bilateral_sigma_color`` (intensity units) are sampled uniformly.
        p_noise: probability of additive Gaussian noise with std from ``noise_std``; if
            ``noise_range_is_variance`` the range is a variance (nnU-Net) and std = sqrt(sample).
        p_blur: probability (per sample) of Gaussian blur, then ``blur_p_per_channel`` per
            channel; sigma per axis from ``blur_sigma`` (voxels).
        p_brightness_add: probability of adding a value from ``brightness_add_range``.
        p_brightness_mul: probability of multiplying by a value from ``brightness_mul_range``.
        p_contrast: probability of scaling deviations from the mean by ``contrast_range``; the
            sample's original min/max are kept.
        p_low_res: probability (per sample) of simulating low resolution, then
            ``low_res_p_per_channel`` per channel; zoom factor from ``low_res_zoom``.
        p_gamma, p_inverse_gamma: probabilities of a gamma curve on the min-max-rescaled image, and
            of one on the inverted image (1 - (1 - x)**gamma); gamma from ``gamma_range``.
        gamma_retain_stats: restore the sample's mean and std after gamma (nnU-Net).
        split_factor_sampling: sample multiplicative factors (gamma, contrast, brightness_mul)
            from [lo, 1) or [1, hi] with equal chance, as nnU-Net does, instead of uniformly.
        p_location_scale: probability of class-wise location-scale (SLAug): every label region's
            deviations from its mean are scaled by ``location_scale_scale`` and shifted by
            ``location_scale_shift`` (a fraction of the intensity range), blended at soft borders.
        p_scar: probability of painting bright blobs (widths ``scar_sigma`` voxels, brightness
            ``scar_brightness`` as a fraction of the intensity range) into the myocardium.
        scar_sector_fraction: share of the painted scars that are an ischemic-like sector instead of
            blobs: a sector of the ring ``scar_sector_width`` degrees wide, from the endocardium out to
            ``scar_transmurality`` of the wall (0.3: subendocardial; 1: transmural).
        p_random_conv: probability of GIN, a random shallow convolutional network whose output is
            mixed with the image by a share from ``random_conv_mix``.
        random_conv_grid: 0: one share per image; G > 0: a share per point of a G x G grid, drawn
            independently and interpolated into a smooth field, so GIN's appearance and the original
            one meet within the slice (``appearance.random_convolution``).
        p_bias_field: probability of a smooth multiplicative field; its cubic log-polynomial
            coefficients are normal with standard deviation ``bias_field_strength``.
        p_invert: probability of contrast inversion (min + max - x).
    """

    name: str
    p_flip_x: float = 0.0
    p_flip_y: float = 0.0
    p_rotation: float = 0.0
    rotation_deg: tuple[float, float] = (0.0, 0.0)
    p_scaling: float = 0.0
    scaling_mode: str = "zoom"
    scaling_range: tuple[float, float] = (1.0, 1.0)
    max_translation: float = 0.0
    image_interpolation: str = "bilinear"
    label_interpolation: str = "linear_onehot"
    padding: str = "zeros"
    p_bilateral: float = 0.0
    bilateral_sigma_space: tuple[float, float] = (0.5, 1.5)
    bilateral_sigma_color: tuple[float, float] = (0.05, 0.3)
    p_noise: float = 0.0
    noise_std: tuple[float, float] = (0.0, 0.0)
    noise_range_is_variance: bool = False
    p_blur: float = 0.0
    blur_p_per_channel: float = 1.0
    blur_sigma: tuple[float, float] = (0.5, 1.0)
    p_brightness_add: float = 0.0
    brightness_add_range: tuple[float, float] = (0.0, 0.0)
    p_brightness_mul: float = 0.0
    brightness_mul_range: tuple[float, float] = (1.0, 1.0)
    p_contrast: float = 0.0
    contrast_range: tuple[float, float] = (1.0, 1.0)
    p_low_res: float = 0.0
    low_res_p_per_channel: float = 1.0
    low_res_zoom: tuple[float, float] = (0.5, 1.0)
    p_gamma: float = 0.0
    p_inverse_gamma: float = 0.0
    gamma_range: tuple[float, float] = (0.7, 1.5)
    gamma_retain_stats: bool = False
    split_factor_sampling: bool = True
    p_location_scale: float = 0.0
    location_scale_scale: tuple[float, float] = (0.5, 1.5)
    location_scale_shift: tuple[float, float] = (-0.3, 0.3)
    p_scar: float = 0.0
    scar_sigma: tuple[float, float] = (1.5, 4.0)
    scar_brightness: tuple[float, float] = (0.6, 1.0)
    scar_sector_fraction: float = 0.0
    scar_sector_width: tuple[float, float] = (30.0, 150.0)
    scar_transmurality: tuple[float, float] = (0.3, 1.0)
    p_random_conv: float = 0.0
    random_conv_mix: tuple[float, float] = (0.0, 1.0)
    random_conv_grid: int = 0
    p_bias_field: float = 0.0
    bias_field_strength: float = 0.3
    p_invert: float = 0.0

    def __post_init__(self) -> None:
        self._check_choices()
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name.startswith("p_") or field.name.endswith("_p_per_channel"):
                if not 0.0 <= float(value) <= 1.0:
                    raise ValueError(f"AugmentationPreset {self.name!r}: {field.name} must be in [0, 1], found {value}")
            elif isinstance(value, tuple) and (len(value) != 2 or value[0] > value[1]):
                raise ValueError(f"AugmentationPreset {self.name!r}: {field.name} must be (min, max), found {value}")
        if self.bias_field_strength < 0:
            raise ValueError(f"AugmentationPreset {self.name!r}: bias_field_strength must be >= 0")
        if self.max_translation < 0:
            raise ValueError(f"AugmentationPreset {self.name!r}: max_translation must be >= 0")

    def _check_choices(self) -> None:
        choices = {
            "image_interpolation": IMAGE_INTERPOLATIONS,
            "label_interpolation": LABEL_INTERPOLATIONS,
            "padding": PADDINGS,
            "scaling_mode": SCALING_MODES,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"AugmentationPreset {self.name!r}: {name} must be one of {allowed}, found {getattr(self, name)!r}"
                )

    @property
    def is_spatial_identity(self) -> bool:
        """True when no flip, rotation, scaling or translation can happen (output = centre crop)."""
        return not (self.p_flip_x or self.p_flip_y or self.p_rotation or self.p_scaling or self.max_translation)


#: The paper's probability for every transform (section 2.2: "applied with a probability of 0.2").
PAPER_P: float = 0.2

_SPATIAL = dict(
    p_flip_x=PAPER_P,
    p_flip_y=PAPER_P,
    p_rotation=PAPER_P,
    rotation_deg=(-30.0, 30.0),
    p_scaling=PAPER_P,
    scaling_mode="spacing",
    scaling_range=(0.75, 1.88),
    max_translation=0.25,
)

_PRESETS: dict[str, AugmentationPreset] = {
    "none": AugmentationPreset(name="none"),
    "spatial": AugmentationPreset(name="spatial", **_SPATIAL),
    "spatial_intensity": AugmentationPreset(
        name="spatial_intensity",
        **_SPATIAL,
        p_bilateral=PAPER_P,
        p_noise=PAPER_P,
        noise_std=(0.0, 0.03),
        p_gamma=PAPER_P,
        p_inverse_gamma=PAPER_P,
        gamma_range=(0.7, 1.5),
        p_brightness_add=PAPER_P,
        brightness_add_range=(-0.5, 0.5),
        p_contrast=PAPER_P,
        contrast_range=(0.5, 1.5),
    ),
    "nnunet": AugmentationPreset(
        name="nnunet",
        p_flip_x=0.5,
        p_flip_y=0.5,
        p_rotation=0.2,
        rotation_deg=(-180.0, 180.0),
        p_scaling=0.2,
        scaling_mode="zoom",
        scaling_range=(0.7, 1.4),
        image_interpolation="bicubic",
        p_noise=0.1,
        noise_std=(0.0, 0.1),
        noise_range_is_variance=True,
        p_blur=0.2,
        blur_p_per_channel=0.5,
        blur_sigma=(0.5, 1.0),
        p_brightness_mul=0.15,
        brightness_mul_range=(0.75, 1.25),
        p_contrast=0.15,
        contrast_range=(0.75, 1.25),
        p_low_res=0.25,
        low_res_p_per_channel=0.5,
        low_res_zoom=(0.5, 1.0),
        p_inverse_gamma=0.1,
        p_gamma=0.3,
        gamma_range=(0.7, 1.5),
        gamma_retain_stats=True,
    ),
}

#: Appearance randomization for training on cine or phantom images and predicting unseen LGE
#: (issue 12): the paper's steps plus a wider, likelier rescaling, stronger gamma, class-wise
#: location-scale, painted scar, GIN random convolutions, bias fields and occasional inversion.
_PRESETS["lge_dg"] = dataclasses.replace(
    _PRESETS["spatial_intensity"],
    name="lge_dg",
    p_scaling=0.4,
    scaling_range=(0.7, 2.0),
    gamma_range=(0.5, 2.0),
    p_location_scale=0.5,
    p_scar=0.3,
    p_random_conv=0.5,
    random_conv_grid=4,
    p_bias_field=0.3,
    p_invert=0.1,
)

#: Preset used when none is named: ``lge_dg``, chosen on real LGE (docs/RESULTS.md, "Real LGE"): trained on
#: real cine it lifts whole-LV Dice on the 25 myops_lge patients from 0.50 to 0.91 at equal budget.
DEFAULT_PRESET: str = "lge_dg"


def list_presets() -> list[str]:
    """Names of the built-in presets, e.g. ``["none", "spatial", "spatial_intensity", "nnunet"]``.

    Example:
        >>> list_presets()
        ['none', 'spatial', 'spatial_intensity', 'nnunet', 'lge_dg']
    """
    return list(_PRESETS)


def get_preset(name: str) -> AugmentationPreset:
    """Return the built-in preset ``name``; raises ``ValueError`` listing the valid names.

    ``"base-step1-step2"`` is preset ``base`` with the steps named after it switched off (their
    probability ``p_<step>`` set to 0), for ablations: ``"lge_dg-random_conv-scar"``.

    Example:
        >>> get_preset("spatial").name, get_preset("none").p_rotation
        ('spatial', 0.0)
    """
    base, *removed = name.split("-")
    if base not in _PRESETS:
        raise ValueError(f"unknown augmentation preset {base!r}; choose one of {', '.join(_PRESETS)}")
    probabilities = {f.name[2:] for f in dataclasses.fields(AugmentationPreset) if f.name.startswith("p_")}
    unknown = [step for step in removed if step not in probabilities]
    if unknown:
        raise ValueError(
            f"augmentation preset {name!r}: cannot switch off {unknown}; steps are {', '.join(sorted(probabilities))}"
        )
    if not removed:
        return _PRESETS[base]
    return dataclasses.replace(_PRESETS[base], name=name, **{f"p_{step}": 0.0 for step in removed})
