"""``lgeseg_experiments``: every cell of the paper's grid on tiny synthetic data, seeds, launchers, summary."""

from __future__ import annotations

import json
import logging
from itertools import combinations
from pathlib import Path

import pytest
import torch

from lgeseg.cli.experiments import main as experiments_main
from lgeseg.core.records import save_json
from lgeseg.experiments.cells import gan_config, load_workspace, run_cell, workspace_for, write_result
from lgeseg.experiments.describe import split_counts
from lgeseg.experiments.grid import PAPER_TABLE_4, WINDOWS, Cell, build_grid, cell_folder, gan_pair, make_config
from lgeseg.experiments.run import run_experiments
from lgeseg.experiments.summary import format_table, mean_sd, summarize
from lgeseg.model.folder import load_checkpoint, read_model_metadata
from lgeseg.synth import generate_multicenter

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: Tiny data and one or two iterations per model: every cell runs, the Dice values mean nothing.
TINY = {"cases_per_center": 3, "test_cases_per_center": 1, "in_plane_size": 32, "gan_patch": 32, "device": "cpu",
        "seeds": 2}
#: A sub-grid of two cells for the launcher tests: experiment 4 with the training center alone, seed 0.
SMALL = {"experiments": (4,), "combination_sizes": (1,), "seeds": 1}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("experiments")
    return out, run_experiments(make_config("tiny", out_dir=out, **TINY), jobs=1, threads=1)


def _scores(out: Path, cell_id: str) -> dict:
    """``{(center, harmonization): per-case Dice}`` of a finished cell."""
    scores = json.loads((cell_folder(out, cell_id) / "result.json").read_text())["scores"]
    return {(s["center"], s["harmonization"]): s["cases"] for s in scores if s["harmonization"] == "none"}


def test_every_cell_of_the_four_experiments_runs_and_fills_table_5(tiny_run: tuple[Path, dict]) -> None:
    out, results = tiny_run
    workspace, cells = load_workspace(out / "grid.json")
    assert results["cells"] == {"finished": len(cells), "missing": []} and not results["failed"]
    assert {cell.kind for cell in cells.values()} == {"train", "finetune", "cyclegan"}
    table = results["table5"]
    assert set(table) == {"no_augmentation", "spatial", "spatial_intensity", "histogram", "cyclegan", "transfer",
                          "multi_center"}
    assert set(table["spatial"]) == {"center1", "center2"}  # experiment 1 tests every center
    assert set(table["transfer"]) == set(table["cyclegan"]) == set(table["multi_center"]) == {"center2"}
    for column in table.values():
        for stats in column.values():
            assert stats["n"] == 2 and 0.0 <= stats["mean"] <= 1.0 and stats["sd"] is not None
    row = next(line for line in (out / "table.md").read_text().splitlines() if line.startswith("| center2"))
    assert row.count(" ± ") == 7


def test_sweeps_reference_models_and_combinations_are_all_in_the_grid(tiny_run: tuple[Path, dict]) -> None:
    out, _ = tiny_run
    _, cells = load_workspace(out / "grid.json")
    tuned = {(c.trainable, c.amount) for c in cells.values() if c.kind == "finetune" and c.seed == 0}
    assert {t for t, _ in tuned} >= {"encoder:1", "decoder:1"} and {a for _, a in tuned} == {"1", "100%"}
    assert "train_center2_spatial_intensity_s0" in cells  # Figure 8's "trained on the target itself"
    multi = cells["train_center1+center2_none_s0"]  # Figure 11: 2-center model, scored with histogram matching
    assert ("center1", "histogram") in multi.scores and ("center2", "none") in multi.scores
    _, info = read_model_metadata(cell_folder(out, "finetune_center2_encoder1_1_s0") / "model")
    assert info.trainable == "encoder:1" and len(info.target_cases) == 1
    assert info.parent == str((cell_folder(out, "train_center1_spatial_intensity_s0") / "model").resolve())


def test_seeds_train_different_models(tiny_run: tuple[Path, dict]) -> None:
    out, _ = tiny_run
    weights = [load_checkpoint(cell_folder(out, f"train_center1_none_s{seed}") / "model" / "checkpoint_final.pt")
               for seed in (0, 1)]
    names = list(weights[0]["network"])
    assert any(not torch.equal(weights[0]["network"][n], weights[1]["network"][n]) for n in names)
    assert weights[0]["config"]["seed"] == 0 and weights[1]["config"]["seed"] == 1


