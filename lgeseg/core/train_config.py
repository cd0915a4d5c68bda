"""``TrainConfig``: the training recipe as a record, as ``model.json`` keeps it (``ModelInfo.recipe``).

It sits with the other JSON records below the model layer so that ``lgeseg.model.folder`` can type the
recipe it reads; the named presets, the optimizer and the learning-rate schedule are in
``lgeseg.training.recipes``. Whether ``augmentation`` names a preset is checked there, when training
starts (``recipes.check_augmentation``): a recorded recipe stays readable whatever presets exist.

Example:
    >>> config = TrainConfig(epochs=10, batch_size=None)  # batch_size None: the plan's, resolved at the start
    >>> TrainConfig.from_dict(config.to_dict()) == config
    True
    >>> config.replace(epochs=None, seed=3).seed  # None values are ignored
    3
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lgeseg.core.checks import is_int, is_number
from lgeseg.core.records import JsonRecord

#: The recipe used when none is named: the paper's optimizer and length (Adam 1e-3 constant, 250
#: epochs, a quarter of nnU-Net's 1000) with the extras docs/paper.md names (250-iteration epochs,
#: bf16, gradient clipping, foreground patches). ``paper`` is the paper as written, nothing added.
DEFAULT_RECIPE = "default"

#: ``torch.compile`` modes a recipe may name; the ones with CUDA graphs only differ from "default" on CUDA.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
#: ``torch.compile`` modes that replay the compiled network as CUDA graphs of their own.
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")


@dataclasses.dataclass(frozen=True)
class TrainConfig(JsonRecord):
    """Everything that decides how a network is trained (not what data it sees).

    Attributes:
        name: recipe the config started from.
        description: one line for people.
        optimizer: ``"adam"`` or ``"sgd"``.
        learning_rate: initial learning rate.
        lr_schedule: ``"constant"`` or ``"poly"`` (lr * (1 - epoch / epochs) ** poly_exponent, per epoch).
        poly_exponent: exponent of the poly schedule.
        momentum: SGD momentum.
        nesterov: SGD Nesterov momentum.
        weight_decay: L2 weight decay.
        epochs: epochs to train.
        iterations_per_epoch: optimizer steps per epoch; None: one pass over the training slices
            (ceil(slices / batch_size), the paper's meaning of an epoch), resolved when training starts.
        batch_size: slices per batch (data parallel: the global batch); None: the plan's ``batch_size``.
            The one place it is resolved is ``training.recipes.resolve_batch_size``, when training starts;
            ``model.json`` records the resolved number.
        augmentation: augmentation preset name (``lgeseg.augmentation.get_preset``); the one place a
            model's augmentation is recorded (``ModelInfo.augmentation`` reads it from here).
        seed: seed of weights, sampling and augmentation.
        device: ``"cuda"``, ``"cpu"``, ``"mps"`` or None for the best available.
        mixed_precision: bf16 autocast (CUDA only; ignored elsewhere).
        channels_last: channels-last memory format (CUDA only).
        compile: ``torch.compile`` the network; None: on for CUDA, off elsewhere.
        compile_mode: ``torch.compile`` mode: ``"default"``, ``"reduce-overhead"`` (CUDA graphs),
            ``"max-autotune"`` (tuned kernels and CUDA graphs; long compilation) or
            ``"max-autotune-no-cudagraphs"``.
        cuda_graph: capture the whole training step (forward, loss, backward, clipping, optimizer
            step) as one CUDA graph and replay it (``training/step_graph.py``); CUDA and one process
            only, ignored with a warning elsewhere; excludes the compile modes with CUDA graphs.
        num_workers: batch-assembling threads; None: min(2, CPU count).
        fold: cross-validation fold (0 .. num_folds - 1).
        subjects_per_center: keep this many subjects of every dataset (center), chosen reproducibly,
            before the train/validation split: equal subject counts per center, the paper's Table 4.
            None: every subject (multi-center batches are still balanced by sampling).
        num_folds: folds of the train/validation split (5: 80/20).
        foreground_fraction: share of each batch whose patch is centred on a foreground pixel.
        crop_margin: crops are ``patch * crop_margin`` voxels, room for rotation and scaling.
        grad_clip: clip the gradient norm to this (None: no clipping).
        dice_smooth: smoothing term of the soft Dice.
        ema_fraction: keep an exponential moving average of the weights whose time constant is this
            fraction of the training steps done so far; the average is the model (validation, best and final
            checkpoints). It smooths the last, noisy steps of a constant learning rate, which decide how a
            model does on unseen centers (docs/training.md). None or 0: the last weights are the model.
        max_minutes: wall-clock budget of one invocation; training ends (as if finished) after the
            epoch that crosses it. None: no limit.
    """

    name: str = DEFAULT_RECIPE
    description: str = ""
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"
    poly_exponent: float = 0.9
    momentum: float = 0.99
    nesterov: bool = True
    weight_decay: float = 0.0
    epochs: int = 250
    iterations_per_epoch: int | None = 250
    batch_size: int | None = None
    augmentation: str = "lge_dg"
    seed: int = 0
    device: str | None = None
    mixed_precision: bool = True
    channels_last: bool = True
    compile: bool | None = None
    compile_mode: str = "default"
    cuda_graph: bool = False
    num_workers: int | None = None
    fold: int = 0
    num_folds: int = 5
    subjects_per_center: int | None = None
    foreground_fraction: float = 0.33
    crop_margin: float = 1.5
    grad_clip: float | None = 12.0
    dice_smooth: float = 1e-5
    ema_fraction: float | None = None
    max_minutes: float | None = None

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ValueError(f"training recipe {self.name!r}: " + "; ".join(problems))

    def replace(self, **overrides: Any) -> TrainConfig:
        """Return a copy with ``overrides`` applied; keys whose value is None are ignored."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = set(overrides) - names
        if unknown:
            raise ValueError(f"unknown training setting(s) {sorted(unknown)}; expected one of {sorted(names)}")
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})


