"""Fine-tuning: frozen blocks stay bitwise identical, target cases are reproducible and recorded."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from lgeseg.cli.finetune import main as finetune_main
from lgeseg.core.records import Plan
from lgeseg.training import finetune, load_checkpoint, pick_target_cases, read_model_metadata, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory, make_preprocessed: Callable[..., Path],
               tiny_training: dict) -> Path:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("pretrain")
    pre = make_preprocessed(root / "pre1", {"center1": 3})
    return train(pre, root / "model", **{**tiny_training, "epochs": 1, "iterations_per_epoch": 2})


@pytest.fixture(scope="module")
def new_center(tmp_path_factory: pytest.TempPathFactory, make_preprocessed: Callable[..., Path]) -> Path:
    return make_preprocessed(tmp_path_factory.mktemp("pre2"), {"center2": 6}, seed=2)


def test_encoder_2_changes_only_the_first_two_encoder_blocks(pretrained: Path, new_center: Path,
                                                              tmp_path: Path) -> None:
    out = finetune(pretrained, new_center, tmp_path / "ft", trainable="encoder:2", cases=2, epochs=1,
                   iterations_per_epoch=3, device="cpu", num_workers=1, lr=2e-3)
    before = load_checkpoint(pretrained / "checkpoint_final.pt")["network"]
    after = load_checkpoint(out / "checkpoint_final.pt")["network"]
    assert before.keys() == after.keys()
    inside = [n for n in before if n.startswith(("encoder_blocks.0.", "encoder_blocks.1."))]
    assert inside and any("weight" in n for n in inside)
    for name in before:
        if name in inside:
            assert not torch.equal(before[name], after[name]), f"{name} should have been trained"
        else:
            assert torch.equal(before[name], after[name]), f"{name} should be frozen"
    _, info = read_model_metadata(out)
    assert info.parent == str(pretrained.resolve()) and info.trainable == "encoder:2"
    assert info.epochs_trained == 1 and info.datasets == ("center2",)
    assert info.recipe.learning_rate == 2e-3  # an explicit rate wins over the default


def test_one_case_for_a_seed_is_the_same_every_time_and_recorded(pretrained: Path, new_center: Path,
                                                                  tmp_path: Path) -> None:
    keys = [f"center2/center2_{i:03d}" for i in range(6)]
    picks = {tuple(pick_target_cases(keys, cases=1, seed=7)[0]) for _ in range(3)}
    assert len(picks) == 1
    assert {tuple(pick_target_cases(keys, cases=1, seed=s)[0]) for s in range(6)} != picks  # the seed matters
    out = tmp_path / "ft1"
    assert finetune_main(["-m", str(pretrained), "-p", str(new_center), "-o", str(out), "--train", "decoder:1",
                          "--cases", "1", "--seed", "7", "--epochs", "1", "--iterations-per-epoch", "2",
                          "--device", "cpu"]) == 0
    _, info = read_model_metadata(out)
    assert info.target_cases == picks.pop()
    _, parent = read_model_metadata(pretrained)  # no --lr: the parent's rate, as in the paper
    assert info.recipe.learning_rate == parent.recipe.learning_rate
    split = json.loads((out / "splits.json").read_text())
    assert split[0]["train"] == list(info.target_cases) and not set(split[0]["val"]) & set(info.target_cases)


def test_fraction_picks_a_share_of_subjects() -> None:
    keys = [f"acdc/patient{p:03d}_frame{f:02d}" for p in range(10) for f in (1, 12)]
    train_keys, val_keys = pick_target_cases(keys, fraction=0.1, seed=0)
    assert len(train_keys) == 2 and train_keys[0].split("_frame")[0] == train_keys[1].split("_frame")[0]
    assert len(val_keys) == 4 and not set(train_keys) & set(val_keys)
    with pytest.raises(ValueError, match="between 1 and 10"):
        pick_target_cases(keys, cases=11)


def test_new_center_with_other_plans_is_refused_with_the_fix(pretrained: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture,
                                                             make_preprocessed: Callable[..., Path],
                                                             tiny_plan: Callable[..., Plan]) -> None:
    other = make_preprocessed(tmp_path / "other", {"center3": 2}, plan=tiny_plan((16, 16)))
    code = finetune_main(["-m", str(pretrained), "-p", str(other), "-o", str(tmp_path / "ft"), "--cases", "1"])
    assert code == 1
    message = capsys.readouterr().err
    assert "--plans-from" in message and "lgeseg_plan_and_preprocess" in message
    assert not (tmp_path / "ft").exists()


def test_default_trains_the_first_five_encoder_blocks_when_there_are_five(tmp_path: Path,
                                                                          make_preprocessed: Callable[..., Path],
                                                                          tiny_plan: Callable[..., Plan],
                                                                          tiny_training: dict) -> None:
    from lgeseg.cli.finetune import build_parser
    from lgeseg.core.records import NetworkTopology
    from lgeseg.training.finetune import default_trainable

    assert default_trainable(6) == default_trainable(5) == "encoder:5" and default_trainable(4) == "all"
    assert "encoder:5" in " ".join(build_parser().format_help().split())
    five = NetworkTopology(in_channels=1, num_classes=3, features_per_stage=(4, 4, 8, 8, 8),
                           kernel_sizes=((3, 3),) * 5, strides=((1, 1),) + ((2, 2),) * 4)
    plan = dataclasses.replace(tiny_plan(), topology=five)
    model = train(make_preprocessed(tmp_path / "pre1", {"center1": 3}, plan=plan), tmp_path / "model",
                  **{**tiny_training, "epochs": 1, "iterations_per_epoch": 1})
    target = make_preprocessed(tmp_path / "pre2", {"center2": 2}, seed=2, plan=plan)
    out = finetune(model, target, tmp_path / "ft", cases=1, epochs=1, iterations_per_epoch=1, device="cpu",
                   num_workers=1)
    assert read_model_metadata(out)[1].trainable == "encoder:5"
