"""Build the shipped pretrained models (issue 23) from ``../shared/data``, measure them, pack them into the package.

Two models, each an ensemble of ``--members`` networks trained at the README budget (``cpu`` planner
preset, ``--epochs`` x ``--iterations`` steps of batch 8, lgeseg's default recipe):

* ``lge-lv-cine``: trained on the 60 ACDC cine volumes (Dijon) only; member k uses seed k. Every
  member, and the ensemble, is scored on all 25 myops_lge LGE patients (Shanghai), a center and a
  sequence it never saw: the stability table (mean, SD, worst seed, worst patient) of docs/RESULTS.md.
  Each member is also scored with its last weights (``--checkpoint latest``) instead of the weight
  average that the recipe makes the model, which measures what the averaging does on the same run.
* ``lge-lv``: trained on acdc_cine + myops_lge (the best general model). myops_lge is split into
  ``--members`` groups of patients (seeded); member k trains on cine + every group but k, so each
  patient is predicted by the member that never saw it: a cross-validated Dice. The shipped ensemble
  has all members.

Packing (``lgeseg/pretrained/<name>/``): each member as ``fold_<k>/`` with ``model.json`` (training
paths and case ids stripped), ``plans.json`` and ``checkpoint_final.pt`` holding only the network
weights in fp16; the ensemble's ``model_card.json`` (training data, budget, measured Dice, SHA-256 of
every weight file, size, intended use and licence). Everything else lives under ``--work``; finished
steps are not redone, so an interrupted build resumes.

    nice python benchmarks/build_pretrained.py                      # both models, ~1.5 h on 2 CPU cores
    python benchmarks/build_pretrained.py --models lge-lv-cine --no-pack
    python benchmarks/build_pretrained.py --report-only             # rewrite docs from --work
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import link_subset, markdown_table, publish_section  # noqa: E402
from real_lge import case_ids, cli, evaluate, training_minutes  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
PRETRAINED = ROOT / "lgeseg" / "pretrained"
STRUCTURES = ("blood_pool", "myocardium", "lv")
#: Label and channel names of the shipped models (label values as every lgeseg dataset: 1 and 2).
SHIPPED_LABELS = {"background": 0, "blood_pool": 1, "myocardium": 2}
SHIPPED_CHANNELS = {"0": "LGE"}
LICENCE = ("lgeseg code: Apache-2.0. Weights: research use only, not for clinical decisions; trained on ACDC "
           "(CC BY-NC-SA 4.0){myops}, so non-commercial terms apply to the weights.")
DESCRIPTIONS = {
    "lge-lv-cine": "LV blood pool + myocardium in short-axis LGE MRI, trained on cine MRI only (ACDC, Dijon); "
                   "for centers whose LGE must not be in the training data",
    "lge-lv": "LV blood pool + myocardium in short-axis LGE MRI, trained on cine (ACDC) + LGE (MyoPS, Shanghai): "
              "the best general model",
}


def preprocess(work: Path, args: argparse.Namespace) -> Path:
    """The cine plans and preprocessed cine (``cpu`` preset), made once; returns the folder."""
    pre = work / "pre" / "cine"
    if not (pre / "plans.json").is_file():
        cli("plan_and_preprocess", ["-d", str(args.cine), "-o", str(pre), "--preset", "cpu"],
            work / "logs" / "pre_cine.txt")
    return pre


def myops_groups(args: argparse.Namespace) -> list[list[str]]:
    """myops_lge patients in ``--members`` groups (seeded by ``--split-seed``)."""
    patients = case_ids(args.lge)
    order = [patients[i] for i in np.random.default_rng(args.split_seed).permutation(len(patients))]
    return [sorted(order[k :: args.members]) for k in range(args.members)]


def preprocess_lge_subset(work: Path, args: argparse.Namespace, cine_pre: Path, k: int, cases: list[str]) -> Path:
    """myops_lge without group ``k``, preprocessed with the cine plans (so one network serves both)."""
    pre = work / "pre" / f"myops_not{k}"
    if not (pre / "plans.json").is_file():
        raw = link_subset(args.lge, work / "raw" / f"myops_not{k}" / "myops_lge", cases)
        cli("plan_and_preprocess", ["-d", str(raw), "-o", str(pre), "--plans-from", str(cine_pre / "plans.json")],
            work / "logs" / f"pre_myops_not{k}.txt")
    return pre


def train_member(work: Path, args: argparse.Namespace, name: str, k: int, folders: list[Path]) -> Path:
    """Train member ``k`` of ``name`` (seed k) on ``folders`` at the README budget; returns its folder."""
    out = work / "members" / name / f"fold_{k}"
    if (out / "checkpoint_final.pt").is_file():
        return out
    argv = [*sum((["-p", str(f)] for f in folders), []), "-o", str(out), "--epochs", str(args.epochs),
            "--iterations-per-epoch", str(args.iterations), "--seed", str(k), "--device", "cpu"]
    if (out / "checkpoint_latest.pt").is_file():
        argv.append("--continue")
    cli("train", argv, work / "logs" / f"train_{name}_{k}.txt")
    return out


def predict(work: Path, args: argparse.Namespace, label: str, models: list[Path], images: Path,
            checkpoint: str = "final") -> Path:
    """Predict ``images`` with the ensemble of ``models`` (lgeseg_predict defaults) and score it on myops_lge."""
    evaluation = work / "eval" / label
    if (evaluation / "metrics.csv").is_file():
        return evaluation
    predictions = work / "predictions" / label
    argv = ["-i", str(images), "-o", str(predictions), "--device", "cpu", "--checkpoint", checkpoint]
    argv += sum((["-m", str(m)] for m in models), [])
    cli("predict", argv, work / "logs" / f"predict_{label}.txt")
    evaluate(work, predictions, args.lge, evaluation)
    return evaluation


def build_cine(work: Path, args: argparse.Namespace) -> dict:
    """Train, score and describe ``lge-lv-cine``; returns its measurements."""
    cine_pre = preprocess(work, args)
    members = [train_member(work, args, "lge-lv-cine", k, [cine_pre]) for k in range(args.members)]
    images = args.lge / "imagesTr"
    scores = {"members": [], "members_last_weights": []}
    for k, member in enumerate(members):
        scores["members"].append(str(predict(work, args, f"lge-lv-cine_{k}", [member], images)))
        scores["members_last_weights"].append(str(predict(work, args, f"lge-lv-cine_{k}_last", [member], images,
                                                          checkpoint="latest")))
    scores["ensemble"] = str(predict(work, args, "lge-lv-cine_ensemble", members, images))
    return {"members": [str(m) for m in members], "evaluations": scores,
            "test": "all 25 myops_lge patients (LGE, Shanghai; never in training)"}


def build_lge(work: Path, args: argparse.Namespace) -> dict:
    """Train, cross-validate and describe ``lge-lv``; returns its measurements."""
    cine_pre = preprocess(work, args)
    groups = myops_groups(args)
    members, scores = [], []
    for k, group in enumerate(groups):
        rest = sorted(c for g in groups if g is not group for c in g)
        lge_pre = preprocess_lge_subset(work, args, cine_pre, k, rest)
        members.append(train_member(work, args, "lge-lv", k, [cine_pre, lge_pre]))
        held_out = link_subset(args.lge, work / "raw" / f"myops_only{k}" / "myops_lge", group)
        scores.append(str(predict(work, args, f"lge-lv_{k}_heldout", [members[-1]], held_out / "imagesTr")))
    return {"members": [str(m) for m in members], "evaluations": {"members": scores},
            "groups": groups, "test": "myops_lge patients held out of each member (3-fold cross-validation)"}


def read_metrics(evaluation: str | Path) -> list[dict]:
    """Per-case rows of ``metrics.csv`` (Dice as floats)."""
    import csv

    with open(Path(evaluation) / "metrics.csv") as f:
        return [{"case": r["case"], **{s: float(r[f"dice_{s}"]) for s in STRUCTURES}} for r in csv.DictReader(f)]


def summary(rows: list[dict]) -> dict:
    """Mean, SD and worst case of each structure over ``rows``."""
    out = {}
    for s in STRUCTURES:
        values = np.array([r[s] for r in rows])
        worst = rows[int(np.argmin(values))]
        out[s] = {"mean": round(float(values.mean()), 4), "sd": round(float(values.std(ddof=1)), 4),
                  "worst": round(float(values.min()), 4), "worst_case": worst["case"]}
    out["cases"] = len(rows)
    return out


def pack_member(member: Path, target: Path) -> dict:
    """Copy one member into the package: fp16 network weights, model.json without paths or case ids."""
    import torch

    from lgeseg.model.archive import file_sha256
    from lgeseg.model.folder import load_checkpoint, save_checkpoint

    target.mkdir(parents=True, exist_ok=True)
    payload = load_checkpoint(member / "checkpoint_final.pt")
    weights = {k: (v.half() if v.is_floating_point() else v) for k, v in payload["network"].items()}
    save_checkpoint(target / "checkpoint_final.pt", {"network": weights, "epoch": payload["epoch"],
                                                     "config": payload["config"], "weights_dtype": "float16"})
    info = json.loads((member / "model.json").read_text())
    info["extras"].pop("preprocessed", None)
    card = info.get("model_card", {})
    card.get("training_data", {}).pop("sources", None)
    # lgeseg's label names and an LGE channel (ACDC's dataset.json names them LV_bloodpool and "cine")
    plans = json.loads((member / "plans.json").read_text())
    plans["labels"] = info["labels"] = dict(SHIPPED_LABELS)
    info["channel_names"] = dict(SHIPPED_CHANNELS)
    card.get("task", {}).update(labels=dict(SHIPPED_LABELS), channels=dict(SHIPPED_CHANNELS))
    (target / "model.json").write_text(json.dumps(info, indent=1) + "\n")
    (target / "plans.json").write_text(json.dumps(plans, indent=1) + "\n")
    parameters = sum(v.numel() for v in weights.values() if torch.is_tensor(v))
    return {"folder": target.name, "seed": info["recipe"]["seed"], "parameters": parameters,
            "sha256": file_sha256(target / "checkpoint_final.pt")}


def pack(name: str, built: dict, args: argparse.Namespace) -> Path:
    """Write ``lgeseg/pretrained/<name>/`` (members and model_card.json) from the built members."""
    target = PRETRAINED / name
    staging = PRETRAINED / f".{name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    members = [pack_member(Path(m), staging / f"fold_{k}") for k, m in enumerate(built["members"])]
    plans = json.loads((staging / "fold_0" / "plans.json").read_text())
    info = json.loads((staging / "fold_0" / "model.json").read_text())
    recipe = info["recipe"]
    size = sum(p.stat().st_size for p in staging.rglob("*") if p.is_file())
    card = {
        "model": name, "description": DESCRIPTIONS[name], "lgeseg_version": info["lgeseg_version"],
        "members": len(members), "size_mb": round(size / 1e6, 2),
        "task": {"labels": info["labels"], "channels": info["channel_names"], "network": "2D U-Net ensemble",
                 "target_spacing_mm_zyx": plans["target_spacing"], "patch_size": plans["patch_size"],
                 "features": plans["topology"]["features_per_stage"], "postprocessing": info["postprocessing"]},
        "training_data": training_data(name, built),
        "budget": {"per_member": f"{recipe['epochs']} epochs x {recipe['iterations_per_epoch']} iterations x batch "
                                 f"{recipe['batch_size']}", "recipe": recipe["name"],
                   "augmentation": recipe["augmentation"], "ema_fraction": recipe.get("ema_fraction"),
                   "device": "cpu (2 cores)",
                   "training_minutes": [round(training_minutes(Path(m)), 1) for m in built["members"]]},
        "validation": measured(built),
        "intended_use": "Research use: LV blood pool (1) and myocardium (2) in short-axis LGE MRI. Not a medical "
                        "device; a person checks every result (lgeseg_report). Accuracy at a new center is unknown "
                        "until measured there (lgeseg_evaluate); lgeseg_adapt and lgeseg_finetune adapt it.",
        "licence": LICENCE.format(myops=" and MyoPS 2020 (challenge terms)" if name == "lge-lv" else ""),
        "weights": members,
        "built_by": "benchmarks/build_pretrained.py",
    }
    (staging / "model_card.json").write_text(json.dumps(card, indent=1) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def training_data(name: str, built: dict) -> dict:
    data = {"datasets": ["acdc_cine: 60 cine volumes (30 patients, ED+ES), University Hospital of Dijon, "
                         "1.5/3 T Siemens"], "validation_split": "fold 0 of 5 of each member's data"}
    if name == "lge-lv":
        sizes = sorted({sum(len(g) for g in built["groups"]) - len(g) for g in built["groups"]})
        data["datasets"].append("myops_lge: LGE of MyoPS 2020, Shanghai Renji Hospital, Philips 1.5 T: "
                                f"{'-'.join(str(n) for n in sizes)} of the 25 patients per member (all but one "
                                "third, a different third for each)")
    return data


def measured(built: dict) -> dict:
    evaluations = built["evaluations"]
    result: dict = {"what": "3D Dice per structure (lv = blood pool + myocardium), "
                            "after lgeseg_predict's defaults (mirroring, roi window, postprocessing)",
                    "test": built["test"]}
    if "ensemble" in evaluations:
        result["ensemble"] = summary(read_metrics(evaluations["ensemble"]))
        result["members"] = [summary(read_metrics(e)) for e in evaluations["members"]]
    else:  # cross-validation: every patient predicted by the member that did not see it
        rows = [r for e in evaluations["members"] for r in read_metrics(e)]
        result["cross_validated"] = summary(rows)
    return result


def stability_section(work: Path) -> str:
    """The docs/RESULTS.md section: per-member and ensemble Dice of lge-lv-cine, and lge-lv's CV Dice."""
    lines = []
    built = json.loads((work / "built.json").read_text())
    if "lge-lv-cine" in built:
        ev = built["lge-lv-cine"]["evaluations"]
        rows = []
        for label, paths in (("weight average (model)", ev["members"]), ("last weights", ev["members_last_weights"])):
            for k, path in enumerate(paths):
                s = summary(read_metrics(path))
                rows.append([f"seed {k}", label] + [f"{s[x]['mean']:.3f} ± {s[x]['sd']:.3f}" for x in STRUCTURES]
                            + [f"{s['lv']['worst']:.3f} ({s['lv']['worst_case']})",
                               f"{s['myocardium']['worst']:.3f}"])
            means = [[summary(read_metrics(p))[x]["mean"] for p in paths] for x in STRUCTURES]
            rows.append([f"mean of {len(paths)} seeds", label] + [f"{np.mean(m):.3f} (SD {np.std(m, ddof=1):.3f}, "
                                                                 f"worst {np.min(m):.3f})" for m in means] + ["", ""])
        s = summary(read_metrics(ev["ensemble"]))
        rows.append(["ensemble (shipped)", "weight average"] + [f"{s[x]['mean']:.3f} ± {s[x]['sd']:.3f}"
                                                               for x in STRUCTURES]
                    + [f"{s['lv']['worst']:.3f} ({s['lv']['worst_case']})", f"{s['myocardium']['worst']:.3f}"])
        lines += ["`lge-lv-cine`: trained on acdc_cine only (README budget per member), scored on all 25 "
                  "myops_lge patients. Mean ± SD over patients; worst patient.", "",
                  *markdown_table(["model", "weights", "blood pool", "myocardium", "whole LV", "worst patient LV",
                                   "worst patient myocardium"], rows), ""]
    if "lge-lv" in built:
        s = summary([r for e in built["lge-lv"]["evaluations"]["members"] for r in read_metrics(e)])
        lines += ["`lge-lv`: cine + myops_lge, 3-fold cross-validation over the myops_lge patients (each patient "
                  "predicted by the member that did not train on it):", "",
                  *markdown_table(["structure", "mean ± SD", "worst patient"],
                                  [[x, f"{s[x]['mean']:.3f} ± {s[x]['sd']:.3f}",
                                    f"{s[x]['worst']:.3f} ({s[x]['worst_case']})"] for x in STRUCTURES]), ""]
    return "\n".join(lines)


