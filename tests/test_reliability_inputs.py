"""Reliability II (issue 24, inputs): lost data, options that named nothing, and garbage that passed.

Each case is planted here on tiny synthetic data and run through the command a user would type
(``main(argv)``, in-process): an error must exit non-zero with one line naming the file, case or
option and what to do, never "internal error ... please report it"; garbage must be flagged.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from lgeseg.cli.experiments import main as experiments_main
from lgeseg.cli.finetune import main as finetune_main
from lgeseg.cli.plan_and_preprocess import main as plan_main
from lgeseg.cli.predict import main as predict_main
from lgeseg.cli.train import main as train_main
from lgeseg.cli.validate import main as validate_main
from lgeseg.core.errors import CorruptFileError
from lgeseg.core.records import CaseGeometry
from lgeseg.files import io
from lgeseg.files.dicom import find_series
from lgeseg.inference import predict_folder
from lgeseg.inference.quality import assess_segmentation, enclosed_fraction, read_quality_report
from lgeseg.model.folder import load_model, save_checkpoint
from lgeseg.planning.memory import GIB, batch_memory_problem
from lgeseg.planning.topology import plan_topology
from lgeseg.synth import synthesize_case

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TRAIN_ARGS = ["--epochs", "1", "--iterations-per-epoch", "1", "--device", "cpu", "--num-workers", "1",
              "--augmentation", "none"]


def _run(main: Callable[[list[str]], int], argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit code and stderr of ``main(argv)`` (argparse's usage errors included)."""
    try:
        code = main(argv)
    except SystemExit as exit_info:
        code = int(exit_info.code or 0)
    return code, capsys.readouterr().err


def _clear_error(code: int, err: str, *names: str) -> None:
    """A non-zero exit with a message naming every one of ``names``, not an internal error."""
    assert code != 0, err
    assert "internal error" not in err and "please report" not in err, err
    for name in names:
        assert name in err, (name, err)


@pytest.fixture()
def images(tmp_path: Path, write_input_image: Callable[..., CaseGeometry]) -> Path:
    """Two prediction inputs (noisy disc, oblique grid)."""
    folder = tmp_path / "images"
    for seed, case in enumerate(("p1", "p2")):
        write_input_image(folder / f"{case}_0000.nii.gz", (3, 40, 44), seed)
    return folder


@pytest.fixture()
def model(tmp_path: Path, tiny_model: Path) -> Path:
    """A writable copy of the untrained tiny model folder."""
    return Path(shutil.copytree(tiny_model, tmp_path / "model"))


# --- silently lost data ----------------------------------------------------------------------------------------


def test_a_truncated_dicom_slice_is_an_error_naming_it(tmp_path: Path, model: Path, planted_inputs: ModuleType,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    series = tmp_path / "dicom" / "series7"
    planted_inputs.write_dicom_series(series, np.random.default_rng(0).integers(0, 900, size=(4, 24, 24)), "1.2.3.7")
    assert [len(s.files) for s in find_series(tmp_path / "dicom")] == [4]
    last = series / "IM0003.dcm"
    planted_inputs.truncate_to_half(last)  # GDCM would leave it out: 3 of 4 slices
    with pytest.raises(CorruptFileError, match="IM0003.dcm.*truncated or damaged"):
        find_series(tmp_path / "dicom")
    code, err = _run(predict_main, ["-i", str(tmp_path / "dicom"), "-o", str(tmp_path / "out"), "-m", str(model),
                                    "--device", "cpu"], capsys)
    _clear_error(code, err, "IM0003.dcm", "export the series again")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["dangling", "looping"])