def test_all_seven_figures_are_written(tiny_run: tuple[Path, dict]) -> None:
    out, results = tiny_run
    names = sorted(Path(p).name for p in results["figures"])
    assert names == sorted(f"figure_{n}.png" for n in range(6, 13))
    assert all((out / "figures" / name).stat().st_size > 5000 for name in names)


def test_summary_only_collects_what_finished_and_a_rerun_reuses_every_cell(tiny_run: tuple[Path, dict],
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    out, results = tiny_run
    moved = cell_folder(out, "cyclegan_center1_center2_s1") / "result.json"
    moved.rename(out / "moved.json")
    try:
        assert experiments_main(["-o", str(out), "--summary-only"]) == 0
        summary = json.loads((out / "results.json").read_text())
        assert summary["cells"]["missing"] == ["cyclegan_center1_center2_s1"]
        assert summary["table5"]["cyclegan"]["center2"]["n"] == 1
    finally:
        (out / "moved.json").rename(moved)
    results_files = sorted((out / "cells").glob("*/result.json"))
    before = {p: p.stat().st_mtime_ns for p in results_files}
    with caplog.at_level(logging.INFO, logger="lgeseg"):
        again = run_experiments(make_config("tiny", out_dir=out, **TINY), threads=1)
    assert {p: p.stat().st_mtime_ns for p in results_files} == before
    assert f"({len(results_files)} finished, 0 to run" in caplog.text  # the log says nothing is left to do
    assert "== cell" not in caplog.text  # and no cell is started
    assert again["table5"] == results["table5"]


def test_two_local_jobs_give_the_same_results_as_one(tiny_run: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = tiny_run
    parallel = run_experiments(make_config("tiny", out_dir=tmp_path, **{**TINY, **SMALL}), jobs=2, threads=1)
    assert parallel["cells"]["finished"] == 2 and not parallel["failed"]
    assert (cell_folder(tmp_path, "train_center1_none_s0") / "job.log").is_file()  # ran as a subprocess
    for cell_id in ("train_center1_none_s0", "train_center1_spatial_intensity_s0"):
        assert _scores(tmp_path, cell_id) == _scores(out, cell_id)


def test_submitit_local_executor_gives_the_same_results(tiny_run: tuple[Path, dict], tmp_path: Path) -> None:
    pytest.importorskip("submitit")
    out, _ = tiny_run
    results = run_experiments(make_config("tiny", out_dir=tmp_path, **{**TINY, **SMALL}), launcher="submitit",
                              jobs=2, threads=1, submitit_options={"cluster": "local", "timeout_min": 10})
    assert results["cells"]["finished"] == 2 and not results["failed"]
    assert any((tmp_path / "submitit").iterdir())
    assert _scores(tmp_path, "train_center1_spatial_intensity_s0") == _scores(out, "train_center1_spatial_intensity_s0")


def test_paper_scale_is_the_papers_recipe_and_preset() -> None:
    config = make_config("paper", out_dir=Path("x"))
    assert (config.recipe, config.preset, config.epochs, config.iterations_per_epoch) == ("paper", "paper", 250, None)
    assert config.postprocess == "lcc" and config.test_cases_per_center == 15
    assert make_config("quick", out_dir=Path("x")).recipe == "default"


def test_grid_balances_subjects_and_builds_the_1_to_4_center_combinations() -> None:
    config = make_config("quick", out_dir=Path("x"), experiments=(4,), subjects_per_center=11)
    cells = build_grid(config, ["center1", "center2", "center3", "center4"], num_encoder_blocks=6)
    combos = {cell.centers for cell in cells}
    assert len(combos) == 8 and all(c[0] == "center1" for c in combos)  # 1 + 3 + 3 + 1 combinations with center1
    assert {cell.subjects_per_center for cell in cells} == {11}


def test_target_center_reference_models_come_only_with_a_sweep() -> None:
    centers = ["center1", "center2", "center3"]
    table_only = make_config("quick", out_dir=Path("x"), experiments=(3,), block_counts=(), amounts=())
    with_sweep = make_config("quick", out_dir=Path("x"), experiments=(3,), block_counts=(1,), amounts=())
    trained_on = {cell.centers for cell in build_grid(table_only, centers, 6) if cell.kind == "train"}
    assert trained_on == {("center1",)}  # Table 5 alone: no model trained on the unseen centers
    swept = {cell.centers for cell in build_grid(with_sweep, centers, 6) if cell.kind == "train"}
    assert {("center2",), ("center3",)} <= swept


def test_extra_augmentation_presets_get_their_own_table_5_column(tmp_path: Path) -> None:
    config = make_config("tiny", out_dir=tmp_path, experiments=(1, 2), harmonization=("histogram",),
                         extra_augmentations=("lge_dg",))
    cells = build_grid(config, ["center1", "center2"], num_encoder_blocks=4)
    assert [c.augmentation for c in cells] == ["none", "spatial", "spatial_intensity", "lge_dg"]
    for k, cell in enumerate(cells):  # a result per cell on center2: blood pool 0.1 .. 0.4, myocardium 0.05 less
        cases = {"c2_000": {"blood_pool": 0.1 * (k + 1), "myocardium": 0.1 * (k + 1) - 0.05}}
        scores = [{"center": "center2", "harmonization": h, "cases": cases} for h in ("none", "histogram")]
        write_result(tmp_path, cell, scores, seconds=1.0, device="cpu")
    results = summarize(tmp_path, config, cells, num_encoder_blocks=4)
    table = results["table5"]
    assert results["table5_by_structure"]["myocardium"]["lge_dg"]["center2"]["mean"] == pytest.approx(0.35)
    assert list(table) == ["no_augmentation", "spatial", "spatial_intensity", "lge_dg", "histogram"]
    assert table["lge_dg"]["center2"]["mean"] == pytest.approx(0.375)  # Table 5: mean of the two structures
    assert (tmp_path / "table.md").read_text().splitlines()[0].split(" | ")[4] == "1: lge_dg"
    with pytest.raises(ValueError, match="extra_augmentations: expected presets other than"):
        make_config("tiny", out_dir=tmp_path, extra_augmentations=("spatial",))


def test_summary_statistics_and_table_layout() -> None:
    assert mean_sd([0.8, 0.6]) == {"mean": pytest.approx(0.7), "sd": pytest.approx(0.1414, abs=1e-4), "n": 2}
    assert mean_sd([0.8])["sd"] is None
    table = {"spatial": {"center2": mean_sd([0.7]), "center1": mean_sd([0.8, 0.8])},
             "transfer": {"center2": mean_sd([0.9, 0.7])}}
    lines = format_table(table, "center1").splitlines()
    assert lines[0] == "| test center | 1: spatial | 3: transfer learning |"
    assert lines[2] == "| center1 (training) | 0.800 ± 0.000 | - |"
    assert lines[3] == "| center2 | 0.700 | 0.800 ± 0.141 |"


def test_bad_settings_are_refused_with_the_field_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ValueError, match="experiments"):
        make_config("tiny", out_dir=tmp_path, experiments=(5,))
    with pytest.raises(ValueError, match="raw_dir and test_dir"):
        make_config("tiny", out_dir=tmp_path, raw_dir=tmp_path)
    with pytest.raises(ValueError, match="amounts"):
        make_config("tiny", out_dir=tmp_path, amounts=("ten",))
    code = experiments_main(["-o", str(tmp_path / "x"), "--raw", str(tmp_path), "--test", str(tmp_path),
                             "--train-center", "emidec"])
    assert code == 1
    assert "train_center 'emidec': no such center" in capsys.readouterr().err


def test_paper_scale_follows_table_4_and_trains_every_cyclegan_pair_of_table_3() -> None:
    config = make_config("paper", out_dir=Path("x"))
    assert (config.window, config.gan_features, config.gan_blocks, config.gan_patch) == ("sliding", 64, 9, 256)
    assert config.every_training_center and config.cases_per_center >= PAPER_TABLE_4[0]
    centers = ["center1", "center2", "center3", "center4"]
    cells = build_grid(config, centers, num_encoder_blocks=6)
    multi = {c.centers: c.subjects_per_center for c in cells if c.kind == "train" and c.subjects_per_center}
    assert {len(k): n for k, n in multi.items()} == {1: 52, 2: 26, 3: 17, 4: 14}  # total about constant
    assert [split_counts(n) for n in PAPER_TABLE_4] == [(41, 11), (20, 6), (13, 4), (11, 3)]  # paper: 42+10, ...
    gans = [c for c in cells if c.kind == "cyclegan"]
    assert len(gans) == 6 and {frozenset(c.centers) for c in gans} == {frozenset(p) for p in combinations(centers, 2)}
    for cell in gans:  # one GAN per pair, both directions: each center's model scored on the other center
        source, target = cell.centers
        assert cell.scores == ((target, "cyclegan"), (source, "cyclegan"))
        assert cell.needs == (f"train_{source}_spatial_intensity_s0", f"train_{target}_spatial_intensity_s0")
    histogram = [c for c in cells if any(h == "histogram" for _, h in c.scores) and len(c.centers) == 1]
    assert {c.centers[0] for c in histogram} == set(centers)  # Figure 7 for every training center
    equal = build_grid(make_config("paper", out_dir=Path("x"), experiments=(4,), subjects_per_center=13), centers, 6)
    assert {c.subjects_per_center for c in equal} == {13}
    balanced = build_grid(make_config("paper", out_dir=Path("x"), experiments=(4,), subjects_by_size=()), centers, 6)
    assert {c.subjects_per_center for c in balanced} == {None}
    with pytest.raises(ValueError, match=r"subjects_by_size: expected one count >= 1 per number of centers 1 \.\. 4"):
        make_config("paper", out_dir=Path("x"), subjects_by_size=(52, 26))


def test_paper_scale_cyclegan_is_zhu_et_al_resnet_9_generator() -> None:
    from lgeseg.harmonization.cyclegan import build_generator

    generator = build_generator(gan_config(make_config("paper", out_dir=Path("x")), seed=0))
    assert sum(p.numel() for p in generator.parameters()) == pytest.approx(11.37e6, rel=0.01)  # Zhu et al.: 11.4 M
    assert tuple(generator(torch.zeros(1, 1, 64, 64)).shape) == (1, 1, 64, 64)


def test_medium_scale_gives_every_model_1000_iterations_and_twice_the_quick_transfer_budget() -> None:
    m, q = make_config("medium", out_dir=Path("x")), make_config("quick", out_dir=Path("x"))
    assert m.epochs * m.iterations_per_epoch == 1000 == 2 * q.epochs * q.iterations_per_epoch
    assert m.finetune_epochs * m.iterations_per_epoch == 2 * q.finetune_epochs * q.iterations_per_epoch
    assert m.gan_epochs * m.gan_iterations == 2 * q.gan_epochs * q.gan_iterations
    assert (m.recipe, m.window, m.subjects_by_size) == ("default", "roi", ())


def test_dry_run_prints_table_4_the_cyclegan_pairs_the_window_and_the_budget(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert experiments_main(["--scale", "paper", "--dry-run"]) == 0
    out = capsys.readouterr().out
    for line in ("| 1 | center1 | 52 (41 + 11) | 52 |", "| 4 | center1+center2+center3+center4 | 14 (11 + 3) | 56 |",
                 "CycleGAN pairs (Table 3): 6", "- center3 <-> center4: center3 model on center4, center4 model on "
                 "center3", "inference: window sliding, mirroring off, postprocess lcc",
                 "training: recipe paper, preset paper, 250 epochs x one pass over the training slices",
                 "generator 64 features / 9 residual blocks", "network: 6 encoder blocks"):
        assert line in out, line
    assert experiments_main(["-o", "runs/x", "--scale", "medium", "--dry-run", "--device", "cpu"]) == 0
    assert "20 epochs x 50 iterations per model" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []  # a dry run makes and writes nothing
    with pytest.raises(SystemExit):
        experiments_main(["--scale", "paper"])  # no -o without --dry-run: a usage error


def test_a_cell_of_an_older_grid_is_still_done_and_its_cyclegan_counts_for_table_5(tmp_path: Path) -> None:
    config = make_config("tiny", out_dir=tmp_path, experiments=(2,), harmonization=("cyclegan",))
    old = Cell("cyclegan_center1_center2_s0", "cyclegan", 0, ("center2",), base="train_center1_spatial_intensity_s0",
               scores=(("center2", "cyclegan"),))  # before pairs: the target alone
    cases = {"c2_000": {"blood_pool": 0.6, "myocardium": 0.4}}
    stored = write_result(tmp_path, old, [{"center": "center2", "harmonization": "cyclegan", "cases": cases}], 1.0,
                          "cpu")
    del stored["cell"]["reverse_base"], stored["cell"]["pretrained_on"]  # fields the older Cell did not have
    save_json(stored, cell_folder(tmp_path, old) / "result.json")
    workspace = workspace_for(config, ["center1", "center2"], "cpu", 4)
    assert run_cell(workspace, old)["seconds"] == 1.0  # not run again
    assert gan_pair(old, "center1") == ("center1", "center2")
    table = summarize(tmp_path, config, [old], num_encoder_blocks=4)["table5"]
    assert table["cyclegan"]["center2"]["mean"] == pytest.approx(0.5)


@pytest.fixture(scope="module")
def pairs_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """Experiments 2-3 with every center's model, all CycleGAN pairs and a pretraining dataset (any raw
    dataset stands in for cine), two iterations per model."""
    out = tmp_path_factory.mktemp("pairs")
    source = generate_multicenter(out / "other", 3, 5, centers=(3,), in_plane_size=32)[0]
    config = make_config("tiny", out_dir=out / "run", **{**TINY, "seeds": 1}, experiments=(2, 3),
                         every_training_center=True, harmonization=("cyclegan",), block_counts=(),
                         pretrain_source=source, window="sliding", gan_features=8, gan_blocks=2)
    return out / "run", run_experiments(config, jobs=1, threads=1)


def test_a_cyclegan_pair_scores_both_centers_models_and_only_the_training_centers_fills_table_5(
        pairs_run: tuple[Path, dict]) -> None:
    out, results = pairs_run
    assert results["cells"]["missing"] == [] and not results["failed"]
    _, cells = load_workspace(out / "grid.json")
    gans = [c for c in cells.values() if c.kind == "cyclegan"]
    assert [c.centers for c in gans] == [("center1", "center2")]
    scores = json.loads((cell_folder(out, gans[0]) / "result.json").read_text())["scores"]
    assert [(s["center"], s["harmonization"]) for s in scores] == [("center2", "cyclegan"), ("center1", "cyclegan")]
    assert sorted(p.name for p in (cell_folder(out, gans[0]) / "translated" / "center1_cyclegan").iterdir())
    info = json.loads((cell_folder(out, gans[0]) / "gan" / "cyclegan.json").read_text())
    assert (info["config"]["generator_features"], info["config"]["generator_blocks"]) == (8, 2)
    assert info["source"].endswith("center1") and info["target"].endswith("center2")
    provenance = json.loads((cell_folder(out, gans[0]) / "predictions" / "center2_cyclegan"
                             / "lgeseg_predictions.json").read_text())
    assert "sliding" in json.dumps(provenance)  # the grid's window reaches every scoring prediction
    assert set(results["table5"]["cyclegan"]) == {"center2"}  # center2's model on center1 is Figure 7 only
    rows = json.loads((out / "rows.json").read_text())
    assert {r["base_center"] for r in rows if r["kind"] == "cyclegan"} == {"center1", "center2"}
    assert "figure_7.png" in [Path(p).name for p in results["figures"]]


def test_cross_modality_pretraining_is_fine_tuned_like_the_training_centers_model(
        pairs_run: tuple[Path, dict]) -> None:
    out, results = pairs_run
    _, cells = load_workspace(out / "grid.json")
    pretrained = cells["train_center3_spatial_intensity_s0"]  # the stand-in 'cine' dataset
    assert pretrained.scores == (("center2", "none"),)
    tuned = sorted(c.id for c in cells.values() if c.pretrained_on == "center3")
    assert tuned == ["finetune_center2_all_100pct_from_center3_s0", "finetune_center2_all_1_from_center3_s0"]
    _, info = read_model_metadata(cell_folder(out, tuned[1]) / "model")
    assert info.parent == str((cell_folder(out, pretrained) / "model").resolve())
    assert results["table5"]["transfer"]["center2"]["n"] == 1  # the transfer column: center1's model only
    assert "figure_10.png" in [Path(p).name for p in results["figures"]]
    with pytest.raises(ValueError, match="pretrain_source .*: its folder name must differ from the centers'"):
        build_grid(make_config("tiny", out_dir=out, pretrain_source=out / "center2"), ["center1", "center2"], 4)


def test_the_grids_inference_windows_are_the_predictors() -> None:
    from lgeseg.inference.predictor import WINDOWS as PREDICTOR_WINDOWS  # the grid's copy keeps torch out of it

    assert WINDOWS == PREDICTOR_WINDOWS
    with pytest.raises(ValueError, match="window: expected one of roi, sliding, slice, found 'tiles'"):
        make_config("quick", out_dir=Path("x"), window="tiles")