def shipped_table() -> str:
    """The rows of docs/pretrained.md's table, from the packed models' cards."""
    rows = []
    for name in ("lge-lv", "lge-lv-cine"):
        path = PRETRAINED / name / "model_card.json"
        if not path.is_file():
            continue
        card = json.loads(path.read_text())
        measured = card["validation"]
        s = measured.get("ensemble") or measured["cross_validated"]
        how = "ensemble, all 25 MyoPS patients" if "ensemble" in measured else "3-fold cross-validation on MyoPS"
        data = "ACDC cine (Dijon) + MyoPS LGE (Shanghai)" if name == "lge-lv" else "ACDC cine (Dijon) only"
        rows.append(f"| `{name}` | {data} | LV {s['lv']['mean']:.3f}, myocardium {s['myocardium']['mean']:.3f}, "
                    f"worst patient LV {s['lv']['worst']:.3f} ({how}) | {card['size_mb']:.1f} MB |")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=("lge-lv-cine", "lge-lv"), default=["lge-lv-cine", "lge-lv"])
    parser.add_argument("--members", type=int, default=3, help="networks per ensemble (seeds; folds of myops_lge)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--split-seed", type=int, default=0, help="seed of lge-lv's myops_lge patient groups")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "pretrained")
    parser.add_argument("--cine", type=Path, default=DATA / "acdc_cine")
    parser.add_argument("--lge", type=Path, default=DATA / "myops_lge")
    parser.add_argument("--no-pack", action="store_true", help="measure only; leave lgeseg/pretrained alone")
    parser.add_argument("--report-only", action="store_true", help="only rewrite the docs section from --work")
    parser.add_argument("--no-write", action="store_true", help="print the section, leave docs/RESULTS.md alone")
    args = parser.parse_args(argv)
    work = args.work.resolve()
    record = work / "built.json"
    built = json.loads(record.read_text()) if record.is_file() else {}
    if not args.report_only:
        for name in args.models:
            built[name] = build_cine(work, args) if name == "lge-lv-cine" else build_lge(work, args)
            record.write_text(json.dumps(built, indent=1))
            if not args.no_pack:
                print(f"packed {pack(name, built[name], args)}")
    publish_section(stability_section(work), "pretrained_stability", write=not args.no_write)
    publish_section(shipped_table(), "pretrained_table", write=not args.no_write, path=ROOT / "docs" / "pretrained.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