def test_a_broken_link_among_the_inputs_is_an_error_naming_it(kind: str, images: Path, tmp_path: Path, model: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    link = images / "case_0000.nii.gz"
    link.symlink_to(images / "gone.nii.gz" if kind == "dangling" else link)
    code, err = _run(predict_main, ["-i", str(images), "-o", str(tmp_path / "out"), "-m", str(model),
                                    "--device", "cpu"], capsys)
    _clear_error(code, err, "case_0000.nii.gz", "symbolic link", "fix or remove the link")


def test_a_rerun_assesses_cases_whose_run_was_killed_before_their_quality_record(
        images: Path, tmp_path: Path, model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # Ctrl-C after the first label map is written, before its qc.json record

    monkeypatch.setattr("lgeseg.inference.predictor.write_quality_report", killed)
    with pytest.raises(KeyboardInterrupt):
        predict_folder(images, out, [model], device="cpu")
    assert (out / "p1.nii.gz").exists() and not (out / "qc.json").exists()
    (out / "p2.nii.gz").unlink(missing_ok=True)  # the export thread may have finished p2 too: the kill came earlier
    monkeypatch.undo()
    written = predict_folder(images, out, [model], device="cpu")
    assert [p.name for p in written] == ["p2.nii.gz"]  # p1 was skipped ...
    records = {r.case_id: r for r in read_quality_report(out)}
    assert sorted(records) == ["p1", "p2"]  # ... but assessed from its label map
    assert math.isnan(records["p1"].mirror_disagreement) and not math.isnan(records["p2"].mirror_disagreement)
    labels, geometry = io.read_label(out / "p1.nii.gz")
    assert records["p1"].blood_pool_ml == assess_segmentation(labels, geometry.spacing).blood_pool_ml
    assert "p1" in (out / "qc.csv").read_text()


def test_an_oversized_batch_is_refused_before_allocating(tmp_path: Path, make_preprocessed: Callable[..., Path],
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    topology = plan_topology((48, 48), in_channels=1, num_classes=3, base_features=8, max_features=32)
    assert batch_memory_problem(topology, (48, 48), 16, 8 * GIB, "cpu") is None
    cpu = batch_memory_problem(topology, (48, 48), 100000, 8 * GIB, "cpu")
    gpu = batch_memory_problem(topology, (48, 48), 100000, 8 * GIB, "cuda", mixed_precision=True)
    assert cpu is not None and "batch size 100000" in cpu and "--batch-size" in cpu
    assert gpu is not None and "per cuda device" in gpu
    pre = make_preprocessed(tmp_path / "pre", {"center1": 2})
    monkeypatch.setattr("lgeseg.cli.train.available_memory_bytes", lambda device: 8 * GIB)  # any machine's RAM
    code, err = _run(train_main, ["-p", str(pre), "-o", str(tmp_path / "model"), *TRAIN_ARGS,
                                  "--batch-size", "100000"], capsys)
    _clear_error(code, err, "--batch-size", "100000", "GB", "8.0 GB are available", str(pre / "plans.json"))
    assert not (tmp_path / "model").exists()


# --- errors that named nothing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("option", "value"), [("--device", "quantum"), ("--step", "0"), ("--step", "-0.5"),
                                               ("--step", "1.5")])
def test_bad_predict_options_are_usage_errors_naming_them(option: str, value: str, images: Path, tmp_path: Path,
                                                          model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(predict_main, ["-i", str(images), "-o", str(tmp_path / "out"), "-m", str(model), "--window",
                                    "sliding", option, value], capsys)
    assert code == 2
    _clear_error(code, err, option, repr(value))
    with pytest.raises(ValueError, match=r"PredictionSettings.step: expected .*\(0, 1\].*; found 0.0"):
        predict_folder(images, tmp_path / "out", [model], device="cpu", step=0.0)
    with pytest.raises(ValueError, match="PredictionSettings.device: expected cpu, cuda.*; found 'quantum'"):
        predict_folder(images, tmp_path / "out", [model], device="quantum")


@pytest.mark.parametrize(("main", "argv"), [
    (experiments_main, ["-o", "OUT", "--jobs", "0"]),
    (train_main, ["-p", "PRE", "-o", "OUT", "--epochs", "0"]),
    (finetune_main, ["-m", "MODEL", "-p", "PRE", "-o", "OUT", "--epochs", "0"]),
])
def test_zero_jobs_or_epochs_are_usage_errors(main: Callable[[list[str]], int], argv: list[str], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    argv = [str(tmp_path / a) if a.isupper() else a for a in argv]
    code, err = _run(main, argv, capsys)
    assert code == 2
    _clear_error(code, err, argv[-2], "expected a whole number >= 1, found '0'")
    assert not (tmp_path / "OUT").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_verify_memory_on_a_cpu_machine_says_what_to_do(tmp_path: Path, make_raw_dataset: Callable[..., Path],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    raw = make_raw_dataset(tmp_path, "center1", [(8.0, 1.5, 1.5)] * 2)
    code, err = _run(plan_main, ["-d", str(raw), "-o", str(tmp_path / "pre"), "--verify-memory"], capsys)
    _clear_error(code, err, "--verify-memory", "CUDA GPU", "run without --verify-memory")


def test_continue_with_another_plan_names_both_plans(tmp_path: Path, make_preprocessed: Callable[..., Path],
                                                     make_model: Callable[..., Path],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    model = make_model(tmp_path / "model")  # the model's plans.json: make_model's, not tiny_plan's
    shutil.copy(model / "checkpoint_final.pt", model / "checkpoint_latest.pt")
    pre = make_preprocessed(tmp_path / "pre", {"center1": 2})
    code, err = _run(train_main, ["-p", str(pre), "-o", str(model), "--continue", *TRAIN_ARGS], capsys)
    _clear_error(code, err, str(pre / "plans.json"), str(model / "plans.json"), "--continue", "target_spacing")


@pytest.mark.parametrize("error", [
    OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), OSError(errno.ENOSPC), OSError(errno.EFBIG, "File too large"),
    RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 4736 vs 4630"),
], ids=["ENOSPC", "ENOSPC-bare", "EFBIG", "unexpected-pos"])
def test_a_failed_checkpoint_write_names_the_checkpoint(error: BaseException, tmp_path: Path,
                                                        make_preprocessed: Callable[..., Path],
                                                        planted_inputs: ModuleType, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "model" / "checkpoint_best.pt"
    save_checkpoint(target, {"network": {"w": torch.ones(1)}})
    monkeypatch.setattr(torch, "save", planted_inputs.raising(error))
    with pytest.raises(OSError, match="checkpoint_best.pt"):
        save_checkpoint(target, {"network": {}})
    assert load_checkpoint_ok(target) and [p.name for p in target.parent.iterdir()] == ["checkpoint_best.pt"]
    pre = make_preprocessed(tmp_path / "pre", {"center1": 2})
    code, err = _run(train_main, ["-p", str(pre), "-o", str(tmp_path / "new"), *TRAIN_ARGS], capsys)
    hint = "write to another file system" if "EFBIG" in repr(error) or "too large" in str(error) else "disk"
    _clear_error(code, err, str(tmp_path / "new" / "checkpoint_"), hint)


def load_checkpoint_ok(path: Path) -> bool:
    """True when ``path`` still holds the checkpoint written first (a failed write left it as it was)."""
    from lgeseg.model.folder import load_checkpoint

    return bool(load_checkpoint(path)["network"]["w"].item() == 1.0)


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC), OSError(errno.EFBIG, "File too large")],
                         ids=["ENOSPC", "EFBIG"])
def test_a_failed_label_map_write_names_the_output_file(error: OSError, images: Path, tmp_path: Path, model: Path,
                                                        planted_inputs: ModuleType, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sitk, "WriteImage", planted_inputs.raising(error))
    code, err = _run(predict_main, ["-i", str(images), "-o", str(tmp_path / "out"), "-m", str(model),
                                    "--device", "cpu", "--no-mirroring"], capsys)
    _clear_error(code, err, str(tmp_path / "out" / "p1.nii.gz"))
    assert not any(p.name.startswith(".p1") for p in (tmp_path / "out").iterdir())


def test_out_of_memory_without_detail_names_the_case_or_the_run(images: Path, tmp_path: Path, model: Path,
                                                                 make_preprocessed: Callable[..., Path],
                                                                 planted_inputs: ModuleType,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("lgeseg.inference.predictor.predict_volume", planted_inputs.raising(MemoryError()))
    code, err = _run(predict_main, ["-i", str(images), "-o", str(tmp_path / "out"), "-m", str(model),
                                    "--device", "cpu"], capsys)
    _clear_error(code, err, "out of memory", "case p1", str(images / "p1_0000.nii.gz"))
    monkeypatch.setattr("lgeseg.cli.train.train", planted_inputs.raising(MemoryError()))
    pre = make_preprocessed(tmp_path / "pre", {"center1": 2})
    code, err = _run(train_main, ["-p", str(pre), "-o", str(tmp_path / "model_out"), *TRAIN_ARGS], capsys)
    _clear_error(code, err, "out of memory", f"training {tmp_path / 'model_out'}")


# --- garbage accepted ------------------------------------------------------------------------------------------


def test_bright_discs_without_a_surrounding_wall_are_flagged_and_phantoms_are_not(planted_inputs: ModuleType) -> None:
    labels, spacing = planted_inputs.discs_with_arcs()
    quality = assess_segmentation(labels, spacing, "discs")
    assert 150 < quality.blood_pool_ml < 500 and quality.reasons == ("blood_pool_not_enclosed",)
    assert quality.slices_not_enclosed == 8 and quality.flagged
    for center, index in ((1, 0), (2, 1), (3, 0), (4, 2)):
        case = synthesize_case(center, index, seed=0)
        phantom = assess_segmentation(case.label, case.geometry.spacing, f"c{center}_{index}")
        assert not phantom.flagged, phantom
        assert phantom.slices_not_enclosed <= 1  # at most the basal slice
    yy, xx = np.mgrid[:40, :40]
    radius = np.hypot(yy - 20, xx - 20)
    gap = (radius >= 6) & (radius < 10) & ~((xx > 20) & (abs(yy - 20) <= 1))  # a 3-voxel (4.5 mm) gap is bridged
    assert enclosed_fraction(radius < 6, gap, (1.5, 1.5)) == 1.0


def test_an_implausible_myocardial_volume_is_flagged(planted_inputs: ModuleType) -> None:
    labels, spacing = planted_inputs.thick_myocardium()
    quality = assess_segmentation(labels, spacing, "thick")  # a 55 mm wall
    assert 10 < quality.blood_pool_ml < 500 and quality.myocardium_ml > 1000  # only the myocardium is wrong
    assert quality.reasons == ("volume_implausible",)


def test_nan_in_a_label_map_fails_validation(tmp_path: Path, make_raw_dataset: Callable[..., Path],
                                             planted_inputs: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    raw = make_raw_dataset(tmp_path, "center1", [(8.0, 1.5, 1.5)] * 2)
    path = raw / "labelsTr" / "center1_001.nii.gz"
    planted_inputs.write_nan_into_label(path, (1, 20, 20))  # ITK reads a NIfTI NaN as 0: the label map looked valid
    with pytest.raises(ValueError, match="center1_001.nii.gz: label map holds 1 NaN"):
        io.read_label(path)
    code = validate_main([str(raw)])
    captured = capsys.readouterr()
    assert code == 1
    assert "center1_001.nii.gz: label map holds 1 NaN" in captured.out + captured.err


def test_a_non_orthonormal_direction_is_an_error_naming_the_file(images: Path, tmp_path: Path, model: Path,
                                                                 planted_inputs: ModuleType,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    planted_inputs.write_skewed_copy(images / "p1_0000.nii.gz", tmp_path / "skewed_0000.mha")
    with pytest.raises(ValueError, match="skewed_0000.mha: direction matrix .* is not orthonormal"):
        io.read_image(tmp_path / "skewed_0000.mha")
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.move(tmp_path / "skewed_0000.mha", folder / "skewed_0000.mha")
    code, err = _run(predict_main, ["-i", str(folder), "-o", str(tmp_path / "out"), "-m", str(model),
                                    "--device", "cpu"], capsys)
    _clear_error(code, err, "skewed_0000.mha", "not orthonormal")


def test_model_json_with_more_labels_than_the_network_is_refused(images: Path, tmp_path: Path, model: Path,
                                                                 planted_inputs: ModuleType,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    planted_inputs.add_label_to_model_json(model)
    with pytest.raises(ValueError, match="model.json: does not match"):
        load_model(model)
    code, err = _run(predict_main, ["-i", str(images), "-o", str(tmp_path / "out"), "-m", str(model),
                                    "--device", "cpu"], capsys)
    _clear_error(code, err, str(model / "model.json"), "topology.num_classes 3", "found 4")


def test_an_unfinished_training_is_refused_and_a_missing_final_checkpoint_is_named(
        images: Path, tmp_path: Path, model: Path, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    (model / "checkpoint_final.pt").rename(model / "checkpoint_latest.pt")  # training stopped before the end
    code, err = _run(predict_main, ["-i", str(images), "-o", str(tmp_path / "out"), "-m", str(model),
                                    "--device", "cpu", "--no-mirroring"], capsys)
    _clear_error(code, err, str(model), "training has not finished", "--continue", "--checkpoint latest")
    assert predict_main(["-i", str(images), "-o", str(tmp_path / "latest"), "-m", str(model), "--device", "cpu",
                         "--no-mirroring", "--checkpoint", "latest"]) == 0  # asked for: used
    (model / "checkpoint_latest.pt").rename(model / "checkpoint_best.pt")  # only the best weights shipped
    with caplog.at_level(logging.WARNING):
        assert predict_main(["-i", str(images), "-o", str(tmp_path / "best"), "-m", str(model), "--device", "cpu",
                             "--no-mirroring"]) == 0
    assert f"{model}: no checkpoint_final.pt; using checkpoint_best.pt" in caplog.text
    assert "checkpoint_best.pt" in (tmp_path / "best" / "lgeseg_predictions.json").read_text()


def test_continue_after_a_kill_during_the_first_checkpoint_explains_and_cleans_up(
        tmp_path: Path, make_preprocessed: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    pre = make_preprocessed(tmp_path / "pre", {"center1": 2})
    model = tmp_path / "model"
    model.mkdir()
    stale = model / ".checkpoint_best.pt.k1ll3d9x.tmp"  # what kill -9 during the first write leaves
    stale.write_bytes(b"half a checkpoint")
    (model / "training_log.txt").write_text("epoch 1\n")
    code, err = _run(train_main, ["-p", str(pre), "-o", str(model), "--continue", *TRAIN_ARGS], capsys)
    _clear_error(code, err, str(model), "no complete checkpoint", "removed 1 temporary file",
                 "without --continue", "--overwrite")
    assert not stale.exists()
    assert train_main(["-p", str(pre), "-o", str(model), *TRAIN_ARGS]) == 0  # the advice works
    assert (model / "checkpoint_final.pt").is_file()
    for name in ("checkpoint_final.pt", "checkpoint_best.pt", "checkpoint_latest.pt"):
        (model / name).unlink()  # killed in the first checkpoint write of a run that wrote its model.json
    stale.write_bytes(b"half a checkpoint")
    code, err = _run(train_main, ["-p", str(pre), "-o", str(model), "--continue", *TRAIN_ARGS], capsys)
    _clear_error(code, err, "no complete checkpoint", "with --overwrite")
    assert not stale.exists()
