"""DICOM series as cases: find the series in a folder, name them, read one as a volume.

The DICOM counterpart of ``lgeseg/files/io.py`` (the only other module that reads images with
SimpleITK). A folder (searched recursively) may hold several series, as a PACS export does:
each series (one SeriesInstanceUID) becomes one case, read with SimpleITK's ``ImageSeriesReader``
(GDCM sorts the slices by position along the slice normal), so a volume gets the same origin,
spacing and direction that SimpleITK gives any DICOM stack.

A case is named after its SeriesDescription and SeriesNumber (``SAX_LGE_PSIR_s12``), made
safe for a file name; a series without either is named after its SeriesInstanceUID. The user
picks series by UID, number or description (``select_series``). A series whose slices are not one
regular stack (several images at one position, as in cine or repeated acquisitions, or uneven
gaps) is refused with a message naming it: the volumes computed downstream need true spacing.

A multi-frame file (Enhanced MR Image Storage: every slice a frame of one file, the positions in
its per-frame functional groups) is one series of one file; it is read with pydicom (installed with
the optional extra ``lgeseg[dicom]``), frame positions checked and sorted like a stack of files.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from lgeseg.core.errors import CorruptFileError
from lgeseg.core.records import CaseGeometry

logger = logging.getLogger(__name__)

#: DICOM tags read from each series' first file (SimpleITK's "gggg|eeee" keys).
TAGS = {"description": "0008|103e", "number": "0020|0011", "modality": "0008|0060", "uid": "0020|000e",
        "manufacturer": "0008|0070", "field_strength": "0018|0087", "institution": "0008|0080",
        "position": "0020|0032", "orientation": "0020|0037", "image_type": "0008|0008",
        "inversion_time": "0018|0082", "sequence_name": "0018|0024", "cardiac_images": "0018|1090",
        "frames": "0028|0008", "sop_class": "0008|0016"}
#: The tags kept in ``DicomSeries.metadata`` (what tells an LGE series from a cine or a localizer, and the site).
METADATA_TAGS = ("manufacturer", "field_strength", "institution", "image_type", "inversion_time", "sequence_name",
                 "cardiac_images", "frames", "sop_class")
#: Largest relative deviation of a slice gap from the median gap accepted as one regular stack.
GAP_TOLERANCE = 0.1


@dataclasses.dataclass(frozen=True)
class DicomSeries:
    """One DICOM series found in a folder.

    Attributes:
        case_id: the case name (``<description>_s<number>``, or the SeriesInstanceUID).
        uid: SeriesInstanceUID.
        description: SeriesDescription ("" when absent).
        number: SeriesNumber ("" when absent).
        modality: Modality (e.g. "MR").
        files: the slice files in GDCM's order (along the slice normal), first slice = z index 0.
        metadata: ``METADATA_TAGS`` of the first file ("" when absent): manufacturer, field strength,
            institution, image type, inversion time, sequence name, cardiac images, frames, SOP class.
    """

    case_id: str
    uid: str
    description: str
    number: str
    modality: str
    files: tuple[Path, ...]
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)


def _tags(path: Path) -> dict[str, str]:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    return {name: reader.GetMetaData(tag).strip() if reader.HasMetaDataKey(tag) else ""
            for name, tag in TAGS.items()}


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("_.")[:64]


def _case_name(description: str, number: str, uid: str) -> str:
    parts = [_safe_name(description)] + ([f"s{_safe_name(number)}"] if _safe_name(number) else [])
    name = "_".join(p for p in parts if p)
    return name if description or number else _safe_name(uid)


def _series_ids(directory: str) -> tuple[str, ...]:
    """GDCM's series ids in one folder, without its warning for folders that hold none."""
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        return tuple(sitk.ImageSeriesReader.GetGDCMSeriesIDs(directory) or ())
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)


