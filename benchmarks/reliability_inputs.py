"""Issue 24's planted cases: inputs and options that must get a clear error, and garbage that must not pass."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
import torch
from _planted_inputs import (
    add_label_to_model_json,
    discs_with_arcs,
    raising,
    thick_myocardium,
    truncate_to_half,
    write_dicom_series,
    write_nan_into_label,
    write_skewed_copy,
)
from reliability_matrix import TRAIN, Context, Row, _row, _run

from lgeseg.cli.experiments import main as experiments_main
from lgeseg.cli.finetune import main as finetune_main
from lgeseg.cli.plan_and_preprocess import main as plan_main
from lgeseg.cli.predict import main as predict_main
from lgeseg.cli.report import main as report_main
from lgeseg.cli.train import main as train_main
from lgeseg.cli.validate import main as validate_main
from lgeseg.core.records import CaseGeometry, load_json, read_plan, save_json
from lgeseg.files import io
from lgeseg.planning.memory import batch_memory_problem
from lgeseg.planning.verify import available_memory_bytes
from lgeseg.synth import synthesize_case

#: The SIGKILL of the first checkpoint write (checkpoint_best.pt of epoch 1), half the file on disk.
_KILLED_IN_FIRST_CHECKPOINT = """
import os, signal, sys
import torch

real_save = torch.save

