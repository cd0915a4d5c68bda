"""Tests of the 2D U-Net: shapes, deep supervision, determinism, fine-tuning selection."""

from __future__ import annotations

import pytest
import torch

from lgeseg.core.records import NetworkTopology
from lgeseg.network import build_unet, count_parameters, select_trainable


def _topology(in_channels: int = 1, strides: tuple = ((1, 1), (2, 2), (2, 1))) -> NetworkTopology:
    return NetworkTopology(
        in_channels=in_channels,
        num_classes=3,
        features_per_stage=(4, 8, 16),
        kernel_sizes=((3, 3), (3, 3), (3, 1)),
        strides=strides,
    )


def test_deep_supervision_outputs_highest_resolution_first() -> None:
    model = build_unet(_topology(in_channels=2), seed=0)
    outputs = model(torch.randn(2, 2, 16, 12))
    assert [tuple(o.shape) for o in outputs] == [(2, 3, 16, 12), (2, 3, 8, 6)]


def test_inference_mode_returns_only_full_resolution_and_matches_deep_supervision_head() -> None:
    model = build_unet(_topology(), seed=0).eval()
    x = torch.randn(1, 1, 16, 8)
    with torch.no_grad():
        full = model(x)[0]
        model.deep_supervision = False
        only = model(x)
    assert len(only) == 1
    torch.testing.assert_close(only[0], full)


def test_same_seed_same_weights_and_different_seed_different_weights() -> None:
    a, b, c = (build_unet(_topology(), seed=s) for s in (3, 3, 4))
    for (name, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters(), strict=True):
        torch.testing.assert_close(pa, pb)
        if name.endswith("weight") and pa.dim() == 4:
            assert not torch.equal(pa, pc), name


def test_conv_biases_start_at_zero() -> None:
    model = build_unet(_topology(), seed=0)
    assert torch.count_nonzero(model.encoder_blocks[0][0][0].bias) == 0


def test_indivisible_input_size_is_rejected_with_the_divisor() -> None:
    model = build_unet(_topology(), seed=0)
    with pytest.raises(ValueError, match=r"multiples of \(4, 2\)"):
        model(torch.randn(1, 1, 18, 8))


def test_inconsistent_topology_names_the_field() -> None:
    bad = NetworkTopology(1, 3, (4, 8), ((3, 3),), ((1, 1), (2, 2)))
    with pytest.raises(ValueError, match="kernel_sizes"):
        build_unet(bad)


def test_select_encoder_blocks_freezes_everything_else() -> None:
    model = build_unet(_topology(), seed=0)
    names = select_trainable(model, "encoder:2")
    assert names and all(n.startswith(("encoder_blocks.0.", "encoder_blocks.1.")) for n in names)
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert any(n.startswith("encoder_blocks.2.") for n in frozen)
    assert count_parameters(model, trainable_only=True) == sum(
        p.numel() for n, p in model.named_parameters() if n in names
    )


def test_select_last_decoder_block_includes_upsampling_and_head_and_only_they_learn() -> None:
    model = build_unet(_topology(), seed=0)
    names = select_trainable(model, "decoder:1")
    assert "decoder_blocks.1.upsample.weight" in names and "heads.1.weight" in names
    assert not any(n.startswith(("decoder_blocks.0.", "heads.0.", "encoder_blocks.")) for n in names)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    sum(o.mean() for o in model(torch.randn(2, 1, 8, 4))).backward()
    optimizer.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= set(names)


def test_select_all_after_freezing_restores_everything() -> None:
    model = build_unet(_topology(), seed=0)
    select_trainable(model, "encoder:1")
    assert len(select_trainable(model, "all")) == len(list(model.parameters()))


@pytest.mark.parametrize("spec", ["encoder:0", "encoder:4", "decoder:3", "middle:1", "decoder:x", "everything"])
def test_bad_trainable_spec_states_valid_range(spec: str) -> None:
    model = build_unet(_topology(), seed=0)
    with pytest.raises(ValueError, match="between 1 and|expected 'all'"):
        select_trainable(model, spec)


def test_channels_last_and_autocast_give_finite_logits() -> None:
    model = build_unet(_topology(), seed=0).to(memory_format=torch.channels_last)
    x = torch.randn(2, 1, 16, 8).to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = model(x)
    assert all(torch.isfinite(o.float()).all() for o in outputs)
    sum(o.float().mean() for o in outputs).backward()
    assert model.encoder_blocks[0][0][0].weight.grad is not None
