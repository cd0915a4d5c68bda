"""Real LGE in the loop: train on cine and/or phantom data, test on the real LGE of myops_lge (issue 12).

Protocols, each run end to end with lgeseg's own CLIs (``main(argv)`` in a subprocess):

* ``cine``: train on ``../shared/data/acdc_cine`` (60 cine volumes), test on all 25 myops_lge patients;
* ``phantom``: train on the synthetic centers (``lgeseg_synth``), test on myops_lge;
* ``mixed``: cine + phantom in one multi-dataset training (balanced per dataset), test on myops_lge;
* ``finetune``: fine-tune a ``--parent`` model (one of the above) on 1 or 3 myops patients and test on
  every other patient; 5 folds by patient (fold k trains on the first patients of group k of a seeded
  split into 5 groups).

Every protocol trains one model per ``--augmentation`` preset at the same budget (``--epochs`` x
``--iterations`` x the plan's batch): that is the ablation. Everything lives under ``--work``; a
finished model, prediction or evaluation is not redone, so an interrupted run resumes. The
``real_lge`` section of docs/RESULTS.md is rewritten from every evaluation found in ``--work``:
one row per model (mean ± SD, worst case, budget and wall time), the per-case table of
``--headline`` models and overlays of their three worst cases in docs/images.

    nice -n 10 python benchmarks/real_lge.py cine --augmentation spatial_intensity lge_dg --epochs 20
    nice -n 10 python benchmarks/real_lge.py finetune --parent cine_lge_dg_e20x50 --cases 1 --ft-epochs 4
    python benchmarks/real_lge.py --report-only          # rewrite the section from what is in --work
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import link_subset, markdown_table, publish_section  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
IMAGES = ROOT / "docs" / "images"
STRUCTURES = ("blood_pool", "myocardium", "lv")


def cli(module: str, argv: list[str], log: Path) -> float:
    """Run ``lgeseg.cli.<module>.main(argv)`` in a fresh interpreter, output to ``log``; returns seconds.

    Raises ``RuntimeError`` naming the log when the command fails.
    """
    code = f"import sys; from lgeseg.cli.{module} import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    start = time.perf_counter()
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        done = subprocess.run([sys.executable, "-c", code, *argv], stdout=out, stderr=subprocess.STDOUT, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"lgeseg.cli.{module} {' '.join(argv)} failed (exit {done.returncode}); see {log}")
    return time.perf_counter() - start


def case_ids(raw: Path) -> list[str]:
    """Case ids of a raw dataset (from ``labelsTr``), sorted."""
    return sorted(p.name[: -len(".nii.gz")] for p in (raw / "labelsTr").glob("*.nii.gz"))


def training_minutes(model_dir: Path) -> float:
    """Wall-clock minutes of training (first to last line of ``training_log.txt``, validation included)."""
    stamps = []
    for line in (model_dir / "training_log.txt").read_text().splitlines():
        try:
            stamps.append(datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f"))
        except ValueError:
            continue
    return (stamps[-1] - stamps[0]).total_seconds() / 60 if len(stamps) > 1 else float("nan")


def preprocess(work: Path, args: argparse.Namespace, source: str) -> list[Path]:
    """Preprocessed folders of a training source (``cine``, ``phantom`` or ``mixed``), made once.

    The phantom is preprocessed with the cine plans, so every protocol trains the same network.
    """
    cine_pre = work / "pre" / "cine"
    if not (cine_pre / "plans.json").is_file():
        cli("plan_and_preprocess", ["-d", str(args.cine), "-o", str(cine_pre), "--preset", args.preset],
            work / "logs" / "pre_cine.txt")
    if source == "cine":
        return [cine_pre]
    phantom_pre = work / "pre" / "phantom"
    if not (phantom_pre / "plans.json").is_file():
        raw = work / "raw_phantom"
        cli("synth", [str(raw), "--cases-per-center", str(args.phantom_cases)], work / "logs" / "synth.txt")
        datasets = [str(p) for p in sorted(raw.iterdir()) if (p / "dataset.json").is_file()]
        cli("plan_and_preprocess", [*sum((["-d", d] for d in datasets), []), "-o", str(phantom_pre),
                                    "--plans-from", str(cine_pre / "plans.json")], work / "logs" / "pre_phantom.txt")
    return [phantom_pre] if source == "phantom" else [cine_pre, phantom_pre]


def device_options(args: argparse.Namespace) -> list[str]:
    """``--device`` and ``--num-workers`` options of lgeseg_train / lgeseg_finetune, when given."""
    argv = ["--device", args.device] if args.device else []
    if args.num_workers is not None:
        argv += ["--num-workers", str(args.num_workers)]
    return argv


def model_name(source: str, augmentation: str, args: argparse.Namespace) -> str:
    """Folder name of a trained model, e.g. ``cine_lge_dg_e20x50``."""
    return f"{source}_{augmentation}_e{args.epochs}x{args.iterations}"


def train(work: Path, args: argparse.Namespace, source: str, augmentation: str) -> Path:
    """Train (or find) the model of ``source`` with ``augmentation``; returns its folder."""
    out = work / "models" / model_name(source, augmentation, args)
    if (out / "checkpoint_final.pt").is_file():
        return out
    folders = preprocess(work, args, source)
    argv = [*sum((["-p", str(f)] for f in folders), []), "-o", str(out), "--augmentation", augmentation,
            "--epochs", str(args.epochs), "--iterations-per-epoch", str(args.iterations), "--seed", str(args.seed)]
    argv += device_options(args)
    if (out / "checkpoint_latest.pt").is_file():
        argv.append("--continue")
    cli("train", argv, work / "logs" / f"train_{out.name}.txt")
    return out


def evaluate(work: Path, predictions: Path, raw: Path, evaluation: Path) -> None:
    """``lgeseg_evaluate`` of ``predictions`` against ``raw/labelsTr`` with lgeseg's label names.

    myops_lge's dataset.json names its labels ``LV_bloodpool`` / ``LV_myocardium``; scored under
    lgeseg's names (1 ``blood_pool``, 2 ``myocardium``) the whole LV (1 and 2) is scored too.
    """
    labels = work / "lgeseg_labels.json"
    labels.write_text(json.dumps({"labels": {"background": 0, "blood_pool": 1, "myocardium": 2}}))
    cli("evaluate", ["-p", str(predictions), "-r", str(raw), "--dataset-json", str(labels), "-o", str(evaluation)],
        work / "logs" / f"evaluate_{evaluation.name}.txt")


def predict_and_evaluate(work: Path, args: argparse.Namespace, model: Path, exclude: tuple[str, ...] = ()) -> Path:
    """Predict all myops_lge images with ``model`` (lgeseg_predict defaults) and evaluate; returns the eval folder.

    Cases in ``exclude`` (fine-tuning cases) are predicted but left out of ``metrics.csv``'s use in
    the report (recorded in ``run.json``).
    """
    evaluation = work / "eval" / model.name
    if (evaluation / "run.json").is_file():
        return evaluation
    predictions = work / "predictions" / model.name
    argv = ["-i", str(args.lge / "imagesTr"), "-o", str(predictions), "-m", str(model)]
    if args.device:
        argv += ["--device", args.device]
    predict_s = cli("predict", argv, work / "logs" / f"predict_{model.name}.txt")
    evaluate(work, predictions, args.lge, evaluation)
    recipe = json.loads((model / "model.json").read_text())["recipe"]
    plans = json.loads((model / "plans.json").read_text())
    info = {"model": model.name, "augmentation": recipe["augmentation"], "epochs": recipe["epochs"],
            "iterations_per_epoch": recipe["iterations_per_epoch"], "batch": recipe["batch_size"],
            "train_minutes": training_minutes(model), "predict_seconds": predict_s,
            "device": f"{recipe['device']} ({os.cpu_count()} cores, shared)", "patch": plans.get("patch_size"),
            "excluded_cases": list(exclude)}
    (evaluation / "run.json").write_text(json.dumps(info, indent=1))
    return evaluation


def finetune_folds(work: Path, args: argparse.Namespace, parent: Path, cases: int) -> list[Path]:
    """Fine-tune ``parent`` on ``cases`` myops patients per fold and evaluate on the others."""
    patients = case_ids(args.lge)
    order = [patients[i] for i in np.random.default_rng(args.seed).permutation(len(patients))]
    groups = [order[k :: args.folds] for k in range(args.folds)]
    from lgeseg.training.finetune import finetune_learning_rate

    parent_lr = json.loads((parent / "model.json").read_text())["recipe"]["learning_rate"]
    lr = finetune_learning_rate(parent_lr, args.ft_lr)  # in the name: a changed default is a new model
    evaluations = []
    for fold, group in enumerate(groups):
        chosen = group[:cases]
        name = f"{parent.name}_ft{cases}_f{fold}_e{args.ft_epochs}x{args.iterations}_lr{lr:g}"
        raw = link_subset(args.lge, work / "raw_ft" / name / "myops_lge", chosen)
        pre = work / "pre_ft" / name
        if not (pre / "plans.json").is_file():
            cli("plan_and_preprocess", ["-d", str(raw), "-o", str(pre), "--plans-from", str(parent)],
                work / "logs" / f"pre_{name}.txt")
        out = work / "models" / name
        if not (out / "checkpoint_final.pt").is_file():
            argv = ["-m", str(parent), "-p", str(pre), "-o", str(out), "--cases", str(cases),
                    "--epochs", str(args.ft_epochs), "--iterations-per-epoch", str(args.iterations),
                    "--seed", str(args.seed)]
            argv += device_options(args)
            argv += ["--lr", str(lr)]
            cli("finetune", argv, work / "logs" / f"finetune_{name}.txt")
        evaluations.append(predict_and_evaluate(work, args, out, tuple(chosen)))
    return evaluations


def load_rows(evaluation: Path) -> tuple[dict, list[dict]]:
    """``run.json`` and the evaluated rows of ``metrics.csv`` without the excluded (training) cases."""
    info = json.loads((evaluation / "run.json").read_text())
    with open(evaluation / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["case"] not in set(info["excluded_cases"])]
    return info, rows


def _dice(rows: list[dict], structure: str) -> np.ndarray:
    return np.array([float(r[f"dice_{structure}"]) for r in rows])


def _group(evaluations: list[Path]) -> dict[str, list[Path]]:
    """Fine-tuning folds (names with ``_f<k>_``) grouped under one name; every other model alone."""
    groups: dict[str, list[Path]] = {}
    for evaluation in evaluations:
        name = evaluation.name
        if re.search(r"_f\d+_", name):
            name = re.sub(r"_f\d+_", "_", name)
        groups.setdefault(name, []).append(evaluation)
    return {(f"{name} ({len(runs)} folds)" if len(runs) > 1 else name): runs for name, runs in groups.items()}


def summary_table(groups: dict[str, list[Path]]) -> list[str]:
    """One markdown row per model (or per set of fine-tuning folds)."""
    header = ["model", "augmentation", "test cases", "blood pool", "myocardium", "whole LV", "worst case (LV / myo)",
              "budget (iterations x batch)", "training wall time", "device"]
    table = []
    for name, evaluations in groups.items():
        infos, rows = zip(*(load_rows(e) for e in evaluations), strict=True)
        all_rows = [r for part in rows for r in part]
        stats = [f"{_dice(all_rows, s).mean():.3f} ± {_dice(all_rows, s).std():.3f}" for s in STRUCTURES]
        worst = min(all_rows, key=lambda r: float(r["dice_lv"]))
        info = infos[0]
        iterations = info["epochs"] * info["iterations_per_epoch"]
        minutes = [i["train_minutes"] for i in infos]
        wall = f"{minutes[0]:.1f} min" if len(minutes) == 1 else f"{np.mean(minutes):.1f} min per fold"
        table.append([name, info["augmentation"], len(all_rows), *stats,
                      f"{worst['case']} {float(worst['dice_lv']):.3f} / {float(worst['dice_myocardium']):.3f}",
                      f"{iterations} x {info['batch']}", wall, info["device"]])
    return markdown_table(header, table)


def per_case_table(evaluations: list[Path]) -> list[str]:
    """Cases as rows, the models' whole-LV / myocardium Dice as columns."""
    columns = [load_rows(e)[1] for e in evaluations]
    cases = sorted({r["case"] for rows in columns for r in rows})
    table = []
    for case in cases:
        cells = []
        for rows in columns:
            row = next((r for r in rows if r["case"] == case), None)
            cells.append("—" if row is None else f"{float(row['dice_lv']):.3f} / {float(row['dice_myocardium']):.3f}")
        table.append([case, *cells])
    return markdown_table(["case", *(f"{e.name} LV / myo" for e in evaluations)], table)