def _problems(config: TrainConfig) -> list[str]:
    c = config
    optional_int = (lambda v, low: v is None or is_int(v, low))  # noqa: E731 - a one-line predicate
    checks = [
        (c.optimizer in ("adam", "sgd"), f"optimizer must be 'adam' or 'sgd', found {c.optimizer!r}"),
        (c.lr_schedule in ("constant", "poly"), f"lr_schedule must be 'constant' or 'poly', found {c.lr_schedule!r}"),
        (is_number(c.learning_rate, positive=True), f"learning_rate must be a number > 0, found {c.learning_rate!r}"),
        (is_number(c.poly_exponent, 0), f"poly_exponent must be a number >= 0, found {c.poly_exponent!r}"),
        (is_number(c.momentum, 0, 1), f"momentum must be a number in [0, 1], found {c.momentum!r}"),
        (is_number(c.weight_decay, 0), f"weight_decay must be a number >= 0, found {c.weight_decay!r}"),
        (is_int(c.epochs, 1), f"epochs must be an integer >= 1, found {c.epochs!r}"),
        (optional_int(c.iterations_per_epoch, 1), "iterations_per_epoch must be an integer >= 1 (or null: one pass "
         f"over the slices), found {c.iterations_per_epoch!r}"),
        (optional_int(c.subjects_per_center, 1),
         f"subjects_per_center must be an integer >= 1, found {c.subjects_per_center!r}"),
        (optional_int(c.batch_size, 1), f"batch_size must be an integer >= 1, found {c.batch_size!r}"),
        (c.device in (None, "cuda", "cpu", "mps") or str(c.device).startswith("cuda:"),
         f"device must be cuda, cpu or mps, found {c.device!r}"),
        (optional_int(c.num_workers, 0), f"num_workers must be an integer >= 0, found {c.num_workers!r}"),
        (is_int(c.num_folds, 1), f"num_folds must be an integer >= 1, found {c.num_folds!r}"),
        (not is_int(c.num_folds, 1) or is_int(c.fold, 0, c.num_folds - 1),
         f"fold must be in 0..{c.num_folds - 1 if is_int(c.num_folds) else '?'}, found {c.fold!r}"),
        (is_number(c.foreground_fraction, 0, 1),
         f"foreground_fraction must be a number in [0, 1], found {c.foreground_fraction!r}"),
        (is_number(c.crop_margin, 1), f"crop_margin must be a number >= 1, found {c.crop_margin!r}"),
        (c.grad_clip is None or is_number(c.grad_clip, positive=True),
         f"grad_clip must be a number > 0 or null, found {c.grad_clip!r}"),
        (is_number(c.dice_smooth, 0), f"dice_smooth must be a number >= 0, found {c.dice_smooth!r}"),
        (c.ema_fraction is None or is_number(c.ema_fraction, 0, 1),
         f"ema_fraction must be a number in [0, 1] or null, found {c.ema_fraction!r}"),
        (c.max_minutes is None or is_number(c.max_minutes, positive=True),
         f"max_minutes must be a number > 0 or null, found {c.max_minutes!r}"),
        (c.compile_mode in COMPILE_MODES,
         f"compile_mode must be one of {', '.join(COMPILE_MODES)}, found {c.compile_mode!r}"),
        (isinstance(c.cuda_graph, bool), f"cuda_graph must be true or false, found {c.cuda_graph!r}"),
        (not (c.cuda_graph is True and c.compile is not False and c.compile_mode in CUDA_GRAPH_MODES),
         f"cuda_graph captures the whole step as one CUDA graph: compile_mode {c.compile_mode!r} makes CUDA "
         "graphs of its own inside it; use compile_mode default or max-autotune-no-cudagraphs (or no compile)"),
    ]
    checks.append((isinstance(c.augmentation, str) and bool(c.augmentation),
                   f"augmentation must be a preset name, found {c.augmentation!r}"))
    return [message for ok, message in checks if not ok]
