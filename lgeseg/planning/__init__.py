"""Planning: fingerprint + memory budget -> ``records.Plan``.

``spacing``, ``topology`` and ``memory`` are pure functions (no torch); ``planner`` combines them;
``verify`` measures one training step on a GPU.
"""

from lgeseg.planning.memory import estimate_memory, largest_fitting_batch
from lgeseg.planning.planner import detect_gpu_memory_gb, plan_experiment, plan_fingerprint, small_plan
from lgeseg.planning.planner_presets import PRESETS, PlannerPreset, get_preset
from lgeseg.planning.report import format_plan_table
from lgeseg.planning.topology import plan_topology

__all__ = [
    "PRESETS",
    "PlannerPreset",
    "detect_gpu_memory_gb",
    "estimate_memory",
    "format_plan_table",
    "get_preset",
    "largest_fitting_batch",
    "plan_experiment",
    "plan_fingerprint",
    "plan_topology",
    "small_plan",
]
