"""M&Ms (multi-centre, multi-vendor cine MRI challenge 2020) -> lgeseg raw dataset(s).

Source layout, found anywhere below ``SRC``: ``<code>/<code>_sa.nii.gz`` (4D short-axis cine,
(x, y, z, t)) and ``<code>/<code>_sa_gt.nii.gz`` (4D labels, annotated at ED and ES), plus the
information CSV with columns ``External code, VendorName, Vendor, Centre, ED, ES`` (ED/ES are
0-based frame indices). The ED and ES frames become separate 3D cases ``<code>_ED`` and
``<code>_ES``; their geometry is the first three axes of the 4D header, unchanged.

Labels: 0 background, 1 LV -> 1 blood pool, 2 MYO -> 2 myocardium, 3 RV -> 0.
"""

from __future__ import annotations

import csv
import dataclasses
import re
from functools import partial
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from lgeseg.converters.common import (
    ConvertedCase,
    DatasetMeta,
    SourceItem,
    check_destination,
    remap_labels,
    write_dataset,
)
from lgeseg.core.records import CaseGeometry

#: M&Ms label value -> lgeseg label value.
MNMS_LABELS: dict[int, int] = {0: 0, 1: 1, 2: 2, 3: 0}
INFO_COLUMNS: tuple[str, ...] = ("External code", "VendorName", "Vendor", "Centre", "ED", "ES")


@dataclasses.dataclass(frozen=True)
class MnmsInfo:
    """One row of the M&Ms information CSV (ed/es: 0-based frame indices)."""

    code: str
    vendor_name: str
    vendor: str
    centre: str
    ed: int
    es: int


def _write_example_source(src: Path, cine: bool = True) -> None:
    """A one-patient M&Ms source below ``src``, the set-up of this module's examples.

    ``src/info.csv`` lists patient ``A1B2C3`` (Siemens, vendor A, centre 1, ED frame 0, ES frame 9);
    with ``cine``, ``src/A1B2C3/A1B2C3_sa.nii.gz`` is its 4D cine: 10 frames of 2 x 8 x 8 zeros,
    1.25 x 1.25 x 8 mm, no labels.
    """
    src.mkdir(parents=True, exist_ok=True)
    (src / "info.csv").write_text(",".join(INFO_COLUMNS) + "\nA1B2C3,Siemens,A,1,0,9\n")
    if cine:
        (src / "A1B2C3").mkdir()
        frame = sitk.GetImageFromArray(np.zeros((2, 8, 8), np.float32))
        frame.SetSpacing((1.25, 1.25, 8.0))
        sitk.WriteImage(sitk.JoinSeries([frame] * 10), str(src / "A1B2C3" / "A1B2C3_sa.nii.gz"))


def read_mnms_info(csv_path: Path) -> dict[str, MnmsInfo]:
    """Read the M&Ms information CSV into ``{external code: MnmsInfo}``.

    Raises ``ValueError`` naming the file and the missing column or the bad row.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> _write_example_source(Path(tmp.name), cine=False)  # info.csv: one patient, A1B2C3
        >>> read_mnms_info(Path(tmp.name) / "info.csv")
        {'A1B2C3': MnmsInfo(code='A1B2C3', vendor_name='Siemens', vendor='A', centre='1', ed=0, es=9)}
        >>> tmp.cleanup()
    """
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in INFO_COLUMNS if c not in columns]
        if missing:
            raise ValueError(f"{csv_path}: missing column(s) {missing}; found {columns}")
        info: dict[str, MnmsInfo] = {}
        for line, row in enumerate(reader, start=2):
            row = {str(k).strip(): (v or "").strip() for k, v in row.items()}
            try:
                entry = MnmsInfo(row["External code"], row["VendorName"], row["Vendor"], row["Centre"],
                                 int(row["ED"]), int(row["ES"]))
            except ValueError as err:
                raise ValueError(f"{csv_path}, line {line}: ED/ES must be integers ({err})") from err
            info[entry.code] = entry
    return info


