"""Unlabeled adaptation on real LGE (issue 23): ``lgeseg_adapt`` against its starting model and 1-case fine-tuning.

The starting model is a member of ``lge-lv-cine`` as ``benchmarks/build_pretrained.py`` trains it
(cine only, README budget). The new center is myops_lge: its 25 images are handed to
``lgeseg_adapt`` without labels (the labels only score the result), with the cine training data as
``--source``. Compared on all 25 patients:

* the starting model;
* the adapted model (``lgeseg_adapt`` defaults: two rounds of self-training, unsure voxels masked, cases
  with other quality flags dropped, all blocks, 5 x 100 steps a round), and the other settings of ``VARIANTS``;
* 1-case fine-tuning (``lgeseg_finetune --cases 1 --lr 1e-4``, 3 x 50 steps), 5 folds of one patient each,
  scored on the other 24 patients of each fold.

    OMP_NUM_THREADS=1 python benchmarks/unlabeled_adaptation.py                # 3 members, ~15 min each
    python benchmarks/unlabeled_adaptation.py --variants default one_round_qc one_round_mask
    python benchmarks/unlabeled_adaptation.py --report-only
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import link_subset, markdown_table, publish_section  # noqa: E402
from build_pretrained import STRUCTURES, predict, read_metrics, summary  # noqa: E402
from real_lge import case_ids, cli  # noqa: E402

from lgeseg.workflows.self_training import is_finished  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


#: ``lgeseg_adapt`` settings compared (``--variants``): name -> extra options. ``default`` is what a user gets
#: (two rounds, unsure voxels masked); ``one_round_qc`` is the default before it.
VARIANTS = {"default": [],
            "one_round_qc": ["--rounds", "1", "--no-mask-uncertain"],
            "one_round_keep_flagged": ["--rounds", "1", "--no-mask-uncertain", "--keep-flagged"],
            "one_round_mask": ["--rounds", "1"],
            "two_rounds_keep_flagged": ["--no-mask-uncertain", "--keep-flagged"]}
#: Row labels of the variants in the published table.
VARIANT_LABELS = {"default": "lgeseg_adapt defaults (2 rounds, unsure voxels masked)",
                  "one_round_qc": "1 round, flagged cases dropped (earlier default)",
                  "one_round_keep_flagged": "1 round, --keep-flagged",
                  "one_round_mask": "1 round, unsure voxels masked",
                  "two_rounds_keep_flagged": "2 rounds, --keep-flagged, no masking"}


def adapt(work: Path, args: argparse.Namespace, teacher: Path, variant: str) -> Path:
    """``lgeseg_adapt`` of ``teacher`` on the myops_lge images (no labels), cine as source; the output folder."""
    suffix = "" if variant == "default" else f"_{variant}"
    out = work / "adapted" / f"{teacher.parent.name}_{teacher.name}{suffix}"
    if is_finished(out):
        return out
    cli("adapt", ["-m", str(teacher), "-i", str(args.lge / "imagesTr"), "-o", str(out), "-s", str(args.source),
                  "--device", "cpu", *VARIANTS[variant]], work / "logs" / f"adapt_{out.name}.txt")
    return out


def finetune_one_case(work: Path, args: argparse.Namespace, teacher: Path) -> list[Path]:
    """1-case fine-tuning of ``teacher`` on 5 folds; evaluations on the other patients of each fold."""
    patients = case_ids(args.lge)
    order = [patients[i] for i in np.random.default_rng(0).permutation(len(patients))]
    evaluations = []
    for fold in range(args.folds):
        case = order[fold]
        name = f"{teacher.parent.name}_{teacher.name}_ft1_f{fold}"
        pre = work / "pre_ft" / name
        if not (pre / "plans.json").is_file():
            raw = link_subset(args.lge, work / "raw_ft" / name / "myops_lge", [case])
            cli("plan_and_preprocess", ["-d", str(raw), "-o", str(pre), "--plans-from", str(teacher)],
                work / "logs" / f"pre_{name}.txt")
        out = work / "finetuned" / name
        if not (out / "checkpoint_final.pt").is_file():
            cli("finetune", ["-m", str(teacher), "-p", str(pre), "-o", str(out), "--cases", "1", "--lr", "1e-4",
                             "--epochs", "3", "--iterations-per-epoch", "50", "--device", "cpu"],
                work / "logs" / f"finetune_{name}.txt")
        others = link_subset(args.lge, work / "raw_ft" / name / "others", [p for p in patients if p != case])
        evaluations.append(predict(work, args, name, [out], others / "imagesTr"))
    return evaluations


def _row(start: str, label: str, paths: list[str]) -> list[str]:
    s = summary([r for p in paths for r in read_metrics(Path(p))])
    return [start, label] + [f"{s[x]['mean']:.3f} ± {s[x]['sd']:.3f}" for x in STRUCTURES] + [f"{s['lv']['worst']:.3f}"]


def _myocardium(path: str) -> float:
    return summary(read_metrics(Path(path)))["myocardium"]["mean"]


def section(results: dict) -> str:
    """The docs/RESULTS.md section from the recorded evaluations: every model, then each variant's gain."""
    rows, gains = [], {}
    for start, entry in results.items():
        rows.append(_row(start, "starting model (cine only)", [entry["teacher"]]))
        for variant, adapted in entry.get("variants", {}).items():
            rows.append(_row(start, VARIANT_LABELS.get(variant, variant), [adapted["evaluation"]]))
            gains.setdefault(variant, []).append(_myocardium(adapted["evaluation"]) - _myocardium(entry["teacher"]))
        if entry.get("finetuned"):
            rows.append(_row(start, "1-case fine-tuning (5 folds, other 24 scored)", entry["finetuned"]))
    gain_rows = [[VARIANT_LABELS.get(v, v), str(len(g)), f"{np.mean(g):+.3f}", f"{min(g):+.3f}",
                  ", ".join(f"{x:+.3f}" for x in g)] for v, g in gains.items()]
    return "\n".join(["Unlabeled adaptation on myops_lge (`benchmarks/unlabeled_adaptation.py`): 3D Dice, mean ± SD "
                      "over patients; all 25 patients except for the fine-tuning rows. The adaptation saw the 25 "
                      "images without labels (the labels only score it), which is how a hospital would use it. "
                      "Each start is one member of `lge-lv-cine` (cine only, README budget).", "",
                      *markdown_table(["start", "model", "blood pool", "myocardium", "whole LV", "worst LV"], rows),
                      "", "Myocardium gain of each setting over the model it starts from, per member:", "",
                      *markdown_table(["setting", "members", "mean gain", "smallest gain", "per member"], gain_rows),
                      ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, nargs="+", default=[0, 1, 2], help="lge-lv-cine members to start from")
    parser.add_argument("--variants", nargs="+", default=["default"], choices=sorted(VARIANTS),
                        help="lgeseg_adapt settings to compare (default: the defaults only)")
    parser.add_argument("--finetune-members", type=int, nargs="*", default=[0],
                        help="members whose 1-case fine-tuning is measured too (5 folds each)")
    parser.add_argument("--folds", type=int, default=5, help="1-case fine-tuning folds")
    parser.add_argument("--pretrained-work", type=Path, default=ROOT / "runs" / "pretrained",
                        help="build_pretrained.py's work folder (members and preprocessed cine)")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "unlabeled_adaptation")
    parser.add_argument("--lge", type=Path, default=DATA / "myops_lge")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    work = args.work.resolve()
    args.source = args.pretrained_work.resolve() / "pre" / "cine"
    record = work / "results.json"
    results = json.loads(record.read_text()) if record.is_file() else {}
    if not args.report_only:
        images = args.lge / "imagesTr"
        for k in args.members:
            teacher = args.pretrained_work.resolve() / "members" / "lge-lv-cine" / f"fold_{k}"
            entry = results.setdefault(f"lge-lv-cine member {k}", {})
            entry["teacher"] = str(predict(work, args, f"teacher_{k}", [teacher], images))
            for variant in args.variants:
                adapted = adapt(work, args, teacher, variant)
                entry.setdefault("variants", {})[variant] = {
                    "evaluation": str(predict(work, args, f"adapted_{adapted.name}", [adapted], images)),
                    "kept": json.loads((adapted / "adaptation.json").read_text())["kept"]}
            if k in args.finetune_members:
                entry["finetuned"] = [str(p) for p in finetune_one_case(work, args, teacher)]
            work.mkdir(parents=True, exist_ok=True)
            record.write_text(json.dumps(results, indent=1))
    text = section(results)
    publish_section(text, "unlabeled_adaptation", write=not args.no_write)
    publish_section(text, "unlabeled_adaptation", write=not args.no_write, path=ROOT / "docs" / "adaptation.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
