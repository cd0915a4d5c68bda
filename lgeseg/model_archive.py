"""Models that travel: a model folder packed into one zip, and a zip checked before it becomes a model folder.

``export_model(MODEL, OUT.zip)`` writes the files a model needs and nothing else (``model.json`` with
its model card, ``plans.json``, weights, the training records), each at the top of the zip, plus
``manifest.json`` with every file's SHA-256 and size.

``install_model(ZIP, DEST)`` trusts nothing in the zip. It refuses, naming the entry: names that
are not exactly one of the expected file names (which covers ``../`` path traversal, absolute
paths, folders and unexpected files such as scripts or pickles), symbolic links, duplicates, a
total size beyond a limit (zip bombs), files that differ from the manifest, JSON that does not
parse, and checkpoints that do not load with ``torch.load(weights_only=True)`` (a pickle that could
run code). It unpacks into a hidden folder beside ``DEST``, builds the network from the plans with
the weights, and only then renames the folder to ``DEST``: an archive is installed whole or not at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lgeseg.atomic import atomic_output
from lgeseg.model_card import write_model_card

#: Files a model folder may hand on, besides the checkpoints.
METADATA_FILES: tuple[str, ...] = ("model.json", "plans.json", "fingerprint.json", "splits.json",
                                   "harmonization_reference.json", "training_log.txt", "progress.png")
#: Checkpoint files (``checkpoint_<name>.pt``) an archive may hold.
CHECKPOINT_FILES: tuple[str, ...] = ("checkpoint_final.pt", "checkpoint_best.pt", "checkpoint_latest.pt")
MANIFEST = "manifest.json"
#: Largest total unpacked size accepted by ``install_model`` (bytes).
MAX_UNPACKED_BYTES = 4 * 1024**3


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_model(model_dir: str | Path, zip_path: str | Path, checkpoints: Iterable[str] = ("final",),
                 intended_use: str | None = None) -> Path:
    """Pack a model folder into one zip that ``install_model`` accepts.

    Args:
        model_dir: a trained model folder.
        zip_path: the zip to write (atomically).
        checkpoints: which weights to include (``final``, ``best``, ``latest``); ``final`` falls back to
            best, then latest, as prediction does. ``latest`` also carries the optimizer state.
        intended_use: free text for the model card; None keeps the card's (or the default) text.

    Returns:
        ``zip_path``. Raises ``FileNotFoundError``/``ValueError`` naming the folder or file when the
        model is incomplete or a checkpoint is not plain weights. The model card in ``model.json``
        is written (or refreshed) first, so the archive always carries one.

    Example:
        >>> import tempfile
        >>> from lgeseg.model_folder import write_untrained_model
        >>> tmp = Path(tempfile.mkdtemp())
        >>> model_dir = write_untrained_model(tmp / "model")  # untrained; a trained model folder reads the same
        >>> zip_path = export_model(model_dir, tmp / "model.zip")
        >>> sorted(entry.filename for entry in check_archive(zip_path))
        ['checkpoint_final.pt', 'manifest.json', 'model.json', 'plans.json']
        >>> shutil.rmtree(tmp)
    """
    # deferred: model_folder loads torch; lgeseg_export_model and lgeseg_install_model --help start without it
    from lgeseg.model_folder import find_checkpoint, load_checkpoint

    model_dir, zip_path = Path(model_dir), Path(zip_path)
    write_model_card(model_dir, intended_use)
    files = [model_dir / name for name in METADATA_FILES if (model_dir / name).is_file()]
    weights = sorted({find_checkpoint(model_dir, name) for name in checkpoints})
    for path in weights:
        load_checkpoint(path)  # refuse to hand on anything that is not plain weights
    files += weights
    manifest = {"format": "lgeseg-model-1",
                "files": {p.name: {"sha256": _sha256(p), "bytes": p.stat().st_size} for p in files}}
    with atomic_output(zip_path, suffix=".zip") as tmp, zipfile.ZipFile(tmp, "w") as archive:
        for path in files:
            compression = zipfile.ZIP_STORED if path.suffix in (".pt", ".png") else zipfile.ZIP_DEFLATED
            archive.write(path, path.name, compress_type=compression)
        archive.writestr(MANIFEST, json.dumps(manifest, indent=2), compress_type=zipfile.ZIP_DEFLATED)
    return zip_path


def _check_entry(info: zipfile.ZipInfo, zip_path: Path, seen: set[str]) -> None:
    name = info.filename
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise ValueError(f"{zip_path}: refused: entry {name!r} is a symbolic link (a model archive holds plain files)")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise ValueError(f"{zip_path}: refused: entry {name!r} is an absolute path")
    if ".." in name.replace("\\", "/").split("/"):
        raise ValueError(f"{zip_path}: refused: entry {name!r} points outside the model folder (path traversal)")
    if name not in (*METADATA_FILES, *CHECKPOINT_FILES, MANIFEST):
        raise ValueError(f"{zip_path}: refused: unexpected entry {name!r}; a model archive holds only "
                         f"{', '.join((*METADATA_FILES, *CHECKPOINT_FILES, MANIFEST))} at its top level")
    if name in seen:
        raise ValueError(f"{zip_path}: refused: entry {name!r} appears twice")
    seen.add(name)


def check_archive(zip_path: str | Path) -> list[zipfile.ZipInfo]:
    """Check a model zip's table of contents (names, links, duplicates, sizes) without unpacking it.

    Returns the entries. Raises ``FileNotFoundError`` if missing and ``ValueError`` naming the zip and
    the entry for anything ``install_model`` refuses (see the module docstring).

    Example:
        >>> import tempfile
        >>> from lgeseg.model_folder import write_untrained_model
        >>> tmp = Path(tempfile.mkdtemp())
        >>> model_dir = write_untrained_model(tmp / "model")  # untrained; a trained model folder reads the same
        >>> names = [entry.filename for entry in check_archive(export_model(model_dir, tmp / "model.zip"))]
        >>> "manifest.json" in names, "checkpoint_final.pt" in names
        (True, True)
        >>> with zipfile.ZipFile(tmp / "model.zip", "a") as archive:
        ...     archive.writestr("../evil.py", "print('hi')")
        >>> check_archive(tmp / "model.zip")
        Traceback (most recent call last):
        ...
        ValueError: .../model.zip: refused: entry '../evil.py' ...
        >>> shutil.rmtree(tmp)
    """
    zip_path = Path(zip_path)
    if not zip_path.is_file():
        raise FileNotFoundError(f"{zip_path}: model archive not found")
    try:
        with zipfile.ZipFile(zip_path) as archive:
            entries = archive.infolist()
    except zipfile.BadZipFile as err:
        raise ValueError(f"{zip_path}: not a zip file ({err})") from err
    seen: set[str] = set()
    for info in entries:
        _check_entry(info, zip_path, seen)
    for required in ("model.json", "plans.json", MANIFEST):
        if required not in seen:
            raise ValueError(f"{zip_path}: refused: {required} is missing")
    if not seen & set(CHECKPOINT_FILES):
        raise ValueError(f"{zip_path}: refused: no checkpoint ({', '.join(CHECKPOINT_FILES)})")
    total = sum(info.file_size for info in entries)
    if total > MAX_UNPACKED_BYTES:
        raise ValueError(f"{zip_path}: refused: unpacks to {total} bytes, more than the {MAX_UNPACKED_BYTES} allowed")
    return entries


def _check_manifest(folder: Path, zip_path: Path) -> None:
    try:
        manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_text())
        listed = manifest["files"]
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{zip_path}: refused: {MANIFEST} is not a valid manifest ({err})") from err
    present = {p.name for p in folder.iterdir()} - {MANIFEST}
    if set(listed) != present:
        raise ValueError(f"{zip_path}: refused: files {sorted(present)} differ from {MANIFEST}'s {sorted(listed)}")
    for name, entry in listed.items():
        if _sha256(folder / name) != entry.get("sha256"):
            raise ValueError(f"{zip_path}: refused: {name} differs from its SHA-256 in {MANIFEST} (damaged or altered)")


def _check_unpacked(folder: Path, zip_path: Path) -> None:
    from lgeseg.model_folder import load_checkpoint, load_model  # deferred: torch, as in export_model

    _check_manifest(folder, zip_path)
    for path in sorted(folder.glob("*.json")):
        try:
            json.loads(path.read_text())
        except ValueError as err:
            raise ValueError(f"{zip_path}: refused: {path.name} is not valid JSON ({err})") from err
    for name in CHECKPOINT_FILES:
        if (folder / name).is_file():
            try:
                load_checkpoint(folder / name)
            except ValueError as err:
                raise ValueError(f"{zip_path}: refused: {name} is not a weights-only checkpoint; "
                                 f"{str(err).split(': ', 1)[-1]}") from err
    try:
        load_model(folder, device="cpu")
    except (FileNotFoundError, ValueError) as err:
        raise ValueError(f"{zip_path}: refused: the archive is not a usable model: {err}") from err


def _unpack(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, zip_path: Path) -> None:
    """Copy one entry to ``target``, refusing more bytes than its header declares (a lying zip bomb)."""
    written = 0
    with archive.open(info) as source, open(target, "xb") as handle:
        for block in iter(lambda: source.read(1 << 20), b""):
            written += len(block)
            if written > info.file_size:
                raise ValueError(f"{zip_path}: refused: entry {info.filename!r} unpacks to more than the "
                                 f"{info.file_size} bytes it declares")
            handle.write(block)


def install_model(zip_path: str | Path, dest: str | Path, overwrite: bool = False) -> Path:
    """Check a model archive and unpack it into the model folder ``dest``.

    Args:
        zip_path: a zip written by ``export_model``.
        dest: the model folder to create; it must not exist unless ``overwrite``.
        overwrite: replace an existing ``dest``.

    Returns:
        ``dest``, a model folder ready for ``lgeseg_predict -m``. Raises ``FileNotFoundError`` or
        ``ValueError`` naming the archive and the offending entry; nothing is left at ``dest`` then.

    Example:
        >>> import tempfile
        >>> from lgeseg.model_folder import write_untrained_model
        >>> tmp = Path(tempfile.mkdtemp())
        >>> model_dir = write_untrained_model(tmp / "model")  # untrained; a trained model folder reads the same
        >>> installed = install_model(export_model(model_dir, tmp / "model.zip"), tmp / "installed")
        >>> sorted(p.name for p in installed.iterdir())
        ['checkpoint_final.pt', 'manifest.json', 'model.json', 'plans.json']
        >>> shutil.rmtree(tmp)
    """
    zip_path, dest = Path(zip_path), Path(dest)
    if dest.exists() and not overwrite:
        raise ValueError(f"{dest}: already exists; choose another destination or use --overwrite")
    entries = check_archive(zip_path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        with zipfile.ZipFile(zip_path) as archive:
            for info in entries:  # names were checked: plain file names, written inside staging only
                _unpack(archive, info, staging / info.filename, zip_path)
        _check_unpacked(staging, zip_path)
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)  # mkdtemp's folder is private; an installed model is an ordinary folder
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return dest
