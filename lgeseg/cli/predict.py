"""``lgeseg_predict``: segment a folder of images with one or several trained models."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from lgeseg.cli import exit_without_teardown, results_model_folder
from lgeseg.cli._errors import add_verbose_flag, run_cli
from lgeseg.cli._options import add_device_option, nnunet_configuration, non_negative_int
from lgeseg.core.errors import OutputConflictError
from lgeseg.core.records import load_json
from lgeseg.files.dicom import find_series
from lgeseg.files.dicom_study import classify_series
from lgeseg.inference.adaptation import ADAPT_METHODS, DEFAULT_LR, DEFAULT_STEPS, AdaptationSettings
from lgeseg.inference.ensemble import fold_model_folders
from lgeseg.inference.nnunet_model import nnunet_fold_folders, nnunet_training_folder
from lgeseg.inference.prediction_settings import CHECKPOINTS, WINDOWS, PredictionSettings
from lgeseg.inference.predictor import Predictor
from lgeseg.inference.quality import summary_text
from lgeseg.inference.sliding_window import check_step
from lgeseg.model.card import format_model_card, model_card
from lgeseg.model.registry import ensemble_card, format_model_list, list_models, resolve_model
from lgeseg.planning.nnunet import plan_from_nnunet


def checkpoint_name(text: str) -> str:
    """``final``/``best``/``latest``, also spelled nnU-Net's way (``checkpoint_best.pth``); argparse type."""
    name = text.removeprefix("checkpoint_").removesuffix(".pth").removesuffix(".pt")
    if name not in CHECKPOINTS:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(CHECKPOINTS)} (or checkpoint_<name>.pth), "
                                         f"found {text!r}")
    return name


def step_fraction(text: str) -> float:
    """The sliding-window stride, a fraction of the patch in (0, 1]; argparse type."""
    try:
        return check_step(float(text))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a fraction of the patch in (0, 1] (0.5: tiles overlap by half), "
                                         f"found {text!r}") from err


def _add_nnunet_style_options(parser: argparse.ArgumentParser) -> None:
    """Options that nnU-Net v2's ``nnUNetv2_predict`` spells the same way (docs/nnunet.md lists them)."""
    parser.add_argument("-f", "--folds", nargs="+", default=None, metavar="FOLD",
                        help="use MODEL/fold_<FOLD> of each -m folder (nnU-Net layout); e.g. -f 0 1 2 3 4")
    parser.add_argument("-d", "--dataset", default=None, metavar="ID",
                        help="instead of -m: the model nnU-Net trained for dataset ID, $nnUNet_results/DatasetNNN_*/"
                             "<trainer>__<plans>__2d (with -c, -tr, -p, -f); an nnU-Net 2d PlainConvUNet or a model "
                             "lgeseg_train DATASET 2d FOLD wrote")
    parser.add_argument("-c", "--configuration", type=nnunet_configuration, default="2d", metavar="2d",
                        help="nnU-Net's configuration: lgeseg has one, 2d")
    parser.add_argument("-tr", "--trainer", default=None, metavar="TRAINER",
                        help="with -d: the trainer of the model folder (default: nnUNetTrainer, else the one there)")
    parser.add_argument("-p", "--plans", default=None, metavar="PLANS",
                        help="with -d: the plans identifier of the model folder (default: nnUNetPlans, else the one "
                             "there)")
    parser.add_argument("-np", "--num-workers", type=non_negative_int, default=None, metavar="N",
                        help="threads reading the next cases and threads writing finished ones (sets -npp and -nps)")
    parser.add_argument("-npp", "--preprocessing-workers", type=int, default=None, metavar="N",
                        help="threads reading and checking the next cases while one is predicted (default 1)")
    parser.add_argument("-nps", "--export-workers", type=int, default=None, metavar="N",
                        help="threads postprocessing and writing finished cases (default 1)")
    parser.add_argument("--num-parts", "-num_parts", type=int, default=1, metavar="N",
                        help="split the sorted cases into N parts (for N runs on different GPUs/machines)")
    parser.add_argument("--part-id", "-part_id", type=int, default=0, metavar="K",
                        help="predict part K (0 .. N-1): cases K, K+N, K+2N, ...")
    parser.add_argument("--continue_prediction", "--continue-prediction", dest="overwrite", action="store_false",
                        help="skip cases already predicted (lgeseg's default; nnU-Net's spelling)")


def _print_model_cards(parser: argparse.ArgumentParser, models: list[str], folds: list[str] | None) -> int:
    try:
        texts = []
        for spec in models:
            if nnunet_training_folder(spec) is not None:
                texts.append(_nnunet_description(spec, folds))
                continue
            card = ensemble_card(resolve_model(spec).path)
            texts += [format_model_card(card)] if card else []
            texts += [format_model_card(model_card(model_dir)) for model_dir in fold_model_folders([spec], folds)]
        print("\n\n".join(texts))
    except (FileNotFoundError, ValueError) as err:
        parser.exit(1, f"lgeseg_predict: error: {err}\n")
    return 0