def find_info_csv(src: Path) -> Path:
    """Find the one CSV below ``src`` whose header has the M&Ms information columns.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> src = Path(tmp.name)
        >>> _write_example_source(src, cine=False)  # info.csv
        >>> _ = (src / "notes.csv").write_text("patient,comment\\n")
        >>> find_info_csv(src).name  # the CSV with the information columns
        'info.csv'
        >>> tmp.cleanup()
    """
    found = []
    for path in sorted(src.rglob("*.csv")):
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as handle:
            header = [c.strip() for c in next(csv.reader(handle), [])]
        if all(c in header for c in INFO_COLUMNS):
            found.append(path)
    if not found:
        raise FileNotFoundError(f"{src}: no M&Ms information CSV (columns {', '.join(INFO_COLUMNS)}) found; "
                                "pass it with --info")
    if len(found) > 1:
        raise ValueError(f"{src}: several M&Ms information CSVs ({', '.join(map(str, found))}); pick one with --info")
    return found[0]


def read_frames(path: Path) -> tuple[np.ndarray, CaseGeometry]:
    """Read a 4D cine file.

    Returns:
        (array (t, z, y, x), geometry of one 3D frame: spacing/origin/direction of the first
        three axes). Uses SimpleITK directly because ``lgeseg.files.io`` reads 3D images only.
        Raises ``ValueError`` naming the file if it is unreadable or not 4D.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> src = Path(tmp.name)
        >>> _write_example_source(src)  # A1B2C3/A1B2C3_sa.nii.gz: 10 frames of 2 x 8 x 8, 1.25 x 1.25 x 8 mm
        >>> frames, geometry = read_frames(src / "A1B2C3" / "A1B2C3_sa.nii.gz")
        >>> frames.shape, geometry.shape, geometry.spacing  # (t, z, y, x); one frame's geometry
        ((10, 2, 8, 8), (2, 8, 8), (8.0, 1.25, 1.25))
        >>> tmp.cleanup()
    """
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        raise ValueError(f"{path}: cannot be read as an image ({str(err).strip().splitlines()[-1]})") from err
    if image.GetDimension() != 4:
        raise ValueError(f"{path}: expected a 4D cine (x, y, z, t), found {image.GetDimension()}D")
    size, spacing, direction = image.GetSize(), image.GetSpacing(), image.GetDirection()
    geometry = CaseGeometry(
        shape=(int(size[2]), int(size[1]), int(size[0])),
        spacing=(float(spacing[2]), float(spacing[1]), float(spacing[0])),
        origin=tuple(float(v) for v in image.GetOrigin()[:3]),
        direction=tuple(float(direction[row * 4 + col]) for row in range(3) for col in range(3)),
    )
    return sitk.GetArrayFromImage(image), geometry


def _frame(array: np.ndarray, index: int, path: Path, phase: str) -> np.ndarray:
    if not 0 <= index < array.shape[0]:
        raise ValueError(f"{path}: {phase} frame {index} (from the info CSV) outside 0..{array.shape[0] - 1}")
    return array[index]


def _load_patient(info: MnmsInfo, image_path: Path, label_path: Path | None) -> list[ConvertedCase]:
    frames, geometry = read_frames(image_path)
    labels, label_geometry = read_frames(label_path) if label_path is not None else (None, None)
    cases = []
    for phase, index in (("ED", info.ed), ("ES", info.es)):
        image = _frame(frames, index, image_path, phase)
        label = None
        if labels is not None and label_path is not None:
            label = remap_labels(_frame(labels, index, label_path, phase), MNMS_LABELS, label_path)
        cases.append(ConvertedCase(f"{info.code}_{phase}", image, geometry, label, label_geometry))
    return cases


def _not_in_csv(image_path: Path, csv_path: Path) -> list[ConvertedCase]:
    raise ValueError(f"{image_path}: code {image_path.parent.name} not listed in {csv_path}")


