"""Planted-defect matrix: each defect of issue 13 run through the command a user would type.

Builds a tiny synthetic dataset (``lgeseg.synth``, 3 cases of 48 x 48 pixels), preprocesses it and
trains a one-epoch model, then for every row plants one defect in a fresh copy (``lgeseg.synth.defects``,
hand-edited JSON, occupied folders, damaged checkpoints, a SIGKILL during a checkpoint write), runs the
command in-process (``main(argv)``; the kill in a subprocess) and records the exit code and the message.
A row counts as handled when the exit code is the expected one and the message names the file
(errors), or the run succeeds with the documented warning (warnings). Writes docs/reliability.md.

    python benchmarks/reliability_matrix.py [--out docs/reliability.md] [--work DIR]

Takes about a minute of CPU time.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io as text_io
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import ROOT, train_killed_during_checkpoint

sys.path.insert(0, str(ROOT))  # this checkout's lgeseg, also where another one is installed

from lgeseg.cli.plan_and_preprocess import main as plan_main  # noqa: E402 - after the path set-up
from lgeseg.cli.predict import main as predict_main  # noqa: E402
from lgeseg.cli.train import main as train_main  # noqa: E402
from lgeseg.cli.validate import main as validate_main  # noqa: E402
from lgeseg.core.records import load_json, save_json  # noqa: E402
from lgeseg.synth import defects, generate_multicenter  # noqa: E402

TRAIN = ["--epochs", "1", "--iterations-per-epoch", "2", "--device", "cpu", "--num-workers", "1",
         "--augmentation", "none", "--batch-size", "4"]


@dataclasses.dataclass(frozen=True)
class Row:
    """One planted defect: what was done, the command, what it printed, whether that is a clear outcome."""

    defect: str
    command: str
    expected: str
    code: int
    message: str
    handled: bool


@dataclasses.dataclass
class Context:
    """The clean inputs every row copies: raw dataset, preprocessed folder, trained model, test images."""

    work: Path
    raw: Path
    pre: Path
    model: Path
    images: Path
    counter: int = 0

    def fresh(self, name: str) -> Path:
        """A new empty folder under ``work``."""
        self.counter += 1
        folder = self.work / f"{self.counter:03d}_{name}"
        folder.mkdir(parents=True)
        return folder


def _run(main: Callable[[list[str]], int], argv: list[str]) -> tuple[int, str]:
    """Run ``main(argv)`` in-process; returns (exit code, stdout + stderr + log records)."""
    buffer = text_io.StringIO()
    handler = logging.StreamHandler(buffer)
    logging.getLogger().addHandler(handler)
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            try:
                code = main(argv)
            except SystemExit as exit_info:  # argparse usage errors
                code = int(exit_info.code or 0)
    finally:
        logging.getLogger().removeHandler(handler)
    return code, buffer.getvalue()


def _message(text: str, needle: str) -> str:
    """The output line that names ``needle`` (else the first error line), shortened for the table."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    name = Path(needle).name
    chosen = next((line for line in lines if name in line and not line.startswith(("starting", "wrote", "model"))),
                  next((line for line in lines if "error" in line.lower()), lines[-1] if lines else ""))
    chosen = chosen.replace(str(needle), name).replace(str(Path(needle).parent) + "/", "")
    return (chosen[:157] + "...") if len(chosen) > 160 else chosen


def _row(defect: str, command: str, expected: str, result: tuple[int, str], names: Path | str,
         ok_words: str = "") -> Row:
    code, text = result
    wanted_code = {"error": 1, "warning": 0, "ok": 0}[expected]
    named = Path(names).name in text  # lgeseg_validate names files relative to the dataset
    handled = code == wanted_code and (named if expected != "ok" else True) and ok_words in text
    return Row(defect, command, expected, code, _message(text, str(names)), handled)


def build_context(work: Path) -> Context:
    """Synthesize, preprocess and train the clean inputs (about 20 s on 2 CPU cores)."""
    raw = generate_multicenter(work / "raw", 3, 0, (1,), in_plane_size=48)[0]
    images = work / "images"
    images.mkdir()
    for path in sorted((raw / "imagesTr").iterdir())[:2]:
        shutil.copy(path, images / path.name)
    pre, model = work / "pre", work / "model"
    for main, argv in ((plan_main, ["-d", str(raw), "-o", str(pre), "--gpu-memory", "4"]),
                       (train_main, ["-p", str(pre), "-o", str(model), *TRAIN])):
        code, text = _run(main, argv)
        if code != 0:
            raise RuntimeError(f"setting up the matrix failed: {text}")
    return Context(work, raw, pre, model, images)


