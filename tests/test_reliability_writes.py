"""Reliability II (issue 24, writes): no command destroys what the user already has.

Every command that writes writes only into a folder it created or one it recognizes as its own kind,
refuses an output equal to or inside an input, and ``--overwrite`` replaces only its own kind of files.
Each case runs the command a user would type (``main(argv)``, in-process) on tiny synthetic data and
checks: the exit code, one error line naming the file and what to do, and (by hashing) that the
user's folder is exactly as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from lgeseg.cli.evaluate import main as evaluate_main
from lgeseg.cli.export_model import main as export_main
from lgeseg.cli.finetune import main as finetune_main
from lgeseg.cli.harmonize import main as harmonize_main
from lgeseg.cli.install_model import main as install_main
from lgeseg.cli.plan_and_preprocess import main as plan_main
from lgeseg.cli.report import main as report_main
from lgeseg.cli.synth import main as synth_main
from lgeseg.cli.train import main as train_main
from lgeseg.core.records import load_json, load_plan, save_json
from lgeseg.files import io
from lgeseg.harmonization import fit_reference_from_files
from lgeseg.model.archive import export_model
from lgeseg.planning.planner import plan_fingerprint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TRAIN_ARGS = ["--epochs", "1", "--iterations-per-epoch", "1", "--device", "cpu", "--num-workers", "1",
              "--augmentation", "none"]
FINETUNE_ARGS = ["--epochs", "1", "--iterations-per-epoch", "1", "--device", "cpu", "--num-workers", "1"]
SYNTH_ARGS = ["--cases-per-center", "1", "--centers", "1", "--in-plane-size", "32"]


def _digest(folder: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under ``folder`` (folders as ``"dir"``), hidden ones included."""
    return {p.relative_to(folder).as_posix(): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))}


def _error_line(capsys: pytest.CaptureFixture[str], prog: str) -> str:
    """The one line on stderr besides progress bars (``\r``-updated lines): ``<prog>: error: ...``."""
    err = capsys.readouterr().err
    lines = [line for line in err.split("\n") if line and "\r" not in line]
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), err
    return lines[0]


def _refused(capsys: pytest.CaptureFixture[str], prog: str, path: Path, *words: str) -> str:
    """The one error line on stderr; it names ``path`` and says what to do (``words``)."""
    line = _error_line(capsys, prog)
    assert str(path) in line, line
    for word in words:
        assert word in line, line
    return line


# --- 1. lgeseg_install_model --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory, make_model: Callable[..., Path]) -> Path:
    """A model zip of conftest's untrained model (do not modify)."""
    model = make_model(tmp_path_factory.mktemp("model") / "lv_model")
    return export_model(model, tmp_path_factory.mktemp("zips") / "lv_model.zip")


def test_install_overwrite_refuses_a_folder_that_is_not_a_model(tmp_path: Path, archive: Path,
                                                                  tiny_model: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "thesis.tex").write_text("\\chapter{Four years}")
    shutil.copytree(tiny_model, work / "sibling_model")
    before = _digest(work)
    assert install_main([str(archive), str(work), "--overwrite"]) == 1
    _refused(capsys, "lgeseg_install_model", work, "not a model folder", "thesis.tex", "choose a new folder")
    assert _digest(work) == before


