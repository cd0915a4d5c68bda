"""``lgeseg_experiments``: the paper's four experiments on tiny synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lgeseg.cli.experiments import main as experiments_main
from lgeseg.experiments.paper import PaperExperimentsConfig, format_table, run_paper_experiments
from lgeseg.model_folder import read_model_metadata

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tiny(out: Path, **changes) -> PaperExperimentsConfig:
    settings = {"synthetic_centers": (1, 2), "cases_per_center": 3, "test_cases_per_center": 1,
                "in_plane_size": 32, "epochs": 1, "iterations_per_epoch": 1, "finetune_cases": 1,
                "finetune_epochs": 1, "harmonization": ("histogram",), "device": "cpu"}
    return PaperExperimentsConfig(out_dir=out, **{**settings, **changes})


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("experiments")
    return out, run_paper_experiments(_tiny(out))


def test_all_four_experiments_fill_the_table_5_layout(tiny_run: tuple[Path, dict]) -> None:
    out, results = tiny_run
    dice = results["dice"]
    assert set(dice) == {"no_augmentation", "spatial", "spatial_intensity", "histogram", "transfer", "multi_center"}
    assert set(dice["spatial"]) == {"center1", "center2"}  # experiment 1 tests every center
    assert set(dice["transfer"]) == set(dice["multi_center"]) == set(dice["histogram"]) == {"center2"}
    assert all(0.0 <= v <= 1.0 for column in dice.values() for row in column.values() for v in row.values()
               if v is not None)
    table = (out / "table.md").read_text()
    training_row = next(line for line in table.splitlines() if line.startswith("| center1 (training)"))
    assert training_row.count(" - ") == 3  # histogram, transfer and multi-center do not apply to it
    assert json.loads((out / "results.json").read_text())["dice"] == dice


def test_transfer_model_fine_tunes_every_encoder_block_of_the_augmented_model(tiny_run: tuple[Path, dict]) -> None:
    out, _ = tiny_run
    base = out / "models" / "single_center_spatial_intensity"
    plan, info = read_model_metadata(out / "models" / "transfer_center2")
    assert info.parent == str(base.resolve())
    assert info.trainable == f"encoder:{plan.topology.num_stages}"
    assert len(info.target_cases) == 1
    _, multi = read_model_metadata(out / "models" / "multi_center_center1_center2")
    assert sorted(multi.datasets) == ["center1", "center2"]
    assert multi.augmentation == "spatial_intensity"
    _, plain = read_model_metadata(out / "models" / "single_center_none")
    assert plain.augmentation == "none"


def test_a_second_run_reuses_the_trained_models(tiny_run: tuple[Path, dict]) -> None:
    out, results = tiny_run
    checkpoints = sorted((out / "models").glob("*/checkpoint_final.pt"))
    before = {p: p.stat().st_mtime_ns for p in checkpoints}
    again = run_paper_experiments(_tiny(out, experiments=(3, 4)))
    assert {p: p.stat().st_mtime_ns for p in checkpoints} == before
    assert again["dice"]["transfer"] == results["dice"]["transfer"]
    assert not any(name.startswith(("train", "fine-tune")) for name in again["seconds"])


def test_format_table_puts_the_training_center_first_and_dashes_what_does_not_apply() -> None:
    results = {"dice": {"spatial": {"center2": {"blood_pool": 0.8, "myocardium": 0.6},
                                    "center1": {"blood_pool": 0.9, "myocardium": 0.7}},
                        "transfer": {"center2": {"blood_pool": 0.9, "myocardium": 0.9}}}}
    lines = format_table(results, "center1").splitlines()
    assert lines[0] == "| test center | 1: spatial | 3: transfer learning |"
    assert lines[2] == "| center1 (training) | 0.800 | - |"
    assert lines[3] == "| center2 | 0.700 | 0.900 |"


def test_bad_settings_are_refused_with_the_field_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ValueError, match="experiments"):
        run_paper_experiments(_tiny(tmp_path, experiments=(5,)))
    with pytest.raises(ValueError, match="raw_dir and test_dir"):
        run_paper_experiments(_tiny(tmp_path, raw_dir=tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        experiments_main(["-o", str(tmp_path / "x"), "--raw", str(tmp_path), "--test", str(tmp_path),
                          "--train-center", "emidec"])
    assert exit_info.value.code == 1
    assert "train_center 'emidec': no such center" in capsys.readouterr().err
