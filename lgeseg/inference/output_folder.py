"""The prediction output folder: who made its files, one writer at a time, no debris from killed runs.

- ``PROVENANCE_FILE`` (``lgeseg_predictions.json``) records the models (folder, checkpoint file,
  its size and modification time) and the settings that change a label map (mirroring, window,
  step, postprocessing, harmonization). A rerun skips an existing output only when the record
  matches; a run with another model or other settings is refused unless ``overwrite``.
- ``LOCK_FILE`` (``.lgeseg_predict.lock``) holds the writing process's id and host while a run
  writes; a second run refuses naming that process. A lock left by a process that no longer runs
  (on this host) is taken over.
- Temporary files of ``atomic_output`` left by a killed run are removed once the lock is held, when
  no other run can be writing them (``atomic.remove_stale_temporaries``).
- ``case_outputs`` names the files one case writes (``CaseOutputs``: the label map with the input's
  ending, and the optional DICOM SEG, probabilities and overlay), once per case.

Usage (``out`` an output folder, ``record`` from ``provenance_record``)::

    with lock_output_folder(out):
        check_provenance(out, record, overwrite=False, outputs_exist=True)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import socket
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from lgeseg import __version__
from lgeseg.core.errors import FolderLockedError, OutputConflictError
from lgeseg.core.records import load_json, save_json
from lgeseg.files.io import file_ending
from lgeseg.inference.input_cases import InputCase
from lgeseg.inference.nnunet_files import probability_files

logger = logging.getLogger(__name__)

PROVENANCE_FILE = "lgeseg_predictions.json"
LOCK_FILE = ".lgeseg_predict.lock"
#: For DICOM input: which series each case came from.
SERIES_FILE = "dicom_series.json"


def model_identity(model_dir: Path, checkpoint: Path) -> dict[str, Any]:
    """What identifies a model's weights: resolved folder, checkpoint file name, size (bytes), mtime (ns).

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> checkpoint = Path(tmp.name) / "checkpoint_final.pth"
        >>> _ = checkpoint.write_bytes(b"weights")
        >>> identity = model_identity(Path(tmp.name), checkpoint)
        >>> identity["checkpoint"], identity["bytes"], sorted(identity)
        ('checkpoint_final.pth', 7, ['bytes', 'checkpoint', 'model', 'modified_ns'])
        >>> tmp.cleanup()
    """
    stat = checkpoint.stat()
    return {"model": str(Path(model_dir).resolve()), "checkpoint": checkpoint.name, "bytes": stat.st_size,
            "modified_ns": stat.st_mtime_ns}


def provenance_record(models: Sequence[dict[str, Any]], settings: dict[str, Any]) -> dict[str, Any]:
    """The content of ``PROVENANCE_FILE``: ``models`` (``model_identity`` dicts) and ``settings``.

    Example:
        >>> models = [{"model": "/models/m1", "checkpoint": "checkpoint_final.pth"}]
        >>> record = provenance_record(models, {"mirror": True})
        >>> sorted(record), record["settings"]
        (['lgeseg_version', 'models', 'settings'], {'mirror': True})
    """
    return {"lgeseg_version": __version__, "models": list(models), "settings": dict(settings)}


def _difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    if sorted(map(json.dumps, old.get("models", []))) != sorted(map(json.dumps, new["models"])):
        before = ", ".join(f"{m.get('model')}/{m.get('checkpoint')}" for m in old.get("models", []))
        return f"made by other model weights ({before or 'unknown'})"
    changed = [f"{k} {old.get('settings', {}).get(k)!r} -> {v!r}" for k, v in new["settings"].items()
               if old.get("settings", {}).get(k) != v]
    return "made with other settings (" + ", ".join(changed) + ")"


def check_provenance(output_dir: Path, record: dict[str, Any], overwrite: bool, outputs_exist: bool) -> None:
    """Refuse to mix predictions of different models or settings in ``output_dir``; then record ``record``.

    Args:
        output_dir: the prediction folder (exists).
        record: ``provenance_record`` of this run.
        overwrite: the run redoes every case, so any earlier record is simply replaced.
        outputs_exist: some outputs of this run's cases are already in the folder.

    Raises ``OutputConflictError`` naming ``PROVENANCE_FILE`` (or the folder, when outputs exist
    without a record) and what differs, unless ``overwrite``.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> out = Path(tmp.name)
        >>> check_provenance(out, provenance_record([], {"mirror": True}), overwrite=False, outputs_exist=False)
        >>> (out / PROVENANCE_FILE).is_file()  # recorded; the same settings pass again
        True
        >>> check_provenance(out, provenance_record([], {"mirror": False}), overwrite=False, outputs_exist=True)
        Traceback (most recent call last):
        lgeseg.core.errors.OutputConflictError: ... were made with other settings (mirror True -> False); use
        --overwrite ...
        >>> tmp.cleanup()
    """
    path = output_dir / PROVENANCE_FILE
    if not overwrite:
        if path.is_file():
            try:
                old = load_json(path)
            except ValueError:
                old = {}
            if not isinstance(old, dict) or old.get("models") != record["models"] \
                    or old.get("settings") != record["settings"]:
                raise OutputConflictError(f"{path}: the predictions in {output_dir} were "
                                          f"{_difference(old if isinstance(old, dict) else {}, record)}; "
                                          "use --overwrite to redo them all, or choose another output folder")
        elif outputs_exist:
            raise OutputConflictError(f"{output_dir}: holds outputs of these cases but no {PROVENANCE_FILE} saying "
                                      "which model made them; use --overwrite to redo them, or another output folder")
    save_json(record, path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _read_lock(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _try_create_lock(path: Path) -> bool:
    """Create the lock file with this process's id; False when it exists already."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        json.dump({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}, handle)
    return True


