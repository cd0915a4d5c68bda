"""Do the per-case quality flags of ``lgeseg_predict`` point at the bad cases? Spearman of score vs Dice.

For each predictions folder (written by ``lgeseg_predict``, so it holds ``qc.json``) and a reference
folder, computes every case's Dice (blood pool, myocardium, whole LV) and the Spearman rank
correlation (``scipy.stats.spearmanr``) of the quality score, and of the mirror disagreement alone,
with those Dice values; a good flag correlates negatively (higher score, lower Dice). With
``--model`` and ``--images`` it first predicts the images with lgeseg's own predictor (mirroring on,
default window; only missing outputs); ``--model`` alone only names the model in the heading. Writes
the docs/RESULTS.md section "Quality flags on real LGE" (unless --no-write).

    python benchmarks/qc_correlation.py --images ../shared/data/myops_lge/imagesTr \\
        --reference ../shared/data/myops_lge --model MODEL_DIR --predictions runs/qc/myops_cine

The thresholds of ``lgeseg.inference.quality`` were set from anatomy (see its docstring), not from
these cases; this script only measures them.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np
from _common import markdown_table, publish_section
from scipy.stats import spearmanr

from lgeseg.evaluation.metrics import dice, pair_cases
from lgeseg.files import io
from lgeseg.inference import predict_folder
from lgeseg.inference.quality import CaseQuality, assess_segmentation, read_quality_report

DICE_KEYS = ("blood_pool", "myocardium", "whole_lv")
LABELS = {"blood_pool": 1, "myocardium": 2, "whole_lv": (1, 2)}


def case_rows(pred_dir: Path, ref_dir: Path) -> list[dict]:
    """One row per predicted case: Dice per structure and the case's quality record.

    Records come from ``pred_dir/qc.json``; cases without one are assessed from the label map
    alone (no mirror disagreement).
    """
    records = {r.case_id: r for r in read_quality_report(pred_dir)}
    rows = []
    for case, pred_path, ref_path in pair_cases(pred_dir, ref_dir)[0]:
        pred, geometry = io.read_label(pred_path)
        ref, _ = io.read_label(ref_path)
        quality = records.get(case) or assess_segmentation(pred, geometry.spacing, case)
        rows.append({"case": case, "quality": quality,
                     **{key: dice(pred, ref, LABELS[key]) for key in DICE_KEYS}})
    return rows


def correlations(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Spearman rho and p of the score and of the mirror disagreement with each Dice."""
    out: dict[str, dict[str, float]] = {}
    for signal in ("score", "mirror_disagreement"):
        values = np.array([getattr(r["quality"], signal) for r in rows], float)
        for key in DICE_KEYS:
            dices = np.array([r[key] for r in rows], float)
            ok = ~np.isnan(values)
            if ok.sum() < 3 or np.ptp(values[ok]) == 0 or np.ptp(dices[ok]) == 0:
                out.setdefault(signal, {})[key] = math.nan
                continue
            result = spearmanr(values[ok], dices[ok])
            out.setdefault(signal, {})[key] = float(result.statistic)
            out[signal][f"{key}_p"] = float(result.pvalue)
    return out


def _fmt(value: float, digits: int = 3) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def _p_value(p: float) -> str:
    return "< 0.001" if p < 0.001 else _fmt(p)


def _reasons(quality: CaseQuality) -> str:
    return ", ".join(quality.reasons) or "-"


