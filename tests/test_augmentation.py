"""Tests of the batched augmentation: presets, deterministic spatial ops, intensity ops, pipeline."""

from __future__ import annotations

import dataclasses
import inspect
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lgeseg.augmentation import (
    AugmentationPreset,
    SpatialParams,
    apply_spatial,
    augment_batch,
    augment_batch_with_params,
    get_preset,
    intensity,
    list_presets,
    required_crop_size,
    sample_spatial,
)
from lgeseg.files.io import read_label

SPACING = (1.25, 1.25)


def _square_batch(b: int = 4, size: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    """Images with a bright off-centre square exactly where the label square (value 2) is."""
    labels = torch.zeros(b, size, size, dtype=torch.long)
    labels[:, 6:18, 28:40] = 2
    images = 0.1 + 0.8 * (labels == 2).float()[:, None]
    return images, labels


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_presets_are_listed_and_round_trip_through_json() -> None:
    assert list_presets() == ["none", "spatial", "spatial_intensity", "nnunet", "lge_dg"]
    for name in list_presets():
        preset = get_preset(name)
        assert AugmentationPreset.from_dict(preset.to_dict()) == preset


def test_unknown_preset_and_bad_probability_are_explained() -> None:
    with pytest.raises(ValueError, match="spatial_intensity"):
        get_preset("paper")
    with pytest.raises(ValueError, match="p_rotation must be in"):
        AugmentationPreset(name="x", p_rotation=1.5)


@pytest.mark.parametrize("name", ["none", "spatial", "spatial_intensity", "nnunet", "lge_dg"])
def test_every_preset_gives_patch_shape_and_only_input_label_values(name: str) -> None:
    images, labels = _square_batch(8, 72)
    labels[:, 40:60, 10:30] = 0  # values present: {0, 2} only, so 1 must never appear
    out_images, out_labels = augment_batch(images, labels, get_preset(name), (64, 48), SPACING, _gen(1))
    assert out_images.shape == (8, 1, 64, 48) and out_labels.shape == (8, 64, 48)
    assert out_labels.dtype == torch.long
    assert set(out_labels.unique().tolist()) <= {0, 2}
    assert torch.isfinite(out_images).all()


def test_none_returns_the_centre_crop_unchanged() -> None:
    images = torch.rand(2, 2, 50, 41)
    labels = torch.randint(0, 3, (2, 50, 41))
    out_images, out_labels = augment_batch(images, labels, get_preset("none"), (32, 32), SPACING, _gen())
    assert torch.equal(out_images, images[:, :, 9:41, 4:36])
    assert torch.equal(out_labels, labels[:, 9:41, 4:36])


def test_same_seed_same_batch_and_other_seed_other_batch() -> None:
    images, labels = _square_batch(8, 72)
    preset = get_preset("spatial_intensity")
    first = augment_batch(images, labels, preset, (64, 64), SPACING, _gen(5))
    again = augment_batch(images, labels, preset, (64, 64), SPACING, _gen(5))
    other = augment_batch(images, labels, preset, (64, 64), SPACING, _gen(6))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0])


def test_augment_batch_is_augment_batch_with_params_without_the_params() -> None:
    images, labels = _square_batch(4, 72)
    preset, short, full = get_preset("lge_dg"), _gen(5), _gen(5)
    x, y = augment_batch(images, labels, preset, (64, 48), SPACING, short, num_classes=3)
    x_full, y_full, _, _ = augment_batch_with_params(images, labels, preset, (64, 48), SPACING, full, 3)
    assert torch.equal(x, x_full) and torch.equal(y, y_full)
    assert torch.equal(torch.rand(4, generator=short), torch.rand(4, generator=full))  # the same draws, in order
    assert inspect.signature(augment_batch).parameters == inspect.signature(augment_batch_with_params).parameters


def _params(flip_x: bool = False, angle: float = 0.0, step: float = 1.0) -> SpatialParams:
    base = SpatialParams.identity(4)
    return dataclasses.replace(
        base, flip_x=torch.full((4,), flip_x), angle=torch.full((4,), angle), step=torch.full((4,), step)
    )


@pytest.mark.parametrize("label_interpolation", ["linear_onehot", "nearest"])
@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (_params(flip_x=True), lambda t: torch.flip(t, (-1,))),
        (_params(angle=math.pi / 2), lambda t: torch.rot90(t, 1, (-2, -1))),
    ],
    ids=["flip_x", "rot90"],
)
def test_known_flip_and_rotation_move_image_and_label_together(params, expected, label_interpolation: str) -> None:
    images, labels = _square_batch()
    out_images, out_labels = apply_spatial(images, labels, params, (48, 48), 3, label_interpolation=label_interpolation)
    bright = out_images[:, 0] > 0.5
    square = out_labels == 2
    assert torch.equal(square, expected(labels) == 2)  # the label moved as specified ...
    assert not torch.equal(square, labels == 2)  # ... away from where it was ...
    assert torch.equal(bright, square)  # ... and the image moved with it
    torch.testing.assert_close(out_images, expected(images), atol=1e-5, rtol=0)


