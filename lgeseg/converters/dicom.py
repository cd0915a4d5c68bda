"""A folder of DICOM series (a PACS export) -> lgeseg raw dataset (unlabelled cases in ``imagesTs``).

The study's short-axis LGE stacks below ``SRC`` (picked from their tags as ``lgeseg_predict`` picks
them: ``lgeseg.files.dicom_study.pick_series``, one log line per skipped series), or the series named with
``series`` (``lgeseg.files.dicom.select_series``), or every series (``all_series``) each become
``imagesTs/<case>_0000.nii.gz`` with the geometry SimpleITK's series reader gives it, named like
``lgeseg_predict`` names DICOM cases. ``dataset.json`` takes the vendor, field strength and
institution of the first series (DICOM Manufacturer, MagneticFieldStrength, InstitutionName) and
``dicom_series`` maps each case to its SeriesInstanceUID, number and description.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lgeseg.converters.common import ConvertedCase, DatasetMeta, SourceItem, check_destination, write_dataset
from lgeseg.files.dicom import DicomSeries, find_series, read_series, select_series
from lgeseg.files.dicom_study import pick_series


def _load(series: DicomSeries) -> list[ConvertedCase]:
    image, geometry = read_series(series)
    return [ConvertedCase(series.case_id, image, geometry)]


def _meta(chosen: Sequence[DicomSeries], name: str) -> DatasetMeta:
    first = chosen[0].metadata
    strength = first.get("field_strength", "")
    return DatasetMeta(
        name=name, description=f"{len(chosen)} DICOM series converted by lgeseg_convert dicom",
        center=first.get("institution") or None, vendor=first.get("manufacturer") or None,
        field_strength=f"{strength}T" if strength else None,
        extra={"dicom_series": {s.case_id: {"series_instance_uid": s.uid, "series_number": s.number,
                                            "series_description": s.description} for s in chosen}})


def convert_dicom(src: str | Path, dst: str | Path, overwrite: bool = False, series: Sequence[str] | None = None,
                  name: str = "DICOM", all_series: bool = False) -> int:
    """Convert the short-axis LGE series (or the named ones, or all) below ``src`` into the raw dataset ``dst``.

    Args:
        src: folder searched recursively for DICOM series.
        dst: destination raw dataset folder (empty, unless ``overwrite``).
        overwrite: replace imagesTr/labelsTr/imagesTs/labelsTs/dataset.json in a non-empty ``dst``.
        series: patterns picking series (UID, number, case name or description), whatever their kind;
            None: the study's short-axis LGE stacks (``dicom_study.pick_series``; every other series is
            skipped with one log line).
        name: the dataset's ``name`` in dataset.json.
        all_series: convert every series (localizers, cines, maps too); not together with ``series``.

    Returns:
        Number of cases written. Raises ``FileNotFoundError`` when ``src`` holds no DICOM series and
        ``ValueError`` naming a series that is not one regular stack, a pattern matching nothing, or
        (without ``series`` and ``all_series``) listing every series when none is a short-axis LGE stack.

    Usage (needs DICOM files; ``lgeseg_convert dicom SRC DST`` is the same call)::

        convert_dicom(Path("export/patient_dicoms"), Path("raw/Dataset104_Local"), series=["*LGE*"])
    """
    src, dst = Path(src), Path(dst)
    if series and all_series:
        raise ValueError("series and all_series (--series, --all-series) were both given: give one of them "
                         "(--series picks series, --all-series takes every series)")
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: source folder not found")
    check_destination(dst, overwrite)
    found = find_series(src)
    if not found:
        raise FileNotFoundError(f"{src}: no DICOM series found")
    if series:
        chosen = select_series(found, series)
    elif all_series:
        chosen = list(found)
    else:
        chosen = pick_series(found, all_option="--all-series")
    items = [SourceItem(s.case_id, lambda s=s: _load(s)) for s in chosen]
    return write_dataset(items, dst, _meta(chosen, name), overwrite)