def image_rows(ctx: Context) -> list[Row]:
    """Every image defect through lgeseg_validate, lgeseg_plan_and_preprocess and lgeseg_predict."""
    rows = []
    for name, plant in defects.IMAGE_DEFECTS.items():
        raw = ctx.fresh("raw") / "center1"
        shutil.copytree(ctx.raw, raw)
        target = sorted((raw / "imagesTr").iterdir())[1]
        plant(target)
        rows.append(_row(name, "lgeseg_validate", "error", _run(validate_main, [str(raw)]), target))
        rows.append(_row(name, "lgeseg_plan_and_preprocess", "error",
                         _run(plan_main, ["-d", str(raw), "-o", str(ctx.fresh("pre")), "--gpu-memory", "4"]), target))
        images = ctx.fresh("images")
        for path in ctx.images.iterdir():
            shutil.copy(path, images / path.name)
        target = sorted(images.iterdir())[1]
        plant(target)
        rows.append(_row(name, "lgeseg_predict", "error",
                         _run(predict_main, ["-i", str(images), "-o", str(ctx.fresh("out")), "-m", str(ctx.model),
                                             "--device", "cpu"]), target))
    return rows


def constant_rows(ctx: Context) -> list[Row]:
    """A blank (all-zero) image: a warning in validation and preprocessing, an empty prediction in predict."""
    raw = ctx.fresh("raw") / "center1"
    shutil.copytree(ctx.raw, raw)
    target = sorted((raw / "imagesTr").iterdir())[1]
    defects.constant(target, 0.0)
    rows = [_row("all-zero image", "lgeseg_validate", "warning", _run(validate_main, [str(raw)]), target),
            _row("all-zero image", "lgeseg_plan_and_preprocess", "warning",
                 _run(plan_main, ["-d", str(raw), "-o", str(ctx.fresh("pre")), "--gpu-memory", "4"]), target)]
    for value in (0.0, 500.0):
        images = ctx.fresh("images")
        for path in ctx.images.iterdir():
            shutil.copy(path, images / path.name)
        target = sorted(images.iterdir())[1]
        defects.constant(target, value)
        rows.append(_row(f"constant image ({value:g} everywhere)", "lgeseg_predict", "warning",
                         _run(predict_main, ["-i", str(images), "-o", str(ctx.fresh("out")), "-m", str(ctx.model),
                                             "--device", "cpu"]), target, ok_words="empty prediction"))
    return rows


def _plans_with(ctx: Context, edit: Callable[[dict], None]) -> Path:
    pre = ctx.fresh("pre")
    shutil.copytree(ctx.pre, pre, dirs_exist_ok=True)
    plans = load_json(pre / "plans.json")
    edit(plans)
    save_json(plans, pre / "plans.json")
    return pre


def plan_rows(ctx: Context) -> list[Row]:
    """Nonsense values in plans.json (lgeseg_train: no model folder left) and model.json (lgeseg_predict)."""
    edits: dict[str, Callable[[dict], None]] = {
        "plans.json target_spacing 0": lambda p: p.update(target_spacing=[p["target_spacing"][0], 0.0, 1.0]),
        "plans.json num_classes -3": lambda p: p["topology"].update(num_classes=-3),
        "plans.json batch_size \"four\"": lambda p: p.update(batch_size="four"),
        "plans.json patch_size [0, 48]": lambda p: p.update(patch_size=[0, 48]),
        "plans.json normalization scheme \"magic\"": lambda p: p["normalization"].update(scheme="magic"),
        "plans.json labels without background": lambda p: p.update(labels={"a": 1, "b": 2, "c": 3}),
        "plans.json kernel_sizes for 1 stage of 4": lambda p: p["topology"].update(kernel_sizes=[[3, 3]]),
    }
    rows = []
    for name, edit in edits.items():
        pre = _plans_with(ctx, edit)
        out = ctx.fresh("model") / "model"
        result = _run(train_main, ["-p", str(pre), "-o", str(out), *TRAIN])
        row = _row(name, "lgeseg_train", "error", result, pre / "plans.json")
        rows.append(dataclasses.replace(row, handled=row.handled and not out.exists()))
    model_edits: dict[str, Callable[[dict], None]] = {
        "model.json postprocessing \"magic\"": lambda m: m.update(postprocessing="magic"),
        "model.json channel_names {\"1\": ...}": lambda m: m.update(channel_names={"1": "LGE"}),
        "model.json epochs_trained -1": lambda m: m.update(epochs_trained=-1),
    }
    for name, edit in model_edits.items():
        model = ctx.fresh("model") / "model"
        shutil.copytree(ctx.model, model)
        info = load_json(model / "model.json")
        edit(info)
        save_json(info, model / "model.json")
        rows.append(_row(name, "lgeseg_predict", "error", _run(predict_main, [
            "-i", str(ctx.images), "-o", str(ctx.fresh("out")), "-m", str(model), "--device", "cpu"]),
            model / "model.json"))
    return rows


