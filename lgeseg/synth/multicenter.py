"""Write the synthetic centers as raw datasets in nnU-Net v2 layout, one folder per center."""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from lgeseg.core.errors import OutputConflictError
from lgeseg.core.records import LABELS, load_json, save_json
from lgeseg.files.io import write_image, write_label
from lgeseg.synth.centers import CenterProfile, get_profile
from lgeseg.synth.phantom import SyntheticCase, synthesize_case

logger = logging.getLogger(__name__)

FILE_ENDING = ".nii.gz"
GENERATOR = "lgeseg.synth"


def case_id(center: int, index: int) -> str:
    """Case identifier ``c<center>_<nnn>``, e.g. ``c1_000``.

    Example:
        >>> case_id(3, 7)
        'c3_007'
    """
    return f"c{center}_{index:03d}"


def _case_summary(case: SyntheticCase) -> dict[str, Any]:
    acq = case.acquisition
    return {
        "field_strength_t": acq.field_strength_t,
        "imaging_time_min": round(acq.imaging_time_min, 2),
        "ti_error": round(acq.ti_error, 4),
        "ghost_amplitude": round(acq.ghost_amplitude, 4),
        "infarcts": [f"{i.territory} transmurality {i.transmurality:.2f}{' with MVO' if i.mvo else ''}"
                     for i in case.subject.infarcts],
    }


def dataset_json(profile: CenterProfile, num_training: int, seed: int, cases: dict[str, Any]) -> dict[str, Any]:
    """The ``dataset.json`` of one synthetic center (nnU-Net v2 fields plus lgeseg's center fields).

    Example:
        >>> meta = dataset_json(get_profile(1), num_training=2, seed=0, cases={})
        >>> meta["labels"], meta["file_ending"], meta["center"]
        ({'background': 0, 'blood_pool': 1, 'myocardium': 2}, '.nii.gz', 'center1')
    """
    return {
        "channel_names": {"0": "LGE"},
        "labels": dict(LABELS),
        "numTraining": num_training,
        "file_ending": FILE_ENDING,
        "center": profile.name,
        "vendor": profile.vendor,
        "field_strength": profile.field_strength,
        "description": (f"Synthetic LGE short-axis phantom, {profile.name}: imitates {profile.paper_analogue}. "
                        "Papillary muscles are labelled blood pool; scar and microvascular obstruction are "
                        "labelled myocardium."),
        "paper_analogue": profile.paper_analogue,
        "generator": GENERATOR,
        "seed": seed,
        "profile": dataclasses.asdict(profile),
        "cases": cases,
    }


def _case_file_pattern(center: int) -> re.Pattern[str]:
    """Names of the case files ``write_center`` writes for ``center`` (and its atomic temporaries)."""
    return re.compile(rf"^(\.)?c{center}_\d{{3}}(_0000)?{re.escape(FILE_ENDING)}(\.[a-z0-9_]{{8}}.*)?$")


def is_synthetic_dataset(dataset_dir: str | Path, center: int) -> bool:
    """True when ``dataset_dir`` was written by ``lgeseg.synth``: its ``dataset.json`` says so, or (a run
    interrupted before its ``dataset.json``) it holds nothing but this center's synthetic case files.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> folder = write_center(tmp.name, 1, cases=1, seed=0, in_plane_size=32)
        >>> is_synthetic_dataset(folder, 1)
        True
        >>> _ = (folder / "dataset.json").write_text('{"name": "my own data"}')
        >>> is_synthetic_dataset(folder, 1)
        False
        >>> tmp.cleanup()
    """
    dataset_dir = Path(dataset_dir)
    meta = dataset_dir / "dataset.json"
    if meta.is_file():
        return load_json(meta).get("generator") == GENERATOR
    pattern = _case_file_pattern(center)
    for path in dataset_dir.iterdir():
        if path.name not in ("imagesTr", "labelsTr") or not path.is_dir():
            return False
        if not all(item.is_file() and pattern.match(item.name) for item in path.iterdir()):
            return False
    return True


def check_center_folders(out_dir: str | Path, centers: Sequence[int | str], overwrite: bool) -> None:
    """Refuse to write over existing center folders; nothing is written.

    An absent or empty ``out_dir/center<k>`` is always fine. A non-empty one is refused unless ``overwrite``,
    and even then unless it is a synthetic dataset (``is_synthetic_dataset``): a folder of the user's own
    data is never replaced. Raises ``OutputConflictError`` naming the folder.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> _ = write_center(tmp.name, 1, cases=1, seed=0, in_plane_size=32)
        >>> check_center_folders(tmp.name, [1], overwrite=True)  # a synthetic dataset may be replaced
        >>> check_center_folders(tmp.name, [1], overwrite=False)
        Traceback (most recent call last):
        lgeseg.core.errors.OutputConflictError: .../center1: already exists; use --overwrite to replace it ...
        >>> tmp.cleanup()
    """
    for center in centers:
        profile = get_profile(center)
        folder = Path(out_dir) / profile.name
        if folder.exists() and not folder.is_dir():
            raise OutputConflictError(f"{folder}: exists and is a file, not a dataset folder; choose another "
                                      "output folder")
        if not folder.is_dir() or not any(folder.iterdir()):
            continue
        if not overwrite:
            raise OutputConflictError(f"{folder}: already exists; use --overwrite to replace it (only a synthetic "
                                      "dataset written by lgeseg_synth is replaced), or choose another output folder")
        if not is_synthetic_dataset(folder, profile.number):
            raise OutputConflictError(f"{folder}: not a synthetic dataset written by {GENERATOR} (its dataset.json "
                                      "does not say so); --overwrite replaces only those: choose another output "
                                      "folder")


