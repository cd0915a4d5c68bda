"""lgeseg's own exceptions: a small hierarchy whose messages a user can act on.

Every message names the file (or folder) and says what was expected and what was found. The
classes derive from the built-in exception a caller would already catch (``ValueError`` for bad
content, ``FileExistsError`` for a refused output), so ``except ValueError`` keeps working; the
command-line tools print any of them as one ``<command>: error: <message>`` line and exit 1
(``lgeseg.cli._errors``).
"""

from __future__ import annotations


class LgesegError(Exception):
    """Base class of lgeseg's own errors."""


class InvalidInputError(LgesegError, ValueError):
    """A file's content is unusable: out-of-range header values, non-finite voxels, a bad JSON field."""


class CorruptFileError(InvalidInputError):
    """A file is damaged: truncated, a broken compressed stream, or a payload shorter than its header says."""


class OutputConflictError(LgesegError, FileExistsError):
    """An output folder holds results that the run would replace or mix with (use --overwrite / --continue)."""


class FolderLockedError(OutputConflictError):
    """Another live process is writing the output folder (its lock file names the process)."""