def test_spacing_rescaling_reaches_the_requested_effective_spacing() -> None:
    images, labels = _square_batch()  # 12 x 12 voxel square at 1.25 mm = 15 mm
    preset = AugmentationPreset(name="zoom_out", p_scaling=1.0, scaling_mode="spacing", scaling_range=(2.5, 2.5))
    _, out_labels = augment_batch(images, labels, preset, (48, 48), SPACING, _gen())
    # at 2.5 mm per voxel the square is 6 x 6 voxels
    assert (out_labels == 2).sum(dim=(1, 2)).float().mean().item() == pytest.approx(36, abs=8)


def test_translation_cuts_whole_pixel_sub_crops_within_the_margin() -> None:
    images = torch.rand(16, 1, 40, 40)
    labels = (images[:, 0] > 0.5).long()
    preset = AugmentationPreset(name="shift", max_translation=0.5)
    out_images, out_labels = augment_batch(images, labels, preset, (32, 32), SPACING, _gen(3))
    offsets = set()
    for i in range(16):
        matches = [
            (y, x)
            for y in range(9)
            for x in range(9)
            if torch.allclose(out_images[i], images[i, :, y : y + 32, x : x + 32], atol=1e-5)
            and torch.equal(out_labels[i], labels[i, y : y + 32, x : x + 32])
        ]
        assert len(matches) == 1
        offsets.add(matches[0])
    assert len(offsets) > 4  # the patch really moves


def test_flip_probability_is_honoured() -> None:
    params = sample_spatial(get_preset("spatial"), 4000, (64, 64), (64, 64), SPACING, _gen())
    assert params.flip_x.float().mean().item() == pytest.approx(0.2, abs=0.03)
    assert params.angle.abs().max().item() <= math.radians(30) + 1e-6


def test_required_crop_covers_rotation_and_zoom_out() -> None:
    h, w = required_crop_size(get_preset("spatial"), (256, 256), SPACING)
    # 1.88 / 1.25 zoom-out, rotation up to 30 degrees, +-25 % translation
    assert h == w and 650 < h < 660
    assert required_crop_size(get_preset("none"), (64, 32), SPACING) == (64, 32)


def test_intensity_steps_only_touch_selected_samples() -> None:
    images = torch.rand(64, 1, 16, 16)
    labels = torch.zeros(64, 16, 16, dtype=torch.long)
    preset = AugmentationPreset(name="noise", p_noise=0.5, noise_std=(0.1, 0.2))
    out, _ = augment_batch(images, labels, preset, (16, 16), SPACING, _gen())
    changed = (out != images).flatten(1).any(1)
    assert 16 < changed.sum().item() < 48
    assert torch.equal(out[~changed], images[~changed])


@pytest.mark.parametrize(("name", "exact"), [("nnunet-noise", True), ("lge_dg-noise-bias_field", True),
                                             ("lge_dg-noise", False)])
def test_sync_free_intensity_steps_give_the_values_of_gathered_rows(name: str, exact: bool) -> None:
    images, labels = torch.rand(8, 2, 56, 56), (torch.rand(8, 56, 56) * 3).long()
    gathered, sync_free = (augment_batch(images, labels, get_preset(name), (48, 48), SPACING, _gen(5), 3,
                                         sync_free=flag) for flag in (False, True))
    assert torch.equal(gathered[1], sync_free[1])
    if exact:
        assert torch.equal(gathered[0], sync_free[0])
    else:  # bias_field's batched matrix product rounds differently for another row count
        torch.testing.assert_close(gathered[0], sync_free[0], rtol=0, atol=1e-5)


def test_sync_free_noise_touches_the_same_selected_samples() -> None:
    images = torch.rand(64, 1, 16, 16)
    labels = torch.zeros(64, 16, 16, dtype=torch.long)
    preset = AugmentationPreset(name="noise", p_noise=0.5, noise_std=(0.1, 0.2))
    changed = [(augment_batch(images, labels, preset, (16, 16), SPACING, _gen(), sync_free=flag)[0] != images)
               .flatten(1).any(1) for flag in (False, True)]
    assert torch.equal(changed[0], changed[1]) and 16 < changed[1].sum().item() < 48


def test_bilateral_filter_smooths_noise_but_keeps_an_edge() -> None:
    step = torch.zeros(1, 1, 32, 32)
    step[..., 16:] = 1.0
    noisy = step + 0.02 * torch.randn(step.shape, generator=_gen())
    out = intensity.bilateral_filter(noisy, torch.tensor([1.5]), torch.tensor([0.1]))
    assert (out - step).std() < 0.6 * (noisy - step).std()
    assert out[..., 15].mean() < 0.05 and out[..., 16].mean() > 0.95


