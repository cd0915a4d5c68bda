"""Issue 24's planted cases: commands that write must not destroy what the user has.

Each row plants a folder a user could have (a thesis beside a model, the images being harmonized, a
pretrained model, a hand-tuned plans.json, a hospital's raw dataset, a preprocessed folder of another
plan, last week's metrics, report and zip), runs the command a user would type against it and counts
the row as handled only when the command refuses with exit code 1, names the file, and every file of
the planted folder is byte-identical afterwards (SHA-256 before and after).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from reliability_matrix import TRAIN, Context, Row, _row, _run

from lgeseg.cli.evaluate import main as evaluate_main
from lgeseg.cli.export_model import main as export_main
from lgeseg.cli.finetune import main as finetune_main
from lgeseg.cli.harmonize import main as harmonize_main
from lgeseg.cli.install_model import main as install_main
from lgeseg.cli.plan_and_preprocess import main as plan_main
from lgeseg.cli.report import main as report_main
from lgeseg.cli.synth import main as synth_main
from lgeseg.cli.train import main as train_main
from lgeseg.core.records import load_json, save_json
from lgeseg.files import io
from lgeseg.model.archive import export_model

FINETUNE = ["--epochs", "1", "--iterations-per-epoch", "2", "--device", "cpu", "--num-workers", "1"]


def _digest(folder: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under ``folder`` (folders as ``"dir"``)."""
    return {p.relative_to(folder).as_posix(): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))}


def _refused(defect: str, command: str, main: Callable[[list[str]], int], argv: list[str], names: Path,
             kept: Path, words: str = "") -> Row:
    """Run the command; handled when it is an error naming ``names`` (and saying ``words``) and ``kept``
    is unchanged."""
    before = _digest(kept)
    row = _row(defect, command, "error", _run(main, argv), names, ok_words=words)
    return dataclasses.replace(row, handled=row.handled and _digest(kept) == before)


def _install_rows(ctx: Context) -> list[Row]:
    zips = ctx.fresh("zips")
    export_model(ctx.model, zips / "m.zip")
    work = ctx.fresh("work")
    (work / "thesis.tex").write_text("\\chapter{Four years}")
    shutil.copytree(ctx.model, work / "sibling_model")
    models = ctx.fresh("models")
    shutil.copy(zips / "m.zip", models / "m.zip")
    return [
        _refused("install --overwrite into a folder holding thesis.tex and a sibling model",
                 "lgeseg_install_model --overwrite", install_main, [str(zips / "m.zip"), str(work), "--overwrite"],
                 work, work, "not a model folder"),
        _refused("install models/m.zip into models (the zip's own folder) --overwrite",
                 "lgeseg_install_model --overwrite", install_main,
                 [str(models / "m.zip"), str(models), "--overwrite"], models, models, "holds the archive"),
    ]


def _harmonize_rows(ctx: Context) -> list[Row]:
    images = ctx.fresh("images")
    for path in ctx.images.iterdir():
        shutil.copy(path, images / path.name)
    rows = [_refused("harmonize -o the input folder itself", "lgeseg_harmonize histogram", harmonize_main,
                     ["histogram", "-i", str(images), "-o", str(images), "-m", str(ctx.model)], images, images,
                     "must not be the input folder")]
    target = sorted(images.iterdir())[-1]
    real, geometry = io.read_image(target)
    complex_image = sitk.GetImageFromArray((real + 1j * real).astype(np.complex64))
    complex_image.CopyInformation(io.to_sitk(real, geometry))
    sitk.WriteImage(complex_image, str(target))
    out = ctx.fresh("out")
    rows.append(_refused("harmonize a complex-valued image", "lgeseg_harmonize histogram", harmonize_main,
                         ["histogram", "-i", str(images), "-o", str(out / "matched"), "-m", str(ctx.model)],
                         target, out, "complex-valued"))
    return rows


def _model_rows(ctx: Context) -> list[Row]:
    parent = ctx.fresh("pretrained") / "model"
    shutil.copytree(ctx.model, parent)
    mine = ctx.fresh("experiment")
    (mine / "plans.json").write_text(json.dumps({"my": "hand-tuned plan"}))
    (mine / "notes.md").write_text("keep")
    return [
        _refused("finetune -o the pretrained model folder --overwrite", "lgeseg_finetune --overwrite", finetune_main,
                 ["-m", str(parent), "-p", str(ctx.pre), "-o", str(parent), "--overwrite", *FINETUNE], parent,
                 parent.parent, "must not be the pretrained model folder"),
        _refused("train -o a folder holding the user's own plans.json (no model) --overwrite",
                 "lgeseg_train --overwrite", train_main, ["-p", str(ctx.pre), "-o", str(mine), "--overwrite", *TRAIN],
                 mine, mine, "not an lgeseg model folder"),
    ]