def find_series(folder: str | Path) -> list[DicomSeries]:
    """Every DICOM series under ``folder`` (searched recursively), sorted by series number then name.

    Returns an empty list when there is none. Case names are unique: a repeated name gets the
    end of the SeriesInstanceUID appended. A DICOM file that GDCM leaves out of every series because
    it cannot be parsed (truncated, damaged) is refused with ``CorruptFileError`` naming it
    (``check_left_out_file``): a series would otherwise be read without that slice.

    Usage (needs DICOM files; ``lgeseg_predict --list-series FOLDER`` prints the same list)::

        for series in find_series("export/patient_dicoms"):
            print(series.case_id, series.description, len(series.files))
    """
    files_by_uid: dict[str, list[Path]] = {}
    for directory, _, names_here in sorted(os.walk(folder)):
        in_series: set[str] = set()
        for uid in _series_ids(directory):
            names = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(directory, uid)
            files_by_uid.setdefault(uid, []).extend(Path(n) for n in names)
            in_series.update(os.path.basename(n) for n in names)
        for name in sorted(set(names_here) - in_series):
            check_left_out_file(Path(directory) / name)
    found = []
    for uid, files in files_by_uid.items():
        if len({f.parent for f in files}) > 1:  # one series split across folders: GDCM sorts it as a whole
            files = [Path(n) for n in _sorted_by_position(files)]
        tags = _tags(files[0])
        found.append(DicomSeries(
            case_id=_case_name(tags["description"], tags["number"], uid), uid=uid, description=tags["description"],
            number=tags["number"], modality=tags["modality"], files=tuple(files),
            metadata={k: tags[k] for k in METADATA_TAGS}))
    found.sort(key=lambda s: (int(s.number) if s.number.isdigit() else 1 << 30, s.case_id))
    return _unique_names(found)


#: DICOM files carry "DICM" after a 128-byte preamble (PS3.10); GDCM also reads files without it.
_DICOM_MAGIC_OFFSET = 128
#: File endings of DICOM slices written without the preamble.
DICOM_ENDINGS = (".dcm", ".ima", ".dicom")


def _looks_like_dicom(path: Path) -> bool:
    if path.suffix.lower() in DICOM_ENDINGS:
        return True
    try:
        with path.open("rb") as handle:
            handle.seek(_DICOM_MAGIC_OFFSET)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def check_left_out_file(path: Path) -> None:
    """Raise ``CorruptFileError`` naming ``path`` when it is a DICOM file that cannot be read.

    ``find_series`` calls it for every file GDCM put in no series: a truncated or damaged slice is
    silently skipped by GDCM, so its series would be predicted with a slice missing. Files that are
    not DICOM (no ``DICM`` marker, no DICOM ending), the ``DICOMDIR`` index and hidden files are
    ignored; any other file that SimpleITK cannot read as an image is refused (a DICOM object without
    an image, such as a structured report, too: move it out of the folder).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     _ = (Path(folder) / "notes.txt").write_text("not DICOM")  # ignored
        ...     check_left_out_file(Path(folder) / "notes.txt")
        ...     _ = (Path(folder) / "IM0004.dcm").write_bytes(bytes(128) + b"DICM" + bytes(20))  # cut short
        ...     check_left_out_file(Path(folder) / "IM0004.dcm")
        Traceback (most recent call last):
        lgeseg.core.errors.CorruptFileError: .../IM0004.dcm: DICOM file cannot be read (...); ...
    """
    if path.name.startswith(".") or path.name.upper() == "DICOMDIR" or not path.is_file():
        return
    if not _looks_like_dicom(path):
        return
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        reader.ReadImageInformation()
        reader.Execute()  # a readable header with a cut pixel payload fails here
    except RuntimeError as err:
        detail = str(err).strip().splitlines()[-1].replace(str(path), path.name) if str(err).strip() else "no detail"
        raise CorruptFileError(
            f"{path}: DICOM file cannot be read ({detail[:200]}); it is truncated or damaged, so its series would "
            "miss a slice: export the series again, or move the file out of the folder") from err
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)


def _sorted_by_position(files: Sequence[Path]) -> list[Path]:
    positions = [_position_along_normal(_tags(f)) for f in files]
    return [f for _, f in sorted(zip(positions, files, strict=True), key=lambda pair: pair[0])]


def _unique_names(series: list[DicomSeries]) -> list[DicomSeries]:
    counts: dict[str, int] = {}
    for s in series:
        counts[s.case_id] = counts.get(s.case_id, 0) + 1
    return [dataclasses.replace(s, case_id=f"{s.case_id}_{_safe_name(s.uid)[-8:]}") if counts[s.case_id] > 1 else s
            for s in series]