def find_mnms_cases(src: Path, info: dict[str, MnmsInfo], csv_path: Path) -> list[tuple[MnmsInfo | None, SourceItem]]:
    """List M&Ms patients below ``src`` (``<code>/<code>_sa.nii.gz``) with their CSV row (None: not listed).

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> src = Path(tmp.name)
        >>> _write_example_source(src)  # info.csv (ED frame 0, ES frame 9) and A1B2C3/A1B2C3_sa.nii.gz
        >>> items = find_mnms_cases(src, read_mnms_info(src / "info.csv"), src / "info.csv")
        >>> [(row.code, Path(item.name).name) for row, item in items]
        [('A1B2C3', 'A1B2C3_sa.nii.gz')]
        >>> [case.case_id for case in items[0][1].load()]  # the ED and ES frames become two cases
        ['A1B2C3_ED', 'A1B2C3_ES']
        >>> tmp.cleanup()
    """
    items = []
    for image_path in sorted(src.rglob("*_sa.nii.gz")):
        code = image_path.name[: -len("_sa.nii.gz")]
        if image_path.parent.name != code:
            continue
        label_path = image_path.with_name(f"{code}_sa_gt.nii.gz")
        row = info.get(code)
        load = (partial(_load_patient, row, image_path, label_path if label_path.is_file() else None)
                if row is not None else partial(_not_in_csv, image_path, csv_path))
        items.append((row, SourceItem(str(image_path), load)))
    return items


def _meta(rows: list[MnmsInfo], csv_path: Path) -> DatasetMeta:
    centres = sorted({r.centre for r in rows})
    vendors = sorted({r.vendor_name for r in rows})
    case_metadata = {f"{r.code}_{phase}": {"center": f"M&Ms centre {r.centre}", "vendor": r.vendor_name,
                                           "vendor_code": r.vendor, "phase": phase, "frame": frame}
                     for r in rows for phase, frame in (("ED", r.ed), ("ES", r.es))}
    return DatasetMeta(
        name=f"MNMs_centre{centres[0]}" if len(centres) == 1 else "MNMs",
        description=f"M&Ms cine MRI, ED and ES frames, converted by lgeseg_convert mnms from {csv_path.name}; "
        "RV removed",
        channel_name="cine",
        center=f"M&Ms centre {centres[0]}" if len(centres) == 1 else f"M&Ms (centres {', '.join(centres)})",
        vendor=", ".join(vendors) or None,
        extra={"case_metadata": case_metadata},
    )


def convert_mnms(src: Path, dst: Path, overwrite: bool = False, info_csv: Path | None = None,
                 split_centers: bool = False) -> int:
    """Convert the M&Ms dataset at ``src`` into the raw dataset ``dst``.

    Args:
        src: the unpacked M&Ms folder (patients' folders anywhere below it).
        dst: destination folder; must be empty unless ``overwrite``.
        overwrite: replace ``imagesTr``/``labelsTr``/``imagesTs``/``dataset.json`` in the destination(s).
        info_csv: the information CSV; default: the one CSV below ``src`` with the M&Ms columns.
        split_centers: write one dataset per centre, ``dst/mnms_centre<k>``, each with its own
            ``center``/``vendor`` (for leave-one-centre-out work); default one dataset in ``dst``.

    Returns:
        Number of cases written (two per patient: ``<code>_ED`` and ``<code>_ES``). Raises
        ``FileNotFoundError`` if no patient or CSV is found, ``ValueError`` naming every file
        that could not be converted (unlisted code, frame out of range, unexpected label value).

    Usage (needs the M&Ms download; ``lgeseg_convert mnms SRC DST`` is the same call)::

        convert_mnms(Path("downloads/OpenDataset"), Path("raw/Dataset103_MnMs"), split_centers=True)
    """
    src, dst = Path(src), Path(dst)
    check_destination(dst, overwrite)
    csv_path = Path(info_csv) if info_csv is not None else find_info_csv(src)
    found = find_mnms_cases(src, read_mnms_info(csv_path), csv_path)
    if not found:
        raise FileNotFoundError(f"{src}: no M&Ms cine files found (expected <code>/<code>_sa.nii.gz)")
    if not split_centers or any(row is None for row, _ in found):
        rows = [row for row, _ in found if row is not None]
        return write_dataset([item for _, item in found], dst, _meta(rows, csv_path), overwrite)
    written = 0
    for centre in sorted({row.centre for row, _ in found if row is not None}):
        group = [(row, item) for row, item in found if row is not None and row.centre == centre]
        folder = dst / ("mnms_centre" + re.sub(r"[^A-Za-z0-9]+", "_", centre))
        written += write_dataset([item for _, item in group], folder, _meta([r for r, _ in group], csv_path),
                                 overwrite)
    return written
