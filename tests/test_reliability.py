"""Reliability: planted defects and faults get one clear error naming the file; models are never destroyed.

Every defect is generated here, on tiny volumes, and run through the command a user would type
(``main(argv)``, in-process): the test checks the exit code, that stderr names the file, and that
nothing already on disk was replaced.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

from lgeseg.cli._errors import run_cli
from lgeseg.cli.plan_and_preprocess import main as plan_main
from lgeseg.cli.predict import main as predict_main
from lgeseg.cli.train import main as train_main
from lgeseg.cli.validate import main as validate_main
from lgeseg.core.records import CaseGeometry, save_json
from lgeseg.files import io
from lgeseg.inference.output_folder import LOCK_FILE, PROVENANCE_FILE
from lgeseg.inference.quality import read_quality_report
from lgeseg.synth import defects
from lgeseg.training import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TRAIN_ARGS = ["--epochs", "1", "--iterations-per-epoch", "2", "--device", "cpu", "--num-workers", "1",
              "--augmentation", "none"]


def _digest(folder: Path) -> dict[str, str]:
    """File name -> SHA-256 of every file directly in ``folder``."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def pre(tmp_path_factory: pytest.TempPathFactory, make_preprocessed: Callable[..., Path]) -> Path:
    return make_preprocessed(tmp_path_factory.mktemp("pre"), {"center1": 3})


@pytest.fixture(scope="module")
def trained(pre: Path, tmp_path_factory: pytest.TempPathFactory, tiny_training: dict) -> Path:
    from lgeseg.training import train

    return train(pre, tmp_path_factory.mktemp("trained") / "model",
                 **{**tiny_training, "epochs": 1, "iterations_per_epoch": 2})


# --- one error path -------------------------------------------------------------------------------------------


def _raise(err: BaseException) -> int:
    raise err


