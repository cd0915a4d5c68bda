"""The training loop as functions over a ``TrainingState``: build, train one epoch, save, restore.

The state holds the network, optimizer and bookkeeping; everything else (data, augmentation
preset, model folder) is passed in. One epoch = ``iterations_per_epoch`` steps of: batch of
crops from the background loader -> device (copied one batch ahead on CUDA) -> ``augment_batch``
on the device -> forward under bf16 autocast (CUDA) -> deep-supervision Dice+CE -> backward ->
optimizer step (or one replay of all of that as a CUDA graph: ``step_graph.py``). Nothing in a step
waits for the device: the loss stays there and the host reads it back only every ``log_every`` steps.
In a data-parallel run each process does this on its share of the batch (``distributed.py``).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from lgeseg.core.atomic import remove_stale_temporaries
from lgeseg.core.records import Plan
from lgeseg.model.folder import CHECKPOINT_LATEST_FILE, MODEL_INFO_FILE, load_checkpoint, save_checkpoint
from lgeseg.network import build_unet, select_trainable
from lgeseg.training.data import BatchLoader, PatchSampler
from lgeseg.training.distributed import SINGLE_PROCESS, DistributedContext, wrap_data_parallel
from lgeseg.training.losses import DeepSupervisionLoss, deep_supervision_weights
from lgeseg.training.prefetch import to_device
from lgeseg.training.recipes import CUDA_GRAPH_MODES, TrainConfig, build_optimizer, learning_rate_at, set_capturable
from lgeseg.training.step_graph import StepGraph
from lgeseg.training.validate_epoch import autocast_for

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainingState:
    """What changes while training.

    Attributes:
        config: the resolved recipe.
        device: where the network trains.
        network: the plain module (its state dict is what checkpoints hold).
        step_network: ``network`` or its ``torch.compile`` wrapper, used for training steps.
        optimizer: over the trainable parameters only.
        loss_fn: deep-supervision Dice + CE.
        trainable: ``"all"``, ``"encoder:K"`` or ``"decoder:K"``.
        epoch: completed epochs.
        best_dice: best validation mean Dice so far.
        history: per-epoch lists (``train_loss``, ``val_loss``, ``val_mean_dice``, ``val_dice_<label>``,
            ``lr``, ``seconds``, ``data_wait_fraction``).
        rank: this process's rank in a data-parallel run (0 alone); it offsets the sampling seeds.
        step_graph: replays the whole step as a CUDA graph (``config.cuda_graph`` on CUDA); None: eager steps.
        averaged: a copy of ``network`` holding the exponential moving average of its weights
            (``config.ema_fraction``); validation, ``checkpoint_best.pt`` and ``checkpoint_final.pt`` use
            it. None: no averaging, the last weights are the model.
        averaged_steps: optimizer steps folded into ``averaged`` so far.
    """

    config: TrainConfig
    device: torch.device
    network: torch.nn.Module
    step_network: torch.nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: DeepSupervisionLoss
    trainable: str = "all"
    epoch: int = 0
    best_dice: float = -math.inf
    history: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    rank: int = 0
    step_graph: StepGraph | None = None
    averaged: torch.nn.Module | None = None
    averaged_steps: int = 0

    @property
    def model_network(self) -> torch.nn.Module:
        """The weights that are the model: the moving average when the recipe keeps one, else the network."""
        return self.averaged if self.averaged is not None else self.network


@dataclasses.dataclass
class EpochStats:
    """One epoch of training: mean loss, wall seconds, share of time waiting for data, throughput.

    ``cpu_seconds`` is the CPU time of the process (all its threads) during the epoch: on a machine
    shared with other work it tells how much compute the epoch needed, apart from waiting for a core.
    """

    loss: float
    seconds: float
    data_wait_fraction: float
    samples_per_second: float
    cpu_seconds: float = 0.0


def use_compile(config: TrainConfig, device: torch.device) -> bool:
    """Whether to ``torch.compile``: the config's choice, by default only on CUDA.

    Example:
        >>> from lgeseg.training.recipes import get_recipe
        >>> config = get_recipe("paper", epochs=10, seed=0)  # compile left to the device
        >>> use_compile(config, torch.device("cpu")), use_compile(config, torch.device("cuda"))
        (False, True)
    """
    return device.type == "cuda" if config.compile is None else bool(config.compile)


def build_state(config: TrainConfig, plan: Plan, device: torch.device,
                init_weights: dict[str, torch.Tensor] | None = None, trainable: str = "all",
                distributed: DistributedContext = SINGLE_PROCESS, ignore_index: int | None = None) -> TrainingState:
    """Network from the plan (seeded), optional initial weights, frozen parameters, optimizer and loss.

    ``ignore_index``: the training data's ignore label (``TrainingData.ignore_label``), whose voxels the
    loss skips; None (no ignore label) leaves the loss as it always was.

    Parameters outside ``trainable`` get ``requires_grad=False`` and are not given to the optimizer.
    In a data-parallel run (``distributed.enabled``, process group joined) the training steps go
    through ``DistributedDataParallel``; ``state.network`` stays the plain module.
    ``config.cuda_graph`` gives the state a ``StepGraph`` on CUDA (``ValueError`` in a data-parallel
    run) and is ignored with a warning on other devices.

    Example:
        >>> from lgeseg.planning import small_plan
        >>> from lgeseg.training.recipes import get_recipe
        >>> plan = small_plan()  # a tiny 2-stage U-Net for 32 x 32 patches
        >>> state = build_state(get_recipe("paper", epochs=2, seed=0), plan, torch.device("cpu"), trainable="decoder:1")
        >>> type(state.network).__name__, type(state.optimizer).__name__, state.epoch
        ('UNet2D', 'Adam', 0)
        >>> sum(p.requires_grad for p in state.network.parameters()), len(list(state.network.parameters()))  # frozen
        (12, 28)
    """
    network = build_unet(plan.topology, seed=config.seed)
    if init_weights is not None:
        network.load_state_dict(init_weights)
    chosen = set(select_trainable(network, trainable))
    for name, parameter in network.named_parameters():
        parameter.requires_grad_(name in chosen)
    network.to(device)
    if device.type == "cuda" and config.channels_last:
        network.to(memory_format=torch.channels_last)
    step_graph = _step_graph(config, device, distributed)
    optimizer = build_optimizer(config, [p for p in network.parameters() if p.requires_grad],
                                capturable=step_graph is not None)
    outputs = plan.topology.num_stages - 1 if getattr(network, "deep_supervision", True) else 1
    loss_fn = DeepSupervisionLoss(deep_supervision_weights(max(outputs, 1)), config.dice_smooth, ignore_index)
    step_network = wrap_data_parallel(network, device, distributed)
    if use_compile(config, device):
        step_network = torch.compile(step_network, mode=config.compile_mode)
    averaged = copy.deepcopy(network).requires_grad_(False) if config.ema_fraction else None
    return TrainingState(config, device, network, step_network, optimizer, loss_fn, trainable, rank=distributed.rank,
                         step_graph=step_graph, averaged=averaged)


def average_decay(config: TrainConfig, steps_done: int) -> float:
    """Decay of the weight average for the next step: its time constant is ``ema_fraction`` of the steps done.

    The average so always spans about the last ``ema_fraction`` of the training so far, whatever ends the
    run (the planned epochs or a time budget, ``max_minutes``): early on it follows the weights closely, at
    the end of a 1000-step run with ``ema_fraction`` 0.1 it averages over about the last 100 steps (SWAD's
    flat-minimum averaging for domain generalization, as an exponential average).

    Example:
        >>> from lgeseg.training.recipes import get_recipe
        >>> config = get_recipe("default", epochs=20, iterations_per_epoch=50)  # ema_fraction 0.1
        >>> average_decay(config, 5), average_decay(config, 200), average_decay(config, 1000)
        (0.0, 0.95, 0.99)
    """
    time_constant = max(1.0, float(config.ema_fraction or 0.0) * steps_done)
    return 1.0 - 1.0 / time_constant


@torch.no_grad()
def update_average(state: TrainingState) -> None:
    """Fold the network's current weights into ``state.averaged`` (nothing without one).

    Example:
        >>> from lgeseg.planning import small_plan
        >>> from lgeseg.training.recipes import get_recipe
        >>> state = build_state(get_recipe("default", epochs=1, iterations_per_epoch=10), small_plan(),
        ...                     torch.device("cpu"))
        >>> with torch.no_grad():
        ...     _ = [p.add_(1.0) for p in state.network.parameters()]  # as if a step moved every weight by 1
        >>> update_average(state)  # the first step: the average is those weights
        >>> first = next(state.network.parameters())
        >>> bool(torch.equal(next(state.averaged.parameters()), first)), state.averaged_steps
        (True, 1)
    """
    if state.averaged is None:
        return
    decay = average_decay(state.config, state.averaged_steps)
    averaged = list(state.averaged.parameters())
    current = [p.detach() for p in state.network.parameters()]
    torch._foreach_lerp_(averaged, current, 1.0 - decay)
    for target, source in zip(state.averaged.buffers(), state.network.buffers(), strict=True):
        target.copy_(source)
    state.averaged_steps += 1


def _step_graph(config: TrainConfig, device: torch.device, distributed: DistributedContext) -> StepGraph | None:
    """A ``StepGraph`` when the recipe asks for one and the run can have it."""
    if not config.cuda_graph:
        return None
    if device.type != "cuda":
        logger.warning("cuda_graph: the whole-step CUDA graph needs a CUDA device; training on %s without it",
                       device)
        return None
    if distributed.enabled:
        raise ValueError(f"cuda_graph: the whole-step CUDA graph runs in one process, this run has "
                         f"{distributed.world_size} (the gradient all-reduce is not captured); leave cuda_graph "
                         "off with --gpus or torchrun")
    return StepGraph()


def train_step(state: TrainingState, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """One optimizer step on an augmented batch (images (B,C,ph,pw), labels (B,ph,pw) long, on the device).

    Returns the loss as a detached device tensor (no host synchronisation). With
    ``state.step_graph`` the step is replayed as a CUDA graph (after a few eager steps and a capture).

    Example:
        >>> from lgeseg.planning import small_plan
        >>> from lgeseg.training.recipes import get_recipe
        >>> plan = small_plan()  # a tiny 2-stage U-Net for 32 x 32 patches
        >>> state = build_state(get_recipe("paper", epochs=2, seed=0), plan, torch.device("cpu"))
        >>> images, labels = torch.randn(2, 1, 32, 32), torch.zeros(2, 32, 32, dtype=torch.long)
        >>> labels[:, 8:24, 8:24] = 1
        >>> first, second = float(train_step(state, images, labels)), float(train_step(state, images, labels))
        >>> second < first  # the step lowered the loss on this batch
        True
    """
    if state.device.type == "cuda" and state.config.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    if state.step_graph is not None:
        loss = state.step_graph.step(state.optimizer, lambda x, y: _optimize(state, x, y), images, labels)
    else:
        if state.device.type == "cuda" and use_compile(state.config, state.device) \
                and state.config.compile_mode in CUDA_GRAPH_MODES:
            torch.compiler.cudagraph_mark_step_begin()  # a new training step: earlier graph outputs may be overwritten
        state.optimizer.zero_grad(set_to_none=True)
        loss = _optimize(state, images, labels)
    update_average(state)
    return loss


def _optimize(state: TrainingState, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Forward, loss, backward, gradient clipping, optimizer step (gradients already zeroed); the detached loss."""
    with autocast_for(state.device, state.config.mixed_precision):
        outputs = state.step_network(images)
    loss = state.loss_fn(outputs, labels)
    loss.backward()
    if state.config.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(state.network.parameters(), state.config.grad_clip)
    state.optimizer.step()
    return loss.detach()