def select_series(series: Sequence[DicomSeries], patterns: Sequence[str] | None) -> list[DicomSeries]:
    """The series the user asked for.

    Args:
        series: as from ``find_series``.
        patterns: each matches a series by SeriesInstanceUID, SeriesNumber, case name, or
            SeriesDescription (case-insensitive, shell wildcards: ``"*LGE*"``); None or empty keeps all.

    Returns:
        The matching series, in their order. Raises ``ValueError`` naming a pattern that matches
        nothing, with the series available.

    Example:
        >>> cine = DicomSeries("CINE_s5", uid="1.2.5", description="CINE", number="5", modality="MR", files=())
        >>> lge = DicomSeries("PSIR_LGE_s12", uid="1.2.12", description="PSIR LGE", number="12", modality="MR",
        ...                   files=())
        >>> found = [cine, lge]
        >>> [s.case_id for s in select_series(found, ["*lge*"])], [s.case_id for s in select_series(found, ["5"])]
        (['PSIR_LGE_s12'], ['CINE_s5'])
    """
    if not patterns:
        return list(series)
    chosen: list[DicomSeries] = []
    for pattern in patterns:
        matches = [s for s in series if pattern in (s.uid, s.number, s.case_id)
                   or fnmatch.fnmatch(s.description.lower(), pattern.lower())]
        if not matches:
            listing = "; ".join(f"{s.number or '-'} {s.description or '-'} ({s.uid})" for s in series)
            raise ValueError(f"--series {pattern!r} matches no series; found: {listing}")
        chosen += [s for s in matches if s not in chosen]
    return [s for s in series if s in chosen]


def _position_along_normal(tags: dict[str, str]) -> float:
    orientation = [float(v) for v in tags["orientation"].split("\\")]
    normal = np.cross(orientation[:3], orientation[3:])
    return float(np.dot(normal, [float(v) for v in tags["position"].split("\\")]))


def is_multiframe(series: DicomSeries) -> bool:
    """True for a series of one multi-frame file (Enhanced MR: every slice a frame).

    Example:
        >>> one = DicomSeries("LGE_s3", "1.2.3", "LGE", "3", "MR", (Path("a.dcm"),), {"frames": "12"})
        >>> is_multiframe(one), is_multiframe(DicomSeries("LGE_s3", "1.2.3", "LGE", "3", "MR", (Path("a.dcm"),)))
        (True, False)
    """
    frames = series.metadata.get("frames", "").strip()
    return len(series.files) == 1 and frames.isdigit() and int(frames) > 1


