"""``lgeseg``: the umbrella command. ``lgeseg predict ...`` runs ``lgeseg_predict ...``, and so on.

``lgeseg`` alone (or ``lgeseg --help``) lists the commands, ``lgeseg --version`` prints the version,
``lgeseg help COMMAND`` prints that command's ``--help``. Every ``lgeseg_<name>`` command is also
``lgeseg <name>`` (with ``-`` for ``_``: ``lgeseg plan-and-preprocess``); the rest of the line goes
to that command unchanged, so its options and exit codes are the same.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from lgeseg import __version__
from lgeseg.cli._options import command_parser

COMMANDS: dict[str, str] = {
    "lgeseg_demo": "the main job on the embedded synthetic multi-center data",
    "lgeseg_synth": "write the synthetic multi-center LGE phantom datasets",
    "lgeseg_validate": "check a raw dataset and report every problem",
    "lgeseg_convert": "convert EMIDEC, MS-CMRSeg, M&Ms or DICOM into lgeseg's raw format",
    "lgeseg_plan_and_preprocess": "validate, fingerprint, plan and preprocess datasets",
    "lgeseg_show_augmentations": "picture of one slice augmented many times",
    "lgeseg_train": "train a 2D U-Net from preprocessed data",
    "lgeseg_finetune": "fine-tune a trained model on a new center",
    "lgeseg_adapt": "adapt a model to a new center from its unlabeled images (pseudo-labels)",
    "lgeseg_predict": "segment a folder of images or a DICOM study with a model",
    "lgeseg_postprocess": "keep the largest connected component of predictions",
    "lgeseg_evaluate": "3D Dice, HD95 and volumes of predictions against references",
    "lgeseg_harmonize": "histogram matching and CycleGAN harmonization",
    "lgeseg_experiments": "the paper's four generalization experiments (Table 5) in one run",
    "lgeseg_report": "volumes, mass, wall thickness, quality flags and contours of predictions (HTML + CSV)",
    "lgeseg_export_model": "pack a model folder into one zip to hand on",
    "lgeseg_install_model": "check a model zip and unpack it into a model folder",
}


def command_module(name: str) -> str | None:
    """The module of subcommand ``name`` (``predict``, ``plan-and-preprocess``, ``lgeseg_train``), or None.

    Example:
        >>> command_module("predict"), command_module("plan-and-preprocess"), command_module("fly")
        ('lgeseg.cli.predict', 'lgeseg.cli.plan_and_preprocess', None)
    """
    short = name.removeprefix("lgeseg_").replace("-", "_")
    return f"lgeseg.cli.{short}" if f"lgeseg_{short}" in COMMANDS else None


def _listing() -> str:
    lines = [f"lgeseg {__version__}: LV segmentation for LGE cardiac MRI", "",
             "usage: lgeseg COMMAND [options]   (the same as lgeseg_COMMAND [options]; lgeseg COMMAND --help)", "",
             "Commands:"]
    lines += [f"  {name.removeprefix('lgeseg_').replace('_', '-'):<22} {text}" for name, text in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run ``lgeseg COMMAND ...`` (that command's ``main``), or list the commands. Returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["help"] and len(argv) > 1:
        argv = [argv[1], "--help"]
    if argv and not argv[0].startswith("-") and argv[0] != "help":
        module = command_module(argv[0])
        if module is None:
            print(f"lgeseg: error: unknown command {argv[0]!r}; the commands are: "
                  + ", ".join(n.removeprefix("lgeseg_").replace("_", "-") for n in COMMANDS), file=sys.stderr)
            return 2
        # deferred: each command loads what it needs (torch, SimpleITK); `lgeseg --version` loads none of it
        command = importlib.import_module(module)
        return int(command.main(argv[1:]) or 0)
    parser = command_parser("lgeseg", _listing(), usage="lgeseg COMMAND [options]",
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"lgeseg {__version__}")
    parser.parse_args([a for a in argv if a != "help"])
    print(_listing())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