@pytest.mark.parametrize(("err", "expected"), [
    (ValueError("/data/a.nii.gz: truncated"), "prog: error: /data/a.nii.gz: truncated"),
    (PermissionError(13, "Permission denied", "/data/dataset.json"),
     "prog: error: /data/dataset.json: Permission denied (is the folder read-only?)"),
    (FileNotFoundError(2, "No such file or directory", "/data/x"), "prog: error: /data/x: No such file or directory"),
    (MemoryError(), "prog: error: out of memory (no detail)"),
])
def test_known_errors_print_one_line_on_stderr_and_exit_1(err: BaseException, expected: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("prog", lambda: _raise(err)) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(expected) and captured.err.count("\n") == 1 and captured.out == ""


def test_unexpected_errors_are_one_line_and_the_traceback_only_with_verbose(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("prog", lambda: _raise(ZeroDivisionError("division by zero"))) == 1
    err = capsys.readouterr().err
    assert "internal error: ZeroDivisionError: division by zero" in err and "Traceback" not in err and "-v" in err
    assert run_cli("prog", lambda: _raise(ZeroDivisionError("division by zero")), verbose=True) == 1
    assert "Traceback" in capsys.readouterr().err
    assert run_cli("prog", lambda: _raise(KeyboardInterrupt())) == 130


def test_usage_errors_stay_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        train_main(["-o", "x"])
    assert exit_info.value.code == 2


# --- a model folder is never overwritten ----------------------------------------------------------------------


def test_train_refuses_a_folder_holding_a_finished_model(pre: Path, trained: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    (trained / "checkpoint_latest.pt").unlink(missing_ok=True)  # a finished model without its resume file
    before = _digest(trained)
    assert train_main(["-p", str(pre), "-o", str(trained), *TRAIN_ARGS]) == 1
    err = capsys.readouterr().err
    assert str(trained) in err and "already holds a model" in err and "--overwrite" in err
    assert _digest(trained) == before
    assert train_main(["-p", str(pre), "-o", str(trained), "--continue", *TRAIN_ARGS]) == 1  # nothing to continue
    assert "checkpoint_latest.pt" in capsys.readouterr().err and _digest(trained) == before


def test_train_overwrite_replaces_the_model(pre: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "checkpoint_best.pt").write_bytes(b"old")
    (model / "notes.txt").write_text("mine")
    assert train_main(["-p", str(pre), "-o", str(model), "--overwrite", *TRAIN_ARGS]) == 0
    assert (model / "checkpoint_best.pt").read_bytes() != b"old" and (model / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(("field", "value", "words"), [
    ("target_spacing", [8.0, 0.0, 1.5], "target_spacing"),
    ("num_classes", -3, "num_classes"),
    ("batch_size", "four", "batch_size"),
])
def test_nonsense_plans_leave_no_model_folder(tmp_path: Path, field: str, value: object, words: str,
                                              capsys: pytest.CaptureFixture[str],
                                              make_preprocessed: Callable[..., Path],
                                              tiny_plan: Callable[..., Any]) -> None:
    pre = make_preprocessed(tmp_path / "pre", {"center1": 2})
    plan = tiny_plan().to_dict()
    (plan["topology"] if field == "num_classes" else plan)[field] = value
    save_json(plan, pre / "plans.json")
    assert train_main(["-p", str(pre), "-o", str(tmp_path / "model"), *TRAIN_ARGS]) == 1
    err = capsys.readouterr().err
    assert str(pre / "plans.json") in err and words in err
    assert not (tmp_path / "model").exists()


# --- predictions: provenance, lock, debris, damaged checkpoints, read-only folders ------------------------------


@pytest.fixture(scope="module")
def model_a(tiny_model: Path) -> Path:
    """The model predictions are made with: conftest's untrained ``tiny_model`` (read-only)."""
    return tiny_model


@pytest.fixture()
def input_folder(write_input_image: Callable[..., CaseGeometry]) -> Callable[..., Path]:
    """``input_folder(folder, names=("c",)) -> folder``: one (2, 30, 30) image ``<name>_0000.nii.gz`` per name."""
    def write(folder: Path, names: tuple[str, ...] = ("c",)) -> Path:
        for index, name in enumerate(names):
            write_input_image(folder / f"{name}_0000.nii.gz", (2, 30, 30), seed=index)
        return folder
    return write


def _predict(inp: Path, out: Path, model: Path, *extra: str) -> int:
    return predict_main(["-i", str(inp), "-o", str(out), "-m", str(model), "--device", "cpu", "--no-mirroring",
                         *extra])


def test_predictions_of_another_model_or_settings_are_not_mixed(
        model_a: Path, tmp_path: Path, input_folder: Callable[..., Path], capsys: pytest.CaptureFixture[str],
        make_model: Callable[..., Path]) -> None:
    inp, out = input_folder(tmp_path / "in"), tmp_path / "out"
    model_b = make_model(tmp_path / "model_b", target_spacing=(6.0, 1.6, 1.6))
    assert _predict(inp, out, model_a) == 0
    record = json.loads((out / PROVENANCE_FILE).read_text())
    assert record["models"][0]["model"] == str(model_a.resolve()) and record["settings"]["mirroring"] is False
    before = _digest(out)
    assert _predict(inp, out, model_a) == 0 and _digest(out) == before  # same model + settings: skipped
    capsys.readouterr()
    assert _predict(inp, out, model_b) == 1
    err = capsys.readouterr().err
    assert str(out / PROVENANCE_FILE) in err and "other model weights" in err and "--overwrite" in err
    assert _predict(inp, out, model_a, "--window", "sliding") == 1
    assert "window 'roi' -> 'sliding'" in capsys.readouterr().err and _digest(out) == before
    assert _predict(inp, out, model_b, "--overwrite") == 0
    assert json.loads((out / PROVENANCE_FILE).read_text())["models"][0]["model"] == str(model_b.resolve())


def test_outputs_without_a_record_are_not_taken_for_this_models(
        model_a: Path, tmp_path: Path, input_folder: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    inp, out = input_folder(tmp_path / "in"), tmp_path / "out"
    out.mkdir()
    (out / "c.nii.gz").write_bytes(b"someone else's")
    assert _predict(inp, out, model_a) == 1
    assert f"{out}: holds outputs" in capsys.readouterr().err
    assert (out / "c.nii.gz").read_bytes() == b"someone else's"


def test_a_running_prediction_locks_its_folder_and_a_dead_ones_lock_is_taken_over(
        model_a: Path, tmp_path: Path, input_folder: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    inp, out = input_folder(tmp_path / "in"), tmp_path / "out"
    out.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / LOCK_FILE).write_text(json.dumps({"pid": other.pid, "host": socket.gethostname()}))
        assert _predict(inp, out, model_a) == 1
        err = capsys.readouterr().err
        assert f"pid {other.pid}" in err and str(out / LOCK_FILE) in err and not (out / "c.nii.gz").exists()
    finally:
        other.kill()
        other.wait()
    stale = out / ".c.nii.gz.k3j_9x2a.nii.gz"  # what a run killed inside atomic_output leaves
    stale.write_bytes(b"")
    assert _predict(inp, out, model_a) == 0  # the holder is gone: its lock is taken over
    assert (out / "c.nii.gz").is_file() and not stale.exists() and not (out / LOCK_FILE).exists()


@pytest.mark.parametrize(("damage", "words"), [("empty", "empty (0 bytes)"), ("half", "corrupt or truncated"),
                                                ("garbage", "corrupt or truncated")])
def test_damaged_checkpoints_are_called_corrupt(
        tmp_path: Path, damage: str, words: str, input_folder: Callable[..., Path], capsys: pytest.CaptureFixture[str],
        make_model: Callable[..., Path]) -> None:
    model = make_model(tmp_path / "model")
    checkpoint = model / "checkpoint_final.pt"
    data = checkpoint.read_bytes()
    checkpoint.write_bytes({"empty": b"", "half": data[: len(data) // 2], "garbage": b"\x00" * 4096}[damage])
    assert _predict(input_folder(tmp_path / "in"), tmp_path / "out", model) == 1
    err = capsys.readouterr().err
    assert str(checkpoint) in err and words in err and "run code" not in err
    assert not (tmp_path / "out").exists()


def test_a_read_only_output_folder_is_found_before_inference(
        model_a: Path, tmp_path: Path, input_folder: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    inp = input_folder(tmp_path / "in")
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o555)
    if os.access(read_only, os.W_OK):  # root ignores permission bits: /sys is read-only for everyone
        read_only = Path("/sys")
    started = time.monotonic()
    assert _predict(inp, read_only, model_a) == 1
    err = capsys.readouterr().err
    assert f"lgeseg_predict: error: {read_only}: cannot write to the output folder" in err
    assert "%|" not in err  # no progress bar: it failed before the first case
    assert time.monotonic() - started < 30


# --- damaged and garbage images -------------------------------------------------------------------------------

#: What the message must say for each of ``defects.IMAGE_DEFECTS``.
DEFECT_WORDS = {
    "gzip stream cut in half": "truncated",
    "voxel data cut in half (complete gzip)": "truncated",
    "one NaN voxel": "1 NaN",
    "one Inf voxel": "1 Inf",
    "all voxels NaN": "NaN and 0 Inf",
    "float64 values beyond float32": "do not fit float32",
    "zero z spacing": "every spacing must be a finite number > 0",
    "negative x spacing": "every spacing must be a finite number > 0",
    "1000 mm z spacing": "implausible for cardiac MR",
    "0.01 mm in-plane spacing": "implausible for cardiac MR",
}


@pytest.mark.parametrize("defect", sorted(defects.IMAGE_DEFECTS))
def test_predict_refuses_a_damaged_image_naming_it(
        model_a: Path, tmp_path: Path, input_folder: Callable[..., Path], defect: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    plant, words = defects.IMAGE_DEFECTS[defect], DEFECT_WORDS[defect]
    inp = input_folder(tmp_path / "in", ("a", "b"))
    plant(inp / "b_0000.nii.gz")
    assert _predict(inp, tmp_path / "out", model_a) == 1
    err = capsys.readouterr().err
    assert f"lgeseg_predict: error: {inp / 'b_0000.nii.gz'}: " in err and words in err, err
    assert not (tmp_path / "out" / "a.nii.gz").exists()  # every input is checked before the first prediction


def test_unusual_spacing_is_accepted_on_request(
        model_a: Path, tmp_path: Path, input_folder: Callable[..., Path]) -> None:
    inp = input_folder(tmp_path / "in")
    defects.set_pixdim(inp / "c_0000.nii.gz", 2, 40.0)
    assert _predict(inp, tmp_path / "out", model_a) == 1
    assert _predict(inp, tmp_path / "out", model_a, "--allow-unusual-spacing") == 0


@pytest.mark.parametrize("value", [0.0, 500.0])
def test_a_constant_image_gets_an_empty_prediction_a_warning_and_a_qc_flag(
        model_a: Path, tmp_path: Path, input_folder: Callable[..., Path], value: float,
        caplog: pytest.LogCaptureFixture) -> None:
    inp = input_folder(tmp_path / "in", ("blank", "good"))
    defects.constant(inp / "blank_0000.nii.gz", value)
    with caplog.at_level(logging.WARNING):
        assert _predict(inp, tmp_path / "out", model_a) == 0
    assert "blank_0000.nii.gz: the image is constant" in caplog.text
    label, geometry = io.read_label(tmp_path / "out" / "blank.nii.gz")
    assert label.max() == 0 and geometry.shape == (2, 30, 30)
    flags = {r.case_id: r.input_constant for r in read_quality_report(tmp_path / "out")}
    assert flags == {"blank": True, "good": False}


# --- a training run killed while it writes a checkpoint resumes bit-exactly --------------------------------------

def test_training_killed_while_writing_a_checkpoint_resumes_bit_exactly(pre: Path, tmp_path: Path,
                                                                        benchmarks_common: ModuleType) -> None:
    args = ["-p", str(pre), "--epochs", "3", "--iterations-per-epoch", "2", "--device", "cpu", "--num-workers", "1",
            "--augmentation", "none", "--seed", "4"]
    killed = benchmarks_common.train_killed_during_checkpoint(["-o", str(tmp_path / "killed"), *args], timeout_s=300)
    assert killed.returncode == -9, killed.stderr
    leftovers = [p.name for p in (tmp_path / "killed").iterdir() if p.name.startswith(".checkpoint_latest.pt.")]
    assert leftovers, "the kill must come while the temporary checkpoint is being written"
    assert load_checkpoint(tmp_path / "killed" / "checkpoint_latest.pt")["epoch"] == 1  # the old one is intact
    assert train_main(["-o", str(tmp_path / "killed"), "--continue", *args]) == 0
    assert not [p for p in (tmp_path / "killed").iterdir() if p.name.startswith(".checkpoint_latest.pt.")]
    assert train_main(["-o", str(tmp_path / "straight"), *args]) == 0
    resumed = load_checkpoint(tmp_path / "killed" / "checkpoint_final.pt")["network"]
    straight = load_checkpoint(tmp_path / "straight" / "checkpoint_final.pt")["network"]
    assert resumed.keys() == straight.keys()
    for name in straight:
        assert torch.equal(resumed[name], straight[name]), name


@pytest.fixture(scope="module")
def raw(raw_centers: dict[str, Path]) -> Path:
    """A raw synthetic dataset of 2 cases (read-only: tests that plant defects copy it)."""
    return raw_centers["center1"]


@pytest.mark.parametrize("defect", sorted(defects.IMAGE_DEFECTS))
def test_validate_and_plan_and_preprocess_refuse_a_damaged_image_naming_it(raw: Path, tmp_path: Path, defect: str,
                                                                           capsys: pytest.CaptureFixture[str]) -> None:
    dataset = tmp_path / "center1"
    shutil.copytree(raw, dataset)
    target = sorted((dataset / "imagesTr").iterdir())[1]
    defects.IMAGE_DEFECTS[defect](target)
    assert validate_main([str(dataset)]) == 1
    out = capsys.readouterr().out
    assert f"ERROR   imagesTr/{target.name}: " in out and DEFECT_WORDS[defect] in out, out
    assert plan_main(["-d", str(dataset), "-o", str(tmp_path / "pre"), "--gpu-memory", "4"]) == 1
    err = capsys.readouterr().err
    assert f"{target}: " in err and DEFECT_WORDS[defect] in err, err
    assert not list((tmp_path / "pre").glob("*/*.npz"))


def test_a_blank_training_image_is_a_warning_and_unusual_spacing_passes_on_request(
        raw: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dataset = tmp_path / "center1"
    shutil.copytree(raw, dataset)
    blank, odd = sorted((dataset / "imagesTr").iterdir())
    defects.constant(blank)
    assert validate_main([str(dataset)]) == 0
    assert f"WARNING imagesTr/{blank.name}: image is constant" in capsys.readouterr().out
    defects.set_pixdim(odd, 2, 40.0)
    label = dataset / "labelsTr" / odd.name.replace("_0000", "")
    defects.set_pixdim(label, 2, 40.0)
    assert validate_main([str(dataset)]) == 1
    assert validate_main([str(dataset), "--allow-unusual-spacing"]) == 0


def test_an_unreadable_dataset_json_is_one_line_naming_it(raw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    # Root ignores permission bits, so the denial is planted where the file is read.
    read_text = Path.read_text

    def denied(self: Path, *args: object, **kwargs: object) -> str:
        if self.name == "dataset.json":
            raise PermissionError(13, "Permission denied", str(self))
        return read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", denied)
    for main, argv in ((validate_main, [str(raw)]),
                       (plan_main, ["-d", str(raw), "-o", str(tmp_path / "pre"), "--gpu-memory", "4"])):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"error: {raw / 'dataset.json'}: Permission denied" in err, err