def worst_overlays(work: Path, args: argparse.Namespace, evaluation: Path, count: int = 3) -> list[Path]:
    """PNGs of the ``count`` worst cases (whole-LV Dice): reference and prediction on the fullest slice."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lgeseg.files.io import read_image, read_label

    _, rows = load_rows(evaluation)
    written = []
    for row in sorted(rows, key=lambda r: float(r["dice_lv"]))[:count]:
        case = row["case"]
        image, _ = read_image(args.lge / "imagesTr" / f"{case}_0000.nii.gz")
        reference, _ = read_label(args.lge / "labelsTr" / f"{case}.nii.gz")
        prediction, _ = read_label(work / "predictions" / evaluation.name / f"{case}.nii.gz")
        z = int((reference > 0).reshape(reference.shape[0], -1).sum(1).argmax())
        fig, axes = plt.subplots(1, 2, figsize=(7, 3.6))
        low, high = np.percentile(image[z], (1, 99))
        ys, xs = np.nonzero((reference[z] > 0) | (prediction[z] > 0))
        margin = 40  # voxels around reference and prediction
        for ax, seg, title in ((axes[0], reference, "reference"), (axes[1], prediction, "prediction")):
            ax.imshow(image[z], cmap="gray", vmin=low, vmax=high)
            for value, colour in ((1, "#ff3b30"), (2, "#34c759")):
                if (seg[z] == value).any():
                    ax.contour((seg[z] == value).astype(float), levels=[0.5], colors=colour, linewidths=0.8)
            ax.set_xlim(xs.min() - margin, xs.max() + margin)
            ax.set_ylim(ys.max() + margin, ys.min() - margin)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
        fig.suptitle(f"{evaluation.name}: {case} slice {z}, Dice LV {float(row['dice_lv']):.3f}, "
                     f"myo {float(row['dice_myocardium']):.3f} (red blood pool, green myocardium)", fontsize=8)
        fig.tight_layout()
        path = IMAGES / f"real_lge_worst_{evaluation.name}_{case}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(path)
    return written


def report(work: Path, args: argparse.Namespace) -> str:
    """The RESULTS.md section from every finished evaluation in ``work``."""
    evaluations = sorted(p.parent for p in (work / "eval").glob("*/run.json"))
    groups = _group(evaluations)
    text = ["## Real LGE (myops_lge, 25 patients, Shanghai): cine / phantom training and fine-tuning\n",
            "`python benchmarks/real_lge.py` (issue 12). Test set: the 25 real LGE patients of "
            "`../shared/data/myops_lge`, predicted with `lgeseg_predict` defaults (roi window, mirroring, the "
            "model's postprocessing) and scored with `lgeseg_evaluate` (3D Dice per patient). Planner preset "
            f"`{args.preset}` (patch 128 x 128, batch 8, features 16-256), recipe `default` (Adam 1e-3 constant, "
            "gradient clipping at 12, a third of the patches centred on foreground), seed 0. "
            "Fine-tuning rows (`lgeseg_finetune`, default blocks `encoder:5`; the name gives the number of "
            "training patients `ft<n>`, epochs x iterations and the learning rate `lr`): fold k of 5 trains on the "
            "first n patients of group k of a seeded split and is tested on all other patients; mean ± SD over "
            "the pooled test cases of the folds. Training wall time includes "
            "the per-epoch validation; the CPU was shared with other jobs, so minutes are an upper bound.\n",
            *summary_table(groups), ""]
    headline = [work / "eval" / name for name in args.headline if (work / "eval" / name / "run.json").is_file()]
    if headline:
        text += ["Per case (whole LV / myocardium Dice):\n", *per_case_table(headline), ""]
        for evaluation in headline:
            images = worst_overlays(work, args, evaluation)
            text.append(f"Three worst cases of `{evaluation.name}`:\n")
            text += [f"![{p.stem}](images/{p.name})" for p in images]
            text.append("")
    return "\n".join(text) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the chosen protocols and rewrite the ``real_lge`` section of docs/RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("protocols", nargs="*", metavar="PROTOCOL", help="cine, phantom, mixed and/or finetune")
    parser.add_argument("--augmentation", nargs="+", default=["lge_dg"], help="presets to train (the ablation)")
    parser.add_argument("--epochs", type=int, default=20, help="training epochs (default 20)")
    parser.add_argument("--iterations", type=int, default=50, help="iterations per epoch (default 50)")
    parser.add_argument("--preset", default="cpu", help="planner preset (default cpu)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num-workers", type=int, default=None,
                        help="batch-assembling threads of training (default: lgeseg_train's); torch threads "
                        "follow OMP_NUM_THREADS")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--phantom-cases", type=int, default=15, help="synthetic cases per center")
    parser.add_argument("--parent", default=None, help="model folder name under WORK/models to fine-tune")
    parser.add_argument("--cases", type=int, nargs="+", default=[1, 3], help="fine-tuning patients per fold")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--ft-epochs", type=int, default=4, help="fine-tuning epochs (x --iterations)")
    parser.add_argument("--ft-lr", type=float, default=None,
                        help="fine-tuning learning rate (default: lgeseg_finetune's; in the model names)")
    parser.add_argument("--headline", nargs="*", default=[], help="eval names with per-case tables and overlays")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "real_lge")
    parser.add_argument("--cine", type=Path, default=DATA / "acdc_cine")
    parser.add_argument("--lge", type=Path, default=DATA / "myops_lge")
    parser.add_argument("--report-only", action="store_true", help="only rewrite the RESULTS.md section")
    parser.add_argument("--no-write", action="store_true", help="print the section, leave docs/RESULTS.md alone")
    args = parser.parse_args(argv)
    unknown = set(args.protocols) - {"cine", "phantom", "mixed", "finetune"}
    if unknown:
        parser.exit(2, f"real_lge: unknown protocol(s) {sorted(unknown)}; choose from cine, phantom, mixed, finetune\n")
    if not args.lge.is_dir():
        parser.exit(1, f"real_lge: {args.lge} not found (the real LGE data is not handed out with the project)\n")
    work = args.work
    if not args.report_only:
        for protocol in args.protocols:
            if protocol == "finetune":
                if not args.parent:
                    parser.exit(2, "real_lge: finetune needs --parent MODEL_NAME (a folder under WORK/models)\n")
                for cases in args.cases:
                    finetune_folds(work, args, work / "models" / args.parent, cases)
                continue
            for augmentation in args.augmentation:
                model = train(work, args, protocol, augmentation)
                print(f"{model.name}: evaluated in {predict_and_evaluate(work, args, model)}", flush=True)
    publish_section(report(work, args), "real_lge", write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
