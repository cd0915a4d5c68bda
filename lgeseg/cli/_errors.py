"""The one error path of every lgeseg command.

``run_cli(prog, body, verbose)`` runs a command's work and turns an exception into one message on
stderr and an exit code: 1 for an error (a user error such as a bad file, a refused output folder,
a permission problem or exhausted memory, and also an unexpected internal error), 130 for Ctrl-C.
Usage errors stay argparse's (exit 2). The traceback is printed only with ``-v``/``--verbose``.

``run_command(parser, args, body)`` is the tail of every command's ``main``: logging set up, then
``body(args)`` through ``run_cli`` under the parser's name.

Example:
    >>> def main(argv=None) -> int:
    ...     args = parser.parse_args(argv)
    ...     return run_command(parser, args, _run)
"""

from __future__ import annotations

import argparse
import errno
import logging
import sys
import traceback
from collections.abc import Callable
from typing import Any

from lgeseg.core.errors import LgesegError

#: Exceptions that describe a problem with the user's files, folders or machine (exit 1, no traceback).
KNOWN_ERRORS: tuple[type[BaseException], ...] = (LgesegError, ValueError, OSError, MemoryError)


def checked_number(text: str, convert: Callable[[str], Any], accept: Callable[[Any], bool], expected: str) -> Any:
    """``convert(text)`` when it parses and ``accept`` holds, else a usage error (exit 2) saying ``expected``.

    The one rule behind the numeric argparse types (``positive_int``, ``cli._options.non_negative_int``,
    ``cli._options.positive_float``).

    Example:
        >>> checked_number("0.5", float, lambda v: 0 < v <= 1, "a fraction in (0, 1]")
        0.5
        >>> checked_number("x", float, lambda v: 0 < v <= 1, "a fraction in (0, 1]")
        Traceback (most recent call last):
        argparse.ArgumentTypeError: expected a fraction in (0, 1], found 'x'
    """
    try:
        value = convert(text)
    except ValueError:
        value = None
    if value is None or not accept(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, found {text!r}")
    return value


def positive_int(text: str) -> int:
    """An argparse ``type``: an integer >= 1 (``--epochs``, ``--jobs``); anything else is a usage error (exit 2).

    Example:
        >>> positive_int("3")
        3
        >>> positive_int("0")
        Traceback (most recent call last):
        argparse.ArgumentTypeError: expected a whole number >= 1, found '0'
    """
    return checked_number(text, int, lambda value: value >= 1, "a whole number >= 1")


def add_verbose_flag(parser: argparse.ArgumentParser, help_text: str = "log details; print tracebacks") -> None:
    """Add ``-v``/``--verbose`` (``args.verbose``) to ``parser``."""
    parser.add_argument("-v", "--verbose", action="store_true", help=help_text)


def is_out_of_memory(err: BaseException) -> bool:
    """True for ``MemoryError`` and torch's ``OutOfMemoryError`` (a ``RuntimeError`` subclass).

    Example:
        >>> is_out_of_memory(MemoryError()), is_out_of_memory(ValueError("x"))
        (True, False)
    """
    return isinstance(err, MemoryError) or any(k.__name__ == "OutOfMemoryError" for k in type(err).__mro__)


def describe_error(err: BaseException) -> str:
    """The user-facing text of ``err``: its message, with the file first for ``OSError``s that carry one."""
    if is_out_of_memory(err):
        detail = str(err).strip().splitlines()[0] if str(err).strip() else "no detail"
        return f"out of memory ({detail}); use a smaller input, batch or patch, or a machine with more memory"
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        where = f"{err.filename} -> {err.filename2}" if err.filename2 else str(err.filename)
        hint = " (is the folder read-only?)" if err.errno in (errno.EACCES, errno.EROFS, errno.EPERM) else ""
        return f"{where}: {err.strerror}{hint}"
    text = str(err).strip()
    if isinstance(err, KeyError):  # str(KeyError) is the repr of the key
        text = f"missing key {text}"
    return text or type(err).__name__


def run_cli(prog: str, body: Callable[[], int | None], verbose: bool = False) -> int:
    """Run ``body`` and return the command's exit code; never lets an exception escape.

    Args:
        prog: the command's name, the prefix of every message (``lgeseg_train``).
        body: the command's work; returns its exit code (None means 0).
        verbose: print the traceback before the message.

    Returns:
        ``body``'s code; 1 after an error (message on stderr); 130 after Ctrl-C.
    """
    try:
        return int(body() or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - this is the one place that turns exceptions into messages
        if verbose:
            traceback.print_exc()
        known = isinstance(err, KNOWN_ERRORS) or is_out_of_memory(err)
        if known:
            print(f"{prog}: error: {describe_error(err)}", file=sys.stderr)
        else:
            hint = "" if verbose else "; rerun with -v for the traceback"
            print(f"{prog}: internal error: {type(err).__name__}: {describe_error(err)} (please report it{hint})",
                  file=sys.stderr)
        return 1


def run_command(parser: argparse.ArgumentParser, args: argparse.Namespace,
                body: Callable[[argparse.Namespace], int | None], level: int | None = logging.INFO,
                log_format: str = "%(message)s", datefmt: str | None = None, prog: str | None = None) -> int:
    """Set up logging, then run ``body(args)`` as ``run_cli`` does; returns the exit code.

    Args:
        parser: the command's parser; its ``prog`` prefixes the messages unless ``prog`` is given.
        args: the parsed arguments, with ``verbose`` (``add_verbose_flag``).
        body: the command's work (its ``_run``).
        level, log_format, datefmt: ``logging.basicConfig``'s; ``level`` None leaves logging as it is.
        prog: the name in messages when it is not ``parser.prog`` (a subcommand: ``lgeseg_convert dicom``).
    """
    if level is not None:
        logging.basicConfig(level=level, format=log_format, datefmt=datefmt)
    return run_cli(prog or parser.prog, lambda: body(args), args.verbose)
