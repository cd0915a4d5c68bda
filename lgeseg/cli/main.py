"""``lgeseg``: version and the list of commands."""

from __future__ import annotations

import argparse

from lgeseg import __version__

COMMANDS: dict[str, str] = {
    "lgeseg_demo": "the main job on the embedded synthetic multi-center data",
    "lgeseg_synth": "write the synthetic multi-center LGE phantom datasets",
    "lgeseg_validate": "check a raw dataset and report every problem",
    "lgeseg_convert": "convert EMIDEC, MS-CMRSeg or M&Ms into lgeseg's raw format",
    "lgeseg_plan_and_preprocess": "validate, fingerprint, plan and preprocess datasets",
    "lgeseg_show_augmentations": "picture of one slice augmented many times",
    "lgeseg_train": "train a 2D U-Net from preprocessed data",
    "lgeseg_finetune": "fine-tune a trained model on a new center",
    "lgeseg_adapt": "adapt a model to a new center from its unlabeled images (pseudo-labels)",
    "lgeseg_predict": "segment a folder of images with a model",
    "lgeseg_postprocess": "keep the largest connected component of predictions",
    "lgeseg_evaluate": "3D Dice, HD95 and volumes of predictions against references",
    "lgeseg_harmonize": "histogram matching and CycleGAN harmonization",
    "lgeseg_experiments": "the paper's four generalization experiments (Table 5) in one run",
    "lgeseg_report": "volumes, mass, wall thickness, quality flags and contours of predictions (HTML + CSV)",
    "lgeseg_export_model": "pack a model folder into one zip to hand on",
    "lgeseg_install_model": "check a model zip and unpack it into a model folder",
}


def main(argv: list[str] | None = None) -> int:
    """Print the version (``--version``) or the list of lgeseg commands. Returns the exit code."""
    parser = argparse.ArgumentParser(prog="lgeseg", description="lgeseg: LV segmentation for LGE cardiac MRI")
    parser.add_argument("--version", action="version", version=f"lgeseg {__version__}")
    parser.parse_args(argv)
    print(f"lgeseg {__version__}\n\nCommands (each has --help):")
    for name, text in COMMANDS.items():
        print(f"  {name:<28} {text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
