"""Training: tiny network on tiny synthetic preprocessed cases, on the CPU."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from lgeseg.cli.train import main as train_main
from lgeseg.core.errors import OutputConflictError
from lgeseg.core.records import LABELS, Plan, load_fingerprint, save_json
from lgeseg.training import (
    ModelInfo,
    get_recipe,
    load_checkpoint,
    load_model,
    read_model_metadata,
    save_checkpoint,
    train,
    write_model_metadata,
)
from lgeseg.training.data import BatchLoader, PatchSampler, TrainingCase, extract_crop, load_cases
from lgeseg.training.recipes import resolve_batch_size
from lgeseg.training.splits import load_or_create_splits, make_splits
from lgeseg.training.training_data import open_training_data

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def pre(tmp_path_factory: pytest.TempPathFactory, make_preprocessed: Callable[..., Path]) -> Path:
    return make_preprocessed(tmp_path_factory.mktemp("pre"), {"center1": 5})


def test_loss_falls_in_a_few_cpu_iterations(pre: Path) -> None:
    from lgeseg.training.loop import build_state

    data = open_training_data(pre)
    cases = load_cases(data.entries, data.case_keys)
    sampler = PatchSampler(cases, (32, 32), (32, 32), batch_size=4)
    images, labels = (torch.from_numpy(a) for a in sampler.sample_batch(np.random.default_rng(0)))
    state = build_state(get_recipe("paper", device="cpu"), data.plan, torch.device("cpu"))
    losses = []
    for _ in range(12):
        state.optimizer.zero_grad()
        loss = state.loss_fn(state.network(images), labels.long())
        loss.backward()
        state.optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.9 * losses[0] and losses[-1] == min(losses)


def test_train_writes_a_self_contained_model_folder(pre: Path, tmp_path: Path, tiny_training: dict) -> None:
    model_dir = train(pre, tmp_path / "model", **tiny_training)
    for name in ("model.json", "plans.json", "fingerprint.json", "splits.json", "checkpoint_latest.pt",
                 "checkpoint_best.pt", "checkpoint_final.pt", "training_log.txt", "progress.png"):
        assert (model_dir / name).is_file(), name
    plan, info = read_model_metadata(model_dir)
    assert info.epochs_trained == 2 and info.datasets == ("center1",)
    assert info.recipe.optimizer == "adam" and info.recipe.batch_size == 4  # the plan's: the recipe leaves it open
    written = json.loads((model_dir / "model.json").read_text())
    assert "augmentation" not in written and written["recipe"]["augmentation"] == info.augmentation == "none"
    assert info.postprocessing in ("none", "lcc", "lcc_per_label")
    assert set(info.extras["last_val_dice"]) == {"blood_pool", "myocardium"}
    card = info.model_card  # written when training ends (lgeseg_predict --model-info prints it)
    assert card["budget"]["epochs_trained"] == 2 and card["training_data"]["datasets"] == ["center1"]
    assert set(card["validation"]["last_dice"]) == {"blood_pool", "myocardium"} and card["intended_use"]
    assert load_fingerprint(model_dir / "fingerprint.json").cases[0].case_id == "note"  # the training data's, copied
    assert "epoch 2/2" in (model_dir / "training_log.txt").read_text()
    loaded = load_model(model_dir)
    assert loaded.network(torch.zeros(1, 1, 32, 32))[0].shape == (1, 3, 32, 32)


def test_continue_resumes_from_the_saved_epoch(pre: Path, tmp_path: Path, tiny_training: dict) -> None:
    straight = train(pre, tmp_path / "straight", **{**tiny_training, "epochs": 3})
    resumed = tmp_path / "resumed"
    assert train_main(["-p", str(pre), "-o", str(resumed), "--epochs", "2", "--iterations-per-epoch", "4",
                       "--device", "cpu", "--num-workers", "1", "--augmentation", "none"]) == 0
    with pytest.raises(OutputConflictError, match="--continue"):
        train(pre, resumed, **tiny_training)
    assert train_main(["-p", str(pre), "-o", str(resumed), "--continue", "--epochs", "3"]) == 0
    _, info = read_model_metadata(resumed)
    latest = load_checkpoint(resumed / "checkpoint_latest.pt")
    assert info.epochs_trained == 3 and latest["epoch"] == 3 and len(latest["history"]["train_loss"]) == 3
    steps = {int(s["step"]) for s in latest["optimizer"]["state"].values()}
    assert steps == {3 * 4}  # Adam's step counter went on from the restored optimizer state
    assert "resuming from epoch 2" in (resumed / "training_log.txt").read_text()
    reference = load_checkpoint(straight / "checkpoint_final.pt")["network"]
    for name, tensor in load_checkpoint(resumed / "checkpoint_final.pt")["network"].items():
        torch.testing.assert_close(tensor, reference[name], rtol=1e-4, atol=1e-5)


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def test_checkpoint_crafted_to_run_code_is_refused(tmp_path: Path, tiny_plan: Callable[..., Plan]) -> None:
    marker = tmp_path / "marker.txt"
    path = tmp_path / "checkpoint_final.pt"
    torch.save({"network": {"w": torch.zeros(1)}, "extra": _Exploit(marker)}, path)
    with pytest.raises(ValueError, match="refused"):
        load_checkpoint(path)
    assert not marker.exists()
    info = ModelInfo("0", dict(LABELS), {"0": "LGE"}, recipe=None, datasets=("c",))
    write_model_metadata(tmp_path, tiny_plan(), info)
    with pytest.raises(ValueError, match="refused"):  # also when a whole model folder is loaded
        load_model(tmp_path)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the file really is an exploit: unsafe loading runs it
    assert marker.read_text() == "pwned"


def test_checkpoint_of_plain_data_round_trips(tmp_path: Path) -> None:
    payload = {"network": {"w": torch.arange(3.0)}, "epoch": 4, "history": {"loss": [1.0, 0.5]}}
    save_checkpoint(tmp_path / "c.pt", payload)
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert loaded["epoch"] == 4 and torch.equal(loaded["network"]["w"], torch.arange(3.0))
    assert not list(tmp_path.glob(".*tmp"))  # no temporary files left behind


def test_splits_are_by_subject_and_reused(tmp_path: Path) -> None:
    keys = [f"acdc/patient{p:03d}_frame{f:02d}" for p in range(10) for f in (1, 12)]
    folds = make_splits(keys, num_folds=5)
    for fold in folds:
        train_subjects = {k.split("_frame")[0] for k in fold["train"]}
        assert not train_subjects & {k.split("_frame")[0] for k in fold["val"]}
        assert len(fold["val"]) == 4 and len(fold["train"]) == 16
    path = tmp_path / "splits.json"
    load_or_create_splits(path, keys)
    custom = [{"train": keys[2:], "val": keys[:2]}]
    save_json(custom, path)
    assert load_or_create_splits(path, keys) == custom  # an existing (even hand-edited) split is kept
    with pytest.raises(ValueError, match="does not match"):
        load_or_create_splits(path, keys[:-1])


def _case(name: str, dataset: str, fill: int = 1) -> TrainingCase:
    label = np.zeros((2, 20, 20), np.uint8)
    label[1, 15:18, 2:5] = fill
    image = np.full((1, 2, 20, 20), float(len(dataset)), np.float32)
    return TrainingCase(f"{dataset}/{name}", dataset, image, label, [np.argwhere(label == fill).astype(np.int32)])


def test_sampler_balances_datasets_and_oversamples_foreground() -> None:
    cases = [_case(f"a{i}", "a") for i in range(8)] + [_case("b0", "bb")]
    sampler = PatchSampler(cases, (8, 8), (12, 12), batch_size=6, foreground_fraction=0.33)
    images, labels = [], []
    for seed in range(100):
        batch_images, batch_labels = sampler.sample_batch(np.random.default_rng(seed))
        images.append(batch_images)
        labels.append(batch_labels)
    images, labels = np.stack(images), np.stack(labels)
    share_b = float((images.max(axis=(2, 3, 4)) == 2.0).mean())  # dataset "bb" has image value 2
    assert 0.4 < share_b < 0.6  # 1 case of "bb" drawn as often as 8 cases of "a"
    assert (labels[:, 4:].max(axis=(2, 3)) == 1).all()  # the last third is centred on foreground
    assert (labels[:, :4].max(axis=(2, 3)) == 0).mean() > 0.5  # the rest mostly is not (tiny object)


def test_crops_pad_with_zeros_beyond_the_slice() -> None:
    array = np.arange(1, 13, dtype=np.float32).reshape(3, 4)
    crop = extract_crop(array, (0, 0), (4, 4))
    assert crop.shape == (4, 4)
    np.testing.assert_array_equal(crop[2:, 2:], array[:2, :2])
    assert crop[:2].sum() == 0 and crop[:, :2].sum() == 0


def test_batches_do_not_depend_on_the_number_of_workers() -> None:
    cases = [_case(f"a{i}", "a") for i in range(4)]
    sampler = PatchSampler(cases, (8, 8), (10, 10), batch_size=3)
    runs = [[b[1].numpy().copy() for b in BatchLoader(sampler, 6, (0, 1), workers)] for workers in (0, 1, 3)]
    for other in runs[1:]:
        for a, b in zip(runs[0], other, strict=True):
            np.testing.assert_array_equal(a, b)


def test_two_datasets_and_bad_selections(tmp_path: Path, make_preprocessed: Callable[..., Path],
                                         tiny_plan: Callable[..., Plan]) -> None:
    first = make_preprocessed(tmp_path / "pre1", {"center1": 3})
    second = make_preprocessed(tmp_path / "pre2", {"center2": 2}, seed=1)
    data = open_training_data([first, second])
    assert data.datasets == ("center1", "center2") and len(data.case_keys) == 5
    assert open_training_data([first, second], ["center2"]).case_keys == ["center2/center2_000", "center2/center2_001"]
    with pytest.raises(ValueError, match="not found"):
        open_training_data(first, ["center9"])
    other = make_preprocessed(tmp_path / "pre3", {"center3": 1}, plan=tiny_plan((16, 16)))
    with pytest.raises(ValueError, match="share one plan"):
        open_training_data([first, other])


def test_an_unknown_augmentation_preset_is_refused_with_the_recipe_before_any_data(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="augmentation: unknown augmentation preset 'lge_dgx'; choose one of"):
        get_recipe("default", augmentation="lge_dgx")
    assert get_recipe("default", augmentation="lge_dg-scar").augmentation == "lge_dg-scar"  # ablations pass
    with pytest.raises(ValueError, match="unknown augmentation preset"):
        train(tmp_path / "no_such_folder", tmp_path / "model", augmentation="lge_dgx")  # before the data
    assert not (tmp_path / "model").exists()


def test_unknown_recipe_and_bad_values_name_the_problem() -> None:
    with pytest.raises(ValueError, match="available: default, nnunet, paper"):
        get_recipe("fast")
    with pytest.raises(ValueError, match="fold must be in 0..4"):
        get_recipe("paper", fold=7)
    config = get_recipe("nnunet", epochs=10)
    assert (config.optimizer, config.lr_schedule, config.momentum, config.weight_decay) == ("sgd", "poly", 0.99, 3e-5)
    assert pickle.loads(pickle.dumps(config)) == config


#: The paper's training as section 2.6.4 writes it (Adam 1e-3 constant, batch 16, 250 epochs) and
#: nothing more: fp32, no gradient clipping, random patch positions, an epoch is a pass over the data.
PAPER_NUMBERS = {"optimizer": "adam", "learning_rate": 1e-3, "lr_schedule": "constant", "weight_decay": 0.0,
                 "epochs": 250, "iterations_per_epoch": None, "batch_size": 16, "augmentation": "spatial_intensity",
                 "mixed_precision": False, "grad_clip": None, "foreground_fraction": 0.0,
                 "subjects_per_center": None}


def test_paper_recipe_resolves_to_the_papers_numbers_and_default_names_its_extras() -> None:
    paper = get_recipe("paper").to_dict()
    assert {key: paper[key] for key in PAPER_NUMBERS} == PAPER_NUMBERS
    default = get_recipe().to_dict()
    extras = {key for key in paper if paper[key] != default[key]}
    assert extras == {"name", "description", "iterations_per_epoch", "batch_size", "mixed_precision", "grad_clip",
                      "foreground_fraction", "augmentation", "ema_fraction"}
    assert (default["iterations_per_epoch"], default["grad_clip"], default["foreground_fraction"]) == (250, 12.0, 0.33)
    assert (paper["ema_fraction"], default["ema_fraction"]) == (None, 0.1)  # the model is the weight average
    assert default["augmentation"] == "lge_dg"  # chosen on real LGE (docs/augmentation.md, ablation)


def test_paper_epoch_is_one_pass_over_the_training_slices(tmp_path: Path, make_preprocessed: Callable[...,
                                                          Path]) -> None:
    pre = make_preprocessed(tmp_path / "pre", {"center1": 12})
    model = train(pre, tmp_path / "model", recipe="paper", epochs=1, batch_size=4, device="cpu", num_workers=1,
                  augmentation="none")
    _, info = read_model_metadata(model)
    train_slices = 3 * len(json.loads((model / "splits.json").read_text())[0]["train"])  # 3 slices per case
    assert info.recipe.iterations_per_epoch == -(-train_slices // 4)
    assert info.recipe.mixed_precision is False and info.recipe.grad_clip is None


def test_subjects_per_center_trains_on_equal_counts_per_center(tmp_path: Path, make_preprocessed: Callable[...,
                                                               Path]) -> None:
    first = make_preprocessed(tmp_path / "pre1", {"center1": 6})
    second = make_preprocessed(tmp_path / "pre2", {"center2": 4}, seed=1)
    out = tmp_path / "model"
    assert train_main(["-p", str(first), "-p", str(second), "-o", str(out), "--subjects-per-center", "3",
                       "--epochs", "1", "--iterations-per-epoch", "1", "--device", "cpu", "--augmentation", "none",
                       "--num-workers", "1"]) == 0
    fold = json.loads((out / "splits.json").read_text())[0]
    used = fold["train"] + fold["val"]
    assert sorted(key.split("/")[0] for key in used) == ["center1"] * 3 + ["center2"] * 3
    _, info = read_model_metadata(out)
    assert info.recipe.subjects_per_center == 3


def test_the_batch_size_is_resolved_once_and_recorded(pre: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    plan = open_training_data(pre).plan
    assert resolve_batch_size(get_recipe("default"), plan).batch_size == plan.batch_size == 4  # null: the plan's
    assert resolve_batch_size(get_recipe("paper"), plan).batch_size == 16  # the recipe's own
    out = tmp_path / "model"
    args = ["-p", str(pre), "-o", str(out), "--iterations-per-epoch", "2", "--device", "cpu", "--num-workers", "1",
            "--augmentation", "none"]
    assert train_main([*args, "--epochs", "1", "--batch-size", "3"]) == 0
    assert read_model_metadata(out)[1].recipe.batch_size == 3  # the override, recorded resolved
    monkeypatch.setattr("lgeseg.cli.train.available_memory_bytes", lambda device: 1)
    assert train_main([*args, "--epochs", "2", "--continue"]) == 1  # the memory check weighs the recorded batch
    assert "batch_size 3 of the recipe 'default': batch size 3:" in capsys.readouterr().err
    monkeypatch.undo()
    assert train_main([*args, "--epochs", "2", "--continue"]) == 0
    _, info = read_model_metadata(out)
    assert (info.recipe.batch_size, info.epochs_trained) == (3, 2)


def test_plans_json_is_written_once_and_model_json_every_epoch(preprocessed_centers: dict[str, Path], tmp_path: Path,
                                                              tiny_training: dict) -> None:
    model = train(preprocessed_centers["center1"], tmp_path / "model", **tiny_training)
    plans, latest = model / "plans.json", model / "checkpoint_latest.pt"
    assert plans.stat().st_mtime_ns < latest.stat().st_mtime_ns < (model / "model.json").stat().st_mtime_ns


class _EchoNetwork(torch.nn.Module):
    """Predicts the class written in the image's first channel (confidently): a stand-in with known outputs."""

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        classes = x[:, 0].round().long().clamp(0, 2)
        return [20.0 * torch.nn.functional.one_hot(classes, 3).permute(0, 3, 1, 2).float()]


