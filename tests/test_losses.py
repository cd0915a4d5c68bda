"""Dice + CE loss and deep-supervision weighting."""

from __future__ import annotations

import pytest
import torch

from lgeseg.training.losses import (
    DeepSupervisionLoss,
    DiceCELoss,
    deep_supervision_weights,
    downsample_target,
    soft_dice_loss,
)


def _logits_for(target: torch.Tensor, classes: int = 3, scale: float = 20.0) -> torch.Tensor:
    return scale * torch.nn.functional.one_hot(target, classes).permute(0, 3, 1, 2).float()


def test_deep_supervision_weights_halve_drop_the_lowest_and_sum_to_one() -> None:
    assert deep_supervision_weights(4) == pytest.approx([4 / 7, 2 / 7, 1 / 7, 0.0])
    assert deep_supervision_weights(1) == [1.0]
    weights = deep_supervision_weights(6)
    assert sum(weights) == pytest.approx(1.0) and weights[-1] == 0.0
    assert all(a == pytest.approx(2 * b) for a, b in zip(weights[:-2], weights[1:-1], strict=True))


def test_soft_dice_is_zero_when_perfect_and_one_when_foreground_is_missed() -> None:
    target = torch.zeros(2, 8, 8, dtype=torch.long)
    target[:, 2:5, 2:5] = 1
    target[:, 5:7, 5:7] = 2
    assert float(soft_dice_loss(_logits_for(target), target)) == pytest.approx(0.0, abs=1e-4)
    all_background = _logits_for(torch.zeros_like(target))
    assert float(soft_dice_loss(all_background, target)) == pytest.approx(1.0, abs=1e-3)


def test_background_does_not_count_in_dice() -> None:
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    target[:, :4] = 1
    target[:, 4:] = 2
    wrong_background = _logits_for(target)
    wrong_background[:, 0] = 5.0  # background scores change, foreground argmax does not
    assert float(soft_dice_loss(wrong_background, target)) < 0.05


def test_targets_are_downsampled_by_nearest_without_new_labels() -> None:
    target = torch.randint(0, 3, (2, 16, 16))
    small = downsample_target(target, (4, 4))
    assert small.shape == (2, 4, 4) and small.dtype == torch.long
    assert set(small.unique().tolist()) <= {0, 1, 2}
    torch.testing.assert_close(small, target[:, ::4, ::4])


def test_deep_supervision_loss_ignores_the_lowest_output_and_weights_the_rest() -> None:
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    target[:, 2:6, 2:6] = 1
    perfect = [_logits_for(downsample_target(target, (s, s))) for s in (8, 4, 2)]
    loss = DeepSupervisionLoss(deep_supervision_weights(3))
    base = float(loss(perfect, target))
    garbage = [perfect[0], perfect[1], torch.randn(1, 3, 2, 2) * 10]
    assert float(loss(garbage, target)) == pytest.approx(base)  # weight 0 on the lowest level
    worse = [perfect[0], torch.zeros(1, 3, 4, 4), perfect[2]]
    expected = base + (1 / 3) * (float(DiceCELoss()(worse[1], downsample_target(target, (4, 4)))) -
                                 float(DiceCELoss()(perfect[1], downsample_target(target, (4, 4)))))
    assert float(loss(worse, target)) == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError, match="expected 3 network outputs"):
        loss(perfect[:2], target)


def _random_case(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(2, 3, 8, 8, generator=generator) * 3, torch.randint(0, 3, (2, 8, 8), generator=generator)


def test_ignore_index_none_is_bit_identical_to_the_plain_loss() -> None:
    logits, target = _random_case(0)
    plain = torch.nn.functional.cross_entropy(logits, target) + soft_dice_loss(logits, target)
    assert torch.equal(DiceCELoss()(logits, target), plain)
    assert torch.equal(DiceCELoss(ignore_index=None)(logits, target), DiceCELoss()(logits, target))
    outputs = [logits, logits[..., ::2, ::2].contiguous()]
    weights = deep_supervision_weights(2)
    assert torch.equal(DeepSupervisionLoss(weights)(outputs, target),
                       DeepSupervisionLoss(weights, ignore_index=None)(outputs, target))


def test_ignored_voxels_count_nowhere_whatever_the_logits_there() -> None:
    logits, target = _random_case(1)
    ignored = torch.zeros_like(target, dtype=torch.bool)
    ignored[:, :3] = True  # the top three rows of both images
    masked = torch.where(ignored, 3, target)
    loss = DiceCELoss(ignore_index=3)
    value = loss(logits, masked)
    # the reference: the same loss on the counted voxels only (rows 3..7 of each image as one batch)
    kept_logits, kept_target = logits[:, :, 3:], target[:, 3:]
    expected = (torch.nn.functional.cross_entropy(kept_logits, kept_target)
                + soft_dice_loss(kept_logits, kept_target))
    torch.testing.assert_close(value, expected)
    other = logits.clone()
    other[:, :, :3] = torch.randn(2, 3, 3, 8) * 100  # anything at the ignored voxels
    torch.testing.assert_close(loss(other, masked), value)
    other.requires_grad_(True)
    loss(other, masked).backward()
    assert other.grad is not None and float(other.grad[:, :, :3].abs().max()) == 0.0
    assert float(other.grad[:, :, 3:].abs().max()) > 0.0


def test_everything_ignored_gives_a_finite_loss_and_deep_supervision_keeps_the_ignore_value() -> None:
    logits, target = _random_case(2)
    value = DiceCELoss(ignore_index=3)(logits, torch.full_like(target, 3))
    assert float(value) == 0.0  # nothing counted: no loss, no NaN
    masked = target.clone()
    masked[:, ::2, ::2] = 3  # every voxel the nearest-neighbour downsampling keeps
    outputs = [logits, logits[..., ::2, ::2].contiguous()]
    loss = DeepSupervisionLoss([0.5, 0.5], ignore_index=3)
    expected = 0.5 * DiceCELoss(ignore_index=3)(logits, masked)  # the low level holds only ignored voxels: 0
    torch.testing.assert_close(loss(outputs, masked), expected)
