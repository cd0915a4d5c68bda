"""Models that travel: a model folder packed into one zip, and a zip checked before it becomes a model folder.

``export_model(MODEL, OUT.zip)`` writes the files a model needs and nothing else (``model.json`` with
its model card, ``plans.json``, weights, the training records), each at the top of the zip, plus
``manifest.json`` with every file's SHA-256 and size. By default the zip carries no provenance of the
training data (``strip_provenance``): no data path (``model.json``'s ``extras.preprocessed``, the
parent model's folder, ``fingerprint.json``'s dataset paths), no training case id (``fingerprint.json``'s
cases, ``target_cases``) and no split (``splits.json`` and ``training_log.txt`` are left out); counts,
dataset names and the aggregate statistics stay. ``include_provenance=True`` keeps everything.

``install_model(ZIP, DEST)`` trusts nothing in the zip. It refuses, naming the entry: names that
are not exactly one of the expected file names (which covers ``../`` path traversal, absolute
paths, folders and unexpected files such as scripts or pickles), symbolic links, duplicates, a
total size beyond a limit (zip bombs), files that differ from the manifest, JSON that does not
parse, and checkpoints that do not load with ``torch.load(weights_only=True)`` (a pickle that could
run code). It unpacks into a hidden folder beside ``DEST``, builds the network from the plans with
the weights, and only then renames the folder to ``DEST``: an archive is installed whole or not at all.

Neither command destroys what the user has. ``export_model`` reads the model folder only (the model
card goes into the zip's ``model.json``, so a read-only folder exports) and refuses an existing zip
unless ``overwrite`` and a zip inside the model folder. ``install_model --overwrite`` replaces only a
model folder (``model.json`` and nothing but a model's files), never a folder holding the zip; the
staging folders of a killed install (``.<DEST>.lgeseg-install-<pid>-*``) are removed by the next one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lgeseg.core.atomic import atomic_output
from lgeseg.core.errors import OutputConflictError
from lgeseg.core.records import load_json
from lgeseg.model.card import build_model_card
from lgeseg.model.folder import (
    CHECKPOINT_FILES,
    FINGERPRINT_FILE,
    METADATA_FILES,
    MODEL_INFO_FILE,
    PLANS_FILE,
    SPLITS_FILE,
    TRAINING_LOG_FILE,
    find_checkpoint,
    load_checkpoint,
    load_model,
    read_model_metadata,
)

# An archive holds the files of a model folder: METADATA_FILES and CHECKPOINT_FILES (lgeseg.model.folder).
MANIFEST = "manifest.json"
#: Largest total unpacked size accepted by ``install_model`` (bytes).
MAX_UNPACKED_BYTES = 4 * 1024**3
#: ``install_model``'s staging folders beside DEST: ``.<DEST name>.lgeseg-install-<pid>-<mkdtemp's 8 characters>``.
STAGING_TAG = "lgeseg-install"


def hash_file_into(digest: Any, path: str | Path) -> None:
    """Feed the bytes of ``path`` into ``digest`` (a ``hashlib`` object), 1 MiB at a time.

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile() as handle:
        ...     _ = handle.write(b"weights"); handle.flush()
        ...     digest = hashlib.sha256(); hash_file_into(digest, handle.name)
        ...     digest.hexdigest() == hashlib.sha256(b"weights").hexdigest()
        True
    """
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, as hex (the manifest's and the model cards' checksum).

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile() as handle:
        ...     file_sha256(handle.name)[:12]  # of zero bytes
        'e3b0c44298fc'
    """
    digest = hashlib.sha256()
    hash_file_into(digest, path)
    return digest.hexdigest()


#: Files left out of an archive unless provenance is included: they list training case ids and data paths.
PROVENANCE_FILES: tuple[str, ...] = (SPLITS_FILE, TRAINING_LOG_FILE)
#: ``model.json`` ``extras`` keys that hold training data paths.
PROVENANCE_EXTRAS: tuple[str, ...] = ("preprocessed",)