def check_positions(name: str, positions: Sequence[float], labels: Sequence[str]) -> list[int]:
    """The order that sorts ``positions`` (mm along the slice normal); refuses what is not one regular stack.

    Args:
        name: the series, for the messages.
        positions: one per image (file or frame).
        labels: one per image (file names, ``frame 3``), named when images share a position.

    Raises ``ValueError`` naming the series when images share a position (cine phases, repeats, a
    duplicate slice: the message names two of them and the position) or when a gap differs from the
    median gap by more than ``GAP_TOLERANCE``.

    Example:
        >>> check_positions("LGE_s12", [16.0, 0.0, 8.0], ["c.dcm", "a.dcm", "b.dcm"])
        [1, 2, 0]
        >>> check_positions("LGE_s12", [0.0, 8.0, 16.0, 8.0], ["a.dcm", "b.dcm", "c.dcm", "copy.dcm"])
        Traceback (most recent call last):
        ValueError: series LGE_s12: several images share one slice position: b.dcm and copy.dcm at 8.00 mm ...; a
        duplicate slice: remove one of them
    """
    order = sorted(range(len(positions)), key=lambda i: positions[i])
    ordered = np.array([positions[i] for i in order], dtype=float)
    if len(ordered) < 2:
        return order
    gaps = np.diff(ordered)
    unique = len(np.unique(ordered.round(3)))
    if np.any(gaps < 1e-3):
        k = int(np.argmax(gaps < 1e-3))
        pair = f"{labels[order[k]]} and {labels[order[k + 1]]} at {ordered[k]:.2f} mm"
        what = ("a duplicate slice: remove one of them" if len(ordered) - unique <= max(1, unique // 4) else
                "cine phases or repeated acquisitions are not one volume: export a single phase")
        raise ValueError(f"series {name}: several images share one slice position: {pair} ({len(ordered)} images, "
                         f"{unique} positions); {what}")
    median = float(np.median(gaps))
    if np.any(np.abs(gaps - median) > GAP_TOLERANCE * median):
        raise ValueError(f"series {name}: slices are not evenly spaced (gaps {', '.join(f'{g:.2f}' for g in gaps)} "
                         "mm); lgeseg needs one regular stack")
    return order


def check_regular_stack(series: DicomSeries) -> tuple[Path, ...]:
    """Raise ``ValueError`` naming the series unless its slices form one evenly spaced stack; its files in order.

    Several images at one position (cine phases, repeats, a duplicate slice: ``check_positions``) and gaps
    that differ from the median gap by more than ``GAP_TOLERANCE`` are refused; so is a series with a
    missing orientation or position. A multi-frame file is checked frame by frame. Returns the files
    along the slice normal: GDCM's order when it is one (ascending or descending), else sorted.

    Usage (needs DICOM files; ``read_series`` runs it first)::

        for series in find_series("export/patient_dicoms"):
            check_regular_stack(series)
    """
    name = f"{series.case_id} ({series.uid})"
    if is_multiframe(series):
        _multiframe_layout(series)
        return series.files
    if len(series.files) < 2:
        return series.files
    try:
        positions = [_position_along_normal(_tags(f)) for f in series.files]
    except (ValueError, IndexError) as err:
        raise ValueError(f"series {name}: ImagePositionPatient/ImageOrientationPatient missing or malformed in "
                         f"{series.files[0].parent}") from err
    order = check_positions(name, positions, [f.name for f in series.files])
    if order in (list(range(len(order))), list(range(len(order)))[::-1]):
        return series.files
    return tuple(series.files[i] for i in order)


def read_series(series: DicomSeries) -> tuple[np.ndarray, CaseGeometry]:
    """Read a series as one volume.

    Returns:
        (float32 (z, y, x) intensities with the rescale slope/intercept applied, geometry with
        spacing (z, y, x) mm and ITK's origin/direction). Raises ``ValueError`` naming the series
        when it is not a regular stack or cannot be read.

    Usage (needs DICOM files)::

        image, geometry = read_series(select_series(find_series("export/patient_dicoms"), ["*LGE*"])[0])
    """
    if is_multiframe(series):
        return _read_multiframe(series)
    files = check_regular_stack(series)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(f) for f in files])
    try:
        image = reader.Execute()
    except RuntimeError as err:
        raise ValueError(f"series {series.case_id} ({series.files[0].parent}): cannot be read "
                         f"({str(err).strip().splitlines()[-1]})") from err
    if image.GetDimension() == 2:
        image = sitk.JoinSeries(image)
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        found = f"a {image.GetDimension()}D image with {image.GetNumberOfComponentsPerPixel()} value(s) per voxel"
        raise ValueError(f"series {series.case_id} ({series.files[0]}): expected one greyscale value per voxel of a "
                         f"3D stack, found {found}")
    size, spacing = image.GetSize(), image.GetSpacing()
    geometry = CaseGeometry(shape=(int(size[2]), int(size[1]), int(size[0])),
                            spacing=(float(spacing[2]), float(spacing[1]), float(spacing[0])),
                            origin=tuple(float(v) for v in image.GetOrigin()),
                            direction=tuple(float(v) for v in image.GetDirection()))
    return sitk.GetArrayFromImage(image).astype(np.float32, copy=False), geometry


def _pydicom() -> Any:
    try:
        import pydicom  # deferred: an optional dependency (lgeseg[dicom]), needed only for multi-frame files
    except ImportError as err:
        raise ValueError("a multi-frame DICOM file (Enhanced MR) is read with pydicom: pip install 'lgeseg[dicom]' "
                         "(or pip install pydicom)") from err
    return pydicom