def save_then_die(payload, target, *args, **kwargs):
    real_save(payload, target, *args, **kwargs)
    with open(target, "r+b") as handle:
        handle.truncate(os.path.getsize(target) // 2)
    os.kill(os.getpid(), signal.SIGKILL)

torch.save = save_then_die
torch.set_num_threads(1)
from lgeseg.cli.train import main
main(sys.argv[1:])
"""


def rows(ctx: Context) -> list[Row]:
    """Every planted case of this module, run through the command a user would type."""
    found: list[Row] = []
    for make in (_lost_data_rows, _option_rows, _write_failure_rows, _garbage_rows, _model_folder_rows):
        found += make(ctx)
    return found


@contextlib.contextmanager
def _patched(owner: Any, name: str, value: Any) -> Iterator[None]:
    """``owner.name = value`` inside the block (a fault planted in this process)."""
    saved = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, saved)


def _error_line(text: str, work: Path) -> str:
    """The command's ``error:`` line (else its last line), the work folder left out, shortened for the table."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    chosen = next((line for line in reversed(lines) if "error:" in line), lines[-1] if lines else "")
    chosen = chosen.replace(f"{work}/", "")
    return (chosen[:157] + "...") if len(chosen) > 160 else chosen


def _usage_row(defect: str, command: str, result: tuple[int, str], option: str, work: Path) -> Row:
    """A usage error: exit 2 (argparse) and the message names the option, no internal error."""
    code, text = result
    handled = code == 2 and option in text and "internal error" not in text
    return Row(f"{defect} (usage error: exit 2)", command, "error", code, _error_line(text, work), handled)


def _images(ctx: Context) -> Path:
    images = ctx.fresh("images")
    for path in ctx.images.iterdir():
        shutil.copy(path, images / path.name)
    return images


def _predict(ctx: Context, images: Path, model: Path | None = None, *extra: str,
             out: Path | None = None) -> tuple[int, str]:
    return _run(predict_main, ["-i", str(images), "-o", str(out or ctx.fresh("out")), "-m", str(model or ctx.model),
                               "--device", "cpu", "--no-mirroring", *extra])


def _lost_data_rows(ctx: Context) -> list[Row]:
    """A truncated DICOM slice, broken links among the inputs, QC of cases finished by an interrupted run."""
    dicom = ctx.fresh("dicom")
    volume, _ = io.read_image(sorted(ctx.images.iterdir())[0])
    write_dicom_series(dicom / "series7", np.clip(volume[:4] * 1000, 0, 30000))
    last = dicom / "series7" / "IM0003.dcm"
    truncate_to_half(last)
    found = [_row("DICOM series whose last slice file is truncated", "lgeseg_predict", "error",
                  _predict(ctx, dicom), last)]
    for kind in ("dangling", "looping"):
        images = _images(ctx)
        link = images / "case_0000.nii.gz"
        link.symlink_to(images / "gone.nii.gz" if kind == "dangling" else link)
        found.append(_row(f"{kind} symlink case_0000.nii.gz among the inputs", "lgeseg_predict", "error",
                          _predict(ctx, images), link))
    out = ctx.fresh("out")
    with _patched(sys.modules["lgeseg.inference.predictor"], "write_quality_report", raising(KeyboardInterrupt())):
        interrupted = _predict(ctx, ctx.images, out=out)
    rerun = _predict(ctx, ctx.images, out=out)
    cases = sorted(path.name.split("_0000")[0] for path in ctx.images.iterdir())
    assessed = {row["case_id"] for row in load_json(out / "qc.json")["cases"]} if (out / "qc.json").exists() else set()
    row = _row("Ctrl-C after a label map, before its QC record; rerun", "lgeseg_predict", "ok", rerun, out,
               ok_words="quality records of")
    message = f"interrupted exit {interrupted[0]}; rerun: {row.message}; qc.json holds {len(assessed)} of {len(cases)}"
    found.append(Row(row.defect, row.command, row.expected, row.code, message,
                     row.handled and interrupted[0] == 130 and assessed == set(cases)))
    return found


def _option_rows(ctx: Context) -> list[Row]:
    """Options that ended in "internal error" or a ZeroDivisionError, and an oversized batch."""
    base = ["-i", str(ctx.images), "-o", str(ctx.fresh("out")), "-m", str(ctx.model)]
    found = [_usage_row("--device quantum", "lgeseg_predict", _run(predict_main, [*base, "--device", "quantum"]),
                        "--device", ctx.work)]
    for step in ("0", "-0.5"):
        found.append(_usage_row(f"--window sliding --step {step}", "lgeseg_predict",
                                _run(predict_main, [*base, "--window", "sliding", "--step", step]), "--step",
                                ctx.work))
    found.append(_usage_row("--jobs 0", "lgeseg_experiments",
                            _run(experiments_main, ["-o", str(ctx.fresh("exp")), "--jobs", "0"]), "--jobs", ctx.work))
    for name, main in (("lgeseg_finetune", finetune_main), ("lgeseg_train", train_main)):
        argv = (["-m", str(ctx.model)] if main is finetune_main else []) + [
            "-p", str(ctx.pre), "-o", str(ctx.fresh("model") / "model"), "--epochs", "0"]
        found.append(_usage_row("--epochs 0", name, _run(main, argv), "--epochs", ctx.work))
    verify = _run(plan_main, ["-d", str(ctx.raw), "-o", str(ctx.fresh("pre")), "--gpu-memory", "4",
                              "--verify-memory"])
    if torch.cuda.is_available():
        found.append(_row("--verify-memory (this machine has a GPU: it measures)", "lgeseg_plan_and_preprocess", "ok",
                          verify, ctx.raw))
    else:
        found.append(_row("--verify-memory on a machine without a GPU", "lgeseg_plan_and_preprocess", "error", verify,
                          "--verify-memory"))
    plan = read_plan(ctx.pre / "plans.json")
    out = ctx.fresh("model") / "model"
    available = available_memory_bytes("cpu")
    if available is not None and batch_memory_problem(plan.topology, tuple(plan.patch_size), 100000, available,
                                                      "cpu", False) is None:  # would really train: do not run it
        found.append(Row("--batch-size 100000", "lgeseg_train", "error", 0, "not run: this machine's RAM holds it",
                         False))
    else:
        result = _run(train_main, ["-p", str(ctx.pre), "-o", str(out), *TRAIN[:-2], "--batch-size", "100000"])
        row = _row("--batch-size 100000 (grew to 24 GB before)", "lgeseg_train", "error", result, "--batch-size")
        found.append(Row(row.defect, row.command, row.expected, row.code, row.message,
                         row.handled and not out.exists()))
    return found


def _write_failure_rows(ctx: Context) -> list[Row]:
    """A full disk or a file-size limit while writing a checkpoint or a label map, and a bare MemoryError."""
    found = []
    failures = {"disk full while writing a checkpoint (torch: unexpected pos)":
                RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 4736 vs 4630"),
                "disk full while writing a checkpoint (ENOSPC)": OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
                "[Errno 27] File too large while writing a checkpoint": OSError(errno.EFBIG, os.strerror(errno.EFBIG))}
    for defect, error in failures.items():
        out = ctx.fresh("model") / "model"
        with _patched(torch, "save", raising(error)):
            result = _run(train_main, ["-p", str(ctx.pre), "-o", str(out), *TRAIN])
        found.append(_row(defect, "lgeseg_train", "error", result, out / "checkpoint_best.pt"))
    images = ctx.images
    out = ctx.fresh("out")
    with _patched(sitk, "WriteImage", raising(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))):
        result = _predict(ctx, images, out=out)
    first = sorted(p.name.replace("_0000", "") for p in images.iterdir())[0]
    found.append(_row("disk full while writing a label map", "lgeseg_predict", "error", result, out / first))
    predictor = sys.modules["lgeseg.inference.predictor"]
    with _patched(predictor, "predict_volume", raising(MemoryError())):
        result = _predict(ctx, images)
    found.append(_row("out of memory (no detail) while predicting", "lgeseg_predict", "error", result,
                      sorted(images.iterdir())[0]))
    return found


def _report_flags(ctx: Context, labels: np.ndarray, spacing: tuple[float, float, float]) -> tuple[int, str, str]:
    """lgeseg_report on one label map standing in for a prediction: exit code, output, the case's qc_reasons."""
    pred = ctx.fresh("pred")
    io.write_label(pred / "case.nii.gz", labels, CaseGeometry(labels.shape, spacing, (0.0, 0.0, 0.0),
                                                              (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)))
    code, text = _run(report_main, [str(pred)])
    reasons = ""
    if code == 0:
        import csv

        with open(pred / "report" / "report.csv") as handle:
            reasons = next(csv.DictReader(handle))["qc_reasons"]
    return code, text, reasons