def _prepare_folder(dataset_dir: Path, center: int) -> None:
    """Create the folders; refuse a folder that is not a synthetic dataset; drop its stale cases."""
    if dataset_dir.is_dir() and any(dataset_dir.iterdir()) and not is_synthetic_dataset(dataset_dir, center):
        raise OutputConflictError(f"{dataset_dir}: exists and was not written by {GENERATOR}; choose another "
                                  "output folder")
    (dataset_dir / "dataset.json").unlink(missing_ok=True)  # written last again: a folder with it is complete
    pattern = _case_file_pattern(center)
    for sub in ("imagesTr", "labelsTr"):
        folder = dataset_dir / sub
        folder.mkdir(parents=True, exist_ok=True)
        for path in folder.iterdir():
            if pattern.match(path.name):
                path.unlink()


def write_center(out_dir: str | Path, center: int | str, cases: int, seed: int, in_plane_size: int | None = None,
                 progress: tqdm | None = None) -> Path:
    """Write ``cases`` synthetic cases of one center to ``out_dir/center<k>``; returns that folder.

    Images are stored in the center's dtype (int16, uint8 or float32), labels as uint8;
    ``dataset.json`` is written last, so a folder with a ``dataset.json`` is complete.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> folder = write_center(tmp.name, 2, cases=1, seed=0, in_plane_size=32)
        >>> folder.name, sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.*"))
        ('center2', ['dataset.json', 'imagesTr/c2_000_0000.nii.gz', 'labelsTr/c2_000.nii.gz'])
        >>> tmp.cleanup()
    """
    profile = get_profile(center)
    dataset_dir = Path(out_dir) / profile.name
    _prepare_folder(dataset_dir, profile.number)
    summaries: dict[str, Any] = {}
    for index in range(cases):
        case = synthesize_case(profile.number, index, seed, in_plane_size=in_plane_size)
        cid = case_id(profile.number, index)
        image = case.image.astype(np.dtype(profile.storage_dtype))
        write_image(dataset_dir / "imagesTr" / f"{cid}_0000{FILE_ENDING}", image, case.geometry)
        write_label(dataset_dir / "labelsTr" / f"{cid}{FILE_ENDING}", case.label, case.geometry)
        summaries[cid] = _case_summary(case)
        if progress is not None:
            progress.update(1)
    save_json(dataset_json(profile, cases, seed, summaries), dataset_dir / "dataset.json")
    return dataset_dir


def generate_multicenter(out_dir: str | Path, cases_per_center: int = 10, seed: int = 0,
                         centers: Sequence[int | str] = (1, 2, 3, 4), in_plane_size: int | None = None,
                         overwrite: bool = True) -> list[Path]:
    """Write one raw dataset per center: ``out_dir/center1`` .. ``out_dir/center4``.

    Args:
        out_dir: parent folder (created).
        cases_per_center: cases per center (ids ``c<k>_000`` ...).
        seed: every case depends only on (seed, center, case index).
        centers: which centers (1..4) to write.
        in_plane_size: optional square in-plane matrix (pixels) for tiny test data; keeps each
            center's field of view, so the spacing is no longer the center's.
        overwrite: replace center folders that are synthetic datasets (the default, so that the demo and
            the experiment runners can rerun into their folders); False refuses any non-empty center folder
            (``lgeseg_synth`` without ``--overwrite``). Other folders are refused either way, before anything
            is written (``check_center_folders``).

    Returns:
        The dataset folders, in the order of ``centers``.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> folders = generate_multicenter(tmp.name, cases_per_center=2, seed=0, in_plane_size=32)
        >>> [f.name for f in folders], sorted(p.name for p in (folders[0] / "imagesTr").iterdir())
        (['center1', 'center2', 'center3', 'center4'], ['c1_000_0000.nii.gz', 'c1_001_0000.nii.gz'])
        >>> tmp.cleanup()
    """
    if cases_per_center < 1:
        raise ValueError(f"cases_per_center must be at least 1, found {cases_per_center}")
    profiles = [get_profile(c) for c in centers]
    if len({p.number for p in profiles}) != len(profiles):
        raise ValueError(f"centers must not repeat, found {list(centers)}")
    check_center_folders(out_dir, [p.number for p in profiles], overwrite)
    folders = []
    with tqdm(total=cases_per_center * len(profiles), desc="synthesizing LGE cases", unit="case") as bar:
        for profile in profiles:
            folders.append(write_center(out_dir, profile.number, cases_per_center, seed, in_plane_size, bar))
            logger.info("wrote %s (%d cases)", folders[-1], cases_per_center)
    return folders


def tiny_dataset(out_dir: str | Path, cases: int = 1, center: int = 1) -> Path:
    """Write the tiny raw dataset that docstring examples start from: ``out_dir/center<center>``.

    ``generate_multicenter(out_dir, cases, centers=(center,), in_plane_size=32)[0]``: ``cases`` phantom
    cases (seed 0) of one center on a 32 x 32 in-plane matrix, written in well under a second.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> raw = tiny_dataset(tmp.name, cases=2)
        >>> raw.name, sorted(p.name for p in (raw / "labelsTr").iterdir())
        ('center1', ['c1_000.nii.gz', 'c1_001.nii.gz'])
        >>> tmp.cleanup()
    """
    return generate_multicenter(out_dir, cases_per_center=cases, centers=(center,), in_plane_size=32)[0]
