"""A plan as a readable table (what ``lgeseg_plan_and_preprocess`` prints)."""

from __future__ import annotations

from lgeseg.core.records import Plan
from lgeseg.planning.memory import GIB
from lgeseg.planning.topology import bottleneck_size


def _gb(value: int) -> str:
    return f"{value / GIB:.2f} GB"


def format_plan_table(plan: Plan) -> str:
    """Return a multi-line table of ``plan``: spacing, patch, batch, topology, memory vs budget.

    Example:
        >>> from lgeseg.planning.planner import plan_experiment
        >>> from lgeseg.core.records import CaseFingerprint, Fingerprint
        >>> cases = (CaseFingerprint("a", "d", (8.0, 1.25, 1.25), (10, 256, 256), (10, 160, 144)),)
        >>> for line in format_plan_table(plan_experiment(Fingerprint(cases=cases), None, "cpu")).splitlines()[:4]:
        ...     print(line)
        preset                       cpu
        target spacing (z, y, x) mm  8.000, 1.250, 1.250  (z not resampled)
        patch (y, x) px              128 x 128
        batch (slices)               8
    """
    topo = plan.topology
    bottleneck = bottleneck_size(topo, plan.patch_size)
    rows: list[tuple[str, str]] = [
        ("preset", plan.preset),
        ("target spacing (z, y, x) mm", ", ".join(f"{v:.3f}" for v in plan.target_spacing) + "  (z not resampled)"),
        ("patch (y, x) px", f"{plan.patch_size[0]} x {plan.patch_size[1]}"),
        ("batch (slices)", str(plan.batch_size)),
        ("normalization", f"{plan.normalization.scheme} (clip {plan.normalization.clip_percentiles})"
         if plan.normalization.scheme == "minmax" else plan.normalization.scheme),
        ("image / label resampling", f"spline order {plan.image_interpolation_order} / {plan.label_interpolation}"),
        ("stages", f"{topo.num_stages} (bottleneck {bottleneck[0]} x {bottleneck[1]} px)"),
        ("features per stage", ", ".join(str(f) for f in topo.features_per_stage)),
        ("classes", ", ".join(f"{v}={k}" for k, v in sorted(plan.labels.items(), key=lambda kv: kv[1]))),
    ]
    memory = plan.memory
    if memory is not None:
        budget = _gb(memory.budget) if memory.budget else "none (CPU preset)"
        rows += [
            ("memory estimate", f"{_gb(memory.total)} of budget {budget}"
             f"  ({'AMP' if memory.mixed_precision else 'fp32'})"),
            ("  activations", _gb(memory.activations)),
            ("  weights + gradients", _gb(memory.weights + memory.gradients)),
            ("  optimizer state", _gb(memory.optimizer_state)),
            ("  context + workspace", _gb(memory.workspace)),
        ]
    measured = plan.extras.get("measured_peak_bytes")
    if measured is not None:
        rows.append(("measured peak (verify)", f"{_gb(int(measured))} allocated by torch"))
    if "warning" in plan.extras:
        rows.append(("warning", str(plan.extras["warning"])))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