def model_folder_rows(ctx: Context) -> list[Row]:
    """lgeseg_train into a folder holding a finished model, with and without --overwrite; a SIGKILLed run."""
    model = ctx.fresh("model") / "model"
    shutil.copytree(ctx.model, model)
    (model / "checkpoint_latest.pt").unlink()
    before = {p.name: p.read_bytes() for p in model.iterdir() if p.suffix == ".pt"}
    result = _run(train_main, ["-p", str(ctx.pre), "-o", str(model), *TRAIN])
    row = _row("train -o a folder holding a finished model (no checkpoint_latest.pt)", "lgeseg_train", "error",
               result, model)
    kept = before == {p.name: p.read_bytes() for p in model.iterdir() if p.suffix == ".pt"}
    rows = [dataclasses.replace(row, handled=row.handled and kept)]
    rows.append(_row("the same with --overwrite", "lgeseg_train --overwrite", "ok",
                     _run(train_main, ["-p", str(ctx.pre), "-o", str(model), "--overwrite", *TRAIN]), model))
    rows.append(_killed_during_checkpoint(ctx))
    return rows


def _killed_during_checkpoint(ctx: Context) -> Row:
    import torch

    from lgeseg.training import load_checkpoint

    killed, straight = ctx.fresh("killed") / "model", ctx.fresh("straight") / "model"
    args = ["-p", str(ctx.pre), *TRAIN[:1], "3", *TRAIN[2:], "--seed", "3"]
    done = train_killed_during_checkpoint(["-o", str(killed), *args])
    resumed = _run(train_main, ["-o", str(killed), "--continue", *args])
    _run(train_main, ["-o", str(straight), *args])
    a, b = (load_checkpoint(m / "checkpoint_final.pt")["network"] for m in (killed, straight))
    same = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    message = (f"killed (signal {-done.returncode}); --continue exit {resumed[0]}; final weights "
               f"{'bit-identical to' if same else 'DIFFER from'} an uninterrupted run")
    return Row("SIGKILL while writing checkpoint_latest.pt, then --continue", "lgeseg_train --continue", "ok",
               resumed[0], message, done.returncode == -9 and resumed[0] == 0 and same)