def _group(dataset: Any, frame: Any, sequence: str) -> Any:
    """The item of functional group ``sequence`` for one frame: its per-frame one, else the shared one."""
    for source in (frame, *(dataset.get("SharedFunctionalGroupsSequence") or [])):
        if source is not None and sequence in source and len(source[sequence].value):
            return source[sequence].value[0]
    return None


def _multiframe_layout(series: DicomSeries) -> tuple[list[int], CaseGeometry, list[tuple[float, float]]]:
    """Frame order along the normal, geometry, and (slope, intercept) per frame of a multi-frame file."""
    path = series.files[0]
    name = f"{series.case_id} ({path})"
    dataset = _pydicom().dcmread(path, stop_before_pixels=True)
    frames = list(dataset.get("PerFrameFunctionalGroupsSequence") or [])
    try:
        orientation = [float(v) for v in _group(dataset, frames[0], "PlaneOrientationSequence").ImageOrientationPatient]
        measures = _group(dataset, frames[0], "PixelMeasuresSequence")
        pixel = [float(v) for v in measures.PixelSpacing]
        corners = [[float(v) for v in _group(dataset, f, "PlanePositionSequence").ImagePositionPatient] for f in frames]
    except (AttributeError, IndexError, TypeError, ValueError) as err:
        raise ValueError(f"series {name}: a multi-frame file without per-frame positions, orientation or pixel "
                         "spacing (PerFrameFunctionalGroupsSequence / SharedFunctionalGroupsSequence)") from err
    row, col = np.array(orientation[:3]), np.array(orientation[3:])
    normal = np.cross(row, col)
    positions = [float(np.dot(normal, c)) for c in corners]
    order = check_positions(name, positions, [f"frame {i + 1}" for i in range(len(frames))])
    gaps = np.diff(sorted(positions))
    step = float(np.median(gaps)) if len(gaps) else float(getattr(measures, "SliceThickness", 1.0) or 1.0)
    direction = tuple(float(v) for v in np.stack([row, col, normal], axis=1).ravel())
    geometry = CaseGeometry(shape=(len(frames), int(dataset.Rows), int(dataset.Columns)), spacing=(step, *pixel),
                            origin=tuple(corners[order[0]]), direction=direction)
    rescale = []
    for frame in frames:
        item = _group(dataset, frame, "PixelValueTransformationSequence") or dataset
        rescale.append((float(getattr(item, "RescaleSlope", 1) or 1), float(getattr(item, "RescaleIntercept", 0) or 0)))
    return order, geometry, rescale


def frame_order(series: DicomSeries) -> list[int]:
    """The frames of a multi-frame series in volume order (z index k is frame ``frame_order(series)[k]``).

    Raises ``ValueError`` naming the file when the frames are not one regular stack.

    Usage (needs a multi-frame DICOM file; ``dicom_seg.write_dicom_seg`` writes its frames in file order)::

        order = frame_order(find_series("export/enhanced_mr")[0])
    """
    return _multiframe_layout(series)[0]


def _read_multiframe(series: DicomSeries) -> tuple[np.ndarray, CaseGeometry]:
    order, geometry, rescale = _multiframe_layout(series)
    path = series.files[0]
    try:
        pixels = np.asarray(_pydicom().dcmread(path).pixel_array)
    except Exception as err:  # noqa: BLE001 - pydicom reports a missing decoder or a damaged payload many ways
        raise ValueError(f"series {series.case_id} ({path}): the pixel data of the multi-frame file cannot be read "
                         f"({type(err).__name__}: {str(err).strip()[:200]})") from err
    if pixels.ndim != 3 or pixels.shape != (len(order), *geometry.shape[1:]):
        raise ValueError(f"series {series.case_id} ({path}): expected {len(order)} greyscale frames of "
                         f"{geometry.shape[1]} x {geometry.shape[2]}, found pixel data of shape {pixels.shape}")
    volume = np.stack([pixels[i].astype(np.float32) * rescale[i][0] + rescale[i][1] for i in order])
    return volume.astype(np.float32, copy=False), geometry


def has_dicom(folder: str | Path) -> bool:
    """True when ``folder`` or a subfolder holds at least one DICOM series.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     has_dicom(folder)  # no DICOM series below an empty folder
        False
    """
    return any(_series_ids(d) for d, _, _ in os.walk(folder))
