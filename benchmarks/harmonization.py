"""Dice on unseen centers with no harmonization, histogram matching and CycleGAN (the paper's Figure 7).

On the synthetic phantom: train a 2D U-Net on one center, fit its histogram reference, train one
CycleGAN per unseen center (training center <-> unseen center, on preprocessed slices of cases
that are not tested), then segment held-out cases of every unseen center three ways and evaluate.
Times every step (segmentation training, each GAN, each prediction run with its harmonization).
Writes (replaces) a "## Harmonization" section in docs/RESULTS.md and ``WORK/harmonization.json``.

Run (GPU strongly advised; scale with the flags)::

    python benchmarks/harmonization.py --work /tmp/harm --cases 20 --test-cases 8 --epochs 30 \\
        --iterations 100 --gan-epochs 10 --gan-iterations 200

``--model MODEL --preprocessed PRE`` reuse a trained model and its preprocessed folder (the
``--raw`` folder must then hold the raw center datasets ``center1`` .. ``center4``).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path
from typing import Any

from _common import ROOT, write_section

SECTION = "## Harmonization"
METHODS = ("none", "histogram", "cyclegan")


def _device_name(device: str) -> str:
    import torch

    if device != "cpu" and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def prepare_data(work: Path, args: argparse.Namespace) -> tuple[Path, dict[int, Path], dict[int, Path]]:
    """Synthesize centers (GAN/training cases and disjoint test cases); preprocess every center with one plan.

    Returns:
        (preprocessed folder of the training center, {center: its preprocessed folder}, {center: raw test dataset}).
    """
    from lgeseg.synth.multicenter import generate_multicenter
    from lgeseg.workflows.plan_and_preprocess import plan_and_preprocess

    centers = (1, 2, 3, 4)
    raw = Path(args.raw) if args.raw else work / "raw"
    if not args.raw:
        generate_multicenter(raw, args.cases, seed=args.seed, centers=centers, in_plane_size=args.in_plane_size)
    unseen = [c for c in centers if c != args.train_center]
    test = generate_multicenter(work / "test", args.test_cases, seed=args.seed + 1, centers=unseen,
                                in_plane_size=args.in_plane_size)
    train_pre = Path(args.preprocessed) if args.preprocessed else work / f"pre_center{args.train_center}"
    if not args.preprocessed:
        plan_and_preprocess([raw / f"center{args.train_center}"], train_pre, preset=args.preset,
                            num_workers=args.workers)
    pres = {}
    for center in unseen:
        pres[center] = work / f"pre_center{center}"
        plan_and_preprocess([raw / f"center{center}"], pres[center], plans_from=train_pre / "plans.json",
                            num_workers=args.workers)
    return train_pre, pres, dict(zip(unseen, test, strict=True))


def train_models(work: Path, train_pre: Path, pres: dict[int, Path],
                 args: argparse.Namespace) -> tuple[Path, dict[int, Path], dict[str, float]]:
    """Train (or reuse) the segmentation model, fit its histogram reference, train one CycleGAN per unseen center.

    Returns:
        (model folder, {center: GAN folder}, seconds per step).
    """
    from lgeseg.harmonization import fit_reference_from_preprocessed
    from lgeseg.harmonization.cyclegan import CycleGANConfig
    from lgeseg.harmonization.cyclegan_train import train_cyclegan
    from lgeseg.training.trainer import train

    seconds: dict[str, float] = {}
    model = Path(args.model) if args.model else work / "model"
    if not args.model:
        start = time.perf_counter()
        train(train_pre, model, recipe="default", epochs=args.epochs, iterations_per_epoch=args.iterations,
              device=args.device, num_workers=args.workers)
        seconds["segmentation training"] = time.perf_counter() - start
    start = time.perf_counter()
    fit_reference_from_preprocessed(train_pre, model)
    seconds["histogram reference fit"] = time.perf_counter() - start
    gans = {}
    config = CycleGANConfig(epochs=args.gan_epochs, iterations_per_epoch=args.gan_iterations,
                            patch_size=(args.gan_patch, args.gan_patch), seed=args.seed)
    for center, pre in pres.items():
        if "cyclegan" not in args.methods:
            break
        gans[center] = work / f"gan_center{args.train_center}_center{center}"
        start = time.perf_counter()
        if not (gans[center] / "checkpoint_final.pt").is_file():
            train_cyclegan(train_pre, pre, gans[center], config, device=args.device)
        seconds[f"CycleGAN training center{args.train_center}<->center{center}"] = time.perf_counter() - start
    return model, gans, seconds


def evaluate_methods(work: Path, model: Path, gans: dict[int, Path], tests: dict[int, Path],
                     args: argparse.Namespace) -> list[dict[str, Any]]:
    """Predict and evaluate every test center with every method; one row per (center, method)."""
    from lgeseg.experiments.scoring import predict_and_score

    rows = []
    for center, test in tests.items():
        for method in args.methods:
            spec = f"cyclegan:{gans[center]}" if method == "cyclegan" else None if method == "none" else method
            score = predict_and_score(test / "imagesTr", test / "labelsTr", [model],
                                      work / "predictions" / method / f"center{center}",
                                      work / "evaluation" / method / f"center{center}", device=args.device,
                                      harmonize=spec)
            summary, seconds = score.summary, score.predict_seconds
            dice = {name: summary["structures"][name]["dice"] for name in ("blood_pool", "myocardium")}
            rows.append({"center": center, "method": method, "cases": summary["n_cases"], "seconds": seconds,
                         **{f"dice_{k}": v["mean"] for k, v in dice.items()},
                         **{f"dice_{k}_std": v["std"] for k, v in dice.items()}})
            logging.info("center%d %s: %s", center, method, rows[-1])
    return rows


def markdown(rows: list[dict[str, Any]], seconds: dict[str, float], args: argparse.Namespace) -> str:
    """The RESULTS.md section: settings, Dice table per unseen center and method, timings."""
    lines = [args.section, "", f"`benchmarks/harmonization.py` on the synthetic phantom: U-Net trained on center"
             f"{args.train_center} ({args.cases} cases, {args.epochs} x {args.iterations} iterations, paper recipe), "
             f"tested on {args.test_cases} unseen cases per other center; CycleGAN {args.gan_epochs} x "
             f"{args.gan_iterations} iterations, {args.gan_patch}px patches, per unseen center. "
             f"Device: {_device_name(args.device)}. Mean ± std Dice over test cases.", "",
             "| test center | method | Dice blood pool | Dice myocardium | predict s (incl. harmonization) |",
             "| --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| center{r['center']} | {r['method']} | {r['dice_blood_pool']:.3f} ± "
                     f"{r['dice_blood_pool_std']:.3f} | {r['dice_myocardium']:.3f} ± {r['dice_myocardium_std']:.3f} "
                     f"| {r['seconds']:.1f} |")
    lines += ["", "| step | seconds |", "| --- | --- |"] + [f"| {k} | {v:.1f} |" for k, v in seconds.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="working folder (data, models, predictions)")
    parser.add_argument("--cases", type=int, default=20, help="synthetic cases per center (training/GAN)")
    parser.add_argument("--test-cases", type=int, default=8, help="held-out test cases per unseen center")
    parser.add_argument("--in-plane-size", type=int, default=None, help="shrink the synthetic matrix (pixels)")
    parser.add_argument("--train-center", type=int, default=1)
    parser.add_argument("--preset", default="default", help="planner preset")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--gan-epochs", type=int, default=10)
    parser.add_argument("--gan-iterations", type=int, default=200)
    parser.add_argument("--gan-patch", type=int, default=128)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--raw", help="existing raw folder with center1..center4")
    parser.add_argument("--preprocessed", help="existing preprocessed folder of the training center")
    parser.add_argument("--model", help="existing trained model folder")
    parser.add_argument("--results", type=Path, default=ROOT / "docs" / "RESULTS.md", help="'-' to skip writing")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS),
                        help="harmonization methods to compare (CycleGANs are trained only when listed)")
    parser.add_argument("--section", default=SECTION, help="RESULTS.md heading to write (replaced when present)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    train_pre, pres, tests = prepare_data(args.work, args)
    seconds = {"data (synthesis + preprocessing)": time.perf_counter() - start}
    model, gans, train_seconds = train_models(args.work, train_pre, pres, args)
    seconds.update(train_seconds)
    rows = evaluate_methods(args.work, model, gans, tests, args)
    text = markdown(rows, seconds, args)
    (args.work / "harmonization.json").write_text(json.dumps({"rows": rows, "seconds": seconds}, indent=2))
    if str(args.results) != "-":
        write_section(args.results, text, args.section)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