def strip_provenance(model: dict[str, Any], fingerprint: dict[str, Any] | None = None
                     ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``model.json`` and ``fingerprint.json`` contents without training data paths or case ids.

    ``model.json``: ``extras.preprocessed`` (the preprocessed folders) is dropped, ``parent`` (a fine-tuned
    model's parent folder) keeps only the folder's name, ``target_cases`` becomes None, and the model card's
    ``training_data`` keeps ``finetuned_from`` as a name and ``target_cases`` as a count
    (``target_case_count``). ``fingerprint.json``: ``cases`` (one entry per training case) becomes empty and
    each dataset loses its ``path``; the summaries over all cases stay. The card records
    ``provenance: "stripped"``. The inputs are not modified.

    Example:
        >>> model = {"parent": "/data/site/models/parent", "target_cases": ["d/p017"], "extras":
        ...          {"preprocessed": ["/data/site/pre"], "train_cases": 3},
        ...          "model_card": {"training_data": {"finetuned_from": "/data/site/models/parent",
        ...                                           "target_cases": ["d/p017"]}}}
        >>> fingerprint = {"cases": [{"case_id": "p017"}], "datasets": [{"name": "d", "path": "/data/site/d"}]}
        >>> clean, clean_fp = strip_provenance(model, fingerprint)
        >>> clean["parent"], clean["target_cases"], clean["extras"], clean["model_card"]["training_data"]
        ('parent', None, {'train_cases': 3}, {'finetuned_from': 'parent', 'target_case_count': 1})
        >>> clean_fp, "/data/site" in str(clean), model["parent"]  # the input is unchanged
        ({'cases': [], 'datasets': [{'name': 'd'}]}, False, '/data/site/models/parent')
    """
    model = json.loads(json.dumps(model))
    model["extras"] = {k: v for k, v in (model.get("extras") or {}).items() if k not in PROVENANCE_EXTRAS}
    if model.get("parent"):
        model["parent"] = Path(str(model["parent"])).name
    if model.get("target_cases") is not None:
        model["target_cases"] = None
    card = model.get("model_card") or {}
    data = card.get("training_data")
    if isinstance(data, dict):
        if data.get("finetuned_from"):
            data["finetuned_from"] = Path(str(data["finetuned_from"])).name
        if "target_cases" in data:
            data["target_case_count"] = len(data.pop("target_cases") or ())
    if card:
        card["provenance"] = "stripped"
    if fingerprint is not None:
        fingerprint = json.loads(json.dumps(fingerprint))
        fingerprint["cases"] = []
        fingerprint["datasets"] = [{k: v for k, v in entry.items() if k != "path"}
                                   for entry in fingerprint.get("datasets", [])]
    return model, fingerprint


def export_model(model_dir: str | Path, zip_path: str | Path, checkpoints: Iterable[str] = ("final",),
                 intended_use: str | None = None, overwrite: bool = False,
                 include_provenance: bool = False) -> Path:
    """Pack a model folder into one zip that ``install_model`` accepts; the model folder is only read.

    Args:
        model_dir: a trained model folder (it may be read-only).
        zip_path: the zip to write (atomically); not inside ``model_dir``.
        checkpoints: which weights to include (``final``, ``best``, ``latest``); ``final`` falls back to
            best, then latest, as prediction does. ``latest`` also carries the optimizer state.
        intended_use: free text for the model card; None keeps the card's (or the default) text.
        overwrite: replace an existing ``zip_path`` (otherwise an ``OutputConflictError``).
        include_provenance: keep the training data paths, case ids and splits (``splits.json``,
            ``training_log.txt``, ``fingerprint.json``'s cases); by default they are left out
            (``strip_provenance``), so a model can be handed on without the list of patients it saw.

    Returns:
        ``zip_path``. Raises ``FileNotFoundError``/``ValueError`` naming the folder or file when the
        model is incomplete or a checkpoint is not plain weights. The zip's ``model.json`` carries the
        model card, built (or refreshed) for the archive; the folder's own files are only read.

    Example:
        >>> import tempfile
        >>> from lgeseg.model.folder import write_untrained_model
        >>> tmp = Path(tempfile.mkdtemp())
        >>> model_dir = write_untrained_model(tmp / "model")  # untrained; a trained model folder reads the same
        >>> zip_path = export_model(model_dir, tmp / "model.zip")
        >>> sorted(entry.filename for entry in check_archive(zip_path))
        ['checkpoint_final.pt', 'manifest.json', 'model.json', 'plans.json']
        >>> with zipfile.ZipFile(zip_path) as archive:  # no training data paths, case ids or splits
        ...     json.loads(archive.read("manifest.json"))["provenance"]
        'stripped'
        >>> export_model(model_dir, tmp / "model.zip")
        Traceback (most recent call last):
        lgeseg.core.errors.OutputConflictError: .../model.zip: already exists; use --overwrite to replace it, ...
        >>> shutil.rmtree(tmp)
    """
    model_dir, zip_path = Path(model_dir), Path(zip_path)
    _check_export_target(model_dir, zip_path, overwrite)
    _, info = read_model_metadata(model_dir)
    card = build_model_card(model_dir, intended_use)
    model = dataclasses.replace(info, model_card=card).to_dict()
    skipped = {MODEL_INFO_FILE}
    payloads: dict[str, bytes] = {}
    if not include_provenance:
        fingerprint_path = model_dir / FINGERPRINT_FILE
        fingerprint = load_json(fingerprint_path) if fingerprint_path.is_file() else None
        model, fingerprint = strip_provenance(model, fingerprint)
        if fingerprint is not None:
            payloads[FINGERPRINT_FILE] = _json_bytes(fingerprint)
        skipped.update({*PROVENANCE_FILES, FINGERPRINT_FILE})
    payloads[MODEL_INFO_FILE] = _json_bytes(model)
    files = [model_dir / name for name in METADATA_FILES if name not in skipped and (model_dir / name).is_file()]
    weights = sorted({find_checkpoint(model_dir, name) for name in checkpoints})
    for path in weights:
        load_checkpoint(path)  # refuse to hand on anything that is not plain weights
    files += weights
    listed = {name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)} for name, data in payloads.items()}
    listed.update({p.name: {"sha256": file_sha256(p), "bytes": p.stat().st_size} for p in files})
    manifest = {"format": "lgeseg-model-1", "provenance": "included" if include_provenance else "stripped",
                "files": listed}
    with atomic_output(zip_path, suffix=".zip") as tmp, zipfile.ZipFile(tmp, "w") as archive:
        for name, data in payloads.items():
            archive.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
        for path in files:
            compression = zipfile.ZIP_STORED if path.suffix in (".pt", ".png") else zipfile.ZIP_DEFLATED
            archive.write(path, path.name, compress_type=compression)
        archive.writestr(MANIFEST, json.dumps(manifest, indent=2), compress_type=zipfile.ZIP_DEFLATED)
    return zip_path


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2) + "\n").encode()


def _check_export_target(model_dir: Path, zip_path: Path, overwrite: bool) -> None:
    """Refuse a zip inside the model folder, a folder as the zip, and an existing zip unless ``overwrite``."""
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir}: model folder not found")
    if model_dir.resolve() in zip_path.resolve().parents:
        raise ValueError(f"{zip_path}: the zip must not be written inside the model folder it packs ({model_dir}); "
                         "choose a path outside it")
    if zip_path.is_dir():
        raise OutputConflictError(f"{zip_path}: is a folder, expected the path of the zip to write "
                                  f"(e.g. {zip_path / (model_dir.resolve().name + '.zip')})")
    if zip_path.exists() and not overwrite:
        raise OutputConflictError(f"{zip_path}: already exists; use --overwrite to replace it, or choose another "
                                  "file name")


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
        >>> from lgeseg.model.folder import write_untrained_model
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
    for required in (MODEL_INFO_FILE, PLANS_FILE, MANIFEST):
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
        if file_sha256(folder / name) != entry.get("sha256"):
            raise ValueError(f"{zip_path}: refused: {name} differs from its SHA-256 in {MANIFEST} (damaged or altered)")


def _check_unpacked(folder: Path, zip_path: Path) -> None:
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
        overwrite: replace an existing ``dest`` that is a model folder (``model.json``, and only the files
            a model folder holds); any other folder, or one holding ``zip_path``, is refused.

    Returns:
        ``dest``, a model folder ready for ``lgeseg_predict -m``. Raises ``FileNotFoundError`` or
        ``ValueError`` naming the archive and the offending entry (nothing is left at ``dest`` then), and
        ``OutputConflictError`` naming ``dest`` when it may not be replaced (checked before anything is read).
        Staging folders that killed installs of ``dest`` left beside it are removed first.

    Example:
        >>> import tempfile
        >>> from lgeseg.model.folder import write_untrained_model
        >>> tmp = Path(tempfile.mkdtemp())
        >>> model_dir = write_untrained_model(tmp / "model")  # untrained; a trained model folder reads the same
        >>> installed = install_model(export_model(model_dir, tmp / "model.zip"), tmp / "installed")
        >>> sorted(p.name for p in installed.iterdir())
        ['checkpoint_final.pt', 'manifest.json', 'model.json', 'plans.json']
        >>> install_model(tmp / "model.zip", tmp, overwrite=True)  # tmp holds much more than a model
        Traceback (most recent call last):
        lgeseg.core.errors.OutputConflictError: ...: refused: the destination holds the archive itself
        (...model.zip); ...
        >>> shutil.rmtree(tmp)
    """
    zip_path, dest = Path(zip_path), Path(dest)
    check_install_destination(zip_path, dest, overwrite)
    entries = check_archive(zip_path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(dest)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.{STAGING_TAG}-{os.getpid()}-", dir=dest.parent))
    try:
        with zipfile.ZipFile(zip_path) as archive:
            for info in entries:  # names were checked: plain file names, written inside staging only
                _unpack(archive, info, staging / info.filename, zip_path)
        _check_unpacked(staging, zip_path)
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)  # mkdtemp's folder is private; an installed model is an ordinary folder
        _replace_folder(staging, dest)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return dest


def _replace_folder(staging: Path, dest: Path) -> None:
    """Rename ``staging`` to ``dest``; an old ``dest`` is first renamed to a staging name, then removed."""
    if not dest.exists():
        staging.rename(dest)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.{STAGING_TAG}-{os.getpid()}-", dir=dest.parent))
    old.rmdir()
    dest.rename(old)  # a kill from here to the rename leaves the old model under a staging name
    staging.rename(dest)
    shutil.rmtree(old)


def _model_entries() -> set[str]:
    return {*METADATA_FILES, *CHECKPOINT_FILES, MANIFEST}


def check_install_destination(zip_path: str | Path, dest: str | Path, overwrite: bool) -> None:
    """Refuse a ``dest`` that ``install_model`` must not replace; nothing is written.

    ``dest`` may be absent (or an empty folder). With ``overwrite`` it may also be a model folder: it holds
    ``model.json`` and nothing but the files of a model folder (``METADATA_FILES``, ``CHECKPOINT_FILES``,
    ``manifest.json``). A ``dest`` holding ``zip_path`` is always refused.

    Example:
        >>> import tempfile
        >>> tmp = Path(tempfile.mkdtemp())
        >>> _ = (tmp / "thesis.tex").write_text("years of work")
        >>> check_install_destination(tmp.parent / "m.zip", tmp, overwrite=True)
        Traceback (most recent call last):
        lgeseg.core.errors.OutputConflictError: ...: refused: not a model folder (no model.json; it holds
        thesis.tex); ...
        >>> check_install_destination(tmp.parent / "m.zip", tmp / "new_model", overwrite=False)  # absent: fine
        >>> shutil.rmtree(tmp)
    """
    zip_path, dest = Path(zip_path), Path(dest)
    if dest.resolve() == zip_path.resolve() or dest.resolve() in zip_path.resolve().parents:
        raise OutputConflictError(f"{dest}: refused: the destination holds the archive itself ({zip_path}); "
                                  "install into a new folder, e.g. one named after the model")
    if not dest.exists():
        return
    if not dest.is_dir():
        raise OutputConflictError(f"{dest}: refused: exists and is a file, not a model folder; choose another "
                                  "destination")
    present = sorted(p.name for p in dest.iterdir())
    if not present:
        return
    if not overwrite:
        raise OutputConflictError(f"{dest}: already exists; choose another destination, or use --overwrite to "
                                  "replace the model folder")
    own = _model_entries()
    foreign = [name for name in present  # a killed writer's atomic temporaries (.model.json.<8 chars>...) are ours
               if name not in own and not any(name.startswith(f".{file}.") for file in own)]
    if MODEL_INFO_FILE not in present or foreign:
        shown = ", ".join((foreign or present)[:5]) + (" ..." if len(foreign or present) > 5 else "")
        why = f"no {MODEL_INFO_FILE}" if MODEL_INFO_FILE not in present else "files that are not part of a model"
        raise OutputConflictError(f"{dest}: refused: not a model folder ({why}; it holds {shown}); --overwrite "
                                  "replaces only a model folder: choose a new folder for the model")


#: A staging folder of ``install_model``: ``.<dest>.lgeseg-install-<pid>-<8 characters>``.
_STAGING = re.compile(rf"^\.(?P<dest>.+)\.{STAGING_TAG}-(?P<pid>\d+)-[a-z0-9_]{{8}}$")
#: The staging names of earlier versions (``.<dest>.<8 characters>``): removed only while still private (mkdtemp's
#: 0700, changed just before the rename) and holding nothing but a model's files.
_OLD_STAGING = re.compile(r"^\.(?P<dest>.+)\.[a-z0-9_]{8}$")


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_staging(dest: str | Path) -> list[Path]:
    """Remove the staging folders that killed installs of ``dest`` left beside it; returns them.

    Only lgeseg's own staging names for ``dest`` are touched: ``.<dest>.lgeseg-install-<pid>-*`` whose
    process is gone, and the older ``.<dest>.<8 characters>`` folders that are still private (0700) and
    hold nothing but a model's files.

    Example:
        >>> import tempfile
        >>> tmp = Path(tempfile.mkdtemp())
        >>> (tmp / ".model.lgeseg-install-999999999-ab12cd34").mkdir()  # left by a killed install
        >>> (tmp / ".model.backup").mkdir()  # not lgeseg's
        >>> [p.name for p in remove_stale_staging(tmp / "model")], sorted(p.name for p in tmp.iterdir())
        (['.model.lgeseg-install-999999999-ab12cd34'], ['.model.backup'])
        >>> shutil.rmtree(tmp)
    """
    dest = Path(dest)
    if not dest.parent.is_dir():
        return []
    removed = []
    for path in sorted(dest.parent.iterdir()):
        if not path.is_dir() or path.is_symlink():
            continue
        match = _STAGING.match(path.name)
        if match and match["dest"] == dest.name:
            stale = not _process_alive(int(match["pid"]))
        else:
            old = _OLD_STAGING.match(path.name)
            stale = bool(old and old["dest"] == dest.name and stat.S_IMODE(path.stat().st_mode) == 0o700
                         and {p.name for p in path.iterdir()} <= _model_entries())
        if stale:
            shutil.rmtree(path)
            removed.append(path)
    return removed
