"""Appearance (domain-generalization) augmentation: GIN, bias field, location-scale, inversion, scar."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lgeseg.augmentation import appearance, augment_batch, get_preset
from lgeseg.augmentation.pipeline import apply_intensity, sample_intensity
from lgeseg.synth import generate_case

SPACING = (1.5, 1.5)
APPEARANCE_STEPS = ("location_scale", "scar", "random_conv", "bias_field", "invert")


def _phantom_batch(b: int = 4, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Mid slices of tiny phantom cases, min-max normalized: images (b, 1, size, size), labels (b, size, size)."""
    images, labels = [], []
    for index in range(b):
        image, label, _ = generate_case(1, index, seed=0, in_plane_size=size, num_slices=3)
        z = int((label > 0).reshape(label.shape[0], -1).sum(1).argmax())
        lo, hi = np.percentile(image[z], (0.5, 99.5))
        images.append(np.clip((image[z] - lo) / (hi - lo), 0, 1))
        labels.append(label[z])
    return torch.from_numpy(np.stack(images)[:, None]).float(), torch.from_numpy(np.stack(labels)).long()


def _only(step: str) -> object:
    """``lge_dg`` with every random step but ``step`` switched off and ``step`` always applied."""
    import dataclasses

    preset = get_preset("none")
    return dataclasses.replace(preset, name=step, **{f"p_{step}": 1.0})


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("step", APPEARANCE_STEPS)
def test_each_step_keeps_labels_and_range_and_is_deterministic_for_a_seed(step: str) -> None:
    images, labels = _phantom_batch()
    preset = _only(step)
    out, out_labels = augment_batch(images, labels, preset, (64, 64), SPACING, _gen(3), num_classes=3)
    again, _ = augment_batch(images, labels, preset, (64, 64), SPACING, _gen(3), num_classes=3)
    other, _ = augment_batch(images, labels, preset, (64, 64), SPACING, _gen(4), num_classes=3)
    assert torch.equal(out_labels, labels)
    assert torch.isfinite(out).all()
    lo, hi = images.amin(dim=(-2, -1)), images.amax(dim=(-2, -1))
    assert (out.amin(dim=(-2, -1)) >= lo - 1e-5).all() and (out.amax(dim=(-2, -1)) <= hi + 1e-5).all()
    assert not torch.equal(out, images)
    assert torch.equal(out, again)
    if step != "invert":  # inversion has no parameters: every seed gives the same picture
        assert not torch.equal(out, other)


def test_lge_dg_preset_gives_patches_with_the_input_labels_only() -> None:
    images, labels = _phantom_batch(8, 96)
    out, out_labels = augment_batch(images, labels, get_preset("lge_dg"), (64, 64), SPACING, _gen(), num_classes=3)
    assert out.shape == (8, 1, 64, 64) and set(out_labels.unique().tolist()) <= {0, 1, 2}
    assert torch.isfinite(out).all()


def test_scar_only_brightens_the_myocardium() -> None:
    images, labels = _phantom_batch()
    n = images.shape[0]
    out = appearance.paint_scar(images, labels, torch.full((n, 3), 0.5), torch.full((n, 3), 3.0), torch.ones(n))
    myo = (labels == 2)[:, None]
    assert torch.equal(out[~myo], images[~myo])
    assert (out >= images - 1e-6).all()
    assert (out[myo] - images[myo]).max() > 0.3  # a blob reaches near the row maximum


def test_sector_scar_covers_a_transmural_sector_and_only_the_myocardium() -> None:
    images, labels = _phantom_batch()
    n = images.shape[0]
    sector = torch.tensor([[1.0, 0.25, 120.0, 1.0]]).expand(n, 4)  # a third of the ring, transmural
    out = appearance.paint_scar(images, labels, torch.full((n, 3), 0.5), torch.full((n, 3), 3.0), torch.ones(n),
                                sector)
    myo = (labels == 2)[:, None]
    assert torch.equal(out[~myo], images[~myo]) and (out >= images - 1e-6).all()
    changed = ((out - images).abs() > 1e-3) & myo
    share = changed.flatten(1).sum(1).float() / myo.flatten(1).sum(1).clamp_min(1)
    assert (share[myo.flatten(1).any(1)] > 0.15).all()  # a sector, not a few small blobs


def test_preset_with_sector_scars_draws_sectors_and_one_without_draws_as_before() -> None:
    import dataclasses

    base = dataclasses.replace(get_preset("none"), p_scar=1.0)
    sectors = dataclasses.replace(base, scar_sector_fraction=1.0)
    steps = sample_intensity(sectors, 4, 1, torch.Generator().manual_seed(0))
    assert len(steps[0].values) == 4 and bool((steps[0].values[3][..., 0] == 1).all())
    assert len(sample_intensity(base, 4, 1, torch.Generator().manual_seed(0))[0].values) == 3


def test_location_scale_changes_the_myocardium_to_blood_pool_contrast() -> None:
    images, labels = _phantom_batch()
    n = images.shape[0]

    def ratio(x: torch.Tensor) -> float:
        return float(x[:, 0][labels == 2].mean() / x[:, 0][labels == 1].mean())

    darker_myo = appearance.location_scale(
        images, labels, torch.ones(n, 3), torch.tensor([[0.0, 0.0, -0.4]]).expand(n, 3))
    brighter_myo = appearance.location_scale(
        images, labels, torch.ones(n, 3), torch.tensor([[0.0, 0.0, 0.4]]).expand(n, 3))
    assert ratio(darker_myo) < ratio(images) < ratio(brighter_myo)


