"""The options every lgeseg command spells the same way: one vocabulary, nnU-Net's where it has one.

- device: ``--device``/``-device`` with ``device_name``'s values (predict, train, finetune, adapt,
  demo, experiments, harmonize cyclegan-*);
- parallel workers: ``-np``/``--num-workers`` (validate keeps ``--workers``; predict's ``-np`` sets
  nnU-Net's ``-npp`` and ``-nps``);
- preprocessed folder: ``-p``/``--preprocessed`` (train, finetune); predictions: ``--pred`` (evaluate,
  which still takes its old ``-p``);
- nnU-Net dataset id: ``-d``; configuration: ``-c 2d`` (``nnunet_configuration``); fold: ``-f``;
- time budget: ``--time-budget MIN`` (train, finetune);
- writing: ``--overwrite`` in each command's words (``add_overwrite_flag``); ``--continue``/``--c``
  and ``--overwrite``, which exclude each other, for the commands that train a model folder
  (``add_resume_options``, ``check_resume_options``).

Every parser is built with ``allow_abbrev=False`` (``command_parser``, ``add_subcommand``): argparse's
prefix matching read nnU-Net habits as other options (``-d 4`` as ``-device 4``, ``-p nnUNetPlans`` as
``-part_id``, ``-c best`` as ``-chk best``), so a command takes exactly the spellings its ``--help``
lists. docs/nnunet.md has the tables.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from lgeseg.cli._errors import checked_number, positive_int


def command_parser(prog: str, description: str, **options: Any) -> argparse.ArgumentParser:
    """The argument parser of the command ``prog``: ``allow_abbrev=False``, ``description`` heads its ``--help``.

    ``options`` go to ``argparse.ArgumentParser`` (``usage``, ``formatter_class``, ...).

    Example:
        >>> parser = command_parser("lgeseg_x", "Do x.")
        >>> parser.prog, parser.allow_abbrev, parser.description
        ('lgeseg_x', False, 'Do x.')
    """
    return argparse.ArgumentParser(prog=prog, allow_abbrev=False, description=description, **options)


def add_subcommand(subparsers: Any, name: str, help_text: str, **options: Any) -> argparse.ArgumentParser:
    """Add the subcommand ``name`` (``lgeseg_convert emidec``) to ``parser.add_subparsers()``'s result.

    Its parser, like ``command_parser``'s, takes no abbreviations; ``options`` go to ``add_parser``
    (``description``, ...).

    Example:
        >>> sub = command_parser("lgeseg_x", "Do x.").add_subparsers(dest="what")
        >>> add_subcommand(sub, "fast", "do x fast").prog
        'lgeseg_x fast'
    """
    return subparsers.add_parser(name, allow_abbrev=False, help=help_text, **options)


def add_overwrite_flag(parser: argparse.ArgumentParser, help_text: str) -> None:
    """Add ``--overwrite`` (``args.overwrite``): what the command may replace, in its own words."""
    parser.add_argument("--overwrite", action="store_true", help=help_text)


def add_resume_options(parser: argparse.ArgumentParser, resume_help: str) -> None:
    """Add ``--continue``/``--c`` (``args.resume``) and ``--overwrite`` of a command that trains into a model folder.

    They exclude each other: ``check_resume_options`` refuses both (lgeseg_train, lgeseg_finetune).
    """
    parser.add_argument("--continue", "--c", dest="resume", action="store_true", help=resume_help)
    add_overwrite_flag(parser, "replace the model or checkpoints already in the output folder (otherwise refused)")


def check_resume_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """A usage error (exit 2) when both ``--continue`` and ``--overwrite`` were given (``add_resume_options``)."""
    if args.resume and args.overwrite:
        parser.error("--continue and --overwrite exclude each other")


#: What ``--device`` accepts: the names ``device.resolve_device`` knows, without importing torch.
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def device_name(text: str) -> str:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; the argparse ``type`` of every ``--device``.

    Example:
        >>> device_name("cuda:1")
        'cuda:1'
        >>> device_name("4")
        Traceback (most recent call last):
        argparse.ArgumentTypeError: expected cpu, cuda, cuda:N (a GPU's index), mps or auto, found '4'
    """
    if not DEVICE_PATTERN.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:N (a GPU's index), mps or auto, found {text!r}")
    return text


def add_device_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup, default: str | None = None,
                      what: str = "device") -> None:
    """Add ``--device``/``-device`` (``args.device``) with ``device_name`` as its type."""
    shown = "best available: cuda, then mps, then cpu" if default in (None, "auto") else default
    parser.add_argument("--device", "-device", type=device_name, default=default, metavar="DEVICE",
                        help=f"{what}: cpu, cuda, cuda:N, mps or auto (default: {shown})")


def non_negative_int(text: str) -> int:
    """An argparse ``type``: an integer >= 0 (``-np 0``: no worker threads, everything in the main one).

    Example:
        >>> non_negative_int("0")
        0
        >>> non_negative_int("-1")
        Traceback (most recent call last):
        argparse.ArgumentTypeError: expected a whole number >= 0, found '-1'
    """
    return checked_number(text, int, lambda value: value >= 0, "a whole number >= 0")


def add_workers_option(parser: argparse.ArgumentParser, help_text: str, default: int | None = None,
                       extra: tuple[str, ...] = (), minimum: int = 0) -> None:
    """Add ``-np``/``--num-workers`` (``args.num_workers``), plus older spellings in ``extra`` as aliases.

    ``minimum`` 1 refuses 0 (processes: at least one), 0 accepts it (threads: 0 works in the main thread).
    """
    parser.add_argument("-np", "--num-workers", *extra, dest="num_workers", default=default, metavar="N",
                        type=positive_int if minimum >= 1 else non_negative_int, help=help_text)


def positive_float(text: str) -> float:
    """An argparse ``type``: a finite number > 0 (``--time-budget`` minutes).

    Example:
        >>> positive_float("90")
        90.0
        >>> positive_float("0")
        Traceback (most recent call last):
        argparse.ArgumentTypeError: expected a number > 0, found '0'
    """
    return checked_number(text, float, lambda value: 0 < value < float("inf"), "a number > 0")


def add_time_budget_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--time-budget MIN`` (``args.time_budget``): the recipe's ``max_minutes``."""
    parser.add_argument("--time-budget", type=positive_float, default=None, metavar="MIN",
                        help="stop after the epoch that crosses MIN minutes and finish the model as after its last "
                             "epoch (the recipe's max_minutes; default: no limit); the log gives the ETA per epoch")


def nnunet_configuration(text: str) -> str:
    """nnU-Net's ``-c CONFIGURATION``: lgeseg has one, ``2d``; any other is a usage error saying so.

    Example:
        >>> nnunet_configuration("2d")
        '2d'
        >>> nnunet_configuration("3d_fullres")
        Traceback (most recent call last):
        argparse.ArgumentTypeError: lgeseg has one configuration, 2d (a 2D U-Net on short-axis slices); ...
    """
    if text.removeprefix("checkpoint_").removesuffix(".pth") in ("final", "best", "latest"):
        raise argparse.ArgumentTypeError(f"-c is nnU-Net's configuration (2d), found {text!r}: the checkpoint is "
                                         f"-chk/--checkpoint {text}")
    if text != "2d":
        raise argparse.ArgumentTypeError(
            f"lgeseg has one configuration, 2d (a 2D U-Net on short-axis slices); found {text!r}: a 3d_fullres, "
            "3d_lowres or cascade model cannot be trained or used by lgeseg")
    return text