def acquire_lock(output_dir: Path) -> Path:
    """Take ``output_dir``'s lock; returns the lock file.

    Raises ``FolderLockedError`` naming the holder's pid (and host) while it runs, and
    ``PermissionError``/``OSError`` naming the folder when it cannot be written (read-only): both
    before any prediction. A lock whose process is gone on this host is taken over with a warning.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> lock = acquire_lock(Path(tmp.name))
        >>> lock.name, load_json(lock)["pid"] == os.getpid()
        ('.lgeseg_predict.lock', True)
        >>> acquire_lock(Path(tmp.name))  # this process still holds it
        Traceback (most recent call last):
        lgeseg.core.errors.FolderLockedError: ...: another lgeseg_predict run (pid ...) is writing ...
        >>> release_lock(lock)
        >>> tmp.cleanup()
    """
    path = output_dir / LOCK_FILE
    for _ in range(2):
        if _try_create_lock(path):
            return path
        holder = _read_lock(path)
        pid, host = holder.get("pid"), holder.get("host")
        same_host = host in (None, socket.gethostname())
        if isinstance(pid, int) and (not same_host or _pid_alive(pid)):
            where = "" if same_host else f" on host {host}"
            raise FolderLockedError(f"{path}: another lgeseg_predict run (pid {pid}{where}) is writing {output_dir}; "
                                    "wait for it to finish or choose another output folder (remove the lock file "
                                    "only if that run is gone)")
        logger.warning("%s: taking over the lock of a run that no longer runs (pid %s)", path, pid)
        path.unlink(missing_ok=True)
    raise FolderLockedError(f"{path}: another run took the lock of {output_dir} at the same time; try again")


def release_lock(path: Path) -> None:
    """Remove the lock file if it is still this process's.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> lock = acquire_lock(Path(tmp.name))
        >>> release_lock(lock)
        >>> lock.exists()
        False
        >>> tmp.cleanup()
    """
    if _read_lock(path).get("pid") == os.getpid():
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def lock_output_folder(output_dir: Path) -> Iterator[Path]:
    """Hold ``output_dir``'s lock for the ``with`` block (see ``acquire_lock``); yields the lock file.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> with lock_output_folder(Path(tmp.name)) as lock:
        ...     print(lock.name, lock.exists())
        .lgeseg_predict.lock True
        >>> lock.exists()  # released on exit
        False
        >>> tmp.cleanup()
    """
    path = acquire_lock(output_dir)
    try:
        yield path
    finally:
        release_lock(path)


def check_writable(output_dir: Path) -> None:
    """Raise ``PermissionError`` naming ``output_dir`` when files cannot be created in it (before any work).

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> check_writable(Path(tmp.name))  # passes and leaves no file behind
        >>> list(Path(tmp.name).iterdir())
        []
        >>> tmp.cleanup()
    """
    probe = output_dir / f".lgeseg_write_test.{os.getpid()}"
    try:
        probe.write_bytes(b"")
    except OSError as err:
        raise PermissionError(err.errno, f"cannot write to the output folder ({err.strerror})",
                              str(output_dir)) from err
    probe.unlink(missing_ok=True)


def output_ending(case: InputCase) -> str:
    """The ending of ``case``'s label map: the input's (``.nii.gz``, ``.nii``, ``.mha``, ``.nrrd``).

    ``.mhd`` inputs (header + separate data file) give ``.mha``, the same format in one file, which
    can be written atomically; DICOM series give ``.nii.gz``.

    Example:
        >>> nifti, metaimage = InputCase("p1", (Path("in/p1_0000.nii.gz"),)), InputCase("p2", (Path("p2.mhd"),))
        >>> output_ending(nifti), output_ending(metaimage)
        ('.nii.gz', '.mha')
    """
    if case.series is not None:
        return ".nii.gz"
    ending = file_ending(case.paths[0])
    return ".mha" if ending in ("", ".mhd") else ending


@dataclasses.dataclass(frozen=True)
class CaseOutputs:
    """The files one predicted case writes into the output folder (``case_outputs`` builds them once).

    Attributes:
        label_map: ``<case><ending>`` (``output_ending``: the input's ending).
        dicom_seg: ``<case>.seg.dcm``, or None.
        probabilities: ``(<case>.npz, <case>.pkl)`` (``nnunet_files.probability_files``), or None.
        overlay: ``<case>_overlay.png``, or None.
    """

    label_map: Path
    dicom_seg: Path | None = None
    probabilities: tuple[Path, Path] | None = None
    overlay: Path | None = None

    @property
    def paths(self) -> list[Path]:
        """Every file of the case, the label map first."""
        optional = [self.dicom_seg, *(self.probabilities or ()), self.overlay]
        return [self.label_map, *(path for path in optional if path is not None)]


def case_outputs(case: InputCase, output_dir: Path, dicom_seg: bool = False, save_probabilities: bool = False,
                 overlays: bool = False) -> CaseOutputs:
    """The files ``case``'s prediction writes into ``output_dir``: the label map and the ones asked for.

    Example:
        >>> outputs = case_outputs(InputCase("p1", (Path("in/p1_0000.nii.gz"),)), Path("out"), overlays=True)
        >>> outputs.label_map, [p.name for p in outputs.paths]
        (PosixPath('out/p1.nii.gz'), ['p1.nii.gz', 'p1_overlay.png'])
    """
    return CaseOutputs(
        label_map=output_dir / f"{case.case_id}{output_ending(case)}",
        dicom_seg=output_dir / f"{case.case_id}.seg.dcm" if dicom_seg else None,
        probabilities=probability_files(output_dir, case.case_id) if save_probabilities else None,
        overlay=output_dir / f"{case.case_id}_overlay.png" if overlays else None,
    )
