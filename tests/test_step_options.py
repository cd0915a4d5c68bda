"""Speed options of the training step: device copies ahead, loss read-back every k steps, compile modes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lgeseg.training import get_recipe, read_model_metadata, train
from lgeseg.training.data import BatchLoader, PatchSampler, load_cases
from lgeseg.training.inputs import open_training_data
from lgeseg.training.loop import build_state, train_epoch
from lgeseg.training.prefetch import to_device

pytestmark = pytest.mark.usefixtures("one_torch_thread")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def pre(tmp_path_factory: pytest.TempPathFactory, make_preprocessed) -> Path:
    return make_preprocessed(tmp_path_factory.mktemp("pre"), {"center1": 4})


def _sampler(pre: Path) -> PatchSampler:
    data = open_training_data(pre)
    return PatchSampler(load_cases(data.entries, data.case_keys), (32, 32), (32, 32), batch_size=4)


def _batches(sampler: PatchSampler, device: torch.device, overlap: bool) -> list[tuple[torch.Tensor, ...]]:
    loader = BatchLoader(sampler, 5, (0, 0), num_workers=1, pin_memory=device.type == "cuda")
    return [tuple(t.cpu() for t in batch) for batch in to_device(loader, device, overlap)]


def test_device_copies_keep_every_batch_in_order(pre: Path) -> None:
    sampler = _sampler(pre)
    plain = [tuple(torch.from_numpy(a) for a in sampler.sample_batch(np.random.default_rng([0, 0, i])))
             for i in range(5)]
    for got, expected in zip(_batches(sampler, torch.device("cpu"), overlap=True), plain, strict=True):
        assert all(torch.equal(g, e) for g, e in zip(got, expected, strict=True))


def test_reading_the_loss_back_less_often_changes_nothing(pre: Path) -> None:
    data = open_training_data(pre)
    sampler = _sampler(pre)
    config = get_recipe("paper", device="cpu", iterations_per_epoch=4, batch_size=4)
    losses, weights = [], []
    for log_every in (1, 10):
        state = build_state(config, data.plan, torch.device("cpu"))
        stats = train_epoch(state, sampler, lambda x, y, g: (x, y), num_workers=0, log_every=log_every)
        losses.append(stats.loss)
        weights.append(next(state.network.parameters()).detach().clone())
    assert losses[0] == losses[1] and torch.equal(weights[0], weights[1])


def test_compile_mode_is_a_recorded_recipe_field(pre: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="compile_mode must be one of default, reduce-overhead"):
        get_recipe("paper", compile_mode="fastest")
    model_dir = train(pre, tmp_path / "model", epochs=1, iterations_per_epoch=2, device="cpu", num_workers=0,
                      augmentation="none", compile_mode="max-autotune")
    _, info = read_model_metadata(model_dir)
    assert info.recipe["compile_mode"] == "max-autotune" and info.extras["compiled"] is False  # CPU: not compiled


@pytest.mark.gpu
@needs_cuda
def test_copies_ahead_on_a_side_stream_match_plain_copies(pre: Path) -> None:
    sampler = _sampler(pre)
    cuda = torch.device("cuda")
    for got, expected in zip(_batches(sampler, cuda, True), _batches(sampler, cuda, False), strict=True):
        assert all(torch.equal(g, e) for g, e in zip(got, expected, strict=True))


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_compiled_cuda_training_learns(pre: Path, tmp_path: Path, mode: str) -> None:
    model_dir = train(pre, tmp_path / mode, epochs=3, iterations_per_epoch=10, device="cuda", num_workers=1,
                      augmentation="spatial_intensity", compile=True, compile_mode=mode)
    _, info = read_model_metadata(model_dir)
    history = torch.load(model_dir / "checkpoint_latest.pt", weights_only=True)["history"]
    assert info.extras["compiled"] is True and info.recipe["compile_mode"] == mode
    assert history["train_loss"][-1] < history["train_loss"][0]
