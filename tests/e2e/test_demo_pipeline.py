"""End to end: synth -> plan -> preprocess -> train briefly -> predict -> postprocess -> evaluate."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from lgeseg.experiments.demo import DemoConfig, format_results, run_demo


def test_demo_runs_every_stage_and_reports_dice(tmp_path: Path) -> None:
    config = DemoConfig(out_dir=tmp_path, cases_per_center=5, epochs=1, iterations_per_epoch=2,
                        train_minutes=5.0, test_cases_per_center=2, in_plane_size=64, device="cpu")
    results = run_demo(config)

    assert sorted(results) == ["center1", "center2", "center3", "center4"]
    for row in results.values():
        assert set(row) == {"blood_pool", "myocardium", "lv"}
        assert all(value is None or (0.0 <= value <= 1.0 and not math.isnan(value)) for value in row.values())
    table = format_results(results, "center1")
    assert "center1 (held-out)" in table and "center4 (unseen)" in table

    model = tmp_path / "model"
    for name in ("model.json", "plans.json", "splits.json", "checkpoint_final.pt", "progress.png"):
        assert (model / name).is_file(), name
    # predictions sit on the exact grid of their inputs, with an overlay for a clinician
    prediction = next((tmp_path / "predictions" / "center3").glob("*.nii.gz"))
    source = tmp_path / "test" / "center3" / "images" / prediction.name.replace(".nii.gz", "_0000.nii.gz")
    pred_image, raw_image = sitk.ReadImage(str(prediction)), sitk.ReadImage(str(source))
    assert pred_image.GetSize() == raw_image.GetSize()
    assert pred_image.GetSpacing() == raw_image.GetSpacing()
    # NIfTI stores the direction in float32 quaternions: equal to the input within that precision
    assert np.allclose(pred_image.GetDirection(), raw_image.GetDirection(), atol=1e-6)
    assert np.allclose(pred_image.GetOrigin(), raw_image.GetOrigin(), atol=1e-4)
    assert (prediction.parent / prediction.name.replace(".nii.gz", "_overlay.png")).is_file()
    assert (tmp_path / "metrics" / "center2" / "summary.json").is_file()
