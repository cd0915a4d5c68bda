"""``lgeseg_install_model ZIP [DEST]``: check a model zip and unpack it into a model folder."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from lgeseg.cli._errors import add_verbose_flag, run_command
from lgeseg.cli._options import add_overwrite_flag, command_parser
from lgeseg.model.archive import install_model
from lgeseg.model.registry import HOME_ENV, models_home

#: What a model name may be: it is a folder name and typed after ``-m``.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def default_destination(zip_path: str | Path, name: str | None = None) -> Path:
    """``$LGESEG_HOME/models/<name or zip name without .zip>`` (``~/.lgeseg`` when ``LGESEG_HOME`` is unset)."""
    return models_home() / (name or Path(zip_path).name.removesuffix(".zip"))


def model_name(text: str) -> str:
    """argparse type of ``--name``: letters, digits, ``.``, ``_``, ``-`` (no path separators)."""
    if not NAME_PATTERN.fullmatch(text):
        raise argparse.ArgumentTypeError(f"a model name is 1-64 letters, digits, '.', '_' or '-' starting with a "
                                         f"letter or digit, found {text!r}")
    return text


def main(argv: list[str] | None = None) -> int:
    """Install the model; returns 0, or 1 with a message on stderr (nothing is left at DEST then)."""
    parser = command_parser(
        "lgeseg_install_model",
        "Check a model zip (only the expected files, no path traversal, no links, SHA-256 manifest, "
        "weights-only checkpoints, a network that loads) and unpack it into a model folder.")
    parser.add_argument("zip", metavar="ZIP", help="zip written by lgeseg_export_model")
    parser.add_argument("dest", metavar="DEST", nargs="?", default=None,
                        help=f"model folder to create (default: ${HOME_ENV}/models/<zip name>, "
                             "~/.lgeseg/models/<zip name> without it)")
    parser.add_argument("--name", type=model_name, default=None,
                        help=f"install as ${HOME_ENV}/models/NAME, so that lgeseg_predict -m NAME finds it "
                             "(default name: the zip's file name)")
    add_overwrite_flag(parser, "replace an existing DEST that is a model folder (other folders are never replaced)")
    add_verbose_flag(parser)
    args = parser.parse_args(argv)
    return run_command(parser, args, _run, level=None)


def _run(args: argparse.Namespace) -> int:
    if args.dest and args.name:
        raise ValueError(f"give DEST ({args.dest}) or --name ({args.name}), not both: --name installs into "
                         f"{models_home()}")
    dest = Path(args.dest) if args.dest else default_destination(args.zip, args.name)
    path = install_model(args.zip, dest, overwrite=args.overwrite)
    spec = path.name if path.parent.resolve() == models_home().resolve() else str(path)
    print(f"installed {path}; predict with: lgeseg_predict -i IN -o OUT -m {spec}  "
          f"(see the model card: lgeseg_predict --model-info -m {spec})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