def test_validate_counts_no_dice_and_no_loss_on_ignored_voxels() -> None:
    from lgeseg.training.validate_epoch import validate

    label = np.zeros((2, 16, 16), np.uint8)
    label[:, 4:12, 4:12] = 2
    label[:, 6:10, 6:10] = 1
    image = label.astype(np.float32)[None].copy()
    reference = label.copy()
    reference[:, 4:6, 4:12] = 3  # ignored; the "prediction" there stays myocardium
    image[0, :, 2:4, 4:12] = 1.0  # and a wrong blood pool where the reference is unsure too
    reference[:, 2:4, 4:12] = 3
    case = TrainingCase("d/p1", "d", image, reference, [])
    network = _EchoNetwork()
    counted = validate(network, [case], dict(LABELS), (1, 1), torch.device("cpu"), ignore_label=3)
    assert counted.dice == {"blood_pool": 1.0, "myocardium": 1.0} and counted.loss < 1e-3
    assert counted.predictions[0].max() <= 2  # predictions are plain label maps
    plain = validate(network, [TrainingCase("d/p1", "d", image, np.where(reference == 3, 0, reference), [])],
                     dict(LABELS), (1, 1), torch.device("cpu"))
    assert plain.dice["blood_pool"] < 1.0  # the same voxels counted as background would cost Dice


