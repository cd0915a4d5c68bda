"""Data-parallel training: 2 CPU processes (gloo) started by ``lgeseg_train --gpus 2 --device cpu``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from lgeseg.cli.train import main as train_main
from lgeseg.training import load_checkpoint, read_model_metadata
from lgeseg.training.data import PatchSampler
from lgeseg.training.distributed import DistributedContext, split_batch
from lgeseg.training.loop import epoch_seeds

MODEL_FILES = {"model.json", "plans.json", "fingerprint.json", "splits.json", "checkpoint_latest.pt",
               "checkpoint_best.pt", "checkpoint_final.pt", "training_log.txt", "progress.png"}


def _run(pre: Path, model_dir: Path, samples: Path, *extra: str) -> int:
    return train_main(["-p", str(pre), "-o", str(model_dir), "--gpus", "2", "--device", "cpu", "--epochs", "1",
                       "--iterations-per-epoch", "3", "--num-workers", "0", "--augmentation", "none",
                       "--sample-log", str(samples), *extra])


def _batches(path: Path) -> dict[tuple[str, str], str]:
    """(epoch, batch) -> the samples of that batch, from a ``samples_rank<r>.txt``."""
    lines = [line.split(" ", 2) for line in path.read_text().splitlines()]
    return {(epoch, batch): samples for epoch, batch, samples in lines}


def test_two_gloo_processes_train_one_model_written_by_rank_0_alone(tmp_path: Path, make_preprocessed) -> None:
    pre = make_preprocessed(tmp_path / "pre", {"center1": 5})
    model_dir, samples = tmp_path / "model", tmp_path / "samples"
    assert _run(pre, model_dir, samples) == 0
    assert {p.name for p in model_dir.iterdir()} == MODEL_FILES  # no temporary files left by a second writer
    log_text = (model_dir / "training_log.txt").read_text()
    assert log_text.count("starting:") == 1 and log_text.count("epoch 1/1:") == 1  # one process logged
    assert "data parallel: 2 processes (gloo), global batch 4 split [2, 2]" in log_text
    _, info = read_model_metadata(model_dir)
    assert info.extras["processes"] == 2 and info.recipe.batch_size == 4

    rank0, rank1 = (_batches(samples / f"samples_rank{r}.txt") for r in (0, 1))
    assert set(rank0) == set(rank1) == {("0", str(i)) for i in range(3)}
    assert all(len(rank0[k].split()) == len(rank1[k].split()) == 2 for k in rank0)  # each rank: half the batch
    assert all(rank0[k] != rank1[k] for k in rank0)  # the ranks drew different samples

    assert _run(pre, model_dir, samples, "--continue", "--epochs", "2") == 0
    _, info = read_model_metadata(model_dir)
    latest = load_checkpoint(model_dir / "checkpoint_latest.pt")
    assert info.epochs_trained == 2 and latest["epoch"] == 2 and len(latest["history"]["train_loss"]) == 2
    assert {int(s["step"]) for s in latest["optimizer"]["state"].values()} == {2 * 3}
    assert (model_dir / "training_log.txt").read_text().count("resuming from epoch 1") == 1
    assert {p.name for p in model_dir.iterdir()} == MODEL_FILES
    assert {k[0] for k in _batches(samples / "samples_rank1.txt")} == {"0", "1"}


def test_global_batch_is_split_over_ranks() -> None:
    assert split_batch(44, 1) == [44]
    assert split_batch(44, 3) == [15, 15, 14] and sum(split_batch(45, 4)) == 45
    with pytest.raises(ValueError, match="batch size 2 is smaller than the 3 processes"):
        split_batch(2, 3)


def test_ranks_draw_different_batches_and_rank_0_keeps_single_process_seeds(tiny_case: Callable[..., tuple]) -> None:
    assert epoch_seeds(3, 5, rank=0) == ((3, 5), 3 * 100_003 + 5)
    seeds = [epoch_seeds(3, 5, rank) for rank in range(4)]
    assert len({s[0] for s in seeds}) == 4 and len({s[1] for s in seeds}) == 4
    from lgeseg.training.data import TrainingCase

    rng = np.random.default_rng(0)
    cases = []
    for index in range(3):
        image, label = tiny_case(rng)
        points = [np.argwhere(label == v).astype(np.int32) for v in (1, 2)]
        cases.append(TrainingCase(f"c/{index}", "c", image, label, points))
    sampler = PatchSampler(cases, (32, 32), (32, 32), batch_size=2)
    drawn = [[], []]
    batches = [sampler.sample_batch(np.random.default_rng(seeds[r][0]), drawn[r]) for r in (0, 1)]
    assert drawn[0] != drawn[1] and not np.array_equal(batches[0][0], batches[1][0])
    assert all(key.startswith("c/") and "@" in key for key in drawn[0])


def test_context_from_torchrun_environment() -> None:
    assert DistributedContext.from_env({}) == DistributedContext(0, 1, 0)
    context = DistributedContext.from_env({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"})
    assert (context.rank, context.local_rank, context.world_size, context.is_main, context.enabled) == (3, 1, 4,
                                                                                                          False, True)
    with pytest.raises(ValueError, match="WORLD_SIZE='two'"):
        DistributedContext.from_env({"WORLD_SIZE": "two"})
    with pytest.raises(ValueError, match="does not fit world size 2"):
        DistributedContext(rank=2, world_size=2)


def test_gpus_flag_checks_the_machine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if torch.cuda.device_count() >= 2:
        pytest.skip("this machine has 2 GPUs")
    assert train_main(["-p", str(tmp_path), "-o", str(tmp_path / "m"), "--gpus", "2", "--device", "cuda"]) == 2
    assert "--gpus 2 but this machine has" in capsys.readouterr().out
