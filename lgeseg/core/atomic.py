"""Atomic file output: write to a temporary name beside the target, then rename.

A reader (or a rerun after an interruption) never sees half a file: either the old file or the
new one is there. The temporary file gets the permissions an ordinary new file would get
(0666 less the umask), not ``mkstemp``'s private 0600.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

#: ``atomic_output``'s temporary names: ``.`` + target name + ``.`` + mkstemp's 8 characters + the suffix.
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}(\.nii\.gz|\.nii|\.mha|\.mhd|\.nrrd|\.npz|\.png|\.tmp)$")


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


#: What to do when a write fails for lack of room, by errno (appended to the system's message).
_WRITE_HINTS = {
    errno.ENOSPC: "the disk is full: free space or write to another disk",
    errno.EFBIG: "larger than the file system allows (FAT32: 4 GB): write to another file system",
    errno.EDQUOT: "your disk quota is used up: free space or write elsewhere",
}


def _error_number(err: OSError) -> int | None:
    """``err.errno``, also for ``OSError(28)`` (one int argument leaves ``errno`` unset)."""
    if err.errno is not None:
        return err.errno
    return err.args[0] if len(err.args) == 1 and isinstance(err.args[0], int) else None


def naming_file(err: OSError, path: str | Path, temporary: str | Path | None = None) -> OSError:
    """An ``OSError`` like ``err`` whose ``filename`` is ``path`` (when ``err`` names no file, or the temporary).

    Writers report a full disk or an oversized file without the file (``[Errno 28] No space left on
    device``); the error the user sees names the file being written and says what to do.

    Example:
        >>> import errno
        >>> err = naming_file(OSError(errno.ENOSPC, "No space left on device"), "model/checkpoint_best.pt")
        >>> err.filename, err.strerror
        ('model/checkpoint_best.pt', 'No space left on device (the disk is full: free space or write to another disk)')
    """
    number = _error_number(err)
    if err.filename is not None and (temporary is None or str(err.filename) != str(temporary)):
        return err
    text = err.strerror or (os.strerror(number) if number is not None else str(err) or type(err).__name__)
    hint = _WRITE_HINTS.get(number) if number is not None else None
    return type(err)(number if number is not None else errno.EIO, f"{text} ({hint})" if hint else text, str(path))


@contextmanager
def atomic_output(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed.

    An ``OSError`` that names no file (a full disk, ``[Errno 27] File too large``) or only the
    temporary is re-raised naming ``path`` (``naming_file``).

    Args:
        path: the final file; its folder is created.
        suffix: ending of the temporary file (some writers choose the format by ending, e.g. ".nii.gz").

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     with atomic_output(Path(folder) / "result.txt") as tmp:
        ...         _ = tmp.write_text("done")  # a reader never sees result.txt half written
        ...     sorted(p.name for p in Path(folder).iterdir()), (Path(folder) / "result.txt").read_text()
        (['result.txt'], 'done')
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except OSError as err:
        named = naming_file(err, path, tmp)
        if named is err:
            raise
        raise named from err
    finally:
        Path(tmp).unlink(missing_ok=True)


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files of ``atomic_output`` that a killed process left in ``folder``.

    Call it only when no other process can be writing ``folder`` (a run holding the folder's lock,
    or resuming its own training run). Returns the removed paths.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     _ = (Path(folder) / ".case.nii.gz.ab12cd34.nii.gz").write_bytes(b"")  # left by a killed writer
        ...     _ = (Path(folder) / "case.nii.gz").write_bytes(b"")
        ...     [p.name for p in remove_stale_temporaries(folder)], sorted(p.name for p in Path(folder).iterdir())
        (['.case.nii.gz.ab12cd34.nii.gz'], ['case.nii.gz'])
    """
    removed = []
    for path in Path(folder).iterdir():
        if path.is_file() and _TEMP_NAME.match(path.name):
            path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        logger.warning("%s: removed %d temporary file(s) left by an interrupted run", folder, len(removed))
    return removed
