"""Reliability: planted defects and faults get one clear error naming the file; models are never destroyed.

Every defect is generated here, on tiny volumes, and run through the command a user would type
(``main(argv)``, in-process): the test checks the exit code, that stderr names the file, and that
nothing already on disk was replaced.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from test_training import TINY, make_preprocessed, tiny_plan

from lgeseg.cli._errors import run_cli
from lgeseg.cli.train import main as train_main
from lgeseg.records import save_json

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TRAIN_ARGS = ["--epochs", "1", "--iterations-per-epoch", "2", "--device", "cpu", "--num-workers", "1",
              "--augmentation", "none"]


def _digest(folder: Path) -> dict[str, str]:
    """File name -> SHA-256 of every file directly in ``folder``."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def pre(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_preprocessed(tmp_path_factory.mktemp("pre"), {"center1": 3})


@pytest.fixture(scope="module")
def trained(pre: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lgeseg.training import train

    return train(pre, tmp_path_factory.mktemp("trained") / "model", **{**TINY, "epochs": 1, "iterations_per_epoch": 2})


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
                                              capsys: pytest.CaptureFixture[str]) -> None:
    pre = make_preprocessed(tmp_path / "pre", {"center1": 2})
    plan = tiny_plan().to_dict()
    (plan["topology"] if field == "num_classes" else plan)[field] = value
    save_json(plan, pre / "plans.json")
    assert train_main(["-p", str(pre), "-o", str(tmp_path / "model"), *TRAIN_ARGS]) == 1
    err = capsys.readouterr().err
    assert str(pre / "plans.json") in err and words in err
    assert not (tmp_path / "model").exists()