def train_epoch(state: TrainingState, sampler: PatchSampler, augment: Any, num_workers: int,
                log_every: int = 10, sample_log: Path | None = None, overlap_copies: bool = True) -> EpochStats:
    """Train one epoch (``config.iterations_per_epoch`` steps) at the scheduled learning rate.

    Args:
        state: training state; ``state.epoch`` is the epoch being trained (0-based) and is not advanced here.
        sampler: draws crops (numpy) from the in-memory training cases.
        augment: ``augment(images, labels, generator) -> (images, labels)`` on the device, patch-sized.
        num_workers: batch-assembling threads.
        log_every: the running loss is read back from the device (a host sync) every this many steps
            to update the progress bar; the steps in between queue up without waiting.
        sample_log: append what every batch was cut from to this text file (one line per batch:
            ``epoch batch key@z,y,x ...``), to check what each process of a data-parallel run saw.
        overlap_copies: copy the next batch to a CUDA device while the current step runs.

    Example:
        >>> from lgeseg.training.data import TrainingCase
        >>> from lgeseg.planning import small_plan
        >>> from lgeseg.training.recipes import get_recipe
        >>> plan = small_plan()  # a tiny 2-stage U-Net for 32 x 32 patches
        >>> config = dataclasses.replace(get_recipe("paper", epochs=1, seed=0), iterations_per_epoch=2)
        >>> state = build_state(config, plan, torch.device("cpu"))
        >>> label = np.zeros((2, 32, 32), np.uint8)
        >>> label[:, 8:24, 8:24] = 1
        >>> case = TrainingCase("d/p1", "d", np.random.default_rng(0).random((1, 2, 32, 32), dtype=np.float32), label,
        ...                     [np.argwhere(label == 1).astype(np.int32)])
        >>> sampler = PatchSampler([case], patch_size=(32, 32), crop_size=(32, 32), batch_size=2)
        >>> stats = train_epoch(state, sampler, lambda x, y, generator: (x, y), num_workers=0)  # no augmentation
        >>> stats.loss > 0, state.epoch  # the caller advances the epoch
        (True, 0)
    """
    config, device = state.config, state.device
    for group in state.optimizer.param_groups:
        group["lr"] = learning_rate_at(config, state.epoch)
    loader_seed, augment_seed = epoch_seeds(config.seed, state.epoch, state.rank)
    generator = torch.Generator(device=device).manual_seed(augment_seed)
    loader = BatchLoader(sampler, config.iterations_per_epoch, loader_seed, num_workers,
                         pin_memory=device.type == "cuda", record=sample_log is not None)
    state.network.train()
    total = torch.zeros((), device=device)
    start, cpu_start = time.perf_counter(), time.process_time()
    bar = tqdm(to_device(loader, device, overlap_copies), total=config.iterations_per_epoch,
               desc=f"epoch {state.epoch + 1}/{config.epochs}", unit="it", leave=False, mininterval=1.0,
               disable=state.rank != 0)
    for step, (images, labels) in enumerate(bar, start=1):
        images, labels = augment(images, labels.long(), generator)
        total += train_step(state, images, labels)
        if step % log_every == 0 or step == config.iterations_per_epoch:
            elapsed = time.perf_counter() - start
            bar.set_postfix(loss=f"{float(total) / step:.4f}", samples_s=f"{step * sampler.batch_size / elapsed:.1f}")
    bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    if sample_log is not None:
        _append_sample_log(sample_log, state.epoch, loader.drawn)
    steps = config.iterations_per_epoch
    samples_per_second = steps * sampler.batch_size / seconds
    return EpochStats(float(total) / steps, seconds, loader.wait_seconds / seconds, samples_per_second,
                      time.process_time() - cpu_start)


