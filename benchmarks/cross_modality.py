"""Cine-to-LGE transfer: fine-tune a model trained on real cine MRI on a few synthetic LGE cases.

The paper's transfer learning (section 2.4) starts from a model of another center; this starts from
another *modality*: a model trained on ``../shared/data/acdc_cine`` (``benchmarks/train_accuracy.py
acdc``). For each unseen synthetic LGE center (same data and seeds as ``finetune_sweep.py``), with the
cine model's plans:

* **cine model, no fine-tuning**: the cine model applied to LGE as is;
* **from scratch**: a randomly initialised network of the same plans trained on the same target
  cases for the same iterations (the fair comparison: what pretraining adds);
* **cine -> LGE**: the cine model fine-tuned on those cases (``--train``, default all blocks).

Every model is scored on held-out cases of the target center (mean Dice of blood pool and
myocardium). Writes a docs/RESULTS.md section.

    python benchmarks/train_accuracy.py acdc --minutes 15          # prints the model folder
    python benchmarks/cross_modality.py --cine-model runs/accuracy_acdc/model_XXXX
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from _common import (
    add_synthetic_center_options,
    bp_myo_dice,
    finetune_and_score,
    markdown_table,
    publish_section,
    synthetic_centers,
    trained,
)

from lgeseg.core.device import resolve_device
from lgeseg.model.folder import read_model_metadata, write_model_metadata
from lgeseg.network import build_unet
from lgeseg.training import save_checkpoint
from lgeseg.workflows.plan_and_preprocess import plan_and_preprocess


def untrained_copy(model_dir: Path, out: Path, seed: int) -> Path:
    """A model folder with ``model_dir``'s plans and metadata but freshly initialised weights."""
    if not trained(out):
        plan, info = read_model_metadata(model_dir)
        fresh = dataclasses.replace(info, datasets=(), extras={"note": "random initialisation"})
        write_model_metadata(out, plan, fresh)
        save_checkpoint(out / "checkpoint_final.pt", {"network": build_unet(plan.topology, seed=seed).state_dict()})
    return out


def run(args: argparse.Namespace) -> dict:
    """Zero-shot, scratch and fine-tuned Dice per target center; returns them with timings."""
    work, cine = Path(args.work), Path(args.cine_model).resolve()
    device = str(resolve_device(args.device))
    train_raw, test_raw = synthetic_centers(work, args.centers, args.cases, args.test_cases)
    scratch_parent = untrained_copy(cine, work / "models" / "untrained", args.seed)
    start = time.perf_counter()
    common = {"trainable": args.train, "cases": args.target_cases, "epochs": args.epochs,
              "iterations_per_epoch": args.iterations, "seed": args.seed}
    results: dict = {"device": device, "centers": {}}
    for center in args.centers:
        pre = work / f"pre{center}"
        plan_and_preprocess([train_raw[center]], pre, plans_from=cine)
        row = {"zero_shot": bp_myo_dice(cine, test_raw[center], work, device)}
        for name, parent in (("scratch", scratch_parent), ("cine_finetuned", cine)):
            row[name] = finetune_and_score(parent, pre, work / "models" / f"c{center}_{name}", test_raw[center], work,
                                           device, **common)
        results["centers"][center] = row
        print(f"center {center}: {row}", flush=True)
    results["wall_minutes"] = (time.perf_counter() - start) / 60
    return results


def markdown(results: dict, args: argparse.Namespace) -> str:
    """The RESULTS.md section."""
    _, info = read_model_metadata(args.cine_model)
    rows = markdown_table(
        ["center", "cine model, no fine-tuning", "from scratch", "cine -> LGE fine-tuned"],
        ([center, *(f"{row[key]:.3f}" for key in ("zero_shot", "scratch", "cine_finetuned"))]
         for center, row in results["centers"].items()))
    return (
        "## Cine-to-LGE transfer (real ACDC cine model fine-tuned on synthetic LGE)\n\n"
        f"`python benchmarks/cross_modality.py {' '.join(args.argv)}` on {results['device']}, "
        f"{results['wall_minutes']:.0f} wall minutes. Parent: a model trained on real cine MRI "
        f"(`../shared/data/acdc_cine`, {info.epochs_trained} epochs, datasets {', '.join(info.datasets)}). "
        f"Target: {args.target_cases} case(s) of each synthetic LGE center, preprocessed with the cine "
        f"model's plans; `--train {args.train}`, {args.epochs} x {args.iterations} iterations for both the "
        f"fine-tuned and the from-scratch network. Test Dice (mean of blood pool and myocardium) on "
        f"{args.test_cases} held-out cases per center:\n\n" + "\n".join(rows) + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run, and write the RESULTS.md section (unless --no-write)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cine-model", required=True, help="model folder trained on cine MRI")
    add_synthetic_center_options(parser, "cross_modality", cases=12, test_cases=5, epochs=3)
    parser.add_argument("--target-cases", type=int, default=3, help="target cases to fine-tune on")
    parser.add_argument("--train", default="all", help="blocks to fine-tune (all, encoder:K, decoder:K)")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    results = run(args)
    publish_section(markdown(results, args), "cross_modality", write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