def _garbage_rows(ctx: Context) -> list[Row]:
    """Label maps no heart gives (QC must flag them, a phantom must pass); NaN labels; skewed directions."""
    (discs, discs_spacing), (thick, thick_spacing) = discs_with_arcs(), thick_myocardium()
    phantom = synthesize_case(1, 0, seed=0)
    found = []
    for defect, labels, label_spacing, wanted in (
            ("QC: bright discs labelled LV, no ring around them", discs, discs_spacing, "blood_pool_not_enclosed"),
            ("QC: a 55 mm thick myocardium (1800 mL)", thick, thick_spacing, "volume_implausible"),
            ("QC: a phantom's reference label map (must pass)", phantom.label, phantom.geometry.spacing, "")):
        code, text, reasons = _report_flags(ctx, labels, tuple(label_spacing))
        handled = code == 0 and (wanted in reasons.split(";") if wanted else reasons == "")
        found.append(Row(defect, "lgeseg_report", "warning" if wanted else "ok", code,
                         f"qc_reasons: {reasons or '(none)'}", handled))
    raw = ctx.fresh("raw") / "center1"
    shutil.copytree(ctx.raw, raw)
    label = sorted((raw / "labelsTr").iterdir())[1]
    write_nan_into_label(label, (0, 0, 0))
    found.append(_row("NaN in a label map", "lgeseg_validate", "error", _run(validate_main, [str(raw)]), label))
    images = ctx.fresh("images")
    source = sorted(ctx.images.iterdir())[0]
    target = images / source.name.replace(".nii.gz", ".mha")
    write_skewed_copy(source, target)
    found.append(_row("non-orthonormal direction matrix in .mha", "lgeseg_predict", "error", _predict(ctx, images),
                      target))
    return found


def _model_folder_rows(ctx: Context) -> list[Row]:
    """model.json against its network, a missing checkpoint_final.pt, --continue with nothing or another plan."""
    found = []
    model = ctx.fresh("model") / "model"
    shutil.copytree(ctx.model, model)
    add_label_to_model_json(model)
    found.append(_row("model.json with 4 labels for a 3-class network", "lgeseg_predict", "error",
                      _predict(ctx, ctx.images, model), model / "model.json"))
    unfinished = ctx.fresh("model") / "model"
    shutil.copytree(ctx.model, unfinished)
    (unfinished / "checkpoint_final.pt").unlink()
    found.append(_row("no checkpoint_final.pt, checkpoint_latest.pt there (unfinished)", "lgeseg_predict", "error",
                      _predict(ctx, ctx.images, unfinished), unfinished))
    (unfinished / "checkpoint_latest.pt").unlink()
    found.append(_row("no checkpoint_final.pt, only checkpoint_best.pt", "lgeseg_predict", "warning",
                      _predict(ctx, ctx.images, unfinished), unfinished, ok_words="using checkpoint_best.pt"))
    other = ctx.fresh("pre")
    shutil.copytree(ctx.pre, other, dirs_exist_ok=True)
    plans = load_json(other / "plans.json")
    plans["batch_size"] = int(plans["batch_size"]) + 1
    save_json(plans, other / "plans.json")
    resumed = ctx.fresh("model") / "model"
    shutil.copytree(ctx.model, resumed)
    found.append(_row("--continue -p a folder with another plans.json", "lgeseg_train --continue", "error",
                      _run(train_main, ["-p", str(other), "-o", str(resumed), "--continue", *TRAIN]),
                      other / "plans.json"))
    found.append(_killed_in_first_checkpoint(ctx))
    return found


def _killed_in_first_checkpoint(ctx: Context) -> Row:
    """SIGKILL while writing the first checkpoint, then ``--continue``: explained, temporaries removed."""
    model = ctx.fresh("killed") / "model"
    args = ["-p", str(ctx.pre), "-o", str(model), *TRAIN]
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", _KILLED_IN_FIRST_CHECKPOINT, *args], env=env, capture_output=True,
                          text=True, timeout=600)
    left = sorted(p.name for p in model.iterdir() if p.name.endswith(".tmp")) if model.is_dir() else []
    resumed = _run(train_main, [*args, "--continue"])
    row = _row("SIGKILL during the first checkpoint write, then --continue", "lgeseg_train --continue", "error",
               resumed, model, ok_words="no complete checkpoint")
    cleaned = model.is_dir() and not any(p.name.endswith(".tmp") for p in model.iterdir())
    message = (f"killed (signal {-done.returncode}, left {len(left)} temporary file(s)); "
               + _error_line(resumed[1], ctx.work))
    return Row(row.defect, row.command, row.expected, row.code, message,
               row.handled and done.returncode == -signal.SIGKILL and bool(left) and cleaned)
