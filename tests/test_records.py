"""Records round-trip through JSON unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from lgeseg.core.records import (
    CaseGeometry,
    NetworkTopology,
    NormalizationConfig,
    Plan,
    PreprocessedCase,
    load_json,
    save_json,
)


def _plan() -> Plan:
    return Plan(
        name="2d", preset="default", target_spacing=(10.0, 1.25, 1.25), patch_size=(256, 256), batch_size=16,
        normalization=NormalizationConfig(),
        topology=NetworkTopology(in_channels=1, num_classes=3, features_per_stage=(32, 64),
                                 kernel_sizes=((3, 3), (3, 3)), strides=((1, 1), (2, 2))),
        labels={"background": 0, "blood_pool": 1, "myocardium": 2},
    )


def test_plan_round_trips_through_json_file(tmp_path: Path) -> None:
    plan = _plan()
    save_json(plan, tmp_path / "plans.json")
    assert Plan.from_dict(load_json(tmp_path / "plans.json")) == plan


def test_preprocessed_case_round_trips() -> None:
    record = PreprocessedCase(
        case_id="c1", dataset="center1", center="center1",
        original=CaseGeometry((3, 4, 5), (8.0, 1.5, 1.5), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1)),
        crop_box=((0, 3), (1, 4), (0, 5)), shape_after_crop=(3, 3, 5),
        spacing_after_resampling=(8.0, 1.25, 1.25), shape_after_resampling=(3, 4, 6),
    )
    assert PreprocessedCase.from_dict(record.to_dict()) == record


def test_unknown_field_is_named() -> None:
    data = _plan().to_dict()
    data["batchsize"] = 3
    with pytest.raises(ValueError, match="batchsize"):
        Plan.from_dict(data)
