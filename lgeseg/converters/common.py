"""Shared machinery of the public-dataset converters.

A converter lists its source cases as ``SourceItem``s (a name and a loader), and
``write_dataset`` does the rest: refuses a non-empty destination unless asked to overwrite,
writes every case into a hidden temporary folder beside the destination (so a failed
conversion leaves nothing half-written), writes ``dataset.json``, moves the result into place
and runs ``validate_dataset`` on it. ``convert_source`` is a converter's whole run (check the
destination, list the cases, write them) and ``load_image_case`` loads a case stored as one 3D image
file and one label file (EMIDEC, MS-CMRSeg).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lgeseg.core.records import LABELS, CaseGeometry, save_json
from lgeseg.datasets.validate import count_problems, format_problems, validate_dataset
from lgeseg.files import io

logger = logging.getLogger(__name__)

#: Entries a converter writes into its destination (and replaces when overwriting).
OUTPUT_ENTRIES: tuple[str, ...] = ("imagesTr", "labelsTr", "imagesTs", "labelsTs", "dataset.json")
FILE_ENDING = ".nii.gz"


@dataclasses.dataclass(frozen=True)
class ConvertedCase:
    """One case ready to write.

    Attributes:
        case_id: output case identifier.
        image: (z, y, x) intensities.
        image_geometry: geometry of ``image``, copied from the source file.
        label: (z, y, x) uint8 in lgeseg's labels (0, 1, 2), or None for an unlabelled case.
        label_geometry: geometry of ``label``, copied from the source file.
    """

    case_id: str
    image: np.ndarray
    image_geometry: CaseGeometry
    label: np.ndarray | None = None
    label_geometry: CaseGeometry | None = None


@dataclasses.dataclass(frozen=True)
class SourceItem:
    """A unit of source data (usually one patient) and how to load it into cases."""

    name: str
    load: Callable[[], list[ConvertedCase]]


@dataclasses.dataclass(frozen=True)
class DatasetMeta:
    """The descriptive fields of the ``dataset.json`` a converter writes."""

    name: str
    description: str
    channel_name: str = "LGE"
    center: str | None = None
    vendor: str | None = None
    field_strength: str | None = None
    extra: Mapping[str, object] = dataclasses.field(default_factory=dict)


def check_destination(dst: Path, overwrite: bool) -> None:
    """Refuse to convert into a non-empty ``dst`` unless ``overwrite``.

    Raises ``FileExistsError`` naming the folder (or ``NotADirectoryError`` if it is a file).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     check_destination(Path(folder) / "new", overwrite=False)  # a new or empty folder: fine
        ...     _ = (Path(folder) / "notes.txt").write_text("mine")
        ...     check_destination(Path(folder), overwrite=False)
        Traceback (most recent call last):
        ...
        FileExistsError: ...: destination folder is not empty; choose an empty folder or pass overwrite ...
    """
    if dst.exists() and not dst.is_dir():
        raise NotADirectoryError(f"{dst}: destination exists and is not a folder")
    if dst.is_dir() and any(dst.iterdir()) and not overwrite:
        raise FileExistsError(f"{dst}: destination folder is not empty; choose an empty folder or pass "
                              f"overwrite (replaces {', '.join(OUTPUT_ENTRIES)} there, keeps anything else)")


def remap_labels(array: np.ndarray, mapping: Mapping[int, int], source: Path) -> np.ndarray:
    """Map source label values to lgeseg's labels.

    Args:
        array: (z, y, x) source label map, any numeric dtype.
        mapping: source value -> lgeseg value; every value present must be listed.
        source: the file the labels came from (named in errors).

    Returns:
        uint8 (z, y, x). Raises ``ValueError`` naming the file and the unexpected values.

    Example:
        >>> remap_labels(np.array([[[0, 200, 500]]]), {0: 0, 500: 1, 200: 2}, Path("gt/case1.nii.gz")).tolist()
        [[[0, 2, 1]]]
        >>> remap_labels(np.array([[[0, 7]]]), {0: 0}, Path("gt/case1.nii.gz"))
        Traceback (most recent call last):
        ...
        ValueError: gt/case1.nii.gz: unexpected label value(s) [7]; expected only [0]
    """
    if array.dtype.kind == "f" and (not np.all(np.isfinite(array)) or not np.all(np.mod(array, 1) == 0)):
        raise ValueError(f"{source}: label map holds non-integer values")
    values = np.unique(array).astype(np.int64)
    unexpected = sorted(int(v) for v in values if int(v) not in mapping)
    if unexpected:
        raise ValueError(f"{source}: unexpected label value(s) {unexpected}; expected only {sorted(mapping)}")
    out = np.zeros(array.shape, dtype=np.uint8)
    for value, target in mapping.items():
        if target:
            out[array == value] = target
    return out


def load_image_case(case_id: str, image_path: Path, label_path: Path | None,
                    label_map: Mapping[int, int]) -> list[ConvertedCase]:
    """Read one 3D image file (and its label file, remapped with ``label_map``) into a case.

    Args:
        case_id: output case identifier.
        image_path: the source image; its geometry is copied unchanged.
        label_path: the source label map, or None for an unlabelled case (written to ``imagesTs``).
        label_map: source label value -> lgeseg label value (``remap_labels``).

    Returns:
        ``[ConvertedCase]``, the loader a ``SourceItem`` wants (bind the arguments with ``functools.partial``).
        Raises ``ValueError`` naming the label file when it holds a value ``label_map`` does not list.

    Example:
        >>> import tempfile
        >>> from lgeseg.synth import synthesize_case
        >>> tmp = tempfile.TemporaryDirectory()
        >>> case = synthesize_case(1, index=0, seed=0, in_plane_size=32)
        >>> io.write_image(Path(tmp.name) / "p1.nii.gz", case.image, case.geometry)
        >>> io.write_label(Path(tmp.name) / "p1_gt.nii.gz", case.label * 100, case.geometry)  # source labels 100, 200
        >>> [loaded] = load_image_case("p1", Path(tmp.name) / "p1.nii.gz", Path(tmp.name) / "p1_gt.nii.gz",
        ...                            {0: 0, 100: 1, 200: 2})
        >>> loaded.case_id, sorted(np.unique(loaded.label).tolist()), loaded.image_geometry.shape == case.image.shape
        ('p1', [0, 1, 2], True)
        >>> load_image_case("p1", Path(tmp.name) / "p1.nii.gz", None, {0: 0})[0].label is None  # for imagesTs
        True
        >>> tmp.cleanup()
    """
    image, image_geometry = io.read_image(image_path)
    if label_path is None:
        return [ConvertedCase(case_id, image, image_geometry)]
    raw_label, label_geometry = io.read_image(label_path)
    label = remap_labels(raw_label, label_map, label_path)
    return [ConvertedCase(case_id, image, image_geometry, label, label_geometry)]


def convert_source(src: Path, dst: Path, overwrite: bool, find_cases: Callable[[Path], Sequence[SourceItem]],
                   meta: DatasetMeta, nothing_found: str) -> int:
    """A converter's whole run: check ``dst``, list the cases below ``src``, write them (``write_dataset``).

    Args:
        src, dst, overwrite: as given to ``convert_<name>``.
        find_cases: lists the source cases below ``src`` (e.g. ``find_emidec_cases``).
        meta: the ``dataset.json`` fields.
        nothing_found: the ``FileNotFoundError`` text when ``find_cases`` lists none (after ``"{src}: "``).

    Returns:
        Number of cases written. ``dst`` is checked before ``src`` is searched.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     convert_source(Path(folder) / "src", Path(folder) / "dst", False, lambda src: [],
        ...                    DatasetMeta("Mine", "nothing yet"), "no cases found (expected *.nii.gz)")
        Traceback (most recent call last):
        ...
        FileNotFoundError: .../src: no cases found (expected *.nii.gz)
    """
    src, dst = Path(src), Path(dst)
    check_destination(dst, overwrite)
    items = find_cases(src)
    if not items:
        raise FileNotFoundError(f"{src}: {nothing_found}")
    return write_dataset(items, dst, meta, overwrite)


def compact_image(array: np.ndarray) -> np.ndarray:
    """Return ``array`` as int16 when that is lossless (integral values in range), else float32.

    Example:
        >>> [str(compact_image(np.array(values)).dtype) for values in ([1.0, 2.0], [1.5], [1e6])]
        ['int16', 'float32', 'float32']
    """
    if array.size and np.all(np.isfinite(array)) and np.all(np.mod(array, 1) == 0):
        if array.min() >= np.iinfo(np.int16).min and array.max() <= np.iinfo(np.int16).max:
            return array.astype(np.int16)
    return array.astype(np.float32, copy=False)


def write_dataset(items: Sequence[SourceItem], dst: Path, meta: DatasetMeta, overwrite: bool = False) -> int:
    """Convert ``items`` into the raw dataset ``dst`` and validate it.

    Cases with a label go to ``imagesTr``/``labelsTr``, cases without to ``imagesTs``.

    Returns:
        Number of cases written. Raises ``ValueError`` listing every source item that failed
        (then nothing is written to ``dst``), or naming the problems if the written dataset
        fails ``validate_dataset`` (then the files stay for inspection).

    Example:
        >>> import tempfile
        >>> from lgeseg.synth import synthesize_case
        >>> tmp = tempfile.TemporaryDirectory()
        >>> case = synthesize_case(1, index=0, seed=0, in_plane_size=32)  # stands in for a loaded source patient
        >>> converted = ConvertedCase("p1", case.image, case.geometry, case.label, case.geometry)
        >>> item = SourceItem("patient1", load=lambda: [converted])
        >>> write_dataset([item], Path(tmp.name) / "Dataset010_Mine", DatasetMeta("Mine", "one phantom case"))
        1
        >>> sorted(p.relative_to(Path(tmp.name) / "Dataset010_Mine").as_posix() for p in Path(tmp.name).rglob("*.*"))
        ['dataset.json', 'imagesTr/p1_0000.nii.gz', 'labelsTr/p1.nii.gz']
        >>> tmp.cleanup()
    """
    check_destination(dst, overwrite)
    dst.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dst.parent, prefix=f".{dst.name}.converting-"))
    try:
        num_training, num_test = _write_cases(items, staging, meta.name)
        save_json(_dataset_json(meta, num_training), staging / "dataset.json")
        _install(staging, dst)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("%s: wrote %d training and %d test case(s)", dst, num_training, num_test)
    _validate_result(dst)
    return num_training + num_test


def _write_cases(items: Sequence[SourceItem], out: Path, dataset_name: str) -> tuple[int, int]:
    errors: list[str] = []
    seen: set[str] = set()
    num_training = num_test = 0
    for folder in ("imagesTr", "labelsTr"):  # nnU-Net layout even when every case is unlabelled
        (out / folder).mkdir()
    for item in tqdm(items, desc=f"converting {dataset_name}", unit="case"):
        try:
            cases = item.load()
        except (ValueError, FileNotFoundError) as err:
            errors.append(str(err))
            continue
        for case in cases:
            if case.case_id in seen:
                errors.append(f"{item.name}: case id '{case.case_id}' occurs twice in the source")
                continue
            seen.add(case.case_id)
            subset = "Tr" if case.label is not None else "Ts"
            io.write_image(out / f"images{subset}" / f"{case.case_id}_0000{FILE_ENDING}",
                           compact_image(case.image), case.image_geometry)
            if case.label is not None:
                io.write_label(out / "labelsTr" / f"{case.case_id}{FILE_ENDING}", case.label,
                               case.label_geometry or case.image_geometry)
                num_training += 1
            else:
                num_test += 1
    if errors:
        raise ValueError(f"{len(errors)} source problem(s); nothing was written:\n  " + "\n  ".join(errors))
    if num_training + num_test == 0:
        raise ValueError(f"no cases to convert for {dataset_name}")
    return num_training, num_test


def _dataset_json(meta: DatasetMeta, num_training: int) -> dict[str, object]:
    data: dict[str, object] = {
        "name": meta.name,
        "description": meta.description,
        "channel_names": {"0": meta.channel_name},
        "labels": dict(LABELS),
        "numTraining": num_training,
        "file_ending": FILE_ENDING,
    }
    for key in ("center", "vendor", "field_strength"):
        if getattr(meta, key) is not None:
            data[key] = getattr(meta, key)
    data.update(meta.extra)
    return data


def _install(staging: Path, dst: Path) -> None:
    """Move the staged entries into ``dst``, replacing only the entries a converter writes."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in OUTPUT_ENTRIES:
        target = dst / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    for entry in sorted(staging.iterdir()):
        os.replace(entry, dst / entry.name)


def _validate_result(dst: Path) -> None:
    problems = validate_dataset(dst)
    errors, warnings = count_problems(problems)
    if warnings:
        logger.warning("%s: %d warning(s):\n%s", dst, warnings,
                       format_problems([p for p in problems if p.severity == "warning"], root=dst))
    if errors:
        raise ValueError(f"{dst}: converted, but the result fails validation (files kept for inspection):\n"
                         + format_problems(problems, root=dst))
