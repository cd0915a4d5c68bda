"""Training: losses, data loading, the loop, checkpoints; writes the model folder (`lgeseg.model.folder`).

Public entry points: ``train`` / ``run_training`` (preprocessed data -> model folder),
``finetune`` (pretrained model + new center -> model folder), ``get_recipe``/``TrainConfig``,
and, re-exported from ``lgeseg.model.folder``, the model-folder helpers (``load_model``, ...).
"""

from lgeseg.model.folder import (
    LoadedModel,
    ModelInfo,
    find_checkpoint,
    load_checkpoint,
    load_model,
    read_model_metadata,
    save_checkpoint,
    write_model_metadata,
)
from lgeseg.training.finetune import finetune, pick_target_cases
from lgeseg.training.recipes import DEFAULT_RECIPE, TrainConfig, available_recipes, get_recipe
from lgeseg.training.trainer import FinetuneSpec, run_training, train

__all__ = [
    "DEFAULT_RECIPE",
    "FinetuneSpec",
    "LoadedModel",
    "ModelInfo",
    "TrainConfig",
    "available_recipes",
    "find_checkpoint",
    "finetune",
    "get_recipe",
    "load_checkpoint",
    "load_model",
    "pick_target_cases",
    "read_model_metadata",
    "run_training",
    "save_checkpoint",
    "train",
    "write_model_metadata",
]