def test_install_overwrite_refuses_a_destination_holding_the_zip(tmp_path: Path, archive: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(archive, models / "m.zip")
    before = _digest(tmp_path)
    assert install_main([str(models / "m.zip"), str(models), "--overwrite"]) == 1
    _refused(capsys, "lgeseg_install_model", models, "holds the archive", "new folder")
    assert _digest(tmp_path) == before
    model = tmp_path / "model"  # a real model folder is refused too when the zip lies in it
    assert install_main([str(archive), str(model)]) == 0
    shutil.copy(archive, model / "m.zip")
    before = _digest(tmp_path)
    assert install_main([str(model / "m.zip"), str(model), "--overwrite"]) == 1
    _refused(capsys, "lgeseg_install_model", model, "holds the archive")
    assert _digest(tmp_path) == before


def test_install_removes_only_lgeseg_staging_folders_of_killed_installs(tmp_path: Path, archive: Path) -> None:
    dest = tmp_path / "model"
    assert install_main([str(archive), str(dest)]) == 0
    killed = tmp_path / ".model.lgeseg-install-999999999-ab12cd34"  # its process is gone
    killed_old = tmp_path / ".model.x1y2z3w4"  # an earlier version's private mkdtemp folder with model files
    users = tmp_path / ".model.mybackup"  # the user's own hidden copy: an ordinary (0755) folder
    for folder in (killed, killed_old, users):
        shutil.copytree(dest, folder)
    killed_old.chmod(0o700)
    users.chmod(0o755)
    (tmp_path / "notes").mkdir()
    keep = {name: _digest(tmp_path / name) for name in (".model.mybackup", "notes")}
    assert install_main([str(archive), str(dest), "--overwrite"]) == 0  # a model folder: replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model.mybackup", "model", "notes"]
    assert {name: _digest(tmp_path / name) for name in keep} == keep
    assert stat.S_IMODE(dest.stat().st_mode) != 0o700


# --- 2. lgeseg_harmonize ------------------------------------------------------------------------------------


@pytest.fixture()
def harmonize_inputs(tmp_path: Path, raw_centers: dict[str, Path]) -> tuple[Path, Path]:
    """(a folder of images to harmonize, a model folder holding a histogram reference)."""
    images = tmp_path / "images"
    shutil.copytree(raw_centers["center2"] / "imagesTr", images)
    fit_reference_from_files(raw_centers["center1"] / "imagesTr", tmp_path / "model")
    return images, tmp_path / "model"


@pytest.mark.parametrize("inside", [False, True])
def test_harmonize_refuses_an_output_that_is_or_is_inside_the_input(harmonize_inputs: tuple[Path, Path],
                                                                   inside: bool,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    images, model = harmonize_inputs
    before = _digest(images)
    out = images / "matched" if inside else images
    assert harmonize_main(["histogram", "-i", str(images), "-o", str(out), "-m", str(model)]) == 1
    _refused(capsys, "lgeseg_harmonize", out, "must not be the input folder or inside it", "another output folder")
    assert _digest(images) == before


def test_harmonize_refuses_existing_outputs_unless_overwrite(tmp_path: Path, harmonize_inputs: tuple[Path, Path],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    images, model = harmonize_inputs
    out = tmp_path / "out"
    out.mkdir()
    mine = out / sorted(images.iterdir())[0].name
    mine.write_bytes(b"the user's own file of that name")
    before = _digest(out)
    argv = ["histogram", "-i", str(images), "-o", str(out), "-m", str(model)]
    assert harmonize_main(argv) == 1
    _refused(capsys, "lgeseg_harmonize", mine, "--overwrite")
    assert _digest(out) == before
    assert harmonize_main([*argv, "--overwrite"]) == 0
    assert io.read_image(mine)[0].shape == io.read_image(images / mine.name)[0].shape


def test_harmonize_refuses_a_complex_valued_image(tmp_path: Path, harmonize_inputs: tuple[Path, Path],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    images, model = harmonize_inputs
    target = sorted(images.iterdir())[-1]
    real, geometry = io.read_image(target)
    complex_image = sitk.GetImageFromArray((real + 1j * real).astype(np.complex64))
    complex_image.CopyInformation(io.to_sitk(real, geometry))
    sitk.WriteImage(complex_image, str(target))
    before = _digest(tmp_path)
    assert harmonize_main(["histogram", "-i", str(images), "-o", str(tmp_path / "out"), "-m", str(model)]) == 1
    _refused(capsys, "lgeseg_harmonize", target, "complex-valued", "magnitude")
    assert _digest(tmp_path) == before  # nothing written: not even the output folder


# --- 3. lgeseg_finetune and 4. lgeseg_train -------------------------------------------------------------------


@pytest.fixture(scope="module")
def pre(tmp_path_factory: pytest.TempPathFactory, make_preprocessed: Callable[..., Path]) -> Path:
    """A preprocessed folder of 2 tiny cases (do not modify)."""
    return make_preprocessed(tmp_path_factory.mktemp("pre"), {"center1": 2})


@pytest.mark.parametrize("output", ["parent", "inside", "holding"])
def test_finetune_never_replaces_its_pretrained_parent(tmp_path: Path, tiny_model: Path, pre: Path, output: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    parent = tmp_path / "models" / "pretrained"
    shutil.copytree(tiny_model, parent)
    out = {"parent": parent, "inside": parent / "finetuned", "holding": tmp_path / "models"}[output]
    before = _digest(tmp_path)
    assert finetune_main(["-m", str(parent), "-p", str(pre), "-o", str(out), "--overwrite", *FINETUNE_ARGS]) == 1
    _refused(capsys, "lgeseg_finetune", out, "must not be the pretrained model folder", "new output folder")
    assert _digest(tmp_path) == before


@pytest.mark.parametrize("overwrite", [False, True])
def test_train_refuses_a_folder_that_is_not_an_lgeseg_model_folder(tmp_path: Path, pre: Path, overwrite: bool,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "my_experiment"
    folder.mkdir()
    (folder / "plans.json").write_text(json.dumps({"my": "hand-tuned plan"}))
    (folder / "notes.md").write_text("keep")
    before = _digest(folder)
    assert train_main(["-p", str(pre), "-o", str(folder), *TRAIN_ARGS, *(["--overwrite"] if overwrite else [])]) == 1
    _refused(capsys, "lgeseg_train", folder, "not an lgeseg model folder", "plans.json", "new or empty output folder")
    assert _digest(folder) == before


# --- 5. lgeseg_synth --------------------------------------------------------------------------------------------


def test_synth_refuses_existing_center_folders_and_overwrites_only_its_own(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    raw = tmp_path / "raw"
    assert synth_main([str(raw), *SYNTH_ARGS]) == 0
    capsys.readouterr()
    before = _digest(raw)
    assert synth_main([str(raw), *SYNTH_ARGS, "--seed", "1"]) == 1  # even its own dataset, without --overwrite
    _refused(capsys, "lgeseg_synth", raw / "montage.png", "--overwrite")
    assert _digest(raw) == before
    (raw / "montage.png").unlink()
    before = _digest(raw)
    assert synth_main([str(raw), *SYNTH_ARGS, "--seed", "1"]) == 1
    _refused(capsys, "lgeseg_synth", raw / "center1", "already exists", "--overwrite")
    assert _digest(raw) == before
    assert synth_main([str(raw), *SYNTH_ARGS, "--seed", "1", "--overwrite"]) == 0  # its own kind: replaced
    assert load_json(raw / "center1" / "dataset.json")["seed"] == 1


@pytest.mark.parametrize("marker", ["own dataset.json", "no dataset.json"])
def test_synth_overwrite_never_replaces_the_users_dataset(tmp_path: Path, marker: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    center = tmp_path / "raw" / "center1"
    (center / "imagesTr").mkdir(parents=True)
    (center / "imagesTr" / "c1_000_0000.nii.gz").write_bytes(b"a real scan, not a phantom")
    (center / "imagesTr" / "patient7_0000.nii.gz").write_bytes(b"another real scan")
    if marker == "own dataset.json":
        save_json({"name": "hospital data", "channel_names": {"0": "LGE"}}, center / "dataset.json")
    before = _digest(tmp_path)
    assert synth_main([str(tmp_path / "raw"), *SYNTH_ARGS, "--overwrite"]) == 1
    _refused(capsys, "lgeseg_synth", center, "not a synthetic dataset", "choose another output folder")
    assert _digest(tmp_path) == before


# --- 6. lgeseg_plan_and_preprocess and the plan of each case ---------------------------------------------------


@pytest.fixture()
def planned(tmp_path: Path, raw_centers: dict[str, Path]) -> Path:
    """A preprocessed folder of center1 made by lgeseg_plan_and_preprocess (cpu preset)."""
    out = tmp_path / "pre"
    assert plan_main(["-d", str(raw_centers["center1"]), "-o", str(out), "--preset", "cpu"]) == 0
    return out


def _other_plan(pre: Path, folder: Path) -> Path:
    """A plans.json like ``pre``'s with another target spacing (so other preprocessed data)."""
    plans = load_json(pre / "plans.json")
    plans["target_spacing"] = [plans["target_spacing"][0], 3.0, 3.0]
    save_json(plans, folder / "plans.json")
    return folder / "plans.json"


def test_plan_and_preprocess_refuses_a_folder_of_another_plan_unless_overwrite(
        tmp_path: Path, planned: Path, raw_centers: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    other = _other_plan(planned, tmp_path / "other")
    (planned / "notes.txt").write_text("mine")
    before = _digest(planned)
    argv = ["-d", str(raw_centers["center1"]), "-o", str(planned), "--plans-from", str(other)]
    assert plan_main(argv) == 1
    _refused(capsys, "lgeseg_plan_and_preprocess", planned / "plans.json", "another plan", "target_spacing",
             "--overwrite", "--plans-from")
    assert _digest(planned) == before
    assert plan_main([*argv, "--overwrite"]) == 0  # replaces its own files only
    assert load_plan(planned / "plans.json") == load_plan(other)
    records = [load_json(p) for p in sorted((planned / "center1").glob("c1_*.json"))]
    assert {r["plan_fingerprint"] for r in records} == {plan_fingerprint(load_plan(other))}
    assert (planned / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("failure", ["missing --plans-from", "plan of another channel count", "--gpu-memory -1"])
def test_a_failed_plan_leaves_the_preprocessed_folder_as_it_was(tmp_path: Path, planned: Path, failure: str,
                                                                raw_centers: dict[str, Path],
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    options = ["--gpu-memory", "-1"]
    if failure != "--gpu-memory -1":
        plans = tmp_path / "missing.json"
        if failure == "plan of another channel count":
            plans = _other_plan(planned, tmp_path / "two_channels")
            edited = load_json(plans)
            edited["topology"]["in_channels"] = 2
            save_json(edited, plans)
        options = ["--plans-from", str(plans)]
    before = _digest(planned)
    # center2 has another fingerprint; even --overwrite must leave the folder alone when planning fails
    assert plan_main(["-d", str(raw_centers["center2"]), "-o", str(planned), "--overwrite", *options]) == 1
    line = _error_line(capsys, "lgeseg_plan_and_preprocess")
    assert options[1] in line or "gpu_memory" in line, line
    assert {"missing --plans-from": "no plans.json", "plan of another channel count": "channel(s)",
            "--gpu-memory -1": "must be positive"}[failure] in line
    assert _digest(planned) == before  # fingerprint.json of center1 included


@pytest.mark.parametrize("output", ["the raw dataset", "inside it", "its parent"])
def test_plan_and_preprocess_refuses_an_output_that_is_an_input(tmp_path: Path, raw_centers: dict[str, Path],
                                                                output: str,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    raw = tmp_path / "raw" / "center1"
    shutil.copytree(raw_centers["center1"], raw)
    out = {"the raw dataset": raw, "inside it": raw / "pre", "its parent": raw.parent}[output]
    before = _digest(tmp_path)
    assert plan_main(["-d", str(raw), "-o", str(out), "--preset", "cpu"]) == 1
    _refused(capsys, "lgeseg_plan_and_preprocess", out, "must not be the raw dataset", "another output folder")
    assert _digest(tmp_path) == before


def test_training_refuses_cases_preprocessed_with_another_plan(tmp_path: Path, planned: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    _other_plan(planned, planned)  # plans.json replaced, the cases left as they were: old data, new plan
    before = _digest(planned)
    assert train_main(["-p", str(planned), "-o", str(tmp_path / "model"), *TRAIN_ARGS]) == 1
    _refused(capsys, "lgeseg_train", planned / "center1" / "c1_000.json", "another plan",
             "lgeseg_plan_and_preprocess", "--overwrite")
    assert _digest(planned) == before and not (tmp_path / "model").exists()


# --- 7. lgeseg_evaluate, lgeseg_report, lgeseg_export_model ---------------------------------------------------


@pytest.fixture()
def predictions(tmp_path: Path, raw_centers: dict[str, Path]) -> tuple[Path, Path]:
    """(predictions, references): center1's labels stand in for both."""
    shutil.copytree(raw_centers["center1"] / "labelsTr", tmp_path / "pred")
    shutil.copytree(raw_centers["center1"] / "labelsTr", tmp_path / "ref")
    return tmp_path / "pred", tmp_path / "ref"


def test_evaluate_refuses_existing_outputs_unless_overwrite(tmp_path: Path, predictions: tuple[Path, Path],
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    pred, ref = predictions
    out = tmp_path / "eval"
    argv = ["-p", str(pred), "-r", str(ref), "-o", str(out)]
    assert evaluate_main(argv) == 0
    capsys.readouterr()
    before = _digest(out)
    assert evaluate_main(argv) == 1
    _refused(capsys, "lgeseg_evaluate", out / "summary.json", "--overwrite")
    assert _digest(out) == before
    assert evaluate_main([*argv, "--overwrite"]) == 0


@pytest.mark.parametrize("output", ["predictions", "references"])
def test_evaluate_refuses_an_output_that_is_an_input(predictions: tuple[Path, Path], output: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    pred, ref = predictions
    out = pred if output == "predictions" else ref / "eval"
    before = _digest(pred.parent)
    assert evaluate_main(["-p", str(pred), "-r", str(ref), "-o", str(out)]) == 1
    _refused(capsys, "lgeseg_evaluate", out, f"must not be the {output} folder", "another output folder")
    assert _digest(pred.parent) == before


def test_report_refuses_an_existing_report_unless_overwrite(predictions: tuple[Path, Path],
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    pred, _ = predictions
    assert report_main([str(pred)]) == 0
    capsys.readouterr()
    before = _digest(pred)
    assert report_main([str(pred)]) == 1
    _refused(capsys, "lgeseg_report", pred / "report" / "index.html", "--overwrite")
    assert _digest(pred) == before
    assert report_main([str(pred), "-o", str(pred)]) == 1  # never into the predictions folder itself
    _refused(capsys, "lgeseg_report", pred, "must not be the predictions folder")
    assert _digest(pred) == before
    assert report_main([str(pred), "--overwrite"]) == 0


def test_export_refuses_an_existing_zip_unless_overwrite(tmp_path: Path, tiny_model: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "model.zip"
    target.write_bytes(b"last year's model, not a copy")
    before = _digest(tmp_path)
    assert export_main([str(tiny_model), str(target)]) == 1
    _refused(capsys, "lgeseg_export_model", target, "already exists", "--overwrite")
    assert _digest(tmp_path) == before
    assert export_main([str(tiny_model), str(target), "--overwrite"]) == 0
    assert zipfile.is_zipfile(target)


def test_export_reads_a_read_only_model_folder_and_never_rewrites_it(tmp_path: Path, tiny_model: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    for path in [*model.iterdir(), model]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    before = _digest(model)
    try:
        assert export_main([str(model), str(tmp_path / "m.zip"), "--intended-use", "phantom only"]) == 0
        assert export_main([str(model), str(model / "m.zip")]) == 1  # never into the folder it packs
        _refused(capsys, "lgeseg_export_model", model / "m.zip", "inside the model folder")
        assert _digest(model) == before
    finally:
        for path in [model, *model.iterdir()]:
            path.chmod(0o755 if path.is_dir() else 0o644)
    with zipfile.ZipFile(tmp_path / "m.zip") as zipped:
        card = json.loads(zipped.read("model.json"))["model_card"]
    assert card["intended_use"] == "phantom only" and "phantom only" not in (model / "model.json").read_text()
    assert install_main([str(tmp_path / "m.zip"), str(tmp_path / "installed")]) == 0  # the manifest matches
    assert os.path.isfile(tmp_path / "installed" / "model.json")
