"""Batched data augmentation on torch tensors (CPU or GPU): presets by name, samplers, ops.

``augment_batch(images, labels, get_preset("spatial_intensity"), patch_size, spacing_yx, generator)``
is the one call a data loader needs; ``sample_spatial``/``apply_spatial`` and the ops in
``intensity`` are public so a known transform can be applied and tested.
"""

from lgeseg.augmentation.pipeline import (
    STEP_ORDER,
    IntensityStep,
    apply_intensity,
    augment_batch,
    augment_batch_with_params,
    sample_intensity,
)
from lgeseg.augmentation.presets import DEFAULT_PRESET, AugmentationPreset, get_preset, list_presets
from lgeseg.augmentation.spatial import (
    SpatialParams,
    affine_theta,
    apply_spatial,
    centre_crop,
    required_crop_size,
    sample_spatial,
)

__all__ = [
    "DEFAULT_PRESET",
    "STEP_ORDER",
    "AugmentationPreset",
    "IntensityStep",
    "SpatialParams",
    "affine_theta",
    "apply_intensity",
    "apply_spatial",
    "augment_batch",
    "augment_batch_with_params",
    "centre_crop",
    "get_preset",
    "list_presets",
    "required_crop_size",
    "sample_intensity",
    "sample_spatial",
]