def epoch_seeds(seed: int, epoch: int, rank: int = 0) -> tuple[tuple[int, ...], int]:
    """Seeds of one epoch on one rank: (batch sampling seed, augmentation generator seed).

    Rank 0 (and a single process) keeps the seeds of a single-process run; every other rank gets
    its own, so the processes of a data-parallel run draw different samples and augmentations.

    Example:
        >>> epoch_seeds(3, 7), epoch_seeds(3, 7, rank=1)[0]  # rank 0 as a single process; rank 1 its own
        (((3, 7), 300016), (3, 7, 1))
    """
    if rank == 0:
        return (seed, epoch), seed * 100_003 + epoch
    return (seed, epoch, rank), int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


def _append_sample_log(path: Path, epoch: int, drawn: dict[int, list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        for index in sorted(drawn):
            handle.write(f"{epoch} {index} {' '.join(drawn[index])}\n")


def checkpoint_payload(state: TrainingState, with_optimizer: bool) -> dict[str, Any]:
    """Plain-data checkpoint of ``state`` (tensors, numbers, strings, lists, dicts only).

    Without the optimizer (``checkpoint_best.pt``, ``checkpoint_final.pt``: the model) ``network`` holds
    the averaged weights when the recipe keeps an average; with it (``checkpoint_latest.pt``: the state
    to resume) ``network`` holds the last weights and ``averaged`` the average.

    Example:
        >>> from lgeseg.planning import small_plan
        >>> from lgeseg.training.recipes import get_recipe
        >>> plan = small_plan()  # a tiny 2-stage U-Net for 32 x 32 patches
        >>> state = build_state(get_recipe("paper", epochs=2, seed=0), plan, torch.device("cpu"))
        >>> sorted(checkpoint_payload(state, with_optimizer=False))
        ['best_dice', 'config', 'epoch', 'history', 'network', 'trainable']
    """
    model = state.network if with_optimizer else state.model_network
    payload: dict[str, Any] = {
        "network": model.state_dict(),
        "epoch": state.epoch,
        "best_dice": state.best_dice,
        "history": state.history,
        "config": state.config.to_dict(),
        "trainable": state.trainable,
    }
    if with_optimizer:
        payload["optimizer"] = state.optimizer.state_dict()
        payload["torch_rng"] = torch.get_rng_state()
        if state.averaged is not None:
            payload["averaged"] = state.averaged.state_dict()
            payload["averaged_steps"] = state.averaged_steps
    return payload


def save_state(state: TrainingState, path: str | Path, with_optimizer: bool = True) -> None:
    """Write the state to ``path`` atomically (``model.folder.save_checkpoint``).

    Example:
        >>> import tempfile
        >>> from lgeseg.planning import small_plan
        >>> from lgeseg.training.recipes import get_recipe
        >>> plan = small_plan()  # a tiny 2-stage U-Net for 32 x 32 patches
        >>> tmp = tempfile.TemporaryDirectory()
        >>> save_state(build_state(get_recipe("paper", epochs=2, seed=0), plan, torch.device("cpu")),
        ...            Path(tmp.name) / "checkpoint_latest.pt")
        >>> sorted(load_checkpoint(Path(tmp.name) / "checkpoint_latest.pt"))  # with the optimizer and RNG, to resume
        ['best_dice', 'config', 'epoch', 'history', 'network', 'optimizer', 'torch_rng', 'trainable']
        >>> tmp.cleanup()
    """
    save_checkpoint(path, checkpoint_payload(state, with_optimizer))


def check_resumable(model_dir: str | Path) -> None:
    """Before ``--continue``: refuse a model folder that holds no complete ``checkpoint_latest.pt``.

    A run killed (SIGKILL, power loss) while writing its first checkpoint leaves only temporary files
    (``.checkpoint_best.pt.<random>.tmp``, see ``atomic.atomic_output``): they are removed here, and
    the ``FileNotFoundError`` explains that nothing can be resumed and what to run instead.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> _ = (Path(tmp.name) / ".checkpoint_best.pt.ab12cd34.tmp").write_bytes(b"half")  # a killed first write
        >>> check_resumable(tmp.name)
        Traceback (most recent call last):
        FileNotFoundError: ...: no complete checkpoint to continue from (... removed 1 temporary file(s) ...); ...
        >>> sorted(p.name for p in Path(tmp.name).iterdir())
        []
        >>> tmp.cleanup()
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir}: nothing to continue (the model folder does not exist); train without "
                                "--continue")
    if (model_dir / CHECKPOINT_LATEST_FILE).is_file():
        return
    removed = remove_stale_temporaries(model_dir)
    debris = f"; removed {len(removed)} temporary file(s) of an interrupted checkpoint write" if removed else ""
    checkpoints = sorted(p.name for p in model_dir.glob("checkpoint_*.pt"))
    if checkpoints:
        raise FileNotFoundError(f"{model_dir}: no checkpoint_latest.pt to continue from{debris}; the folder holds "
                                f"{', '.join(checkpoints)}: use them as they are, train again with --overwrite to "
                                "replace them, or train into another folder")
    advice = ("train again with --overwrite (same -o; it replaces the model.json of the stopped run)"
              if (model_dir / MODEL_INFO_FILE).exists()
              else "train again without --continue (same -o), or with --overwrite")
    raise FileNotFoundError(f"{model_dir}: no complete checkpoint to continue from (the run stopped before its first "
                            f"checkpoint was written{debris}); {advice}")


def restore_state(state: TrainingState, path: str | Path) -> None:
    """Resume from a checkpoint written by ``save_state``: weights, optimizer, epoch, history, RNG.

    Raises ``FileNotFoundError``/``ValueError`` naming the file when it is missing, unsafe or incomplete.

    Example:
        >>> import tempfile
        >>> from lgeseg.planning import small_plan
        >>> from lgeseg.training.recipes import get_recipe
        >>> plan = small_plan()  # a tiny 2-stage U-Net for 32 x 32 patches
        >>> tmp = tempfile.TemporaryDirectory()
        >>> config = get_recipe("paper", epochs=2, seed=0)
        >>> state = build_state(config, plan, torch.device("cpu"))
        >>> state.epoch = 1
        >>> save_state(state, Path(tmp.name) / "checkpoint_latest.pt")
        >>> resumed = build_state(config, plan, torch.device("cpu"))
        >>> restore_state(resumed, Path(tmp.name) / "checkpoint_latest.pt")
        >>> resumed.epoch
        1
        >>> tmp.cleanup()
    """
    payload = load_checkpoint(path, map_location=state.device)
    if "optimizer" not in payload:
        raise ValueError(f"{path}: has no optimizer state, cannot resume from it (use checkpoint_latest.pt)")
    try:
        state.network.load_state_dict(payload["network"])
    except RuntimeError as err:  # another plan's network: the -p folder is not the one the run trained on
        raise ValueError(f"{path}: its weights do not fit the network of this run's plans.json (resume with the "
                         f"preprocessed folder the model was trained on): {str(err).strip().splitlines()[0]}") from err
    if state.averaged is not None:
        state.averaged.load_state_dict(payload.get("averaged", payload["network"]))
        state.averaged_steps = int(payload.get("averaged_steps", 0))
    state.optimizer.load_state_dict(payload["optimizer"])
    set_capturable(state.optimizer, state.step_graph is not None)
    if state.step_graph is not None:
        state.step_graph.reset()
    state.epoch = int(payload["epoch"])
    state.best_dice = float(payload["best_dice"])
    state.history = {k: list(v) for k, v in payload["history"].items()}
    if "torch_rng" in payload:
        torch.set_rng_state(payload["torch_rng"].cpu())
