"""Training: losses, data loading, the loop, checkpoints and the model folder."""

from lgeseg.training.model_folder import (
    LoadedModel,
    ModelInfo,
    load_checkpoint,
    load_model,
    read_model_metadata,
    save_checkpoint,
    write_model_metadata,
)

__all__ = [
    "LoadedModel",
    "ModelInfo",
    "load_checkpoint",
    "load_model",
    "read_model_metadata",
    "save_checkpoint",
    "write_model_metadata",
]