def predict_folder_rows(ctx: Context) -> list[Row]:
    """Mixed outputs, locks, debris, damaged checkpoints and a read-only output folder for lgeseg_predict."""
    base = ["-i", str(ctx.images), "--device", "cpu", "--no-mirroring"]
    other = ctx.fresh("model") / "model"
    shutil.copytree(ctx.model, other)
    (other / "checkpoint_final.pt").write_bytes((ctx.model / "checkpoint_best.pt").read_bytes())
    out = ctx.fresh("out")
    _run(predict_main, [*base, "-o", str(out), "-m", str(ctx.model)])
    rows = [
        _row("rerun into a folder predicted by another model", "lgeseg_predict", "error",
             _run(predict_main, [*base, "-o", str(out), "-m", str(other)]), out / "lgeseg_predictions.json"),
        _row("rerun with other settings (--window sliding)", "lgeseg_predict", "error",
             _run(predict_main, [*base, "-o", str(out), "-m", str(ctx.model), "--window", "sliding"]),
             out / "lgeseg_predictions.json"),
        _row("rerun with the same model and settings", "lgeseg_predict", "ok",
             _run(predict_main, [*base, "-o", str(out), "-m", str(ctx.model)]), out, ok_words="skipped"),
    ]
    unknown = ctx.fresh("out")
    (unknown / f"{sorted(ctx.images.iterdir())[0].name.replace('_0000', '')}").write_bytes(b"not ours")
    rows.append(_row("outputs of unknown origin (no record) in the folder", "lgeseg_predict", "error",
                     _run(predict_main, [*base, "-o", str(unknown), "-m", str(ctx.model)]), unknown))
    locked = ctx.fresh("out")
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        import socket

        (locked / ".lgeseg_predict.lock").write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname()}))
        rows.append(_row("a second run while the first one writes (lock held)", "lgeseg_predict", "error",
                         _run(predict_main, [*base, "-o", str(locked), "-m", str(ctx.model)]),
                         locked / ".lgeseg_predict.lock"))
    finally:
        holder.kill()
        holder.wait()
    stale = locked / ".case.nii.gz.ab12cd34.nii.gz"
    stale.write_bytes(b"")
    result = _run(predict_main, [*base, "-o", str(locked), "-m", str(ctx.model)])
    row = _row("lock and temp file left by a killed run", "lgeseg_predict", "ok", result, locked,
               ok_words="taking over the lock")
    rows.append(dataclasses.replace(row, handled=row.handled and not stale.exists()))
    damages = {"zero-byte checkpoint": lambda b: b"", "checkpoint cut in half": lambda b: b[: len(b) // 2]}
    for name, damage in damages.items():
        model = ctx.fresh("model") / "model"
        shutil.copytree(ctx.model, model)
        checkpoint = model / "checkpoint_final.pt"
        checkpoint.write_bytes(damage(checkpoint.read_bytes()))
        rows.append(_row(name, "lgeseg_predict", "error",
                         _run(predict_main, [*base, "-o", str(ctx.fresh("out")), "-m", str(model)]), checkpoint))
    read_only = Path("/sys") if os.geteuid() == 0 else ctx.fresh("ro")
    read_only.chmod(0o555) if read_only != Path("/sys") else None
    started = time.monotonic()
    result = _run(predict_main, [*base, "-o", str(read_only), "-m", str(ctx.model)])
    rows.append(_row("read-only output folder", "lgeseg_predict", "error", result, read_only))
    rows[-1] = dataclasses.replace(rows[-1], message=f"{rows[-1].message} ({time.monotonic() - started:.1f} s)")
    return rows


def issue24_rows(ctx: Context) -> list[Row]:
    """The rows of issue 24 (reliability II), kept in their own modules: commands that write, and inputs."""
    import reliability_inputs  # deferred: they import this module's Row, Context and runners
    import reliability_writes

    return reliability_writes.rows(ctx) + reliability_inputs.rows(ctx)


def write_table(rows: list[Row], path: Path, seconds: float) -> None:
    """Replace the generated part of ``path`` (from ``## Planted-defect matrix``) with ``rows``."""
    handled = sum(r.handled for r in rows)
    lines = ["## Planted-defect matrix", "",
             f"Generated by `python benchmarks/reliability_matrix.py` ({time.strftime('%Y-%m-%d')}, "
             f"{seconds:.0f} s on {os.cpu_count()} CPU cores): **{handled} of {len(rows)} planted defects handled** "
             "(exit code as expected, and the message names the file; warnings: the run succeeds and says why).", "",
             "| defect | command | expected | exit | message (file names shortened) | handled |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        message = r.message.replace("|", "\\|")
        lines.append(f"| {r.defect} | `{r.command}` | {r.expected} | {r.code} | {message} | "
                     f"{'yes' if r.handled else '**no**'} |")
    text = path.read_text() if path.exists() else "# Reliability\n\n"
    head = text.split("## Planted-defect matrix")[0].rstrip() + "\n\n"
    path.write_text(head + "\n".join(lines) + "\n")


def main() -> int:
    """Run the matrix and write the table; exit code 1 when a row is not handled."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "reliability.md")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        ctx = build_context(args.work or Path(tmp))
        rows = image_rows(ctx) + constant_rows(ctx) + plan_rows(ctx) + model_folder_rows(ctx) \
            + predict_folder_rows(ctx) + issue24_rows(ctx)
    write_table(rows, args.out, time.monotonic() - started)
    for r in rows:
        print(f"{'ok ' if r.handled else 'NO '} {r.command:<28} {r.defect}: exit {r.code}: {r.message}")
    print(f"{sum(r.handled for r in rows)} of {len(rows)} handled; table in {args.out}")
    return 0 if all(r.handled for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