def _synth_rows(ctx: Context) -> list[Row]:
    raw = ctx.fresh("raw")
    shutil.copytree(ctx.raw, raw / "center1")
    save_json({**load_json(raw / "center1" / "dataset.json"), "generator": "the hospital's converter"},
              raw / "center1" / "dataset.json")
    return [_refused("synth --overwrite over the user's raw/center1 (not a synthetic dataset)",
                     "lgeseg_synth --overwrite", synth_main,
                     [str(raw), "--cases-per-center", "1", "--centers", "1", "--in-plane-size", "32", "--overwrite"],
                     raw / "center1", raw, "not a synthetic dataset")]


def _one_case_fewer(ctx: Context) -> Path:
    """A copy of the raw dataset without its last case: another fingerprint."""
    raw = ctx.fresh("raw") / ctx.raw.name
    shutil.copytree(ctx.raw, raw)
    for sub in ("imagesTr", "labelsTr"):
        sorted((raw / sub).iterdir())[-1].unlink()
    meta = load_json(raw / "dataset.json")
    save_json({**meta, "numTraining": meta["numTraining"] - 1}, raw / "dataset.json")
    return raw


def _preprocessed_rows(ctx: Context) -> list[Row]:
    pre = ctx.fresh("pre")
    shutil.copytree(ctx.pre, pre, dirs_exist_ok=True)
    plans = load_json(pre / "plans.json")
    plans["target_spacing"] = [plans["target_spacing"][0], 3.0, 3.0]
    other = ctx.fresh("plans") / "plans.json"
    save_json(plans, other)
    rows = [_refused("plan_and_preprocess into a preprocessed folder of another plan", "lgeseg_plan_and_preprocess",
                     plan_main, ["-d", str(ctx.raw), "-o", str(pre), "--plans-from", str(other)],
                     pre / "plans.json", pre, "another plan"),
            _refused("plan_and_preprocess --overwrite of one case fewer, with a missing --plans-from "
                     "(fingerprint.json kept)", "lgeseg_plan_and_preprocess --overwrite", plan_main,
                     ["-d", str(_one_case_fewer(ctx)), "-o", str(pre), "--plans-from",
                      str(other.parent / "missing.json"), "--overwrite"], other.parent / "missing.json", pre,
                     "no plans.json")]
    save_json(plans, pre / "plans.json")  # a new plan over the old cases
    case = sorted(p for p in (pre / ctx.raw.name).glob("*.json") if p.name != "dataset.json")[0]
    out = ctx.fresh("model")
    rows.append(_refused("train on cases preprocessed with another plan than plans.json", "lgeseg_train", train_main,
                         ["-p", str(pre), "-o", str(out / "model"), *TRAIN], case, pre, "another plan"))
    return rows


def _output_rows(ctx: Context) -> list[Row]:
    pred, ref = ctx.fresh("pred"), ctx.fresh("ref")
    for path in sorted((ctx.raw / "labelsTr").iterdir()):
        shutil.copy(path, pred / path.name)
        shutil.copy(path, ref / path.name)
    evaluation = ctx.fresh("eval")
    argv = ["-p", str(pred), "-r", str(ref), "-o", str(evaluation)]
    _run(evaluate_main, argv)
    _run(report_main, [str(pred)])
    zips = ctx.fresh("zips")
    (zips / "model.zip").write_bytes(b"last year's model, not a copy")
    return [
        _refused("evaluate over last run's metrics.csv/summary.json", "lgeseg_evaluate", evaluate_main, argv,
                 evaluation, evaluation, "--overwrite"),
        _refused("report over an existing report", "lgeseg_report", report_main, [str(pred)], pred / "report", pred,
                 "--overwrite"),
        _refused("export_model over an existing zip", "lgeseg_export_model", export_main,
                 [str(ctx.model), str(zips / "model.zip")], zips / "model.zip", zips, "--overwrite"),
        _export_read_only(ctx),
    ]


def _export_read_only(ctx: Context) -> Row:
    """A read-only model folder exports, and its model.json is not rewritten."""
    model = ctx.fresh("ro_model") / "model"
    shutil.copytree(ctx.model, model)
    for path in [*model.iterdir(), model]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    before = _digest(model)
    try:
        result = _run(export_main, [str(model), str(model.parent.parent / f"{model.parent.name}.zip"),
                                    "--intended-use", "phantom research only"])  # a new card: not into model.json
    finally:
        for path in [model, *model.iterdir()]:
            path.chmod(0o755 if path.is_dir() else 0o644)
    row = _row("export_model from a read-only model folder", "lgeseg_export_model", "ok", result, model)
    return dataclasses.replace(row, handled=row.handled and _digest(model) == before)


def rows(ctx: Context) -> list[Row]:
    """Every planted case of this module, run through the command a user would type."""
    found: list[Row] = []
    for make in (_install_rows, _harmonize_rows, _model_rows, _synth_rows, _preprocessed_rows, _output_rows):
        found += make(ctx)
    return found