def test_random_convolution_without_mixing_only_rescales() -> None:
    images, _ = _phantom_batch()
    n = images.shape[0]
    weights = torch.randn(n, appearance.GIN_PARAMETERS, generator=_gen())
    out = appearance.random_convolution(images, weights, torch.zeros(n))
    torch.testing.assert_close(out, images, atol=1e-4, rtol=0)


def test_random_convolution_with_a_mixing_grid_changes_only_where_the_grid_says() -> None:
    """A 2 x 2 grid of shares: GIN's appearance on the left edge, the original image on the right edge."""
    images, _ = _phantom_batch()
    n = images.shape[0]
    weights = torch.randn(n, appearance.GIN_PARAMETERS, generator=_gen())
    torch.testing.assert_close(appearance.random_convolution(images, weights, torch.zeros(n, 4, 4)), images,
                               atol=1e-4, rtol=0)  # a grid of zeros is the image, as the scalar 0
    left_gin = torch.tensor([[1.0, 0.0], [1.0, 0.0]]).expand(n, 2, 2)
    out = appearance.random_convolution(images, weights, left_gin)

    def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1])

    for row in range(n):
        right = correlation(out[row, 0, :, -4:], images[row, 0, :, -4:])
        left = correlation(out[row, 0, :, :4], images[row, 0, :, :4])
        assert right > 0.99 and left < right - 0.05  # the right edge keeps the image up to a linear map


def test_lge_dg_mixes_gin_through_a_spatial_grid() -> None:
    steps = sample_intensity(get_preset("lge_dg"), 8, 1, _gen())
    (gin,) = [step for step in steps if step.op == "random_conv"]
    assert tuple(gin.values[1].shape) == (8, 1, 4, 4)  # a 4 x 4 grid of shares per sample-channel


def test_bias_field_is_smooth_and_zero_coefficients_change_nothing() -> None:
    flat = torch.full((1, 1, 32, 32), 0.5)
    flat[..., 0, 0] = 0.0  # a dark pixel, so the row's range is [0, 0.5]
    coefficients = torch.zeros(1, appearance.BIAS_FIELD_TERMS)
    torch.testing.assert_close(appearance.bias_field(flat, coefficients), flat)
    coefficients[0, 1] = 1.0  # exp(x): brighter towards the right, smoothly
    out = appearance.bias_field(flat, coefficients)[0, 0, 16]
    assert (out[2:].diff() > 0).all() and out[30] > 1.5 * out[2]


def test_invert_swaps_dark_and_bright() -> None:
    x = torch.linspace(0.2, 0.9, 64).view(1, 1, 8, 8)
    out = appearance.invert(x)
    torch.testing.assert_close(out.flip(-1).flip(-2), x)


def test_label_steps_need_labels_and_ablation_names_switch_steps_off() -> None:
    images, _ = _phantom_batch(2)
    steps = sample_intensity(_only("scar"), 2, 1, _gen())
    with pytest.raises(ValueError, match="needs the labels"):
        apply_intensity(images, steps, _only("scar"), _gen())
    assert get_preset("lge_dg-scar-random_conv").p_scar == 0.0
    assert get_preset("lge_dg-scar-random_conv").p_random_conv == 0.0
    assert get_preset("lge_dg-scar").p_location_scale == get_preset("lge_dg").p_location_scale
    with pytest.raises(ValueError, match="cannot switch off"):
        get_preset("lge_dg-sparkle")


def _with_ignore_band(labels: torch.Tensor, value: int = 3) -> torch.Tensor:
    """``labels`` with the value ``value`` on a band across the myocardium's outer edge (the unsure voxels)."""
    heart = (labels > 0).float()[:, None]
    grown = torch.nn.functional.max_pool2d(heart, 5, stride=1, padding=2)[:, 0] > 0
    shrunk = -torch.nn.functional.max_pool2d(-heart, 5, stride=1, padding=2)[:, 0] > 0
    return torch.where(grown & ~shrunk, value, labels)


@pytest.mark.parametrize("step", ["location_scale", "scar"])
def test_label_steps_count_an_ignore_label_in_no_class(step: str) -> None:
    images, labels = _phantom_batch()
    masked = _with_ignore_band(labels)
    out, out_labels = augment_batch(images, masked, _only(step), (64, 64), SPACING, _gen(3), num_classes=3,
                                    ignore_label=3)
    assert torch.equal(out_labels, masked) and torch.isfinite(out).all()
    lo, hi = images.amin(dim=(-2, -1)), images.amax(dim=(-2, -1))
    assert (out.amin(dim=(-2, -1)) >= lo - 1e-5).all() and (out.amax(dim=(-2, -1)) <= hi + 1e-5).all()
    if step == "scar":  # scar is painted into the myocardium only, never into the unsure band
        assert torch.equal(out[:, 0][masked == 3], images[:, 0][masked == 3])


def test_location_scale_class_means_leave_ignored_voxels_out() -> None:
    images, labels = _phantom_batch()
    masked = labels.clone()
    masked[:, :4] = 3  # ignored rows at the top of every image
    images = images.clone()
    images[:, 0, :4] = 1.0  # bright there: counted as myocardium (the old clamp) they would shift its mean
    n = images.shape[0]
    shift = torch.tensor([[0.0, 0.0, 0.3]]).expand(n, 3)
    out = appearance.location_scale(images, masked, torch.ones(n, 3), shift)
    reference = appearance.location_scale(images, torch.where(masked == 3, 0, masked), torch.ones(n, 3), shift)
    inside = labels == 2  # myocardium, far from the top rows: as if the ignored voxels were background
    torch.testing.assert_close(out[:, 0][inside], reference[:, 0][inside], atol=0.02, rtol=0)
