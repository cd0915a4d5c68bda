"""Training recipes: named JSON presets (``default``, ``paper``, ``nnunet``) of the ``TrainConfig`` record.

A recipe is a JSON file in ``lgeseg/training/recipes/``; every field can be overridden (CLI flags
or keyword arguments) and the resolved config is recorded in the model folder's ``model.json``.
``TrainConfig`` itself is a record of ``lgeseg.core.train_config`` (``ModelInfo.recipe`` is one); it is
re-exported here with its constants.

Example:
    >>> config = get_recipe("paper", epochs=10, seed=3)
    >>> config.optimizer, config.learning_rate, config.epochs, config.batch_size, config.mixed_precision
    ('adam', 0.001, 10, 16, False)
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import torch

from lgeseg.augmentation.presets import get_preset
from lgeseg.core.records import Plan
from lgeseg.core.train_config import COMPILE_MODES, CUDA_GRAPH_MODES, DEFAULT_RECIPE, TrainConfig

__all__ = ["COMPILE_MODES", "CUDA_GRAPH_MODES", "DEFAULT_RECIPE", "TrainConfig", "available_recipes",
           "build_optimizer", "check_augmentation", "get_recipe", "learning_rate_at", "resolve_batch_size",
           "set_capturable"]


def check_augmentation(config: TrainConfig) -> TrainConfig:
    """``config`` as it is, when its ``augmentation`` names a preset; else ``ValueError`` naming the recipe.

    Checked when a recipe is loaded (``get_recipe``) and when a run starts (``run_training``), before any
    data is read or network built. The record does not check it, so a ``model.json`` whose preset has
    since been renamed still loads for prediction.

    Example:
        >>> check_augmentation(TrainConfig(augmentation="lge_dg-scar")).augmentation  # an ablation of lge_dg
        'lge_dg-scar'
        >>> check_augmentation(TrainConfig(augmentation="lge_dgx"))
        Traceback (most recent call last):
        ValueError: training recipe 'default': augmentation: unknown augmentation preset 'lge_dgx'; choose one of ...
    """
    try:
        get_preset(str(config.augmentation))
    except ValueError as err:
        raise ValueError(f"training recipe {config.name!r}: augmentation: {err}") from err
    return config


def resolve_batch_size(config: TrainConfig, plan: Plan) -> TrainConfig:
    """The config with its batch size resolved: its own ``batch_size``, or the plan's when it is None.

    The one place the two meet: ``run_training`` calls it once when the run starts (the resolved config
    is the run's, and ``model.json`` records it), and ``lgeseg_train`` checks that batch against the
    device's memory before training. A resumed or fine-tuned run starts from a recorded, resolved recipe.

    Example:
        >>> from lgeseg.planning import small_plan
        >>> plan = small_plan()  # batch_size 2
        >>> resolve_batch_size(get_recipe("default"), plan).batch_size  # the default recipe leaves it to the plan
        2
        >>> resolve_batch_size(get_recipe("default", batch_size=5), plan).batch_size  # --batch-size 5
        5
    """
    return config if config.batch_size is not None else config.replace(batch_size=plan.batch_size)


def available_recipes() -> list[str]:
    """Names of the recipes shipped in ``lgeseg/training/recipes/``.

    Example:
        >>> available_recipes()
        ['default', 'nnunet', 'paper']
    """
    folder = resources.files("lgeseg.training") / "recipes"
    return sorted(p.name[: -len(".json")] for p in folder.iterdir() if p.name.endswith(".json"))


def get_recipe(name: str = DEFAULT_RECIPE, **overrides: Any) -> TrainConfig:
    """Load the named recipe and apply ``overrides`` (None values are ignored).

    Raises ``ValueError`` naming the available recipes when ``name`` is unknown, or the field when
    a value is invalid.

    Example:
        >>> config = get_recipe("nnunet", epochs=10, device=None)  # None: the recipe's value is kept
        >>> config.optimizer, config.lr_schedule, config.epochs
        ('sgd', 'poly', 10)
    """
    if name not in available_recipes():
        raise ValueError(f"unknown training recipe {name!r}; available: {', '.join(available_recipes())}")
    text = (resources.files("lgeseg.training") / "recipes" / f"{name}.json").read_text()
    return check_augmentation(TrainConfig.from_dict(json.loads(text)).replace(**overrides))


def learning_rate_at(config: TrainConfig, epoch: int) -> float:
    """Learning rate for ``epoch`` (0-based) under the config's schedule.

    Example:
        >>> config = get_recipe("nnunet", epochs=10)  # SGD 0.01, polynomial decay (exponent 0.9)
        >>> [round(learning_rate_at(config, epoch), 5) for epoch in (0, 5, 9)]
        [0.01, 0.00536, 0.00126]
    """
    if config.lr_schedule == "poly":
        return config.learning_rate * (1.0 - min(epoch, config.epochs) / config.epochs) ** config.poly_exponent
    return config.learning_rate


def build_optimizer(config: TrainConfig, parameters: list[torch.nn.Parameter],
                    capturable: bool = False) -> torch.optim.Optimizer:
    """The recipe's optimizer over ``parameters`` (only trainable ones should be passed).

    ``capturable``: Adam keeps its step counts on the parameters' device so that its step can be
    captured in a CUDA graph (SGD needs nothing for that).

    Example:
        >>> optimizer = build_optimizer(get_recipe("default"), [torch.nn.Parameter(torch.zeros(2))])
        >>> type(optimizer).__name__, optimizer.param_groups[0]["lr"]
        ('Adam', 0.001)
    """
    if not parameters:
        raise ValueError("no trainable parameters: the trainable selection froze the whole network")
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=config.learning_rate, momentum=config.momentum,
                               nesterov=config.nesterov, weight_decay=config.weight_decay)
    return torch.optim.Adam(parameters, lr=config.learning_rate, weight_decay=config.weight_decay,
                            capturable=capturable)


def set_capturable(optimizer: torch.optim.Optimizer, capturable: bool) -> None:
    """After ``load_state_dict``: make an Adam optimizer ``capturable`` or not, whatever the checkpoint had.

    A checkpoint carries its run's flag and step counts (on the GPU when capturable); this puts
    both as this run needs them (step counts on the CPU otherwise, where reading them costs no
    host-device synchronisation). Other optimizers are left as they are.

    Example:
        >>> weight = torch.nn.Parameter(torch.ones(2))
        >>> optimizer = torch.optim.Adam([weight], lr=0.1)
        >>> weight.sum().backward()
        >>> optimizer.step()
        >>> set_capturable(optimizer, False)
        >>> optimizer.param_groups[0]["capturable"], optimizer.state[weight]["step"].device.type
        (False, 'cpu')
    """
    if not isinstance(optimizer, torch.optim.Adam):
        return
    for group in optimizer.param_groups:
        group["capturable"] = capturable
        for parameter in group["params"]:
            state = optimizer.state.get(parameter, {})
            if "step" in state:
                device = parameter.device if capturable else "cpu"
                state["step"] = state["step"].to(device=device, dtype=torch.float32)
