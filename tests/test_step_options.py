"""Speed options of the training step: device copies ahead, loss read-back every k steps, compile modes,
the whole-step CUDA graph, and (on a GPU) that no training step waits for the device."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from lgeseg.augmentation import augment_batch, get_preset
from lgeseg.training import get_recipe, read_model_metadata, train
from lgeseg.training.data import BatchLoader, PatchSampler, load_cases
from lgeseg.training.loop import build_state, train_epoch, train_step
from lgeseg.training.prefetch import to_device
from lgeseg.training.recipes import set_capturable
from lgeseg.training.step_graph import WARMUP_STEPS
from lgeseg.training.training_data import open_training_data

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
    assert info.recipe.compile_mode == "max-autotune" and info.extras["compiled"] is False  # CPU: not compiled


def test_cuda_graph_is_refused_with_graphing_compile_modes_and_ignored_off_cuda(
        pre: Path, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ValueError, match="cuda_graph captures the whole step as one CUDA graph: compile_mode "
                                         "'reduce-overhead'"):
        get_recipe("paper", cuda_graph=True, compile_mode="reduce-overhead")
    assert get_recipe("paper", cuda_graph=True, compile=False, compile_mode="reduce-overhead").cuda_graph
    data, sampler = open_training_data(pre), _sampler(pre)
    losses = []
    for cuda_graph in (False, True):
        config = get_recipe("paper", device="cpu", iterations_per_epoch=3, batch_size=4, cuda_graph=cuda_graph)
        with caplog.at_level(logging.WARNING, logger="lgeseg.training.loop"):
            state = build_state(config, data.plan, torch.device("cpu"))
        assert state.step_graph is None
        losses.append(train_epoch(state, sampler, lambda x, y, g: (x, y), num_workers=0).loss)
    assert "needs a CUDA device; training on cpu without it" in caplog.text
    assert losses[0] == losses[1]


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
    assert info.extras["compiled"] is True and info.recipe.compile_mode == mode
    assert history["train_loss"][-1] < history["train_loss"][0]


def _cuda_run(pre: Path, **overrides) -> tuple:
    """A CUDA training state on the tiny plan, its sampler and the lge_dg augmentation (sync-free on CUDA)."""
    data, sampler = open_training_data(pre), _sampler(pre)
    config = get_recipe("default", device="cuda", iterations_per_epoch=WARMUP_STEPS + 3, batch_size=4, **overrides)
    state = build_state(config, data.plan, torch.device("cuda"))
    preset = get_preset("lge_dg")

    def augment(images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> tuple:
        return augment_batch(images, labels, preset, (32, 32), (1.5, 1.5), generator, 3)

    return state, sampler, augment


def _syncs_in_epoch(state, sampler: PatchSampler, augment, steps: int) -> int:
    state.config = state.config.replace(iterations_per_epoch=steps)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            train_epoch(state, sampler, augment, num_workers=1, log_every=1000)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return len([w for w in caught if "synchroniz" in str(w.message)])


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("options", [{"compile": False}, {"compile": True}, {"compile": False, "cuda_graph": True}],
                         ids=["eager", "compiled", "cuda_graph"])
def test_training_steps_never_wait_for_the_gpu(pre: Path, options: dict) -> None:
    state, sampler, augment = _cuda_run(pre, **options)
    train_epoch(state, sampler, augment, num_workers=1)  # warm-up: compilation, graph capture
    cuda, generator = torch.device("cuda"), torch.Generator(device="cuda").manual_seed(1)
    total = torch.zeros((), device=cuda)
    torch.cuda.set_sync_debug_mode("error")  # any synchronisation below raises where it happens
    try:
        for images, labels in to_device(BatchLoader(sampler, 4, (1, 0), 1, pin_memory=True), cuda):
            total += train_step(state, *augment(images, labels.long(), generator))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(total).item()
    # train_epoch itself: the synchronisations of an epoch do not grow with its steps
    assert _syncs_in_epoch(state, sampler, augment, 8) == _syncs_in_epoch(state, sampler, augment, 4)


@pytest.mark.gpu
@needs_cuda
def test_whole_step_cuda_graph_trains_like_eager_steps(pre: Path) -> None:
    sampler, cuda = _sampler(pre), torch.device("cuda")
    batches = [tuple(t.to(cuda) for t in batch) for batch in BatchLoader(sampler, WARMUP_STEPS + 3, (0, 0), 0)]
    results = []
    for cuda_graph in (False, True):
        state, _, _ = _cuda_run(pre, compile=False, mixed_precision=False, cuda_graph=cuda_graph)
        losses = [float(train_step(state, images, labels.long())) for images, labels in batches]
        results.append((losses, next(state.network.parameters()).detach().clone()))
    graphed = state.step_graph
    assert graphed is not None and graphed.captures == 1
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-3)
    torch.testing.assert_close(results[1][1], results[0][1], rtol=1e-3, atol=1e-4)


@pytest.mark.gpu
@needs_cuda
def test_cuda_graph_run_resumes_from_an_eager_checkpoint(pre: Path, tmp_path: Path) -> None:
    options = {"iterations_per_epoch": WARMUP_STEPS + 2, "device": "cuda", "num_workers": 1, "compile": False}
    train(pre, tmp_path / "model", epochs=1, **options)
    model_dir = train(pre, tmp_path / "model", epochs=2, resume=True, cuda_graph=True, **options)
    _, info = read_model_metadata(model_dir)
    history = torch.load(model_dir / "checkpoint_latest.pt", weights_only=True)["history"]
    assert info.extras["cuda_graph"] is True and len(history["train_loss"]) == 2
    assert np.isfinite(history["train_loss"]).all()


@pytest.mark.gpu
@needs_cuda
def test_resumed_adam_keeps_its_step_counts_where_reading_them_does_not_wait(tmp_path: Path) -> None:
    parameter = torch.nn.Parameter(torch.ones(4, device="cuda"))
    trained = torch.optim.Adam([parameter], capturable=True)
    parameter.grad = torch.ones_like(parameter)
    trained.step()
    torch.save(trained.state_dict(), tmp_path / "optimizer.pt")
    resumed = torch.optim.Adam([parameter])
    resumed.load_state_dict(torch.load(tmp_path / "optimizer.pt", map_location="cuda"))  # as restore_state loads
    set_capturable(resumed, False)
    assert resumed.state[parameter]["step"].is_cpu and resumed.param_groups[0]["capturable"] is False
    torch.cuda.set_sync_debug_mode("error")
    try:
        resumed.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    set_capturable(resumed, True)
    assert resumed.state[parameter]["step"].is_cuda and float(resumed.state[parameter]["step"]) == 2.0