def test_training_data_with_an_ignore_label_trains_and_refuses_two_values(
        tmp_path: Path, make_preprocessed: Callable[..., Path], tiny_training: dict) -> None:
    source = make_preprocessed(tmp_path / "pre_source", {"source": 3})
    target = make_preprocessed(tmp_path / "pre_target", {"target": 3}, seed=1)
    save_json({"channel_names": {"0": "LGE"}, "labels": {**LABELS, "ignore": 3}}, target / "target" / "dataset.json")
    for npz in sorted((target / "target").glob("*.npz")):
        with np.load(npz) as data:
            image, label = data["image"], data["label"].copy()
        label[:, :, :6] = 3  # a strip of unsure voxels
        np.savez(npz, image=image, label=label)
    data = open_training_data([source, target])
    assert data.ignore_label == 3 and open_training_data(source).ignore_label is None
    model = train([source, target], tmp_path / "model", **{**tiny_training, "augmentation": "lge_dg"})
    info = json.loads((model / "model.json").read_text())
    assert info["labels"] == dict(LABELS)  # the network has no output for "ignore"
    assert load_model(model).network.heads[0].out_channels == 3
    save_json({"channel_names": {"0": "LGE"}, "labels": {**LABELS, "ignore": 4}}, source / "source" / "dataset.json")
    with pytest.raises(ValueError, match="different ignore labels"):
        open_training_data([source, target])