def test_gamma_inverse_gamma_and_contrast_stay_in_the_image_range() -> None:
    x = torch.linspace(0, 1, 256).view(1, 1, 16, 16)
    darker = intensity.gamma(x, torch.tensor([1.5]), invert=False, retain_stats=False)
    brighter = intensity.gamma(x, torch.tensor([1.5]), invert=True, retain_stats=False)
    assert darker.mean() < x.mean() < brighter.mean()
    for out in (darker, brighter, intensity.contrast(x, torch.tensor([1.5]))):
        assert out.min() >= -1e-6 and out.max() <= 1 + 1e-6
    torch.testing.assert_close(intensity.gamma(x, torch.tensor([1.0]), False, False), x)


def test_low_resolution_removes_fine_detail_but_keeps_the_picture() -> None:
    x = torch.zeros(1, 1, 32, 32)
    x[..., ::2, :] = 1.0  # finest stripes
    x[..., :, 20:] += 2.0  # coarse structure
    out = intensity.simulate_low_resolution(x, torch.tensor([0.5]))
    assert out.shape == x.shape
    assert out[..., 4:28, 4:12].std() < 0.5 * x[..., 4:28, 4:12].std()
    assert out[..., 4:28, 24:28].mean() > out[..., 4:28, 4:12].mean() + 1.5


def test_gaussian_blur_preserves_mean_and_lowers_variance() -> None:
    x = torch.rand(3, 1, 24, 24, generator=_gen())
    out = intensity.gaussian_blur(x, torch.full((3,), 1.0), torch.full((3,), 0.5), radius=3)
    assert out.shape == x.shape
    torch.testing.assert_close(out.mean(), x.mean(), atol=0.02, rtol=0)
    assert out.std() < 0.8 * x.std()


def test_bad_inputs_are_rejected_with_the_expected_shape() -> None:
    images, labels = _square_batch()
    with pytest.raises(ValueError, match="must fit in the input crop"):
        augment_batch(images, labels, get_preset("spatial"), (64, 64), SPACING, _gen())
    with pytest.raises(ValueError, match="labels must be"):
        augment_batch(images, labels[:, :10], get_preset("spatial"), (32, 32), SPACING, _gen())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_augment_batch_runs_on_the_gpu_with_a_gpu_generator() -> None:
    images, labels = _square_batch(8, 72)
    generator = torch.Generator(device="cuda").manual_seed(0)
    out_images, out_labels = augment_batch(
        images.cuda(), labels.cuda(), get_preset("nnunet"), (64, 64), SPACING, generator, num_classes=3
    )
    assert out_images.is_cuda and out_labels.is_cuda and set(out_labels.unique().tolist()) <= {0, 2}


def test_show_augmentations_cli_writes_a_grid_of_the_labelled_slice(tmp_path: Path,
                                                                    raw_centers: dict[str, Path]) -> None:
    from lgeseg.augmentation.preview import load_slice
    from lgeseg.cli.show_augmentations import main

    dataset = raw_centers["center1"]
    stored_label, geometry = read_label(dataset / "labelsTr" / "c1_000.nii.gz")
    largest = int((stored_label > 0).sum(axis=(1, 2)).argmax())  # the slice with the most foreground
    image, label, spacing, title = load_slice(dataset)
    assert title == f"c1_000 slice {largest}" and spacing == geometry.spacing[1:]
    np.testing.assert_array_equal(label, stored_label[largest])
    assert set(np.unique(label)) == {0, 1, 2} and image.min() == 0.0 and image.max() == 1.0
    out = tmp_path / "grid.png"
    assert main([str(dataset), "--preset", "nnunet", "-o", str(out), "--n", "3", "--patch", "32", "32"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main([str(dataset), "-o", str(out), "--case", "nope"]) == 1


@pytest.mark.parametrize("name", ["spatial", "nnunet", "lge_dg"])
def test_augment_carries_an_ignore_label_and_never_invents_it(name: str) -> None:
    images, labels = _square_batch(8, 72)
    labels[:, 10:14, 30:38] = 1
    with_ignore = labels.clone()
    with_ignore[:, 14:18, 28:40] = 3  # an unsure band inside the square
    preset = get_preset(name)
    _, out = augment_batch(images, with_ignore, preset, (64, 48), SPACING, _gen(2), num_classes=3, ignore_label=3)
    assert set(out.unique().tolist()) == {0, 1, 2, 3}  # carried through rotation, scaling and flips
    fraction_in, fraction_out = float((with_ignore == 3).float().mean()), float((out == 3).float().mean())
    assert 0.4 * fraction_in < fraction_out < 2.5 * fraction_in
    plain_images, plain = augment_batch(images, labels, preset, (64, 48), SPACING, _gen(2), num_classes=3)
    again_images, again = augment_batch(images, labels, preset, (64, 48), SPACING, _gen(2), num_classes=3,
                                        ignore_label=3)
    assert 3 not in again.unique().tolist()  # no ignore voxel in: none out
    assert torch.equal(again, plain) and torch.equal(again_images, plain_images)  # the same draws and results