def describe(name: str, rows: list[dict], seconds: float | None) -> str:
    """Markdown block of one predictions folder: correlations, flagged vs unflagged, per-case table."""
    corr = correlations(rows)
    flagged = [r for r in rows if r["quality"].flagged]
    kept = [r for r in rows if not r["quality"].flagged]
    worst = sorted(rows, key=lambda r: r["myocardium"])[: max(1, len(rows) // 4)]
    lines = [f"### {name}", ""]
    if seconds is not None:
        lines += [f"Prediction of {len(rows)} cases took {seconds:.0f} s (CPU, 2 shared cores, mirroring on).", ""]
    lines += markdown_table(
        ["signal", "rho vs blood pool Dice", "rho vs myocardium Dice", "rho vs whole-LV Dice"],
        ([signal, *(f"{_fmt(corr[signal][k])} (p {_p_value(corr[signal].get(k + '_p', math.nan))})"
                    for k in DICE_KEYS)] for signal in ("score", "mirror_disagreement")), spaced_rule=True)
    lines += ["", *markdown_table(
        ["cases", "n", "blood pool Dice", "myocardium Dice", "whole-LV Dice"],
        ([label, len(group), *(_fmt(float(np.mean([r[k] for r in group]))) if group else "n/a" for k in DICE_KEYS)]
         for label, group in (("flagged", flagged), ("not flagged", kept), ("all", rows))), spaced_rule=True)]
    hits = sum(r["quality"].flagged for r in worst)
    lines += ["", f"Of the {len(worst)} cases with the lowest myocardium Dice (worst quarter), {hits} are flagged.",
              "", *markdown_table(
                  ["case", "blood pool", "myocardium", "whole LV", "score", "mirror disagreement", "flags"],
                  ([r["case"], *(f"{r[k]:.3f}" for k in DICE_KEYS), f"{r['quality'].score:.3f}",
                    _fmt(r["quality"].mirror_disagreement), _reasons(r["quality"])]
                   for r in sorted(rows, key=lambda r: -r["quality"].score)), spaced_rule=True)]
    return "\n".join(lines) + "\n\n"


def _model_note(model_dir: Path) -> str:
    info = json.loads((model_dir / "model.json").read_text())
    recipe = info.get("recipe", {})
    return (f"model `{model_dir.name}` trained on {', '.join(info.get('datasets', []))}, "
            f"{recipe.get('epochs')} epochs x {recipe.get('iterations_per_epoch')} iterations x batch "
            f"{recipe.get('batch_size')}, augmentation {recipe.get('augmentation')}, device "
            f"{info.get('extras', {}).get('device', recipe.get('device'))}")


def main(argv: list[str] | None = None) -> int:
    """Predict (optionally), score and write the RESULTS.md section; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", action="append", required=True,
                        help="lgeseg_predict output folder (repeat for several models)")
    parser.add_argument("--reference", required=True, help="reference labels folder or raw dataset")
    parser.add_argument("--model", action="append", default=[],
                        help="model folder of each --predictions (same order): named in the heading, and with "
                             "--images used to predict first")
    parser.add_argument("--images", default=None, help="images to predict with --model (missing outputs only)")
    parser.add_argument("--name", action="append", default=[], help="heading per predictions folder")
    parser.add_argument("--no-write", action="store_true", help="print only, do not touch docs/RESULTS.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if (args.model or args.images) and len(args.model) != len(args.predictions):
        parser.error("give one --model per --predictions (--images needs them)")
    blocks = []
    for index, pred in enumerate(args.predictions):
        pred_dir, seconds = Path(pred), None
        name = args.name[index] if index < len(args.name) else pred_dir.name
        if args.images:
            start = time.perf_counter()
            if predict_folder(args.images, pred_dir, [args.model[index]], device="cpu"):  # [] when all existed
                seconds = time.perf_counter() - start
        if args.model:
            name = f"{name}: {_model_note(Path(args.model[index]))}"
        blocks.append(describe(name, case_rows(pred_dir, Path(args.reference)), seconds))
    intro = ("Does `lgeseg_predict`'s quality report (docs/inference.md, `qc.csv`) point at the bad cases of a "
             "new center? Spearman rank correlation of the combined score, and of the mirror (flip TTA) "
             "disagreement alone, with each case's Dice on real LGE (`benchmarks/qc_correlation.py`; "
             f"reference `{Path(args.reference).name}`). Negative rho: higher score, lower Dice. The thresholds "
             "come from anatomy, not from these cases.\n\n")
    publish_section("## Quality flags on real LGE\n\n" + intro + "".join(blocks), "qc_correlation",
                    write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
