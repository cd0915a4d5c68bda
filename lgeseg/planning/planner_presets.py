"""Named planner presets: small frozen records chosen by name (``default``, ``paper``, ``cpu``)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class PlannerPreset:
    """How the planner chooses patch, batch and topology.

    Attributes:
        name: preset name, recorded in the plan.
        base_features: width of the first stage.
        max_features: cap on the stage width.
        max_patch: cap on each patch axis, pixels (rounded to a valid size).
        min_patch: the planner never shrinks a patch axis below this, pixels.
        min_batch: smallest batch the planner accepts before shrinking the patch.
        max_batch: largest batch the planner gives.
        fixed_patch: (y, x) pixels, or None to derive it from the data.
        fixed_batch: a batch size, or None to choose it for the memory budget.
        normalization: ``"minmax"`` or ``"zscore"``.
        image_interpolation_order: 1 (linear) or 3 (cubic spline).
        mixed_precision: whether training uses AMP on a GPU (halves activation memory).
        optimizer: ``"adam"`` or ``"sgd"``: whose state the memory estimate counts (the training
            recipe, not the plan, decides the optimizer, learning rate and epochs).
    """

    name: str
    base_features: int = 32
    max_features: int = 512
    max_patch: int = 256
    min_patch: int = 64
    min_batch: int = 2
    max_batch: int = 64
    fixed_patch: tuple[int, int] | None = None
    fixed_batch: int | None = None
    normalization: str = "minmax"
    image_interpolation_order: int = 3
    mixed_precision: bool = True
    optimizer: str = "adam"


PRESETS: dict[str, PlannerPreset] = {
    # Self-configured: patch from the median slice (capped at the paper's 256), batch for the budget.
    "default": PlannerPreset(name="default"),
    # The paper (section 2.6): 6 stages up to 1024 features, batch 16, 256 x 256, min-max, Adam 1e-3,
    # 250 epochs; it trained in fp32 on an 8 GB GPU.
    "paper": PlannerPreset(
        name="paper", max_features=1024, fixed_patch=(256, 256), fixed_batch=16, mixed_precision=False
    ),
    # No GPU: small enough to train in reasonable time on 2 CPU cores (fp32, no AMP). Half the
    # widths (16 ... 256) cut a step's arithmetic ~4x; 128 px still holds the LV and its surroundings.
    "cpu": PlannerPreset(
        name="cpu", base_features=16, max_features=256, max_patch=128, fixed_batch=8, mixed_precision=False,
    ),
}


def get_preset(name: str) -> PlannerPreset:
    """The preset called ``name``; raises ``ValueError`` listing the known names.

    Example:
        >>> preset = get_preset("cpu")
        >>> preset.max_patch, preset.fixed_batch, preset.mixed_precision
        (128, 8, False)
        >>> get_preset("fast")
        Traceback (most recent call last):
        ...
        ValueError: unknown planner preset 'fast'; expected one of ['cpu', 'default', 'paper']
    """
    if name not in PRESETS:
        raise ValueError(f"unknown planner preset {name!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[name]
