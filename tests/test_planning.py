"""Planner: topology, memory estimate and plans that follow the memory budget."""

from __future__ import annotations

import dataclasses

import pytest

from lgeseg.core import records
from lgeseg.planning import estimate_memory, format_plan_table, plan_experiment, plan_fingerprint, plan_topology
from lgeseg.planning.memory import GIB, count_parameters
from lgeseg.planning.topology import bottleneck_size


def _fingerprint(shape_yx: tuple[int, int], spacing_yx: tuple[float, float], cases: int = 5) -> records.Fingerprint:
    return records.Fingerprint(cases=tuple(
        records.CaseFingerprint(case_id=f"c{i}", dataset="d", spacing=(8.0 + i, spacing_yx[0], spacing_yx[1]),
                                shape=(12, shape_yx[0] + 10, shape_yx[1] + 10),
                                shape_after_crop=(12, shape_yx[0] - 2 * i, shape_yx[1] + 2 * i))
        for i in range(cases)
    ))


FINGERPRINTS = {
    "lge_256": _fingerprint((230, 240), (1.4, 1.4)),
    "small_fov_160": _fingerprint((150, 130), (1.25, 1.25)),
    "large_matrix_512": _fingerprint((480, 500), (0.7, 0.7)),
}


@pytest.mark.parametrize("name", sorted(FINGERPRINTS))
def test_bigger_budgets_never_give_less_batch_times_patch_and_always_fit(name: str) -> None:
    fingerprint = FINGERPRINTS[name]
    previous = 0
    for budget_gb in (4, 8, 24, 80):
        plan = plan_experiment(fingerprint, budget_gb, "default")
        area = plan.batch_size * plan.patch_size[0] * plan.patch_size[1]
        assert area >= previous, f"{budget_gb} GB gives batch x patch {area} < {previous}"
        assert plan.memory is not None
        assert plan.memory.total <= budget_gb * GIB
        assert plan.memory.budget == int(budget_gb * GIB)
        previous = area


def test_a_tight_budget_shrinks_patch_then_batch_and_still_fits() -> None:
    fingerprint = FINGERPRINTS["lge_256"]
    roomy = plan_experiment(fingerprint, 8, "default")
    tight = plan_experiment(fingerprint, 1.2, "default")
    assert tight.memory.total <= 1.2 * GIB
    assert tight.patch_size[0] * tight.patch_size[1] < roomy.patch_size[0] * roomy.patch_size[1]
    assert tight.batch_size >= 2


def test_a_budget_too_small_for_anything_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="too small"):
        plan_experiment(FINGERPRINTS["lge_256"], 0.3, "default")


@pytest.mark.parametrize("name", sorted(FINGERPRINTS))
def test_patch_is_divisible_by_the_poolings_and_bottleneck_is_4_to_8_px(name: str) -> None:
    plan = plan_experiment(FINGERPRINTS[name], 8, "default")
    bottleneck = bottleneck_size(plan.topology, plan.patch_size)
    for axis in (0, 1):
        total_stride = 1
        for stride in plan.topology.strides:
            total_stride *= stride[axis]
        assert plan.patch_size[axis] % total_stride == 0
        assert 4 <= bottleneck[axis] <= 8
    assert max(plan.topology.features_per_stage) <= 512
    assert plan.patch_size[0] <= 256 and plan.patch_size[1] <= 256


def test_target_spacing_is_the_median_and_patch_covers_the_median_slice() -> None:
    plan = plan_experiment(FINGERPRINTS["small_fov_160"], 8, "default")
    assert plan.target_spacing == (10.0, 1.25, 1.25)
    assert plan.patch_size == (160, 160)  # median 150 x 130 rounded up to a valid size


def test_paper_preset_is_the_papers_network() -> None:
    plan = plan_experiment(FINGERPRINTS["lge_256"], 8, "paper")
    assert plan.patch_size == (256, 256)
    assert plan.batch_size == 16
    assert plan.topology.features_per_stage == (32, 64, 128, 256, 512, 1024)
    assert plan.normalization.scheme == "minmax"
    assert plan.memory.total <= 8 * GIB  # the paper trained batch 16 on an 8 GB GPU
    assert "paper" in format_plan_table(plan)


def test_estimated_parameters_match_the_real_network() -> None:
    from lgeseg.network import build_unet
    from lgeseg.network.unet import count_parameters as real_count

    for patch, cap in (((64, 48), 128), ((96, 96), 64)):
        topology = plan_topology(patch, in_channels=2, num_classes=3, base_features=8, max_features=cap)
        assert count_parameters(topology) == real_count(build_unet(topology, seed=0))


def test_amp_halves_activation_memory_and_batch_scales_it() -> None:
    topology = plan_topology((128, 128), 1, 3)
    amp = estimate_memory(topology, (128, 128), 8, mixed_precision=True)
    fp32 = estimate_memory(topology, (128, 128), 8, mixed_precision=False)
    double = estimate_memory(topology, (128, 128), 16, mixed_precision=True)
    assert fp32.activations > 1.8 * amp.activations
    assert double.activations == 2 * amp.activations
    assert amp.total == amp.activations + amp.weights + amp.gradients + amp.optimizer_state + amp.workspace


def test_plan_round_trips_through_json_and_hash_tracks_preprocessing_fields(tmp_path) -> None:
    plan = plan_experiment(FINGERPRINTS["lge_256"], 8, "default", normalization="zscore")
    records.save_json(plan, tmp_path / "plans.json")
    back = records.Plan.from_dict(records.load_json(tmp_path / "plans.json"))
    assert back == plan
    assert plan_fingerprint(dataclasses.replace(plan, batch_size=3)) == plan_fingerprint(plan)
    assert plan_fingerprint(dataclasses.replace(plan, target_spacing=(8.0, 1.0, 1.0))) != plan_fingerprint(plan)


def test_plans_carry_no_training_settings_and_old_plans_with_them_still_load(tmp_path) -> None:
    """The recipe decides optimizer, learning rate and epochs; a plans.json that still names them loads."""
    plan = plan_experiment(FINGERPRINTS["lge_256"], 8, "default")
    assert not {"optimizer", "learning_rate", "epochs"} & set(plan.extras)
    old = plan.to_dict()
    old["extras"].update(optimizer="adam", learning_rate=0.001, epochs=250)
    records.save_json(old, tmp_path / "plans.json")
    loaded = records.load_plan(tmp_path)
    assert dataclasses.replace(loaded, extras=plan.extras) == plan


def test_without_gpu_or_budget_the_cpu_preset_is_used() -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: the budget is its free memory")
    plan = plan_experiment(FINGERPRINTS["lge_256"], None, "default")
    assert plan.preset == "cpu"
    assert plan.device_memory_gb is None
    assert max(plan.topology.features_per_stage) <= 256
    assert plan.patch_size == (128, 128)


def test_unknown_preset_names_the_choices() -> None:
    with pytest.raises(ValueError, match="default"):
        plan_experiment(FINGERPRINTS["lge_256"], 8, "fancy")


@pytest.mark.gpu
def test_verify_memory_measures_a_step_within_the_estimate() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from lgeseg.planning.memory import CUDA_CONTEXT_BYTES
    from lgeseg.planning.verify import verify_memory

    plan = plan_experiment(FINGERPRINTS["small_fov_160"], 2, "default")
    verified = verify_memory(plan)
    assert verified.batch_size == plan.batch_size
    assert verified.extras["measured_peak_bytes"] + CUDA_CONTEXT_BYTES <= verified.memory.total
