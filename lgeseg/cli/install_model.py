"""``lgeseg_install_model ZIP [DEST]``: check a model zip and unpack it into a model folder."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from lgeseg.cli._errors import add_verbose_flag, run_cli
from lgeseg.model_archive import install_model

#: Optional environment variable: lgeseg's home folder (models go to ``$LGESEG_HOME/models``).
HOME_ENV = "LGESEG_HOME"


def default_destination(zip_path: str | Path) -> Path:
    """``$LGESEG_HOME/models/<zip name without .zip>`` (``~/.lgeseg`` when ``LGESEG_HOME`` is unset)."""
    home = Path(os.environ.get(HOME_ENV) or Path.home() / ".lgeseg")
    return home / "models" / Path(zip_path).name.removesuffix(".zip")


def main(argv: list[str] | None = None) -> int:
    """Install the model; returns 0, or 1 with a message on stderr (nothing is left at DEST then)."""
    parser = argparse.ArgumentParser(
        prog="lgeseg_install_model",
        description="Check a model zip (only the expected files, no path traversal, no links, SHA-256 manifest, "
                    "weights-only checkpoints, a network that loads) and unpack it into a model folder.")
    parser.add_argument("zip", metavar="ZIP", help="zip written by lgeseg_export_model")
    parser.add_argument("dest", metavar="DEST", nargs="?", default=None,
                        help=f"model folder to create (default: ${HOME_ENV}/models/<zip name>, "
                             "~/.lgeseg/models/<zip name> without it)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing DEST")
    add_verbose_flag(parser)
    args = parser.parse_args(argv)
    return run_cli("lgeseg_install_model", lambda: _run(args), args.verbose)


def _run(args: argparse.Namespace) -> int:
    dest = Path(args.dest) if args.dest else default_destination(args.zip)
    path = install_model(args.zip, dest, overwrite=args.overwrite)
    print(f"installed {path}; predict with: lgeseg_predict -i IN -o OUT -m {path}  "
          f"(see the model card: lgeseg_predict --model-info -m {path})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