def _nnunet_description(spec: str, folds: list[str] | None) -> str:
    """What lgeseg knows of an nnU-Net training folder: its name, dataset, the plan it follows and its folds."""
    training = nnunet_training_folder(spec)
    assert training is not None  # the caller checked
    dataset = load_json(training / "dataset.json")
    plan = plan_from_nnunet(load_json(training / "plans.json"), dataset, training.name.split("__")[-1],
                            str(training / "plans.json"))
    members = ", ".join(p.name for p in nnunet_fold_folders(spec, folds))
    return (f"nnU-Net v2 model {training.name} ({training.parent.name}); no model card (nnU-Net writes none)\n"
            f"  labels {plan.labels}, channels {dataset.get('channel_names')}\n"
            f"  plan: patch {plan.patch_size}, spacing {plan.target_spacing[1:]} mm, {plan.normalization.scheme} "
            f"normalization, features {plan.topology.features_per_stage}\n  folds: {members}")


def _print_series(parser: argparse.ArgumentParser, folder: str) -> int:
    found = find_series(folder)
    if not found:
        parser.exit(1, f"lgeseg_predict: error: {folder}: no DICOM series found\n")
    for s in found:
        kind = classify_series(s)
        print(f"{s.number or '-':>5}  {s.description or '-':<32} {len(s.files):>4} file(s)  {s.modality or '-':<3} "
              f"{kind.kind:<10} case {s.case_id}  {s.uid}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments (see ``--help``) and predict the folder. Returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="lgeseg_predict", allow_abbrev=False,
        description="Segment every image in INPUT_DIR (<case>_0000.nii.gz or <case>.nii.gz; .nii, .mha, .nrrd too) "
                    "and write OUTPUT_DIR/<case><ending> (the input's file ending) on the input's exact grid. "
                    "nnU-Net v2's flag spellings are accepted where they mean the same (docs/nnunet.md).")
    parser.add_argument("-i", "--input", help="folder of images (required unless --model-info)")
    parser.add_argument("-o", "--output", help="output folder (not the input folder or inside it)")
    parser.add_argument("-m", "--model", action="append", default=[], dest="models",
                        help="model folder, ensemble folder (fold_<k> members), the name of a shipped or installed "
                             "model (lge-lv: see --list-models) or an nnU-Net v2 training folder (a 2d PlainConvUNet: "
                             "<trainer>__<plans>__2d or its fold_<k>); repeat (-m A -m B) to ensemble folds or seeds")
    parser.add_argument("--list-models", action="store_true",
                        help="list the models callable by name (shipped with lgeseg and installed) and exit")
    add_device_option(parser)
    parser.add_argument("--no-mirroring", "--disable_tta", action="store_true",
                        help="skip flip test-time augmentation")
    parser.add_argument("--save-probabilities", "--save_probabilities", action="store_true",
                        help="also write <case>.npz (probabilities (K, z, y, x)) and <case>.pkl, readable by "
                             "nnUNetv2_ensemble")
    parser.add_argument("--postprocess", choices=("lcc", "lcc_per_label", "none"), default=None,
                        help="default: the choice stored in the model folder's model.json")
    parser.add_argument("--overlays", action="store_true", help="also write <case>_overlay.png with the contours")
    parser.add_argument("--overwrite", action="store_true", help="redo cases whose outputs already exist")
    parser.add_argument("--harmonize", default=None, metavar="SPEC",
                        help="'histogram' or 'cyclegan:GAN_DIR': harmonize images before predicting")
    parser.add_argument("--checkpoint", "-chk", type=checkpoint_name, default="final",
                        help="weights to use: final (default), best or latest (checkpoint_best.pth accepted)")
    parser.add_argument("--window", choices=WINDOWS, default="roi",
                        help="roi (default): whole slices find the ventricle, a box around it is refined; "
                             "sliding: training-patch tiles everywhere (nnU-Net, slowest); slice: whole slices only "
                             "(less accurate when slices are larger than the training patch)")
    parser.add_argument("--sliding-window", action="store_const", const="sliding", dest="window",
                        help="same as --window sliding")
    parser.add_argument("--step", "-step_size", type=step_fraction, default=0.5,
                        help="sliding-window stride, fraction of the patch in (0, 1] (default 0.5)")
    parser.add_argument("--adapt", choices=ADAPT_METHODS, default="none",
                        help="test-time adaptation to each case: entropy = minimize the prediction entropy over the "
                             "case's slices, updating only the normalization scale/shift (TENT), then restore the "
                             "weights (default: none; docs/inference.md)")
    parser.add_argument("--adapt-steps", type=int, default=DEFAULT_STEPS, metavar="N",
                        help=f"Adam steps per case with --adapt entropy (default {DEFAULT_STEPS})")
    parser.add_argument("--adapt-lr", type=float, default=DEFAULT_LR, metavar="LR",
                        help=f"Adam learning rate with --adapt entropy (default {DEFAULT_LR:g})")
    parser.add_argument("--allow-unusual-spacing", action="store_true",
                        help="accept voxel spacing outside 0.1-20 mm in-plane / 0.5-30 mm through-plane")
    parser.add_argument("--series", action="append", default=None, metavar="PATTERN",
                        help="DICOM input: predict only the series with this SeriesInstanceUID, series number, case "
                             "name or description (wildcards: '*LGE*'); repeat for several (default: the short-axis "
                             "LGE stacks, found by their tags; the other series are skipped with one line each)")
    parser.add_argument("--dicom-seg", action="store_true",
                        help="DICOM input: also write <case>.seg.dcm, a DICOM Segmentation of the source slices "
                             "(needs highdicom: pip install 'lgeseg[dicom]')")
    parser.add_argument("--list-series", action="store_true",
                        help="DICOM input: list the series found in -i (number, description, files, kind: lge, cine, "
                             "localizer, ...; UID) and exit")
    parser.add_argument("--report", action="store_true",
                        help="then write the report of the predictions (lgeseg_report OUTPUT -i INPUT): volumes, mass, "
                             "wall thickness, quality flags and contours in OUTPUT/report/index.html")
    parser.add_argument("--model-info", action="store_true",
                        help="print each model's card (training data, budget, validation Dice, intended use) and exit")
    _add_nnunet_style_options(parser)
    add_verbose_flag(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.list_series and args.input:
        return _print_series(parser, args.input)
    if args.list_models:
        print(format_model_list(list_models()))
        return 0
    if args.dataset is not None:
        if args.models:
            parser.error("give the model with -m or with -d (nnU-Net's dataset id under $nnUNet_results), not both")
        try:
            args.models = [str(results_model_folder(args.dataset, args.configuration, args.trainer, args.plans))]
        except (FileNotFoundError, ValueError) as err:
            print(f"lgeseg_predict: error: -d {args.dataset}: {err}", file=sys.stderr)
            return 1
    elif args.trainer is not None or args.plans is not None:
        parser.error("-tr and -p pick nnU-Net's model folder of a dataset: give -d ID too (or the folder with -m)")
    if not args.models:
        parser.error("-m/--model (or nnU-Net's -d ID) is required")
    if args.model_info:
        return _print_model_cards(parser, args.models, args.folds)
    if args.input is None or args.output is None:
        parser.error("-i/--input and -o/--output are required (unless --model-info)")
    return run_cli("lgeseg_predict", lambda: _run(args), args.verbose)


def _run(args: argparse.Namespace) -> int:
    report = Path(args.output) / "report" / "index.html"
    if args.report and report.exists() and not args.overwrite:  # refused before minutes of prediction
        raise OutputConflictError(f"{report}: already exists (a report); use --overwrite to predict and report "
                                  f"again, or report elsewhere: lgeseg_report {args.output} -i {args.input} -o OTHER")
    settings = PredictionSettings(
        checkpoint=args.checkpoint, device=args.device, window=args.window, step=args.step,
        mirroring=not args.no_mirroring, postprocess=args.postprocess, harmonize=args.harmonize,
        adaptation=AdaptationSettings(args.adapt, args.adapt_steps, args.adapt_lr),
        save_probabilities=args.save_probabilities, overlays=args.overlays, dicom_seg=args.dicom_seg,
        allow_unusual_spacing=args.allow_unusual_spacing,
        num_readers=_workers(args.preprocessing_workers, args.num_workers),
        num_writers=_workers(args.export_workers, args.num_workers))
    predictor = Predictor.from_model(args.models, settings, folds=args.folds)
    result = predictor.predict_folder(args.input, args.output, overwrite=args.overwrite, series=args.series,
                                      num_parts=args.num_parts, part_id=args.part_id)
    print(f"wrote {len(result.written)} prediction(s) to {args.output}")
    if result.quality:
        print(summary_text(result.quality))
    if args.report:
        # deferred: the report's plotting loads matplotlib, which a plain prediction does not need
        from lgeseg.report import make_report

        page = make_report(args.output, images_dir=args.input, overwrite=args.overwrite)
        print(f"report: {page}")
    return 0


def _workers(specific: int | None, shared: int | None) -> int:
    """-npp / -nps when given, else -np, else 1 (0 from -np means no extra thread: 1 here)."""
    value = specific if specific is not None else shared
    return max(1, value) if value is not None else 1


def console_main() -> None:
    """Entry point of the ``lgeseg_predict`` command: ``main()`` without the interpreter's slow teardown."""
    exit_without_teardown(main)


if __name__ == "__main__":
    console_main()  # as the lgeseg_predict command: no slow interpreter teardown
